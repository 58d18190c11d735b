"""The physical CGM of the simulated world: sessions, samples, warm-up, errors, compression lows.

It samples the world's virtual patient (subcutaneous glucose plus the cohort's seeded sensor
noise, rounded to whole mg/dL and clipped to the sensor's range, as real CGMs report) every
``sample_time_min`` minutes of its session and keeps every record of the session for back-fill.
Time offsets count minutes since the session started; the simulated GATT CGM and the serial CGM
receiver only expose these records.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from devices.codecs.cgms import CgmAnnunciation, CgmStatusRecord, SessionStartTime
from devices.sim.faults import Fault
from edgetwin.virtual.sensor import CgmSensor

if TYPE_CHECKING:
    from devices.sim.world import SimWorld

__all__ = ["SensorRecord", "SimCgmSensor"]

COMPRESSION_LOW_MG_DL = 48.0
"""Where a compressed sensor reads (mg/dL), whatever the true glucose."""


@dataclass(frozen=True, slots=True)
class SensorRecord:
    """One stored sample: ``glucose_mg_dl`` NaN when the sensor had no value."""

    offset_min: int
    world_minute: int
    glucose_mg_dl: float
    annunciation: CgmAnnunciation
    trend_mg_dl_per_min: float | None


class SimCgmSensor:
    NAME = "cgm"

    def __init__(
        self,
        world: SimWorld,
        spec: str = "Dexcom",
        *,
        seed: int = 0,
        warmup_min: int = 120,
        session_age_min: int = 1440,
        run_time_hours: int = 240,
    ) -> None:
        self.world = world
        self._noise = CgmSensor(spec, seed=seed)
        self.sample_time_min = int(self._noise.sample_time_min)
        self.warmup_min = warmup_min
        self.run_time_hours = run_time_hours
        self.session_start_minute = world.minute - session_age_min
        self.session_start_time = SessionStartTime(None)  # written by the collector
        self.records: list[SensorRecord] = []
        self.sessions_started = 1
        self._listeners: list[Callable[[SensorRecord], None]] = []
        self._k = 0

    def subscribe(self, callback: Callable[[SensorRecord], None]) -> Callable[[], None]:
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    @property
    def offset_min(self) -> int:
        return self.world.minute - self.session_start_minute

    def start_session(self) -> None:
        """A new sensor: offsets restart at 0, warm-up begins, the start time must be rewritten."""
        self.session_start_minute = self.world.minute
        self.session_start_time = SessionStartTime(None)
        self.records = []
        self.sessions_started += 1

    def in_warmup(self) -> bool:
        return self.offset_min < self.warmup_min

    def status(self, *, e2e: bool = False) -> CgmStatusRecord:
        ann = CgmAnnunciation(0)
        if self.world.faults.active(Fault.SENSOR_ERROR, self.world.minute, self.NAME):
            ann |= CgmAnnunciation.SENSOR_MALFUNCTION
        if self.session_start_time.local_time is None:
            ann |= CgmAnnunciation.TIME_SYNC_REQUIRED
        return CgmStatusRecord(self.offset_min, ann, e2e)

    def on_minute(self, minute: int) -> None:
        faults = self.world.faults
        if faults.starts(Fault.SENSOR_WARMUP, minute, self.NAME):
            self.start_session()
        offset = minute - self.session_start_minute
        if offset < 0 or offset % self.sample_time_min or offset > 0xFFFF:
            return
        noise = self._noise.noise_at_sample(self._k)
        self._k += 1
        spec = self._noise.spec
        ann = CgmAnnunciation(0)
        trend = None
        if offset < self.warmup_min:
            value = math.nan
            ann |= CgmAnnunciation.DEVICE_SPECIFIC_ALERT
        elif faults.active(Fault.SENSOR_ERROR, minute, self.NAME):
            value = math.nan
            ann |= CgmAnnunciation.SENSOR_MALFUNCTION
        else:
            raw = self.world.patient.gsub_mg_dl + noise
            if faults.active(Fault.COMPRESSION_LOW, minute, self.NAME):
                raw = min(raw, COMPRESSION_LOW_MG_DL)
            if raw < spec.min_mg_dl:
                ann |= CgmAnnunciation.BELOW_DEVICE_RANGE
            elif raw > spec.max_mg_dl:
                ann |= CgmAnnunciation.ABOVE_DEVICE_RANGE
            value = float(round(min(max(raw, spec.min_mg_dl), spec.max_mg_dl)))
            prev = self.records[-1] if self.records else None
            if (
                prev is not None
                and math.isfinite(prev.glucose_mg_dl)
                and offset - prev.offset_min <= 3 * self.sample_time_min
            ):
                trend = round((value - prev.glucose_mg_dl) / (offset - prev.offset_min), 1)
        record = SensorRecord(offset, minute, value, ann, trend)
        self.records.append(record)
        for callback in list(self._listeners):
            callback(record)
