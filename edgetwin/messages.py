"""The typed messages that flow through EdgeTwin: one frozen, slotted dataclass per message.

Devices yield these, the store persists them, the twin consumes them, sync encodes them. Units
are in the field names; every timestamp is timezone-aware UTC (``time_utc``). Construction checks
ranges and raises ``ValueError`` with the field named, so a bad value never travels further.

Glucose values that a device reports as an error (NaN, "not at this resolution", out of the
device's range) are carried as ``glucose_mg_dl=None`` with the reason in ``status``: such a
reading is kept (it tells the safety gate the sensor is failing) but never assimilated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from edgetwin.timeutil import ensure_utc

__all__ = [
    "Alarm",
    "CarbEntry",
    "CgmReading",
    "CgmStatus",
    "CommandResult",
    "HeartRateReading",
    "InsulinDelivery",
    "InsulinKind",
    "MeterReading",
    "PumpCommand",
    "PumpCommandKind",
    "PumpStatus",
    "Suggestion",
    "SuggestionKind",
]

GLUCOSE_MAX_MG_DL = 1000.0
"""Upper bound for any glucose value accepted into the system (mg/dL)."""


def _check_time(obj: object, name: str = "time_utc") -> None:
    value = getattr(obj, name)
    if not isinstance(value, datetime):
        raise ValueError(f"{type(obj).__name__}.{name} must be a datetime, got {value!r}")
    object.__setattr__(obj, name, ensure_utc(value, f"{type(obj).__name__}.{name}"))


def _check_range(obj: object, name: str, lo: float, hi: float, *, optional: bool = False) -> None:
    value = getattr(obj, name)
    if value is None and optional:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{type(obj).__name__}.{name} must be a number, got {value!r}")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"{type(obj).__name__}.{name}={value!r} outside [{lo}, {hi}]")


class CgmStatus(StrEnum):
    """Sensor conditions a CGM reports with a reading (from CGMS annunciations and serial flags)."""

    WARMUP = "warmup"
    SESSION_STOPPED = "session_stopped"
    SENSOR_MALFUNCTION = "sensor_malfunction"
    DEVICE_FAULT = "device_fault"
    BATTERY_LOW = "battery_low"
    CALIBRATION_REQUIRED = "calibration_required"
    CALIBRATION_RECOMMENDED = "calibration_recommended"
    TEMPERATURE_OUT_OF_RANGE = "temperature_out_of_range"
    TIME_SYNC_REQUIRED = "time_sync_required"
    BELOW_DEVICE_RANGE = "below_device_range"
    ABOVE_DEVICE_RANGE = "above_device_range"
    INVALID_VALUE = "invalid_value"


@dataclass(frozen=True, slots=True)
class CgmReading:
    """One CGM glucose value as the sensor reported it.

    ``sequence`` is the device's own monotonic counter (CGMS: Time Offset in minutes since
    session start); ``(device_id, sequence)`` identifies a reading for de-duplication.
    ``backfilled`` marks a reading that arrived late (RACP back-fill, serial history).
    """

    time_utc: datetime
    glucose_mg_dl: float | None
    device_id: str
    sequence: int | None = None
    trend_mg_dl_per_min: float | None = None
    quality_pct: float | None = None
    status: frozenset[CgmStatus] = field(default_factory=frozenset)
    backfilled: bool = False

    def __post_init__(self) -> None:
        _check_time(self)
        _check_range(self, "glucose_mg_dl", 0.0, GLUCOSE_MAX_MG_DL, optional=True)
        _check_range(self, "trend_mg_dl_per_min", -100.0, 100.0, optional=True)
        _check_range(self, "quality_pct", 0.0, 100.0, optional=True)
        if not self.device_id:
            raise ValueError("CgmReading.device_id must not be empty")
        if self.sequence is not None and self.sequence < 0:
            raise ValueError(f"CgmReading.sequence must be >= 0, got {self.sequence}")
        object.__setattr__(self, "status", frozenset(CgmStatus(s) for s in self.status))

    @property
    def usable(self) -> bool:
        """True when the value may be assimilated (a number, no warm-up or sensor fault)."""
        return self.glucose_mg_dl is not None and not (self.status & _UNUSABLE)


_UNUSABLE = frozenset(
    {
        CgmStatus.WARMUP,
        CgmStatus.SESSION_STOPPED,
        CgmStatus.SENSOR_MALFUNCTION,
        CgmStatus.DEVICE_FAULT,
        CgmStatus.CALIBRATION_REQUIRED,
        CgmStatus.INVALID_VALUE,
    }
)


@dataclass(frozen=True, slots=True)
class MeterReading:
    """A blood-glucose meter (finger-stick) measurement."""

    time_utc: datetime
    glucose_mg_dl: float
    device_id: str
    sequence: int | None = None

    def __post_init__(self) -> None:
        _check_time(self)
        _check_range(self, "glucose_mg_dl", 0.0, GLUCOSE_MAX_MG_DL)


@dataclass(frozen=True, slots=True)
class HeartRateReading:
    """Heart rate from a chest band or watch; ``rr_intervals_s`` in seconds."""

    time_utc: datetime
    heart_rate_bpm: int
    device_id: str
    rr_intervals_s: tuple[float, ...] = ()
    energy_expended_kj: int | None = None
    sensor_contact: bool | None = None

    def __post_init__(self) -> None:
        _check_time(self)
        _check_range(self, "heart_rate_bpm", 0, 300)


class InsulinKind(StrEnum):
    BOLUS = "bolus"
    MICRO_BOLUS = "micro_bolus"
    BASAL = "basal"
    TEMP_BASAL = "temp_basal"


@dataclass(frozen=True, slots=True)
class InsulinDelivery:
    """Insulin the pump reports as delivered: ``units`` over ``duration_min`` from ``time_utc``.

    A bolus has ``duration_min`` 0 (delivered at once, for the model's minute resolution).
    """

    time_utc: datetime
    units: float
    kind: InsulinKind
    device_id: str
    duration_min: float = 0.0
    sequence: int | None = None

    def __post_init__(self) -> None:
        _check_time(self)
        _check_range(self, "units", 0.0, 100.0)
        _check_range(self, "duration_min", 0.0, 24 * 60.0)
        object.__setattr__(self, "kind", InsulinKind(self.kind))


@dataclass(frozen=True, slots=True)
class CarbEntry:
    """Carbohydrate the patient announced (g), eaten from ``time_utc``."""

    time_utc: datetime
    grams: float
    source: str = "patient"

    def __post_init__(self) -> None:
        _check_time(self)
        _check_range(self, "grams", 0.0, 500.0)


@dataclass(frozen=True, slots=True)
class PumpStatus:
    """What the pump reports about itself at ``time_utc``."""

    time_utc: datetime
    device_id: str
    reservoir_u: float
    suspended: bool
    bolusing: bool
    basal_rate_u_per_h: float
    temp_basal_u_per_h: float | None = None
    temp_basal_remaining_min: float = 0.0
    battery_pct: float | None = None
    occluded: bool = False
    insulin_on_board_u: float | None = None

    def __post_init__(self) -> None:
        _check_time(self)
        _check_range(self, "reservoir_u", 0.0, 1000.0)
        _check_range(self, "basal_rate_u_per_h", 0.0, 50.0)
        _check_range(self, "temp_basal_u_per_h", 0.0, 50.0, optional=True)
        _check_range(self, "battery_pct", 0.0, 100.0, optional=True)


class PumpCommandKind(StrEnum):
    TEMP_BASAL = "temp_basal"
    CANCEL_TEMP_BASAL = "cancel_temp_basal"
    BOLUS = "bolus"
    SUSPEND = "suspend"
    RESUME = "resume"


@dataclass(frozen=True, slots=True)
class PumpCommand:
    """A command for the pump. Only the gateway, after the safety gate, builds these."""

    command_id: str
    kind: PumpCommandKind
    created_utc: datetime
    rate_u_per_h: float | None = None
    duration_min: float | None = None
    units: float | None = None

    def __post_init__(self) -> None:
        _check_time(self, "created_utc")
        object.__setattr__(self, "kind", PumpCommandKind(self.kind))
        _check_range(self, "rate_u_per_h", 0.0, 50.0, optional=True)
        _check_range(self, "duration_min", 0.0, 24 * 60.0, optional=True)
        _check_range(self, "units", 0.0, 100.0, optional=True)
        if self.kind is PumpCommandKind.TEMP_BASAL and (
            self.rate_u_per_h is None or self.duration_min is None
        ):
            raise ValueError("a temp basal command needs rate_u_per_h and duration_min")
        if self.kind is PumpCommandKind.BOLUS and self.units is None:
            raise ValueError("a bolus command needs units")


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The pump's answer to a command; ``confirmed`` only when the pump read it back."""

    command_id: str
    time_utc: datetime
    confirmed: bool
    detail: str = ""

    def __post_init__(self) -> None:
        _check_time(self)


class SuggestionKind(StrEnum):
    KEEP_BASAL = "keep_basal"
    TEMP_BASAL = "temp_basal"
    BOLUS = "bolus"
    MICRO_BOLUS = "micro_bolus"
    SUSPEND = "suspend"
    CARBS = "carbs"


@dataclass(frozen=True, slots=True)
class Suggestion:
    """An insulin (or carbohydrate) suggestion with its plain-language reason.

    ``reservoir_u`` is the pump reservoir the suggestion was computed from (the safety gate
    refuses a bolus when the pump has delivered something unseen since).

    ``need_u`` is the insulin (U) the suggester computed as needed now (the gate gives an
    automatic bolus at most half of it). The predicted glucose (mg/dL) comes as quantile
    trajectories at ``trajectory_minutes`` after ``created_utc``: ``predicted_mg_dl[i]`` is the
    ``trajectory_quantiles[i]`` quantile with the suggested action, ``baseline_mg_dl[i]`` without
    it (scheduled basal only). Quantiles ascend, so row 0 is the low quantile the gate guards on.
    """

    created_utc: datetime
    expires_utc: datetime
    kind: SuggestionKind
    reason: str
    rate_u_per_h: float | None = None
    duration_min: float | None = None
    units: float | None = None
    carbs_g: float | None = None
    reservoir_u: float | None = None
    need_u: float | None = None
    trajectory_minutes: tuple[int, ...] = ()
    trajectory_quantiles: tuple[float, ...] = ()
    predicted_mg_dl: tuple[tuple[float, ...], ...] = ()
    baseline_mg_dl: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self) -> None:
        _check_time(self, "created_utc")
        _check_time(self, "expires_utc")
        object.__setattr__(self, "kind", SuggestionKind(self.kind))
        _check_range(self, "rate_u_per_h", 0.0, 50.0, optional=True)
        _check_range(self, "duration_min", 0.0, 24 * 60.0, optional=True)
        _check_range(self, "units", 0.0, 100.0, optional=True)
        _check_range(self, "carbs_g", 0.0, 500.0, optional=True)
        _check_range(self, "reservoir_u", 0.0, 1000.0, optional=True)
        _check_range(self, "need_u", 0.0, 100.0, optional=True)
        minutes = tuple(int(m) for m in self.trajectory_minutes)
        quantiles = tuple(float(q) for q in self.trajectory_quantiles)
        object.__setattr__(self, "trajectory_minutes", minutes)
        object.__setattr__(self, "trajectory_quantiles", quantiles)
        if any(m < 0 for m in minutes) or list(minutes) != sorted(minutes):
            raise ValueError("Suggestion.trajectory_minutes must be ascending and >= 0")
        if any(not 0.0 < q < 1.0 for q in quantiles) or list(quantiles) != sorted(set(quantiles)):
            raise ValueError("Suggestion.trajectory_quantiles must ascend strictly inside (0, 1)")
        for name in ("predicted_mg_dl", "baseline_mg_dl"):
            rows = tuple(tuple(float(v) for v in row) for row in getattr(self, name))
            object.__setattr__(self, name, rows)
            if not rows:
                continue
            if len(rows) != len(quantiles) or any(len(row) != len(minutes) for row in rows):
                raise ValueError(f"Suggestion.{name} needs one row per quantile, one value per minute")
            if any(not (math.isfinite(v) and 0.0 <= v <= GLUCOSE_MAX_MG_DL) for row in rows for v in row):
                raise ValueError(f"Suggestion.{name} values must be finite glucose in [0, 1000] mg/dL")

    def predicted_low_mg_dl(self, within_min: float | None = None) -> float | None:
        """Lowest value of the low quantile with the action (within ``within_min``), or None."""
        if not self.predicted_mg_dl:
            return None
        values = [
            v
            for m, v in zip(self.trajectory_minutes, self.predicted_mg_dl[0], strict=True)
            if within_min is None or m <= within_min
        ]
        return min(values) if values else None


@dataclass(frozen=True, slots=True)
class Alarm:
    """Something the patient must notice (data stopped, pump unreachable, low predicted)."""

    time_utc: datetime
    kind: str
    message: str
    severity: str = "warning"  # "info" | "warning" | "urgent"

    def __post_init__(self) -> None:
        _check_time(self)
        if self.severity not in ("info", "warning", "urgent"):
            raise ValueError(f"Alarm.severity must be info, warning or urgent, got {self.severity!r}")
