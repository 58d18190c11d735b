"""The simulated world: one virtual patient and the devices on their body, in clock time.

``SimWorld`` advances the UVA/Padova virtual patient (``edgetwin.virtual``) minute by minute on an
injected clock (``ScaledClock`` for accelerated time), eats the scenario's meals, and lets the
physical devices act each minute: the pump (``SimInsulinPump``) delivers insulin into the patient,
the CGM (``SimCgmSensor``) samples subcutaneous glucose, the meter and heart-rate band measure.
The simulated GATT peripherals and serial simulators are front ends over these models, so HIL
benches and the gateway demo drive one consistent body.

Use::

    clock = ScaledClock(start, factor=600)
    async with SimWorld(clock, patient="adult#001") as world:   # runs in the background
        world.faults.add(Fault.DISCONNECT, 60, 90, device="cgm")
        ...

or step it by hand (``world.advance(minutes)``) without a clock loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType

from devices.sim.body import SimHeart, SimMeter
from devices.sim.cgm_sensor import SimCgmSensor
from devices.sim.faults import FaultSchedule
from devices.sim.insulin_pump import SimInsulinPump
from edgetwin.clock import Clock
from edgetwin.model.cohort import load_patient, load_therapy
from edgetwin.virtual.patient import VirtualPatient
from edgetwin.virtual.scenario import MealEvent, RandomScenario

__all__ = ["SimWorld"]

log = logging.getLogger(__name__)


class SimWorld:
    """A virtual patient with a CGM, an insulin pump, a heart-rate band and a meter.

    ``minute`` counts world minutes from ``start_utc`` (the clock's time at creation, floored to
    the minute). ``meals`` default to 60 random days of the cohort's meal convention (seeded);
    with ``meal_boluses`` the patient boluses announced meals on the pump (carbs / carb ratio).
    """

    def __init__(
        self,
        clock: Clock,
        *,
        patient: str = "adult#001",
        sensor: str = "Dexcom",
        pump: str = "Insulet",
        seed: int = 0,
        meals: list[MealEvent] | None = None,
        meal_boluses: bool = True,
        faults: FaultSchedule | None = None,
    ) -> None:
        self.clock = clock
        params = load_patient(patient)
        # Load the compiled model kernel now, not on the first clock-paced step (it can take a
        # second on a cold process, an age in accelerated time).
        VirtualPatient(params).step()
        now = clock.now_utc()
        self.start_utc = now.replace(second=0, microsecond=0)
        self._mono0 = clock.monotonic() - (now - self.start_utc).total_seconds()
        self.minute = 0
        self.patient = VirtualPatient(params)
        self.therapy = load_therapy(patient)
        self.faults = faults or FaultSchedule(seed)
        self.meal_boluses = meal_boluses
        self._meals: dict[int, list[MealEvent]] = {}
        for m in RandomScenario(seed).meals(60) if meals is None else meals:
            self._meals.setdefault(m.minute, []).append(m)
        self._last_meal_minute: int | None = None
        self.pump = SimInsulinPump(self, pump)
        self.cgm = SimCgmSensor(self, sensor, seed=seed)
        self.heart = SimHeart(self, seed=seed)
        self.meter = SimMeter(self, seed=seed)
        self._listeners: list[Callable[[int], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._tick = asyncio.Event() if _has_loop() else None

    # --- time ----------------------------------------------------------------------------------

    def time_at(self, minute: int) -> datetime:
        return self.start_utc + timedelta(minutes=minute)

    @property
    def now_utc(self) -> datetime:
        return self.time_at(self.minute)

    def minutes_since_meal(self) -> float:
        return float("inf") if self._last_meal_minute is None else float(self.minute - self._last_meal_minute)

    def on_minute(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call ``callback(minute)`` after every world minute; returns the unsubscribe function."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def add_meal(self, grams: float, *, announced_g: float | None = None, minute: int | None = None) -> None:
        """A meal at ``minute`` (default: the next minute); ``announced_g`` 0 means no bolus."""
        at = self.minute + 1 if minute is None else minute
        g = grams if announced_g is None else announced_g
        self._meals.setdefault(at, []).append(MealEvent(at, grams, g))

    # --- stepping ------------------------------------------------------------------------------

    def advance(self, minutes: int = 1) -> None:
        """Step ``minutes`` world minutes now (no clock involved)."""
        for _ in range(minutes):
            self._step()

    def _step(self) -> None:
        k = self.minute
        cho = 0.0
        for meal in self._meals.pop(k, ()):
            cho += meal.eaten_g
            self._last_meal_minute = k
            if self.meal_boluses and meal.announced_g > 0:
                self.pump.set_bolus(meal.announced_g / self.therapy.carb_ratio_g_per_u)
        insulin = self.pump.minute_insulin_u(k)
        self.patient.step(cho, insulin)
        self.minute = k + 1
        self.cgm.on_minute(self.minute)
        self.meter.on_minute(self.minute)
        for callback in list(self._listeners):
            try:
                callback(self.minute)
            except Exception:  # a front end's bug must not stop the body
                log.exception("world listener failed at minute %d", self.minute)
        if self._tick is not None:
            self._tick.set()

    def clock_minute(self) -> int:
        """The world minute the clock has reached."""
        return int((self.clock.monotonic() - self._mono0) // 60.0)

    async def run(self) -> None:
        """Keep the world in step with the clock (catches up after a stall), until cancelled."""
        while True:
            target = self.clock_minute()
            while self.minute < target:
                self._step()
                if self.minute % 30 == 0:
                    await asyncio.sleep(0)  # let radio and tty traffic through while catching up
            next_s = self._mono0 + (self.minute + 1) * 60.0 - self.clock.monotonic()
            await self.clock.sleep(max(next_s, 0.0))

    async def wait_minute(self, minute: int) -> None:
        """Return once the world has reached ``minute``."""
        if self._tick is None:
            self._tick = asyncio.Event()
        while self.minute < minute:
            self._tick.clear()
            await self._tick.wait()

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._tick = asyncio.Event()
            self._task = asyncio.create_task(self.run(), name="sim-world")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> SimWorld:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
