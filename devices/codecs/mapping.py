"""Decoded profile records → the core messages of ``edgetwin.messages``, in one place.

* CGM: ``CgmReading.sequence`` is the CGMS Time Offset (minutes since session start) and
  ``time_utc`` is the session start plus that offset. Annunciations become ``CgmStatus`` values.
  A special SFLOAT (NaN, NRes, ±INF) or a value outside what the core accepts becomes
  ``glucose_mg_dl=None`` with the reason in ``status``. CGMS has no warm-up bit: this profile reads
  a record without a value flagged "device-specific alert" within the first ``warmup_min`` minutes
  of a session as warm-up (what our simulated sensor sends).
* Pump: IDD Status + Active Basal Rate (+ annunciation, IOB) → ``PumpStatus``; history events →
  ``InsulinDelivery``.
* Heart rate → ``HeartRateReading``; Glucose Measurement (meter, kg/L or mol/L) → ``MeterReading``.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, tzinfo

from devices.codecs.cgms import CgmAnnunciation as A
from devices.codecs.cgms import CgmMeasurement
from devices.codecs.glucose import GlucoseMeasurement
from devices.codecs.heart_rate import HeartRateMeasurement
from devices.codecs.ids import (
    ActiveBasalRate,
    AnnunciationType,
    HistoryEvent,
    HistoryEventType,
    IddAnnunciation,
    IddStatus,
    TherapyControlState,
)
from devices.errors import DecodeError
from edgetwin.messages import (
    GLUCOSE_MAX_MG_DL,
    CgmReading,
    CgmStatus,
    HeartRateReading,
    InsulinDelivery,
    InsulinKind,
    MeterReading,
    PumpStatus,
)
from edgetwin.timeutil import UTC

__all__ = [
    "DEFAULT_WARMUP_MIN",
    "cgm_reading",
    "cgm_status",
    "heart_rate_reading",
    "insulin_delivery",
    "meter_reading",
    "pump_status",
]

DEFAULT_WARMUP_MIN = 120
"""Sensor warm-up after a session starts (minutes), as most current sensors have."""

_STATUS_OF = (
    (A.SESSION_STOPPED, CgmStatus.SESSION_STOPPED),
    (A.DEVICE_BATTERY_LOW, CgmStatus.BATTERY_LOW),
    (A.SENSOR_TYPE_INCORRECT, CgmStatus.SENSOR_MALFUNCTION),
    (A.SENSOR_MALFUNCTION, CgmStatus.SENSOR_MALFUNCTION),
    (A.GENERAL_DEVICE_FAULT, CgmStatus.DEVICE_FAULT),
    (A.TIME_SYNC_REQUIRED, CgmStatus.TIME_SYNC_REQUIRED),
    (A.CALIBRATION_RECOMMENDED, CgmStatus.CALIBRATION_RECOMMENDED),
    (A.CALIBRATION_REQUIRED, CgmStatus.CALIBRATION_REQUIRED),
    (A.TEMPERATURE_TOO_HIGH, CgmStatus.TEMPERATURE_OUT_OF_RANGE),
    (A.TEMPERATURE_TOO_LOW, CgmStatus.TEMPERATURE_OUT_OF_RANGE),
    (A.BELOW_DEVICE_RANGE, CgmStatus.BELOW_DEVICE_RANGE),
    (A.ABOVE_DEVICE_RANGE, CgmStatus.ABOVE_DEVICE_RANGE),
)


def cgm_status(annunciation: A, *, has_value: bool, time_offset_min: int, warmup_min: int) -> set[CgmStatus]:
    """The core statuses a set of CGMS annunciations means."""
    out = {status for bit, status in _STATUS_OF if annunciation & bit}
    if annunciation & A.DEVICE_SPECIFIC_ALERT and not has_value and time_offset_min < warmup_min:
        out.add(CgmStatus.WARMUP)
    return out


def _finite_in(value: float | None, lo: float, hi: float) -> float | None:
    if value is None or not math.isfinite(value) or not lo <= value <= hi:
        return None
    return float(value)


def cgm_reading(
    m: CgmMeasurement,
    session_start_utc: datetime,
    device_id: str,
    *,
    backfilled: bool = False,
    warmup_min: int = DEFAULT_WARMUP_MIN,
) -> CgmReading:
    g = m.glucose_mg_dl
    value = _finite_in(g, 0.0, GLUCOSE_MAX_MG_DL)
    status = cgm_status(
        m.annunciation, has_value=value is not None, time_offset_min=m.time_offset_min, warmup_min=warmup_min
    )
    if value is None:
        if g == math.inf or (math.isfinite(g) and g > GLUCOSE_MAX_MG_DL):
            status.add(CgmStatus.ABOVE_DEVICE_RANGE)
        elif g == -math.inf or (math.isfinite(g) and g < 0):
            status.add(CgmStatus.BELOW_DEVICE_RANGE)
        if not status & {CgmStatus.WARMUP, CgmStatus.ABOVE_DEVICE_RANGE, CgmStatus.BELOW_DEVICE_RANGE}:
            status.add(CgmStatus.INVALID_VALUE)
    return CgmReading(
        time_utc=session_start_utc + timedelta(minutes=m.time_offset_min),
        glucose_mg_dl=value,
        device_id=device_id,
        sequence=m.time_offset_min,
        trend_mg_dl_per_min=_finite_in(m.trend_mg_dl_per_min, -100.0, 100.0),
        quality_pct=_finite_in(m.quality_pct, 0.0, 100.0),
        status=frozenset(status),
        backfilled=backfilled,
    )


def pump_status(
    status: IddStatus,
    basal: ActiveBasalRate,
    time_utc: datetime,
    device_id: str,
    *,
    annunciation: IddAnnunciation | None = None,
    bolusing: bool = False,
    insulin_on_board_u: float | None = None,
) -> PumpStatus:
    """Raises DecodeError when a value is outside what a pump can mean (never passed on silently)."""
    reservoir = _finite_in(status.reservoir_u, 0.0, 1000.0)
    scheduled = _finite_in(basal.scheduled_u_per_h, 0.0, 50.0)
    if reservoir is None or scheduled is None:
        raise DecodeError(
            "IDD Status",
            f"reservoir {status.reservoir_u!r} U or basal {basal.scheduled_u_per_h!r} U/h out of range",
        )
    tbr = basal.temp_basal_u_per_h
    if tbr is not None and _finite_in(tbr, 0.0, 50.0) is None:
        raise DecodeError("Active Basal Rate", f"temp basal {tbr!r} U/h out of range")
    occluded = annunciation is not None and annunciation.type is AnnunciationType.OCCLUSION_DETECTED
    return PumpStatus(
        time_utc=time_utc,
        device_id=device_id,
        reservoir_u=reservoir,
        suspended=status.therapy_control_state is not TherapyControlState.RUN,
        bolusing=bolusing,
        basal_rate_u_per_h=scheduled,
        temp_basal_u_per_h=tbr,
        temp_basal_remaining_min=float(basal.temp_basal_remaining_min if tbr is not None else 0),
        occluded=occluded,
        insulin_on_board_u=_finite_in(insulin_on_board_u, 0.0, 100.0),
    )


def insulin_delivery(event: HistoryEvent, device_id: str) -> InsulinDelivery | None:
    """The insulin a history event says was delivered (None for events that deliver nothing)."""
    units = _finite_in(event.units, 0.0, 100.0)
    if event.event_type is HistoryEventType.BOLUS_DELIVERED and units is not None:
        return InsulinDelivery(event.time_utc, units, InsulinKind.BOLUS, device_id, 0.0, event.sequence)
    if event.event_type is HistoryEventType.BASAL_DELIVERED and units is not None:
        kind = InsulinKind.TEMP_BASAL if event.temp else InsulinKind.BASAL
        return InsulinDelivery(
            event.time_utc, units, kind, device_id, float(event.duration_min or 0), event.sequence
        )
    if event.event_type in (HistoryEventType.BOLUS_DELIVERED, HistoryEventType.BASAL_DELIVERED):
        raise DecodeError(
            HistoryEvent.WHAT, f"delivered amount {event.units!r} U out of range", field="amount"
        )
    return None


def heart_rate_reading(m: HeartRateMeasurement, time_utc: datetime, device_id: str) -> HeartRateReading:
    if not 0 <= m.heart_rate_bpm <= 300:
        raise DecodeError(
            HeartRateMeasurement.WHAT, f"heart rate {m.heart_rate_bpm} bpm out of range", field="heart_rate"
        )
    return HeartRateReading(
        time_utc=time_utc,
        heart_rate_bpm=m.heart_rate_bpm,
        device_id=device_id,
        rr_intervals_s=tuple(m.rr_intervals_s or ()),
        energy_expended_kj=m.energy_expended_kj,
        sensor_contact=m.sensor_contact,
    )


def meter_reading(m: GlucoseMeasurement, device_id: str, *, device_tz: tzinfo = UTC) -> MeterReading | None:
    """The meter reading (the meter's clock read in ``device_tz``); None for a record without a value."""
    value = m.glucose_mg_dl
    if value is None:
        return None
    if not 0 <= value <= GLUCOSE_MAX_MG_DL:
        raise DecodeError(GlucoseMeasurement.WHAT, f"{value:.1f} mg/dL out of range", field="concentration")
    return MeterReading(m.time.replace(tzinfo=device_tz).astimezone(UTC), value, device_id, m.sequence)
