"""CGM data checks: may these readings justify more insulin than the scheduled basal?

:func:`assess_cgm` looks at the recent readings of the active sensor and reports, as
:class:`~edgetwin.safety.decisions.Decision` records, every condition of ``specs/safety.md``:

* fallback (no insulin above scheduled basal): no reading, newest reading stale (older than
  ``stale_after_min``) or dated in the future (beyond ``future_tolerance_min``), newest reading
  implausible (no value, ≤ 39 mg/dL) or flagged by the sensor (warm-up, calibration required,
  fault, session stopped, temperature, time sync), very noisy, flat for ``flat_window_min``;
* restricted (targets raised, no automatic bolus): noisy, or a jump between consecutive readings
  (> ``jump_fraction`` of the value or > ``jump_mg_dl``) within ``jump_window_min``;
* ignored: readings from another device than the active one, implausible older readings.

It also gives the gate's own, twin-independent trend and short forecast (a least-squares line
through the readings of ``trend_window_min`` since the last jump, extrapolated
``trend_horizon_min``) for predictive low-glucose suspend. Noise is the residual standard
deviation of a quadratic fitted to the readings of ``noise_window_min`` (mg/dL): smooth
physiology leaves little residual, a sensor that scatters leaves a lot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from edgetwin.messages import CgmReading, CgmStatus
from edgetwin.safety.decisions import Decision, Outcome, Rule
from edgetwin.safety.limits import SafetyLimits

__all__ = ["MIN_PLAUSIBLE_MG_DL", "CgmAssessment", "assess_cgm"]

MIN_PLAUSIBLE_MG_DL = 39.0
"""Readings at or below this are sensor errors or "LOW" placeholders, never a glucose value."""

_JUMP_MAX_GAP_MIN = 10.0  # readings further apart than this are not compared for jumps

_FALLBACK_STATUS = frozenset(
    {
        CgmStatus.WARMUP,
        CgmStatus.SESSION_STOPPED,
        CgmStatus.SENSOR_MALFUNCTION,
        CgmStatus.DEVICE_FAULT,
        CgmStatus.CALIBRATION_REQUIRED,
        CgmStatus.TEMPERATURE_OUT_OF_RANGE,
        CgmStatus.TIME_SYNC_REQUIRED,
        CgmStatus.BELOW_DEVICE_RANGE,
        CgmStatus.ABOVE_DEVICE_RANGE,
        CgmStatus.INVALID_VALUE,
    }
)

FALLBACK_RULES = frozenset(
    {
        Rule.NO_DATA,
        Rule.STALE_DATA,
        Rule.FUTURE_DATA,
        Rule.IMPLAUSIBLE_DATA,
        Rule.SENSOR_STATUS,
        Rule.VERY_NOISY_DATA,
        Rule.FLAT_DATA,
    }
)
RESTRICT_RULES = frozenset({Rule.NOISY_DATA, Rule.JUMP})


@dataclass(frozen=True, slots=True)
class CgmAssessment:
    """The state of the CGM data at ``now_utc``; glucose in mg/dL, trend in mg/dL/min."""

    device_id: str | None
    glucose_mg_dl: float | None
    """Newest plausible reading of the active device."""
    age_min: float | None
    trend_mg_dl_per_min: float | None
    forecast_mg_dl: float | None
    """Glucose extrapolated ``trend_horizon_min`` along the trend (the gate's own forecast)."""
    noise_sd_mg_dl: float | None
    findings: tuple[Decision, ...]

    @property
    def fallback(self) -> bool:
        """True when no insulin above the scheduled basal may follow from these data."""
        return any(f.rule in FALLBACK_RULES for f in self.findings)

    @property
    def automatic_bolus_allowed(self) -> bool:
        return not any(f.rule in FALLBACK_RULES or f.rule in RESTRICT_RULES for f in self.findings)

    @property
    def noisy(self) -> bool:
        return any(f.rule in (Rule.NOISY_DATA, Rule.VERY_NOISY_DATA) for f in self.findings)

    def target_mg_dl(self, target: float, limits: SafetyLimits) -> float:
        """The target to use: raised (× factor, capped) when the sensor is noisy (oref0)."""
        if not self.noisy:
            return target
        return max(target, min(target * limits.noisy_target_factor, limits.noisy_target_cap_mg_dl))


def _plausible(r: CgmReading) -> bool:
    return (
        r.glucose_mg_dl is not None
        and r.glucose_mg_dl > MIN_PLAUSIBLE_MG_DL
        and not (r.status & _FALLBACK_STATUS)
    )


def assess_cgm(
    readings: Iterable[CgmReading], now_utc: datetime, limits: SafetyLimits, device_id: str | None = None
) -> CgmAssessment:
    """Check the readings (any order, duplicates allowed). ``device_id`` is the active sensor;
    None means the device of the newest reading."""
    all_readings = [r for r in readings if isinstance(r, CgmReading)]
    findings: list[Decision] = []
    if device_id is None and all_readings:
        device_id = max(all_readings, key=lambda r: r.time_utc).device_id
    others = [r for r in all_readings if r.device_id != device_id]
    if others:
        findings.append(
            Decision(
                Rule.OTHER_DEVICE,
                Outcome.IGNORED,
                f"{len(others)} reading(s) from a device other than the active sensor were ignored",
                (("ignored_readings", float(len(others))), ("active_device", str(device_id))),
            )
        )
    by_time: dict[datetime, CgmReading] = {}
    for r in all_readings:
        if r.device_id == device_id:
            by_time[r.time_utc] = r
    own = [by_time[t] for t in sorted(by_time)]
    ago = {t: (now_utc - t).total_seconds() / 60.0 for t in by_time}

    def minutes_ago(r: CgmReading) -> float:
        return ago[r.time_utc]

    future = [r for r in own if -minutes_ago(r) > limits.future_tolerance_min]
    if future:
        findings.append(
            Decision(
                Rule.FUTURE_DATA,
                Outcome.FALLBACK,
                "a glucose reading is dated in the future: the sensor's and the gateway's clocks disagree",
                (("minutes_ahead", round(-minutes_ago(future[-1]), 1)),),
            )
        )
    past = [r for r in own if -minutes_ago(r) <= limits.future_tolerance_min]
    if not past:
        findings.append(Decision(Rule.NO_DATA, Outcome.FALLBACK, "no glucose reading from the active sensor"))
        return CgmAssessment(device_id, None, None, None, None, None, tuple(findings))

    newest = past[-1]
    if not _plausible(newest):
        bad_status = sorted(str(s) for s in newest.status & _FALLBACK_STATUS)
        if bad_status:
            findings.append(
                Decision(
                    Rule.SENSOR_STATUS,
                    Outcome.FALLBACK,
                    f"the sensor reports {', '.join(bad_status)}",
                    (("status", ",".join(bad_status)),),
                )
            )
        else:
            value = newest.glucose_mg_dl
            findings.append(
                Decision(
                    Rule.IMPLAUSIBLE_DATA,
                    Outcome.FALLBACK,
                    "the newest glucose reading is a sensor error or not a usable value",
                    (("glucose_mg_dl", "none" if value is None else float(value)),),
                )
            )
    good = [r for r in past if _plausible(r)]
    dropped = len(past) - len(good) - (0 if _plausible(newest) else 1)
    if dropped > 0:
        findings.append(
            Decision(
                Rule.IMPLAUSIBLE_DATA,
                Outcome.IGNORED,
                f"{dropped} earlier reading(s) without a usable value were left out",
                (("ignored_readings", float(dropped)),),
            )
        )
    if not good:
        if not any(f.rule in FALLBACK_RULES for f in findings):
            findings.append(Decision(Rule.NO_DATA, Outcome.FALLBACK, "no usable glucose reading"))
        return CgmAssessment(device_id, None, None, None, None, None, tuple(findings))

    latest = good[-1]
    glucose = float(latest.glucose_mg_dl)  # type: ignore[arg-type]
    age = minutes_ago(latest)
    if age > limits.stale_after_min:
        findings.append(
            Decision(
                Rule.STALE_DATA,
                Outcome.FALLBACK,
                f"the newest glucose reading is {age:.0f} min old",
                (("age_min", round(age, 1)), ("stale_after_min", limits.stale_after_min)),
            )
        )
    t = np.array([-minutes_ago(r) for r in good])  # minutes relative to now (≤ tolerance)
    g = np.array([float(r.glucose_mg_dl) for r in good])  # type: ignore[arg-type]

    # Flat: unchanged over the whole window.
    in_flat = t >= -limits.flat_window_min
    if in_flat.sum() >= 5 and (t[in_flat].max() - t[in_flat].min()) >= 0.8 * limits.flat_window_min:
        spread = float(g[in_flat].max() - g[in_flat].min())
        if spread <= limits.flat_tolerance_mg_dl:
            findings.append(
                Decision(
                    Rule.FLAT_DATA,
                    Outcome.FALLBACK,
                    f"glucose has not changed for {limits.flat_window_min:.0f} min: the sensor may have failed",
                    (("spread_mg_dl", spread), ("flat_window_min", limits.flat_window_min)),
                )
            )

    # Noise: residual SD around a quadratic over the noise window.
    noise_sd: float | None = None
    in_noise = t >= -limits.noise_window_min
    if in_noise.sum() >= 6:
        tn, gn = t[in_noise], g[in_noise]
        tn = tn - tn.mean()
        design = np.stack([np.ones_like(tn), tn, tn * tn], axis=1)
        coef = np.linalg.lstsq(design, gn, rcond=None)[0]
        resid = gn - design @ coef
        noise_sd = float(np.sqrt(np.sum(resid * resid) / (tn.size - 3)))
        if noise_sd > limits.noise_fallback_sd_mg_dl:
            findings.append(
                Decision(
                    Rule.VERY_NOISY_DATA,
                    Outcome.FALLBACK,
                    f"the sensor is very noisy (scatter {noise_sd:.0f} mg/dL)",
                    (("noise_sd_mg_dl", round(noise_sd, 1)), ("limit_mg_dl", limits.noise_fallback_sd_mg_dl)),
                )
            )
        elif noise_sd > limits.noisy_sd_mg_dl:
            findings.append(
                Decision(
                    Rule.NOISY_DATA,
                    Outcome.RESTRICTED,
                    f"the sensor is noisy (scatter {noise_sd:.0f} mg/dL): targets raised, no automatic bolus",
                    (("noise_sd_mg_dl", round(noise_sd, 1)), ("limit_mg_dl", limits.noisy_sd_mg_dl)),
                )
            )

    # Jumps between consecutive readings.
    last_jump_t: float | None = None
    jump_change = 0.0
    for i in range(1, t.size):
        dt = t[i] - t[i - 1]
        if dt > _JUMP_MAX_GAP_MIN or t[i] < -limits.jump_window_min:
            continue
        change = abs(g[i] - g[i - 1])
        if change > limits.jump_fraction * g[i - 1] or change > limits.jump_mg_dl:
            last_jump_t = float(t[i])
            jump_change = float(g[i] - g[i - 1])
    if last_jump_t is not None:
        findings.append(
            Decision(
                Rule.JUMP,
                Outcome.RESTRICTED,
                f"glucose jumped by {jump_change:+.0f} mg/dL between two readings: no automatic bolus",
                (("change_mg_dl", round(jump_change, 1)), ("minutes_ago", round(-last_jump_t, 1))),
            )
        )

    # The gate's own trend: readings of the trend window since the last jump.
    trend: float | None = None
    start = -limits.trend_window_min if last_jump_t is None else max(-limits.trend_window_min, last_jump_t)
    in_trend = t >= start
    if in_trend.sum() >= 3 and (t[in_trend].max() - t[in_trend].min()) >= 5.0:
        tt = t[in_trend] - t[in_trend].mean()
        trend = float(np.dot(tt, g[in_trend]) / np.dot(tt, tt))
    # From the reading's time to ``trend_horizon_min`` after now.
    forecast = glucose + (trend or 0.0) * (limits.trend_horizon_min + max(age, 0.0))
    return CgmAssessment(device_id, glucose, age, trend, forecast, noise_sd, tuple(findings))
