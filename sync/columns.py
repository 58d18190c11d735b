"""Column codecs for the sync batches: plain lists in, msgpack-friendly structures out.

Sans-I/O and strict: every decoder checks types and lengths and raises
:class:`~sync.errors.PayloadError` naming the column, never anything else.

* ``time``: integer milliseconds; first value then deltas (a 5-minute stream is one repeated small
  number, which the compressor then folds away).
* ``num`` (lossless): floats (or None) written as integers ``round(v * 10**e)`` with the smallest
  ``e`` in 0..6 that reproduces every value exactly, delta-encoded; raw floats if no ``e`` does.
  ``quantized(step)``: the same at a stated precision (lossy by design, documented per field).
* ``int``: integers (or None), delta-encoded.
* ``str``: a dictionary of distinct values plus one index per row (omitted when all rows agree).
* ``flag``: the row indexes where a boolean is True (most flags are rarely set).
* ``bytes`` / ``raw``: values as msgpack carries them (blobs; small structured values).

Missing values (None) are the ``m`` list of row indexes; the others are stored densely.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sync.errors import PayloadError

__all__ = [
    "dec_bytes",
    "dec_flag",
    "dec_int",
    "dec_num",
    "dec_raw",
    "dec_str",
    "dec_time",
    "enc_bytes",
    "enc_flag",
    "enc_int",
    "enc_num",
    "enc_raw",
    "enc_str",
    "enc_time",
]

_INT_LIMIT = 2**62


def _deltas(values: Sequence[int]) -> list[int]:
    out: list[int] = []
    prev = 0
    for v in values:
        out.append(v - prev)
        prev = v
    return out


def _undelta(deltas: Sequence[int], where: str) -> list[int]:
    out: list[int] = []
    acc = 0
    for d in deltas:
        if not isinstance(d, int) or isinstance(d, bool) or not -_INT_LIMIT < d < _INT_LIMIT:
            raise PayloadError(f"expected an integer, got {type(d).__name__}", where=where)
        acc += d
        if not -_INT_LIMIT < acc < _INT_LIMIT:
            raise PayloadError("integer out of range", where=where)
        out.append(acc)
    return out


def _list(obj: Any, where: str, n: int | None = None) -> list[Any]:
    if not isinstance(obj, list):
        raise PayloadError(f"expected a list, got {type(obj).__name__}", where=where)
    if n is not None and len(obj) != n:
        raise PayloadError(f"expected {n} values, got {len(obj)}", where=where)
    return obj


def _map(obj: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise PayloadError(f"expected a map, got {type(obj).__name__}", where=where)
    unknown = set(obj) - allowed
    if unknown:
        raise PayloadError(f"unknown keys {sorted(map(str, unknown))}", where=where)
    return obj


def _missing(values: Sequence[Any]) -> tuple[list[int], list[Any]]:
    mask = [i for i, v in enumerate(values) if v is None]
    return mask, [v for v in values if v is not None]


def _with_missing(dense: list[Any], mask_obj: Any, n: int, where: str) -> list[Any]:
    mask = _list(mask_obj, where + ".m")
    if len(mask) + len(dense) != n:
        raise PayloadError(f"{len(mask)} missing + {len(dense)} present != {n} rows", where=where)
    out: list[Any] = [None] * n
    missing = set()
    for i in mask:
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < n or i in missing:
            raise PayloadError("bad missing-value index", where=where + ".m")
        missing.add(i)
    it = iter(dense)
    for i in range(n):
        if i not in missing:
            out[i] = next(it)
    return out


# --- time / int ----------------------------------------------------------------------------


def enc_time(values: Sequence[int]) -> list[int]:
    return _deltas(values)


def dec_time(obj: Any, n: int, where: str) -> list[int]:
    return _undelta(_list(obj, where, n), where)


def enc_int(values: Sequence[int | None]) -> dict[str, Any]:
    mask, dense = _missing(values)
    out: dict[str, Any] = {"d": _deltas(dense)}
    if mask:
        out["m"] = mask
    return out


def dec_int(obj: Any, n: int, where: str) -> list[int | None]:
    m = _map(obj, where, {"d", "m"})
    dense = _undelta(_list(m.get("d", []), where + ".d"), where + ".d")
    return _with_missing(dense, m.get("m", []), n, where)


# --- numbers -------------------------------------------------------------------------------


def _exponent_for(values: Sequence[float]) -> int | None:
    for e in range(7):
        scale = 10**e
        ok = True
        for v in values:
            k = round(v * scale)
            if abs(k) >= _INT_LIMIT or k / scale != v:
                ok = False
                break
        if ok:
            return e
    return None


def enc_num(values: Sequence[float | None], step: float | None = None) -> dict[str, Any]:
    """Lossless (``step=None``) or quantized to multiples of ``step`` (then ``q`` carries it)."""
    mask, dense = _missing(values)
    out: dict[str, Any] = {}
    if mask:
        out["m"] = mask
    if step is not None:
        out["q"] = float(step)
        out["d"] = _deltas([round(v / step) for v in dense])
        return out
    e = _exponent_for(dense)
    if e is None:
        out["f"] = [float(v) for v in dense]
    else:
        out["e"] = e
        out["d"] = _deltas([round(v * 10**e) for v in dense])
    return out


def dec_num(obj: Any, n: int, where: str) -> list[float | None]:
    m = _map(obj, where, {"d", "m", "e", "q", "f"})
    dense: list[float]
    if "f" in m:
        raw = _list(m["f"], where + ".f")
        if not all(isinstance(v, float) and math.isfinite(v) for v in raw):
            raise PayloadError("expected finite floats", where=where + ".f")
        dense = list(raw)
    else:
        ints = _undelta(_list(m.get("d", []), where + ".d"), where + ".d")
        if "q" in m:
            q = m["q"]
            if not isinstance(q, float) or not math.isfinite(q) or q <= 0:
                raise PayloadError("bad quantization step", where=where + ".q")
            dense = [k * q for k in ints]
        else:
            e = m.get("e", 0)
            if not isinstance(e, int) or isinstance(e, bool) or not 0 <= e <= 6:
                raise PayloadError("bad decimal exponent", where=where + ".e")
            dense = [k / 10**e for k in ints]
    return _with_missing(dense, m.get("m", []), n, where)


# --- strings, flags, raw -------------------------------------------------------------------


def enc_str(values: Sequence[str]) -> dict[str, Any]:
    index: dict[str, int] = {}
    idx = [index.setdefault(v, len(index)) for v in values]
    out: dict[str, Any] = {"u": list(index)}
    if len(index) > 1:
        out["i"] = idx
    return out


def dec_str(obj: Any, n: int, where: str) -> list[str]:
    m = _map(obj, where, {"u", "i"})
    uniq = _list(m.get("u", []), where + ".u")
    if not all(isinstance(u, str) for u in uniq):
        raise PayloadError("dictionary values must be text", where=where + ".u")
    if "i" not in m:
        if n and len(uniq) != 1:
            raise PayloadError("one dictionary value expected without indexes", where=where)
        return [uniq[0]] * n if n else []
    idx = _list(m["i"], where + ".i", n)
    out = []
    for i in idx:
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(uniq):
            raise PayloadError("dictionary index out of range", where=where + ".i")
        out.append(uniq[i])
    return out


def enc_flag(values: Sequence[bool]) -> list[int]:
    return [i for i, v in enumerate(values) if v]


def dec_flag(obj: Any, n: int, where: str) -> list[bool]:
    out = [False] * n
    for i in _list(obj, where):
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < n:
            raise PayloadError("flag index out of range", where=where)
        out[i] = True
    return out


def enc_bytes(values: Sequence[bytes | None]) -> list[bytes | None]:
    return list(values)


def dec_bytes(obj: Any, n: int, where: str) -> list[bytes | None]:
    vals = _list(obj, where, n)
    if not all(v is None or isinstance(v, bytes) for v in vals):
        raise PayloadError("expected bytes or nil", where=where)
    return vals


def enc_raw(values: Sequence[Any]) -> list[Any]:
    return list(values)


def dec_raw(obj: Any, n: int, where: str) -> list[Any]:
    return _list(obj, where, n)
