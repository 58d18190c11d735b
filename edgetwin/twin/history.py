"""Histories (per-minute CGM, announced carbs, delivered insulin), feeding them to a twin, and
rolling-origin backtests with the persistence and linear-extrapolation baselines.

A history file is the ``edgetwin simulate`` output format: columns ``minute``, ``cgm_mg_dl``
(empty where there is no reading), ``cho_g`` (announced at that minute), ``insulin_u``
(delivered during that minute, basal included); other columns are ignored.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from edgetwin.csvfiles import read_minute_table
from edgetwin.errors import InputDataError
from edgetwin.twin.forecast import Forecast
from edgetwin.twin.prior import ParticlePrior
from edgetwin.twin.twin import Twin

if TYPE_CHECKING:
    from edgetwin.twin.daypart import DaypartSensitivity

__all__ = [
    "BacktestRow",
    "History",
    "HorizonScore",
    "NightlyPersonaliser",
    "backtest",
    "feed",
    "linear_extrapolation",
    "persistence",
    "score",
]

F64 = npt.NDArray[np.float64]

LINEAR_WINDOW_MIN = 20
GLUCOSE_RANGE = (39.0, 400.0)


@dataclass(frozen=True)
class History:
    """Per-minute arrays over minutes 0..n-1."""

    cgm_mg_dl: F64
    cho_g: F64
    insulin_u: F64

    def __post_init__(self) -> None:
        n = self.cgm_mg_dl.size
        if self.cho_g.size != n or self.insulin_u.size != n or n == 0:
            raise InputDataError("history columns must have the same, non-zero length")

    @property
    def minutes(self) -> int:
        return int(self.cgm_mg_dl.size)

    @property
    def last_minute(self) -> int:
        return self.minutes - 1

    @classmethod
    def from_events(
        cls,
        minutes: int,
        readings: Iterable[tuple[int, float | None]],
        insulin: Iterable[tuple[int, float, int]],
        carbs: Iterable[tuple[int, float]],
    ) -> History:
        """Per-minute arrays over [0, minutes) from events stamped in minutes from the start:
        readings (minute, mg/dL or None), insulin (minute, U, duration min; basal included)
        and announced carbs (minute, g). Events outside the span are dropped; None readings
        (sensor errors) stay gaps; duplicates of a minute keep the first reading."""
        if minutes <= 0:
            raise InputDataError("a history needs at least one minute")
        cgm = np.full(minutes, np.nan)
        cho = np.zeros(minutes)
        ins = np.zeros(minutes)
        for m, g in readings:
            if (
                0 <= m < minutes
                and g is not None
                and math.isfinite(g)
                and 0 < g <= 1000
                and math.isnan(cgm[m])
            ):
                cgm[m] = g
        for m, units, dur in insulin:
            if not (math.isfinite(units) and units >= 0):
                continue
            if dur <= 0:
                if 0 <= m < minutes:
                    ins[m] += units
            else:
                lo, hi = max(m, 0), min(m + dur, minutes)
                if hi > lo:
                    ins[lo:hi] += units / dur
        for m, grams in carbs:
            if 0 <= m < minutes and math.isfinite(grams) and grams > 0:
                cho[m] += grams
        return cls(cgm, cho, ins)

    @classmethod
    def from_csv(cls, path: str | Path) -> History:
        t = read_minute_table(
            path,
            required=("cgm_mg_dl", "cho_g", "insulin_u"),
            blank_allowed=("cgm_mg_dl",),
            fill={"cgm_mg_dl": math.nan},
        )
        cgm = t["cgm_mg_dl"]
        bad = np.flatnonzero(np.isfinite(cgm) & ((cgm <= 0) | (cgm > 1000)))
        if bad.size:
            raise InputDataError(
                f"column 'cgm_mg_dl': {cgm[bad[0]]:g} mg/dL at minute {bad[0]} is outside (0, 1000]",
                where=str(path),
            )
        if not np.isfinite(cgm).any():
            raise InputDataError("column 'cgm_mg_dl' has no readings", where=str(path))
        big = np.flatnonzero(t["cho_g"] > 500)
        if big.size:
            raise InputDataError(
                f"column 'cho_g': {t['cho_g'][big[0]]:g} g at minute {big[0]} is over 500", where=str(path)
            )
        big = np.flatnonzero(t["insulin_u"] > 100)
        if big.size:
            raise InputDataError(
                f"column 'insulin_u': {t['insulin_u'][big[0]]:g} U at minute {big[0]} is over 100",
                where=str(path),
            )
        return cls(cgm, t["cho_g"], t["insulin_u"])


def feed(twin: Twin, history: History, start: int, end: int) -> None:
    """Give the twin minutes [start, end] of ``history`` in time order (the twin must use
    ``basal_mode="delivered"``: every minute's insulin is recorded, zeros included, so the
    scheduled basal is assumed only after ``end``)."""
    ins = history.insulin_u
    cho = history.cho_g
    cgm = history.cgm_mg_dl
    for m in range(start, end + 1):
        twin.record_insulin(m, float(ins[m]))
        if cho[m] > 0:
            twin.record_carbs(m, float(cho[m]))
        if not math.isnan(cgm[m]):
            twin.assimilate_cgm(m, float(cgm[m]))


def persistence(cgm: F64, issued: int) -> float:
    """The latest reading at or before ``issued`` (NaN if none in the last hour)."""
    lo = max(0, issued - 60)
    seen = np.flatnonzero(np.isfinite(cgm[lo : issued + 1]))
    return float(cgm[lo + seen[-1]]) if seen.size else math.nan


def linear_extrapolation(cgm: F64, issued: int, horizon: int) -> float:
    """Least-squares line through the readings of the last 20 minutes, extended to
    ``issued + horizon`` and kept within the sensor range (persistence if fewer than 2)."""
    lo = max(0, issued - LINEAR_WINDOW_MIN)
    t = np.flatnonzero(np.isfinite(cgm[lo : issued + 1])) + lo
    if t.size < 2:
        return persistence(cgm, issued)
    slope, intercept = np.polyfit(t.astype(float), cgm[t], 1)
    value = slope * (issued + horizon) + intercept
    return float(min(max(value, GLUCOSE_RANGE[0]), GLUCOSE_RANGE[1]))


@dataclass(frozen=True, slots=True)
class BacktestRow:
    issued_minute: int
    horizon_min: int
    p10_mg_dl: float
    p50_mg_dl: float
    p90_mg_dl: float
    actual_mg_dl: float  # NaN when the history has no reading at the target minute
    persistence_mg_dl: float
    linear_mg_dl: float
    correction_mg_dl: float = 0.0  # the learned median correction included in the quantiles


class NightlyPersonaliser:
    """Re-identify the twin's parameters once a day from the data seen so far (at most the
    last 14 days), starting each time from the original prior, as a gateway does at night;
    with ``dayparts``, insulin sensitivity by time of day too (where identified)."""

    def __init__(
        self,
        prior: ParticlePrior,
        history: History,
        *,
        every_min: int = 1440,
        first_min: int = 1440,
        dayparts: bool = True,
    ):
        self.prior = prior
        self.history = history
        self.every_min = every_min
        self.next_min = first_min
        self.dayparts = dayparts
        self.runs: list[float] = []
        self.last_dayparts: DaypartSensitivity | None = None

    def __call__(self, twin: Twin, minute: int) -> None:
        if minute < self.next_min:
            return
        from edgetwin.twin.daypart import posterior_with_dayparts
        from edgetwin.twin.identify import identify

        t0 = time.perf_counter()
        res = identify(self.prior, self.history, end=minute + 1)
        posterior = res.posterior
        if self.dayparts:
            posterior, self.last_dayparts = posterior_with_dayparts(
                res, self.history, twin.schedule.minute_of_day_at_zero
            )
        twin.adopt(posterior)
        self.runs.append(time.perf_counter() - t0)
        while self.next_min <= minute:
            self.next_min += self.every_min


def backtest(
    twin: Twin,
    history: History,
    every_min: int,
    horizons_min: Sequence[int],
    *,
    first_issue_min: int | None = None,
    before_issue: Callable[[Twin, int], None] | None = None,
) -> list[BacktestRow]:
    """Rolling-origin forecasts: at each issue minute the twin has seen only data up to it.

    Forecasts are issued at ``first_issue_min`` (default ``every_min``) and every ``every_min``
    after, up to the last minute of the history, one row per horizon. ``before_issue(twin, t)``
    runs after the data up to t were fed (e.g. a :class:`NightlyPersonaliser`).
    """
    if every_min <= 0 or not horizons_min or min(horizons_min) <= 0:
        raise InputDataError("--every and every horizon must be positive")
    if any(h % 5 for h in horizons_min):
        raise InputDataError("horizons must be multiples of 5 minutes")
    horizon = max(horizons_min)
    first = every_min if first_issue_min is None else first_issue_min
    rows: list[BacktestRow] = []
    fed = -1
    cgm = history.cgm_mg_dl
    for t in range(first, history.minutes, every_min):
        feed(twin, history, fed + 1, t)
        fed = t
        if before_issue is not None:
            before_issue(twin, t)
        fc: Forecast = twin.forecast(horizon)
        pers = persistence(cgm, t)
        for h in horizons_min:
            p10, p50, p90 = fc.at(h)
            target = t + h
            actual = float(cgm[target]) if target < history.minutes else math.nan
            corr = float(fc.correction_mg_dl[int(np.flatnonzero(fc.horizons_min == h)[0])])
            rows.append(BacktestRow(t, h, p10, p50, p90, actual, pers, linear_extrapolation(cgm, t, h), corr))
    return rows


@dataclass(frozen=True, slots=True)
class HorizonScore:
    horizon_min: int
    n: int
    rmse: float
    mae: float
    mard_pct: float
    coverage_pct: float
    persistence_rmse: float
    persistence_mae: float
    persistence_mard_pct: float
    linear_rmse: float
    linear_mae: float
    linear_mard_pct: float


def _errors(pred: F64, actual: F64) -> tuple[float, float, float]:
    e = pred - actual
    return (
        float(np.sqrt(np.mean(e * e))),
        float(np.mean(np.abs(e))),
        float(100.0 * np.mean(np.abs(e) / actual)),
    )


def score(rows: Sequence[BacktestRow]) -> list[HorizonScore]:
    """RMSE, MAE, MARD and 80 % band coverage per horizon, with both baselines, over the rows
    that have an actual reading (and a baseline value)."""
    out = []
    for h in sorted({r.horizon_min for r in rows}):
        sel = [
            r
            for r in rows
            if r.horizon_min == h and math.isfinite(r.actual_mg_dl) and math.isfinite(r.persistence_mg_dl)
        ]
        if not sel:
            nan = math.nan
            out.append(HorizonScore(h, 0, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan))
            continue
        a = np.array([r.actual_mg_dl for r in sel])
        p50 = np.array([r.p50_mg_dl for r in sel])
        inside = np.array([r.p10_mg_dl <= r.actual_mg_dl <= r.p90_mg_dl for r in sel])
        model = _errors(p50, a)
        pers = _errors(np.array([r.persistence_mg_dl for r in sel]), a)
        lin = _errors(np.array([r.linear_mg_dl for r in sel]), a)
        out.append(HorizonScore(h, len(sel), *model, float(100.0 * inside.mean()), *pers, *lin))
    return out
