"""Forecasts with honest uncertainty: the CGM values the patient will see, as a central line (the
members' mean, :func:`cgm_bands`) inside a calibrated 10-90 % band.

Three sources of spread make the predictive distribution of a future CGM reading:

1. the particles (which glucose, which physiology): forecast members drawn by weight and run
   through the model under the planned inputs;
2. the sensor: each member's CGM-bias estimate decays towards the sensor's mean bias, and its
   variance grows back to the stationary one (:class:`~edgetwin.twin.sensor_model.SensorErrorModel`);
3. what the model cannot know (meals not yet announced, counting errors, physiology that drifts):
   a per-horizon widening of each tail, calibrated *online* by adaptive conformal inference
   (Gibbs & Candès, "Adaptive conformal inference under distribution shift", NeurIPS 2021):
   every 30 minutes the twin issues a forecast for itself, and when the reading arrives each
   tail's factor moves up by ``rate * 0.9`` after a miss and down by ``rate * 0.1`` otherwise,
   so each tail converges on 10 % misses and the 80 % band on 80 % coverage, patient by patient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from edgetwin.errors import InputDataError
from edgetwin.twin.correction import N_FEATURES, CorrectionInputs, MedianCorrector, features
from edgetwin.twin.kernels import mixture_quantiles
from edgetwin.twin.sensor_model import SensorErrorModel

__all__ = ["Calibrator", "Forecast", "PlannedInputs", "cgm_bands"]

F64 = npt.NDArray[np.float64]

QUANTILES = (0.1, 0.5, 0.9)
_QS = np.array(QUANTILES)
FORECAST_STEP_MIN = 5
_N_STRATA = 8


def _probit(p: float) -> float:
    """Standard-normal quantile by bisection on erfc (used once, at import)."""
    lo, hi = -8.0, 8.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if 0.5 * math.erfc(-mid / math.sqrt(2.0)) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# Stratified standard-normal points (equal probability) for the sensor part of the mixture.
_STRATA_Z = np.array([_probit((k + 0.5) / _N_STRATA) for k in range(_N_STRATA)])
_STRATA_Z /= np.sqrt(np.mean(_STRATA_Z**2))  # unit variance, so the sensor spread is not understated


@dataclass(frozen=True)
class PlannedInputs:
    """What is planned after the forecast's start, in minutes from that start (``at_min``).

    ``boluses`` (at_min, U); ``meals`` (at_min, g announced); ``temp_basals`` (at_min, U/h,
    duration min) replacing the basal in force for their duration.
    """

    boluses: tuple[tuple[int, float], ...] = ()
    meals: tuple[tuple[int, float], ...] = ()
    temp_basals: tuple[tuple[int, float, int], ...] = ()

    def __post_init__(self) -> None:
        for at, u in self.boluses:
            if at < 0 or not (math.isfinite(u) and 0 <= u <= 100):
                raise InputDataError(f"planned bolus ({at} min, {u} U): need at_min >= 0 and 0-100 U")
        for at, g in self.meals:
            if at < 0 or not (math.isfinite(g) and 0 <= g <= 500):
                raise InputDataError(f"planned meal ({at} min, {g} g): need at_min >= 0 and 0-500 g")
        for at, r, d in self.temp_basals:
            if at < 0 or d <= 0 or not (math.isfinite(r) and 0 <= r <= 35):
                raise InputDataError(
                    f"planned temp basal ({at} min, {r} U/h, {d} min): need at_min >= 0, 0-35 U/h, duration > 0"
                )

    def combined(self, other: PlannedInputs) -> PlannedInputs:
        return PlannedInputs(
            self.boluses + other.boluses, self.meals + other.meals, self.temp_basals + other.temp_basals
        )

    def apply(self, cho_g: F64, insulin_u: F64, basal_u_per_h: F64) -> None:
        """Add the plan to per-minute inputs (``insulin_u`` already holds ``basal_u_per_h``/60)."""
        n = cho_g.size
        for at, g in self.meals:
            if at < n:
                cho_g[at] += g
        for at, r, d in self.temp_basals:
            if at < n:
                e = min(at + d, n)
                insulin_u[at:e] += (r - basal_u_per_h[at:e]) / 60.0
        np.maximum(insulin_u, 0.0, out=insulin_u)
        for at, u in self.boluses:
            if at < n:
                insulin_u[at] += u


@dataclass(frozen=True)
class Forecast:
    """The CGM reading forecast at ``minutes`` (twin clock), every 5 min after ``issued_minute``:
    10 and 90 % quantiles and the central line ``p50_mg_dl`` (the members' mean, see
    :func:`cgm_bands`; readings fall below it about half the time).

    ``member_glucose_mg_dl`` (M, K) are the members' subcutaneous glucose (no sensor error),
    with ``member_weights``; use them for risk figures about true glucose. The quantiles include
    the learned median correction ``correction_mg_dl`` (K,; :mod:`edgetwin.twin.correction`);
    the members do not.
    """

    issued_minute: int
    minutes: npt.NDArray[np.int64]
    p10_mg_dl: F64
    p50_mg_dl: F64
    p90_mg_dl: F64
    member_glucose_mg_dl: F64 = field(repr=False)
    member_weights: F64 = field(repr=False)
    correction_mg_dl: F64 = field(default_factory=lambda: np.zeros(0), repr=False)

    @property
    def horizons_min(self) -> npt.NDArray[np.int64]:
        return self.minutes - self.issued_minute

    def at(self, horizon_min: int) -> tuple[float, float, float]:
        """(p10, p50, p90) at a horizon that is a multiple of 5 minutes."""
        k = np.flatnonzero(self.horizons_min == horizon_min)
        if k.size == 0:
            raise KeyError(f"no forecast at horizon {horizon_min} min")
        i = int(k[0])
        return float(self.p10_mg_dl[i]), float(self.p50_mg_dl[i]), float(self.p90_mg_dl[i])


def cgm_bands(
    gsub_mg_dl: F64,
    bias_mg_dl: F64,
    bias_var: float,
    horizons_min: F64,
    sensor: SensorErrorModel,
) -> F64:
    """Uncalibrated (3, K) forecast of future CGM readings from equally weighted members: the
    mixture's 10 % quantile, its mean, and its 90 % quantile.

    Member i at horizon h predicts ``gsub[i, h] + mean + decay(h) * (bias_i - mean)`` with the
    bias variance grown over h plus white noise; the mixture's quantiles come from stratified
    normal points per member.

    The central row is the mixture's mean rather than its median. Scored by squared error, the
    mean is the better point forecast, and the difference comes from the minority of members:
    those that ate an unannounced snack, or whose meal absorbs faster. The median ignores them
    until they are half the cloud. On ``edgetwin bench estimate`` (seed 1, with the error model)
    the ratios to persistence at 30 / 60 / 120 min went from 0.608 / 0.650 / 0.759 with the
    median to 0.606 / 0.643 / 0.745 with the mean for the profile-only twin, and from 0.547 /
    0.611 / 0.763 to 0.544 / 0.601 / 0.745 for the known patient. A 10 % trimmed mean scored like
    the median (experiment harness), so the gain does come from the tails. Readings still fall
    below it about half the time (README, "The living twin"). It is kept inside the 10-90 %
    band, so calibration cannot cross the tails.
    """
    s = sensor
    h = np.asarray(horizons_min, dtype=np.float64)
    dec = s.corr_per_min ** np.maximum(h, 0.0)
    var = dec * dec * bias_var + (1.0 - dec * dec) * s.sd_mg_dl**2 + s.white_sd_mg_dl**2
    centre = np.ascontiguousarray(
        gsub_mg_dl + s.mean_mg_dl + dec[None, :] * (bias_mg_dl[:, None] - s.mean_mg_dl)
    )
    out = np.empty((len(QUANTILES), h.size))
    work = np.empty(centre.shape[0] * _STRATA_Z.size)
    mixture_quantiles(centre, np.sqrt(var), _STRATA_Z, _QS, work, out)
    # Each member's sensor noise is symmetric about its centre: the mixture's mean is theirs.
    out[1] = np.clip(centre.mean(axis=0), out[0], out[2])
    return out


CALIBRATION_HORIZONS = (15, 30, 60, 90, 120)
# Starting tail factors (low, high) per horizon: where the online update had taken them after
# three days on six cohort patients (known-patient and profile twins pooled; the upper tail
# widens with the horizon because unannounced snacks and under-counted meals only push glucose
# up). The online update takes over from there, patient by patient. Re-measured 2026-12-07 with
# the median correction, which moves the median up after meals: the lower tail now widens
# beyond an hour too (it had been 0.97 at 60-120 min).
INITIAL_TAIL_FACTORS = ((0.91, 0.95), (0.94, 0.91), (1.06, 1.17), (1.08, 1.5), (1.13, 1.63))


Pending = tuple[int, int, float, float, float, float, "F64 | None"]
"""A forecast awaiting its reading: (target minute, horizon index, q10, q50, q90 uncalibrated,
median correction applied, correction features or None)."""

LOW_GUARD_MG_DL = 70.0
LOW_GUARD_RAMP_MG_DL = 20.0


def _guard_lows(shift_mg_dl: F64, p50_mg_dl: F64) -> F64:
    """No upward correction where the twin's own median is at LOW_GUARD_MG_DL or below, phased in
    over the LOW_GUARD_RAMP_MG_DL above it."""
    room = np.clip((p50_mg_dl - LOW_GUARD_MG_DL) / LOW_GUARD_RAMP_MG_DL, 0.0, 1.0)
    return np.where(shift_mg_dl > 0.0, shift_mg_dl * room, shift_mg_dl)


_CORRECTION_KNOTS = np.array((0.0, *CALIBRATION_HORIZONS, 2.0 * CALIBRATION_HORIZONS[-1]))


@dataclass
class Calibrator:
    """Forecast calibration learned online from the twin's own forecasts: per-horizon tail
    factors for the 10 % and 90 % quantiles (ACI) and a correction of the median
    (:class:`~edgetwin.twin.correction.MedianCorrector`)."""

    low: F64 = field(default_factory=lambda: np.array([f[0] for f in INITIAL_TAIL_FACTORS]))
    high: F64 = field(default_factory=lambda: np.array([f[1] for f in INITIAL_TAIL_FACTORS]))
    rate: float = 0.05
    pending: list[Pending] = field(default_factory=list)
    resolved: int = 0
    median: MedianCorrector = field(default_factory=lambda: MedianCorrector(len(CALIBRATION_HORIZONS)))
    MIN_FACTOR = 0.3
    MAX_FACTOR = 6.0

    def factors(self, horizons_min: F64) -> tuple[F64, F64]:
        knots = np.array(CALIBRATION_HORIZONS, dtype=np.float64)
        return np.interp(horizons_min, knots, self.low), np.interp(horizons_min, knots, self.high)

    def correction(self, minute: int, q50_mg_dl: F64, inputs: CorrectionInputs | None) -> F64:
        """Median correction (mg/dL) at each calibration horizon for a forecast issued at
        ``minute`` whose uncalibrated median there is ``q50_mg_dl``; zeros without ``inputs``."""
        x = self._features(minute, q50_mg_dl, inputs)
        return np.zeros(len(CALIBRATION_HORIZONS)) if x is None else self.median.correction(x)

    def _features(self, minute: int, q50_mg_dl: F64, inputs: CorrectionInputs | None) -> F64 | None:
        return None if inputs is None else features(inputs, q50_mg_dl, self.median.recent_errors(minute))

    def apply(self, q: F64, horizons_min: F64) -> F64:
        """Calibrated copy of uncalibrated quantiles ``q`` (3, K): the tails widened or narrowed."""
        lo, hi = self.factors(horizons_min)
        out = q.copy()
        out[0] = q[1] - lo * (q[1] - q[0])
        out[2] = q[1] + hi * (q[2] - q[1])
        return out

    @staticmethod
    def shift(horizons_min: F64, correction_mg_dl: F64, p50_mg_dl: F64) -> F64:
        """The median correction at ``horizons_min`` (given at the calibration horizons, zero at
        issue, interpolated between them, fading to zero at twice the last), for a forecast
        whose uncorrected median there is ``p50_mg_dl``.

        It never hides a low: where the twin's median is at :data:`LOW_GUARD_MG_DL` or below no
        upward correction applies, phased in over the next 20 mg/dL. The errors it learns include
        the patient's habits (treating lows with carbs nobody logs); a forecast that counts on a
        low being treated must not tell the patient it will pass by itself. Measured on the
        bench, this costs what such forecasts had gained (see the README).
        """
        values = np.concatenate(([0.0], correction_mg_dl, [0.0]))
        return _guard_lows(np.interp(horizons_min, _CORRECTION_KNOTS, values), p50_mg_dl)

    def issue(self, minute: int, q: F64, inputs: CorrectionInputs | None = None) -> None:
        """Remember uncalibrated quantiles ``q`` (3, len(CALIBRATION_HORIZONS)) issued at ``minute``
        and what the twin knew then (``inputs``; None: no median correction learned from it)."""
        x = self._features(minute, q[1], inputs)
        corr = np.zeros(len(CALIBRATION_HORIZONS)) if x is None else self.median.correction(x)
        corr = _guard_lows(corr, q[1])
        for j, h in enumerate(CALIBRATION_HORIZONS):
            self.pending.append(
                (
                    minute + h,
                    j,
                    float(q[0, j]),
                    float(q[1, j]),
                    float(q[2, j]),
                    float(corr[j]),
                    None if x is None else x[j].copy(),
                )
            )

    def resolve(self, minute: int, value_mg_dl: float, tolerance_min: int = 4) -> None:
        """A reading at ``minute`` settles the pending forecasts aimed at it (within tolerance)."""
        keep = []
        for entry in self.pending:
            target, j, q10, q50, q90, corr, x = entry
            if target <= minute <= target + tolerance_min:
                self.median.learn(j, x, value_mg_dl - q50, minute)
                lo = q50 + corr - self.low[j] * (q50 - q10)
                hi = q50 + corr + self.high[j] * (q90 - q50)
                self.low[j] *= math.exp(self.rate * ((value_mg_dl < lo) - 0.1))
                self.high[j] *= math.exp(self.rate * ((value_mg_dl > hi) - 0.1))
                self.low[j] = min(max(self.low[j], self.MIN_FACTOR), self.MAX_FACTOR)
                self.high[j] = min(max(self.high[j], self.MIN_FACTOR), self.MAX_FACTOR)
                self.resolved += 1
            elif minute <= target + tolerance_min:
                keep.append(entry)
        self.pending = keep

    def copy(self) -> Calibrator:
        return Calibrator(
            self.low.copy(),
            self.high.copy(),
            self.rate,
            list(self.pending),
            self.resolved,
            self.median.copy(),
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "rate": self.rate,
            "pending": [[*p[:6], None if p[6] is None else p[6].tolist()] for p in self.pending],
            "resolved": self.resolved,
            "median": self.median.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibrator:
        """From :meth:`to_dict`; calibrators saved before the median correction (2026-12) had
        5-field pending entries and no ``median``: they restore with a fresh one."""
        k = len(CALIBRATION_HORIZONS)
        pending: list[Pending] = []
        for p in d["pending"]:
            a, b, c, e, f = p[:5]
            corr = float(p[5]) if len(p) > 5 else 0.0
            x = np.array(p[6], dtype=np.float64) if len(p) > 6 and p[6] is not None else None
            if x is not None and x.shape != (N_FEATURES,):
                x = None  # features of an older release: the error is noted, not learned
            pending.append((int(a), int(b), float(c), float(e), float(f), corr, x))
        median = MedianCorrector.from_dict(k, d["median"]) if "median" in d else MedianCorrector(k)
        return cls(
            low=np.array(d["low"], dtype=np.float64),
            high=np.array(d["high"], dtype=np.float64),
            rate=float(d["rate"]),
            pending=pending,
            resolved=int(d["resolved"]),
            median=median,
        )
