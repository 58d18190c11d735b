"""Insulin on board from delivered insulin, computed inside the gate (independent of the twin).

Curve: the exponential insulin-activity model that Loop and oref0 use, derived by Dragan
Maksimovic (LoopKit/Loop issue #388, 2017; Loop's ``ExponentialInsulinModel``, oref0's
"rapid-acting"/"ultra-rapid" curves). For an action duration ``td`` and a peak time ``tp`` (min)::

    tau = tp (1 − tp/td) / (1 − 2 tp/td)        time constant
    a   = 2 tau / td                            rise-time factor
    S   = 1 / (1 − a + (1 + a) exp(−td/tau))    normalisation (activity integrates to 1)
    activity(t) = S / tau² · t (1 − t/td) exp(−t/tau)
    IOB(t)      = 1 − S (1 − a) ((t² / (tau td (1 − a)) − t/tau − 1) exp(−t/tau) + 1)

for 0 ≤ t ≤ td (IOB 1 before delivery, 0 after td). The activity peaks at ``tp`` and the
curve needs ``td > 2 tp``. Because the curve has a long tail, the rules ask for a duration of at
least 5 h with it (``specs/safety.md``); a shorter profile value is raised to 5 h here, which only
ever counts more insulin on board.

Net IOB is what the max-IOB limit constrains (as oref0's ``max_iob``): insulin on board from
everything delivered, minus what the scheduled basal alone would have left on board over the same
time. Deliveries dated in the future count as fully on board; a delivery spread over a duration
(a basal segment) counts in slices of at most 5 min.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from edgetwin.messages import InsulinDelivery
from edgetwin.therapy import TherapyProfile

__all__ = [
    "MIN_EXPONENTIAL_DURATION_H",
    "gross_iob_u",
    "insulin_activity",
    "iob_fraction",
    "net_iob_u",
    "scheduled_basal_iob_u",
]

MIN_EXPONENTIAL_DURATION_H = 5.0
_SLICE_MIN = 5.0


def _shape(duration_min: float, peak_min: float) -> tuple[float, float, float]:
    td, tp = float(duration_min), float(peak_min)
    if not (td > 2.0 * tp > 0.0):
        raise ValueError(f"insulin duration {td} min must exceed twice the peak {tp} min")
    tau = tp * (1.0 - tp / td) / (1.0 - 2.0 * tp / td)
    a = 2.0 * tau / td
    s = 1.0 / (1.0 - a + (1.0 + a) * math.exp(-td / tau))
    return tau, a, s


def iob_fraction(t_min: npt.ArrayLike, duration_min: float, peak_min: float) -> npt.NDArray[np.float64]:
    """Fraction of a dose still on board ``t_min`` minutes after delivery (1 before, 0 after td)."""
    tau, a, s = _shape(duration_min, peak_min)
    td = float(duration_min)
    t = np.clip(np.asarray(t_min, dtype=np.float64), 0.0, td)
    f = 1.0 - s * (1.0 - a) * ((t * t / (tau * td * (1.0 - a)) - t / tau - 1.0) * np.exp(-t / tau) + 1.0)
    f = np.clip(f, 0.0, 1.0)
    return np.where(np.asarray(t_min, dtype=np.float64) >= td, 0.0, f)


def insulin_activity(t_min: npt.ArrayLike, duration_min: float, peak_min: float) -> npt.NDArray[np.float64]:
    """Fraction of a dose acting per minute, ``t_min`` minutes after delivery (1/min)."""
    tau, _, s = _shape(duration_min, peak_min)
    td = float(duration_min)
    t = np.asarray(t_min, dtype=np.float64)
    act = s / (tau * tau) * t * (1.0 - t / td) * np.exp(-t / tau)
    return np.where((t >= 0.0) & (t <= td), act, 0.0)


def _duration_min(profile: TherapyProfile) -> float:
    return max(float(profile.insulin_duration_h), MIN_EXPONENTIAL_DURATION_H) * 60.0


def gross_iob_u(
    deliveries: Iterable[InsulinDelivery], now_utc: datetime, duration_min: float, peak_min: float
) -> float:
    """Insulin on board (U) from every delivery, whatever its kind."""
    units: list[float] = []
    ages: list[float] = []
    for d in deliveries:
        age_start = (now_utc - d.time_utc).total_seconds() / 60.0
        if age_start - d.duration_min >= duration_min:
            continue  # all of it has acted
        if d.duration_min <= 0.0:
            units.append(d.units)
            ages.append(age_start)
            continue
        n = max(1, math.ceil(d.duration_min / _SLICE_MIN))
        width = d.duration_min / n
        for i in range(n):
            units.append(d.units / n)
            ages.append(age_start - (i + 0.5) * width)
    if not units:
        return 0.0
    frac = iob_fraction(np.array(ages), duration_min, peak_min)
    return float(np.dot(np.array(units), frac))


def scheduled_basal_iob_u(profile: TherapyProfile, now_utc: datetime, peak_min: float) -> float:
    """Insulin on board (U) the scheduled basal alone would leave now (the neutral level)."""
    td = _duration_min(profile)
    n = int(math.ceil(td / _SLICE_MIN))
    ages = (np.arange(n) + 0.5) * _SLICE_MIN
    if len(profile.basal_schedule) == 1:
        units = np.full(n, profile.basal_schedule[0][1] * _SLICE_MIN / 60.0)
    else:
        units = np.array(
            [profile.basal_at(now_utc - timedelta(minutes=float(age))) * _SLICE_MIN / 60.0 for age in ages]
        )
    return float(np.dot(units, iob_fraction(ages, td, peak_min)))


def net_iob_u(
    deliveries: Iterable[InsulinDelivery], profile: TherapyProfile, now_utc: datetime, peak_min: float
) -> float:
    """Insulin on board above the scheduled basal (U); negative after a suspension."""
    td = _duration_min(profile)
    return gross_iob_u(deliveries, now_utc, td, peak_min) - scheduled_basal_iob_u(profile, now_utc, peak_min)
