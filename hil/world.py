"""The bench's simulated world: the devices package's ``SimWorld`` plus what a bench must know.

``BenchWorld`` is a :class:`devices.sim.world.SimWorld` (one virtual patient, its CGM, pump,
heart-rate band and meter, stepped minute by minute on the shared clock) that also records the
ground truth the gateway never sees:

* ``truth``: per world minute, plasma glucose, subcutaneous glucose, insulin delivered into the
  patient and carbohydrate eaten;
* ``sensor_log``: every record the CGM produced, across sensor sessions (the sensor itself forgets
  a session's records when a new one starts);
* ``pump.commands``: every command that reached the pump — who sent it (the gateway over BLE or
  serial, or the patient's own meal bolus), what it asked, what the pump answered and whether it
  actually applied it (``UNCONFIRMED_COMMANDS`` answers success without applying);
* exercise: the heart-rate band reports the bouts of the scenario. The UVA/Padova model in
  ``edgetwin.model`` has no exercise term, so **physiology ignores exercise**: glucose and insulin
  sensitivity are unchanged; only the heart rate the gateway receives shows it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from devices.codecs.heart_rate import HeartRateMeasurement
from devices.codecs.ids import IdsResponseCode, TherapyControlState
from devices.sim.body import SimHeart
from devices.sim.cgm_sensor import SensorRecord
from devices.sim.faults import Fault, FaultSchedule
from devices.sim.insulin_pump import SimInsulinPump
from devices.sim.world import SimWorld
from edgetwin.clock import Clock
from edgetwin.virtual.scenario import MealEvent
from hil.scenario import ExerciseBout

__all__ = ["BenchWorld", "ExerciseHeart", "PumpCommandRecord", "RecordingPump", "SensorLogEntry"]

RAMP_MIN = 5.0
"""Heart rate climbs to (and falls back from) an exercise bout's rate over this many minutes."""


@dataclass(frozen=True, slots=True)
class PumpCommandRecord:
    """One command as the simulated pump received it."""

    minute: int
    time_utc: datetime
    source: str
    """``gateway`` (a control-point write over BLE or serial) or ``patient`` (a meal bolus)."""
    kind: str
    """``temp_basal``, ``cancel_temp_basal``, ``bolus``, ``cancel_bolus`` or ``therapy_state``."""
    response: str
    applied: bool
    rate_u_per_h: float | None = None
    duration_min: float | None = None
    units: float | None = None
    state: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "minute": self.minute,
            "time_utc": self.time_utc.isoformat(),
            "source": self.source,
            "kind": self.kind,
            "response": self.response,
            "applied": self.applied,
            "rate_u_per_h": self.rate_u_per_h,
            "duration_min": self.duration_min,
            "units": self.units,
            "state": self.state,
        }


@dataclass(frozen=True, slots=True)
class SensorLogEntry:
    """A sensor record with the session it belongs to (``session`` counts from 1)."""

    session: int
    record: SensorRecord

    @property
    def has_value(self) -> bool:
        return math.isfinite(self.record.glucose_mg_dl)


class RecordingPump(SimInsulinPump):
    """The simulated pump, keeping a record of every command it received."""

    def __init__(self, world: BenchWorld, spec: str = "Insulet") -> None:
        super().__init__(world, spec)
        self.bench_world = world
        self.commands: list[PumpCommandRecord] = []

    def _record(self, kind: str, code: IdsResponseCode, applied: bool, **values: Any) -> None:
        w = self.bench_world
        source = "patient" if w.stepping else "gateway"
        self.commands.append(
            PumpCommandRecord(w.minute, w.time_at(w.minute), source, kind, code.name, applied, **values)
        )

    # "Applied" means the pump did what it answered: a command repeated within the same bench
    # minute (the same temp basal again, a second suspend) leaves the state as it was and is still
    # applied. Only the fault that answers success without acting makes a success unapplied.

    def set_temp_basal(self, rate_u_per_h: float, duration_min: int) -> IdsResponseCode:
        faulty = self._unconfirmed()
        code = super().set_temp_basal(rate_u_per_h, duration_min)
        applied = code is IdsResponseCode.SUCCESS and not faulty
        self._record("temp_basal", code, applied, rate_u_per_h=rate_u_per_h, duration_min=float(duration_min))
        return code

    def cancel_temp_basal(self) -> IdsResponseCode:
        before = self.temp_basal
        code = super().cancel_temp_basal()
        self._record("cancel_temp_basal", code, code is IdsResponseCode.SUCCESS and before != self.temp_basal)
        return code

    def set_bolus(self, units: float) -> tuple[IdsResponseCode, int, float]:
        before = self.bolus_id
        code, bolus_id, accepted = super().set_bolus(units)
        applied = code is IdsResponseCode.SUCCESS and self.bolus_id != before
        self._record("bolus", code, applied, units=accepted if applied else units)
        return code, bolus_id, accepted

    def cancel_bolus(self, bolus_id: int) -> IdsResponseCode:
        was = self.bolusing
        code = super().cancel_bolus(bolus_id)
        self._record("cancel_bolus", code, code is IdsResponseCode.SUCCESS and was and not self.bolusing)
        return code

    def set_therapy_state(self, state: TherapyControlState) -> IdsResponseCode:
        faulty = self._unconfirmed()
        code = super().set_therapy_state(state)
        applied = code is IdsResponseCode.SUCCESS and not faulty and self.therapy_state is state
        self._record("therapy_state", code, applied, state=state.name)
        return code


class ExerciseHeart(SimHeart):
    """The heart-rate band's physiology with exercise bouts on top (minutes of the world)."""

    def __init__(self, world: SimWorld, bouts: tuple[ExerciseBout, ...], *, seed: int = 0) -> None:
        super().__init__(world, seed=seed)
        self.bouts = bouts
        self._ex_rng = random.Random(seed + 1)

    def exercise_bpm(self, minute: int) -> float | None:
        """The exercise heart rate at ``minute`` (None outside bouts), ramping in and out."""
        for b in self.bouts:
            if b.minute <= minute < b.minute + b.minutes:
                into = minute - b.minute + 1
                left = b.minute + b.minutes - minute
                ramp = min(1.0, into / RAMP_MIN, left / RAMP_MIN)
                return self.resting_bpm + ramp * (b.heart_rate_bpm - self.resting_bpm)
        return None

    def measurement(self) -> HeartRateMeasurement:
        m = super().measurement()
        bpm = self.exercise_bpm(self.world.minute)
        if bpm is None:
            return m
        beat = int(round(min(220.0, max(m.heart_rate_bpm, bpm + self._ex_rng.gauss(0.0, 3.0)))))
        self.energy_kj = min(0xFFFF, self.energy_kj + beat // 10)
        return HeartRateMeasurement(beat, True, self.energy_kj, (round(60.0 / beat * 1024) / 1024,))


RESERVOIR_CHANGE_MIN = 3 * 24 * 60
"""The virtual patient changes the reservoir and infusion set every three days, as pump users
do (sets are labelled for 2-3 days of wear); a multi-day scenario would otherwise run the pump
dry by day four and measure an empty pump instead of what it meant to test."""
RESERVOIR_CHANGE_U = 200.0


class BenchWorld(SimWorld):
    """A ``SimWorld`` that records the truth, the sensor's output and the pump's commands."""

    def __init__(
        self,
        clock: Clock,
        *,
        patient: str,
        seed: int,
        meals: list[MealEvent],
        exercise: tuple[ExerciseBout, ...] = (),
        sensor: str = "Dexcom",
    ) -> None:
        self.stepping = False
        super().__init__(
            clock, patient=patient, sensor=sensor, seed=seed, meals=meals, faults=FaultSchedule(seed)
        )
        # Replace the pump and the heart before any front end holds them.
        self.recording_pump = RecordingPump(self)
        self.pump = self.recording_pump
        self.heart = ExerciseHeart(self, exercise, seed=seed)
        self.meals = sorted(meals, key=lambda m: m.minute)
        self.truth_bg: list[float] = [self.patient.bg_mg_dl]
        self.truth_gsub: list[float] = [self.patient.gsub_mg_dl]
        self.insulin_u: list[float] = [0.0]
        self.carbs_g: list[float] = [0.0]
        self.sensor_log: list[SensorLogEntry] = []
        self._insulin_now = 0.0
        self._carbs_now = 0.0
        self.cgm.subscribe(self._on_sensor_record)

    def _on_sensor_record(self, record: SensorRecord) -> None:
        self.sensor_log.append(SensorLogEntry(self.cgm.sessions_started, record))

    def _step(self) -> None:
        k = self.minute
        if (
            k > 0
            and k % RESERVOIR_CHANGE_MIN == 0
            and not self.faults.active(Fault.EMPTY_RESERVOIR, k, self.pump.NAME)
        ):
            self.pump.refill(RESERVOIR_CHANGE_U)
        self._carbs_now = sum(m.eaten_g for m in self._meals.get(k, ()))
        before = self.pump.delivered_basal_total_u + self.pump.delivered_bolus_total_u
        self.stepping = True
        try:
            super()._step()
        finally:
            self.stepping = False
        delivered = self.pump.delivered_basal_total_u + self.pump.delivered_bolus_total_u - before
        self.truth_bg.append(self.patient.bg_mg_dl)
        self.truth_gsub.append(self.patient.gsub_mg_dl)
        self.insulin_u.append(max(0.0, delivered))
        self.carbs_g.append(self._carbs_now)
