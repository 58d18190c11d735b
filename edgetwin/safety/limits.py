"""Safety limits: the validated configuration every insulin suggestion is checked against.

The limits live in the ``[limits]`` table of the gateway configuration (or a file of their own)::

    [limits]
    mode = "open-loop"            # or "closed-loop": the gateway may command the pump itself
    max_basal_u_per_h = 3.0       # the pump's maximum basal rate setting (U/h)       required
    max_bolus_u = 10.0            # the largest single bolus (U)                       required
    max_iob_u = 8.0               # max insulin on board above scheduled basal (U); default
                                  # 2 × max_bolus_u in open loop, required in closed loop
    suspend_threshold_mg_dl = 70  # predictive low-glucose suspend threshold

Every other key has a default taken from the dosing systems patients already trust
(``specs/safety.md``); see :class:`SafetyLimits` for each one, its unit and its allowed range.
A value outside its range, an unknown key or a missing required key is refused with
:class:`~edgetwin.errors.ConfigError` naming the key, so a gateway with a bad configuration never
starts. ``closed-loop`` must be written out explicitly, and then ``max_iob_u`` too: automatic
dosing is never enabled by a default.

The ranges only allow tightening what the rules permit: stale data may be declared stale sooner
but not later than 15 min, a temp basal may be shorter but not longer than 30 min, an automatic
bolus may take less but never more than half of the computed need.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from edgetwin.errors import ConfigError
from edgetwin.therapy import TherapyProfile
from edgetwin.tomlfiles import read_table

__all__ = ["Mode", "SafetyLimits", "load_limits", "max_safe_basal_u_per_h", "round_down"]

MAX_TEMP_BASAL_MIN = 30.0
"""No temp basal lasts longer, so a silent gateway falls back to the scheduled basal by itself."""


class Mode(StrEnum):
    OPEN_LOOP = "open-loop"
    """Every suggestion is shown to the patient, who confirms or declines it (the default)."""
    CLOSED_LOOP = "closed-loop"
    """Temp basals, suspensions and automatic micro-boluses go to the pump without a prompt."""


# key: (low, high) inclusive, for the numeric fields.
_RANGES: dict[str, tuple[float, float]] = {
    "max_basal_u_per_h": (0.05, 35.0),
    "max_bolus_u": (0.05, 50.0),
    "max_iob_u": (0.0, 100.0),
    "insulin_peak_min": (35.0, 120.0),
    "stale_after_min": (1.0, 15.0),
    "future_tolerance_min": (0.0, 5.0),
    "flat_window_min": (20.0, 90.0),
    "flat_tolerance_mg_dl": (0.0, 2.0),
    "jump_fraction": (0.05, 0.5),
    "jump_mg_dl": (10.0, 100.0),
    "jump_window_min": (0.0, 120.0),
    "noise_window_min": (15.0, 60.0),
    "noisy_sd_mg_dl": (1.0, 50.0),
    "noise_fallback_sd_mg_dl": (2.0, 100.0),
    "noisy_target_factor": (1.0, 2.0),
    "noisy_target_cap_mg_dl": (100.0, 250.0),
    "suspend_threshold_mg_dl": (60.0, 120.0),
    "low_prediction_horizon_min": (30.0, 240.0),
    "trend_window_min": (5.0, 30.0),
    "trend_horizon_min": (0.0, 60.0),
    "rescue_low_mg_dl": (55.0, 100.0),
    "rescue_horizon_min": (15.0, 90.0),
    "rescue_carbs_g": (5.0, 50.0),
    "max_rescue_carbs_g": (5.0, 60.0),
    "rescue_interval_min": (5.0, 60.0),
    "max_temp_basal_min": (5.0, MAX_TEMP_BASAL_MIN),
    "max_micro_bolus_basal_min": (0.0, 30.0),
    "micro_bolus_need_fraction": (0.0, 0.5),
    "micro_bolus_interval_min": (3.0, 60.0),
    "basal_increment_u_per_h": (0.001, 1.0),
    "bolus_increment_u": (0.001, 1.0),
    "pump_status_max_age_min": (0.5, 15.0),
    "reservoir_tolerance_u": (0.0, 0.1),
    "suggestion_max_age_s": (1.0, 60.0),
}

_REQUIRED = ("max_basal_u_per_h", "max_bolus_u")


@dataclass(frozen=True, slots=True)
class SafetyLimits:
    """The limits the safety gate enforces. Units are in the names; ranges in ``_RANGES``.

    Build from a TOML table with :meth:`from_mapping` (or :func:`load_limits`); direct
    construction validates the same way and raises :class:`ConfigError` naming the key.
    """

    max_basal_u_per_h: float
    """The pump's maximum basal rate (U/h); one term of the max safe basal."""
    max_bolus_u: float
    """Largest single bolus (U), manual or automatic."""
    mode: Mode = Mode.OPEN_LOOP
    max_iob_u: float | None = None
    """Max net insulin on board (U, above scheduled basal); None = 2 × max_bolus_u (Loop)."""
    insulin_peak_min: float = 75.0
    """Peak of the exponential insulin-activity curve (min); 75 for rapid-acting analogues
    (Loop's adult curve), 55 for ultra-rapid ones."""
    stale_after_min: float = 12.0
    """Newest CGM reading older than this → no insulin above scheduled basal (oref0: 12)."""
    future_tolerance_min: float = 5.0
    """A reading dated further ahead than this means the clocks disagree → fallback."""
    flat_window_min: float = 45.0
    """CGM unchanged over this window → treated as a failed sensor."""
    flat_tolerance_mg_dl: float = 0.0
    """Spread (max − min) at or below which the CGM counts as unchanged."""
    jump_fraction: float = 0.2
    """A change between consecutive readings above this fraction of the value is a jump."""
    jump_mg_dl: float = 40.0
    """... or above this many mg/dL (Loop rejects momentum above 40)."""
    jump_window_min: float = 30.0
    """How long after a jump automatic boluses stay disabled."""
    noise_window_min: float = 30.0
    """Window of the noise estimate (residual SD around a quadratic fit)."""
    noisy_sd_mg_dl: float = 8.0
    """Noise above this → targets raised, no automatic bolus."""
    noise_fallback_sd_mg_dl: float = 16.0
    """Noise above this → no insulin above scheduled basal."""
    noisy_target_factor: float = 1.3
    """Targets are multiplied by this on a noisy sensor (oref0: 1.3) ..."""
    noisy_target_cap_mg_dl: float = 200.0
    """... up to this cap (oref0: 200)."""
    suspend_threshold_mg_dl: float = 70.0
    """Predicted or current glucose below this → zero temp; no bolus at or below it."""
    low_prediction_horizon_min: float = 120.0
    """How far ahead the suggestion's low quantile is checked against the threshold (a low
    further out is still ahead of later cycles, which can suspend in time)."""
    trend_window_min: float = 15.0
    """The gate's own trend (linear fit) uses the readings of this window."""
    trend_horizon_min: float = 30.0
    """The gate's own forecast extrapolates the trend this far (independent of the twin)."""
    rescue_low_mg_dl: float = 70.0
    """A low (mg/dL) predicted within ``rescue_horizon_min`` despite suspension → rescue carbs."""
    rescue_horizon_min: float = 45.0
    rescue_carbs_g: float = 15.0
    """Carbs (g) the gate suggests when the suggestion gave no amount ("rule of 15")."""
    max_rescue_carbs_g: float = 30.0
    rescue_interval_min: float = 15.0
    """The gate adds rescue carbs of its own at most this often ("take 15 g, recheck in 15 min")."""
    max_temp_basal_min: float = MAX_TEMP_BASAL_MIN
    max_micro_bolus_basal_min: float = 30.0
    """An automatic bolus is at most this many minutes of scheduled basal (0 disables them)."""
    micro_bolus_need_fraction: float = 0.5
    """... and at most this fraction of the insulin the suggestion computed as needed."""
    micro_bolus_interval_min: float = 3.0
    """... and no more often than this."""
    basal_increment_u_per_h: float = 0.05
    bolus_increment_u: float = 0.05
    pump_status_max_age_min: float = 10.0
    """A pump status older than this is not fresh: no bolus, no basal increase."""
    reservoir_tolerance_u: float = 0.1
    """The reservoir must match the suggestion's within this (nothing delivered unseen)."""
    suggestion_max_age_s: float = 60.0
    """A suggestion older than this is refused."""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "mode", Mode(self.mode))
        except ValueError:
            raise ConfigError("mode", f'must be "open-loop" or "closed-loop", got {self.mode!r}') from None
        for name, (lo, hi) in _RANGES.items():
            value = getattr(self, name)
            if value is None and name == "max_iob_u":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(name, f"must be a finite number, got {value!r}")
            if not lo <= value <= hi:
                raise ConfigError(name, f"{value:g} is outside the allowed range [{lo:g}, {hi:g}]")
            object.__setattr__(self, name, float(value))
        if self.mode is Mode.CLOSED_LOOP and self.max_iob_u is None:
            raise ConfigError("max_iob_u", "must be set explicitly for closed-loop mode")
        if self.noisy_sd_mg_dl >= self.noise_fallback_sd_mg_dl:
            raise ConfigError("noisy_sd_mg_dl", "must be below noise_fallback_sd_mg_dl")
        if self.rescue_carbs_g > self.max_rescue_carbs_g:
            raise ConfigError("rescue_carbs_g", "must not exceed max_rescue_carbs_g")

    @property
    def effective_max_iob_u(self) -> float:
        """Max net IOB (U): the configured value or Loop's default of twice the max bolus."""
        return self.max_iob_u if self.max_iob_u is not None else 2.0 * self.max_bolus_u

    @property
    def closed_loop(self) -> bool:
        return self.mode is Mode.CLOSED_LOOP

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "") -> SafetyLimits:
        """Build from a parsed ``[limits]`` TOML table; errors name ``source`` and the key."""
        known = {f.name for f in fields(cls)}
        if not isinstance(data, Mapping):
            raise ConfigError("limits", "must be a table", source=source)
        for key in data:
            if key not in known:
                raise ConfigError(str(key), f"unknown key (known: {', '.join(sorted(known))})", source=source)
        for key in _REQUIRED:
            if key not in data:
                raise ConfigError(key, "is required", source=source)
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key == "mode":
                if not isinstance(value, str):
                    raise ConfigError("mode", f"must be a string, got {value!r}", source=source)
                values[key] = value
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(key, f"must be a number, got {value!r}", source=source)
            else:
                values[key] = float(value)
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(exc.key, exc.problem, source=source) from None

    def to_mapping(self) -> dict[str, Any]:
        """The TOML table form (inverse of :meth:`from_mapping`); ``max_iob_u`` left out if unset."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = str(value) if f.name == "mode" else value
        return out


def load_limits(path: str | Path) -> SafetyLimits:
    """Read limits from a TOML file: the ``[limits]`` table, or the keys at top level."""
    return SafetyLimits.from_mapping(read_table(path, "limits"), source=str(path))


def round_down(value: float, increment: float) -> float:
    """``value`` rounded down to a multiple of ``increment`` (a pump never gives more than asked)."""
    if value <= 0.0:
        return 0.0
    steps = math.floor(value / increment + 1e-9)
    return round(steps * increment, 6)


def max_safe_basal_u_per_h(profile: TherapyProfile, time_utc: datetime, limits: SafetyLimits) -> float:
    """min(max basal, 3 × the highest scheduled basal, 4 × the basal scheduled now), rounded down
    to the pump's increment (oref0's rule, ``specs/safety.md``)."""
    raw = min(
        limits.max_basal_u_per_h,
        3.0 * profile.max_scheduled_basal_u_per_h,
        4.0 * profile.basal_at(time_utc),
    )
    return round_down(raw, limits.basal_increment_u_per_h)
