"""The heart-rate band and the blood-glucose meter of the simulated world."""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

from devices.codecs.glucose import KG_PER_L_TO_MG_DL, GlucoseMeasurement
from devices.codecs.heart_rate import HeartRateMeasurement

if TYPE_CHECKING:
    from devices.sim.world import SimWorld

__all__ = ["SimHeart", "SimMeter"]


class SimHeart:
    """Heart rate (bpm): a resting rate with a day-night swing, a rise after meals, seeded noise."""

    NAME = "heart"

    def __init__(self, world: SimWorld, *, resting_bpm: float = 64.0, seed: int = 0) -> None:
        self.world = world
        self.resting_bpm = resting_bpm
        self._rng = random.Random(seed)
        self.energy_kj = 0

    def measurement(self) -> HeartRateMeasurement:
        minute = self.world.minute
        day = math.sin(
            2
            * math.pi
            * ((self.world.time_at(minute).hour * 60 + self.world.time_at(minute).minute) / 1440.0 - 0.3)
        )
        meal = 8.0 if self.world.minutes_since_meal() < 90 else 0.0
        bpm = int(round(self.resting_bpm + 6.0 * day + meal + self._rng.gauss(0.0, 2.0)))
        self.energy_kj = min(0xFFFF, self.energy_kj + bpm // 20)
        rr = 60.0 / bpm
        return HeartRateMeasurement(bpm, True, self.energy_kj, (round(rr * 1024) / 1024,))


class SimMeter:
    """Finger-stick measurements: plasma glucose ±4 % (seeded), taken at ``times_of_day_min``."""

    NAME = "meter"

    def __init__(
        self, world: SimWorld, *, times_of_day_min: tuple[int, ...] = (420, 720, 1080, 1320), seed: int = 0
    ) -> None:
        self.world = world
        self.times_of_day_min = times_of_day_min
        self._rng = random.Random(seed)
        self.records: list[GlucoseMeasurement] = []

    def take(self) -> GlucoseMeasurement:
        """A measurement now (as if the patient pricked a finger)."""
        world = self.world
        value = world.patient.bg_mg_dl * (1.0 + self._rng.uniform(-0.04, 0.04))
        kg_per_l = round(value) / KG_PER_L_TO_MG_DL
        t = world.time_at(world.minute).replace(tzinfo=None)
        record = GlucoseMeasurement(len(self.records) + 1, t, None, kg_per_l, "kg/L", 0x11)
        self.records.append(record)
        return record

    def on_minute(self, minute: int) -> None:
        t = self.world.time_at(minute)
        if t.hour * 60 + t.minute in self.times_of_day_min:
            self.take()
