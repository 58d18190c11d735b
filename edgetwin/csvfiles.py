"""Per-minute CSV tables (``simulate`` inputs and outputs, forecast histories).

Reading is strict: every problem is an :class:`~edgetwin.errors.InputDataError` naming the file,
the row (1 = header) and the column, never a traceback.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edgetwin.errors import InputDataError

__all__ = ["MinuteTable", "read_minute_table", "write_table"]

MAX_MINUTES = 366 * 1440


class MinuteTable:
    """Columns indexed by minute 0..n_minutes-1; missing minutes hold the column's fill value."""

    def __init__(
        self, n_minutes: int, columns: dict[str, npt.NDArray[np.float64]], present: npt.NDArray[np.bool_]
    ):
        self.n_minutes = n_minutes
        self.columns = columns
        self.present = present  # True where the file had a row for that minute

    def __getitem__(self, name: str) -> npt.NDArray[np.float64]:
        return self.columns[name]


def read_minute_table(
    path: str | Path,
    *,
    required: Sequence[str],
    optional: Sequence[str] = (),
    blank_allowed: Sequence[str] = (),
    fill: Mapping[str, float] | None = None,
) -> MinuteTable:
    """Read a CSV with an integer ``minute`` column (from 0, strictly increasing).

    Value columns must be finite and >= 0. Columns in ``blank_allowed`` may be empty (NaN).
    Minutes without a row take ``fill[col]`` (default 0). The table covers minute 0 to the last
    row's minute + 1.
    """
    p = Path(path)
    fill = dict(fill or {})
    where = str(p)
    try:
        fh = p.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise InputDataError(f"cannot open: {exc.strerror}", where=where) from None
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise InputDataError("empty file (a header row is required)", where=where) from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputDataError(f"row 1: not readable CSV ({exc})", where=where) from None
        header = [h.strip() for h in header]
        for col in ("minute", *required):
            if col not in header:
                raise InputDataError(f"row 1: missing column {col!r} (have {', '.join(header)})", where=where)
        if len(set(header)) != len(header):
            raise InputDataError("row 1: duplicate column names", where=where)
        wanted = [c for c in (*required, *optional) if c in header]
        idx = {c: header.index(c) for c in ("minute", *wanted)}
        minutes: list[int] = []
        values: dict[str, list[float]] = {c: [] for c in wanted}
        last = -1
        row_no = 1
        try:
            for row in reader:
                row_no += 1
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise InputDataError(
                        f"row {row_no}: {len(row)} cells, header has {len(header)}", where=where
                    )
                cell = row[idx["minute"]].strip()
                try:
                    minute = int(cell)
                except ValueError:
                    raise InputDataError(
                        f"row {row_no}, column 'minute': {cell!r} is not an integer", where=where
                    ) from None
                if minute < 0 or minute > MAX_MINUTES:
                    raise InputDataError(f"row {row_no}, column 'minute': {minute} out of range", where=where)
                if minute <= last:
                    raise InputDataError(
                        f"row {row_no}, column 'minute': {minute} is not after the previous row ({last})",
                        where=where,
                    )
                last = minute
                minutes.append(minute)
                for c in wanted:
                    raw = row[idx[c]].strip()
                    if raw == "" and c in blank_allowed:
                        values[c].append(math.nan)
                        continue
                    try:
                        v = float(raw)
                    except ValueError:
                        raise InputDataError(
                            f"row {row_no}, column {c!r}: {raw!r} is not a number", where=where
                        ) from None
                    if not math.isfinite(v) or v < 0:
                        raise InputDataError(
                            f"row {row_no}, column {c!r}: {raw} must be finite and >= 0", where=where
                        )
                    values[c].append(v)
        except csv.Error as exc:
            raise InputDataError(f"row {row_no}: not readable CSV ({exc})", where=where) from None
        except UnicodeDecodeError:
            raise InputDataError(f"row {row_no}: not UTF-8 text", where=where) from None
    if not minutes:
        raise InputDataError("no data rows", where=where)
    n = minutes[-1] + 1
    mi = np.array(minutes)
    present = np.zeros(n, dtype=bool)
    present[mi] = True
    cols: dict[str, npt.NDArray[np.float64]] = {}
    for c in (*required, *optional):
        arr = np.full(n, fill.get(c, 0.0))
        if c in values:
            arr[mi] = values[c]
        cols[c] = arr
    return MinuteTable(n, cols, present)


def write_table(
    path: str | Path, columns: Mapping[str, Sequence[object] | npt.NDArray[np.generic]], *, digits: int = 3
) -> None:
    """Write equal-length columns; floats rounded to ``digits``, NaN and None written empty."""
    names = list(columns)
    n = len(next(iter(columns.values()))) if columns else 0

    def fmt(v: object) -> str:
        if v is None:
            return ""
        if isinstance(v, (float, np.floating)):
            return "" if not math.isfinite(float(v)) else f"{float(v):.{digits}f}"
        return str(v)

    p = Path(path)
    with p.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        cols = [columns[c] for c in names]
        for i in range(n):
            w.writerow([fmt(col[i]) for col in cols])
