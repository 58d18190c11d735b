"""In-process simulated devices (``sim:cgm``, ``sim:pump``) on one virtual patient, in clock time.

For a gateway on a bench or in the demo without the radio: a UVA/Padova virtual patient
(:mod:`edgetwin.virtual`) eats the seeded meals of its cohort's scenario, boluses announced meals
on its pump (carbs / carb ratio + correction, the reference basal-bolus therapy) and receives the
scheduled basal and whatever the gateway commands. A CGM samples its subcutaneous glucose with
the cohort's seeded sensor noise.

The body is a pure function of its seed, its start time and the commands it received, and it
journals those commands (``sim-body.jsonl`` in the data directory, fsynced), so a gateway killed
and restarted finds the same patient where it would have been: the simulated devices behave
like real ones that kept running while the gateway was down, and back-fill what it missed.

The CGM behaves like a CGMS sensor: ``sequence`` is the time offset (minutes) since the session
start, and on (re)connection it back-fills everything after the newest reading the store holds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from edgetwin.clock import Clock
from edgetwin.gateway.ports import ResumePoint
from edgetwin.messages import (
    CarbEntry,
    CgmReading,
    CommandResult,
    InsulinDelivery,
    InsulinKind,
    PumpCommand,
    PumpCommandKind,
    PumpStatus,
)
from edgetwin.model.cohort import load_patient, load_therapy
from edgetwin.store import Ack
from edgetwin.timeutil import ensure_utc
from edgetwin.virtual.controller import BasalBolusController, Observation
from edgetwin.virtual.patient import VirtualPatient
from edgetwin.virtual.pump import VirtualPump
from edgetwin.virtual.scenario import MealEvent, RandomScenario
from edgetwin.virtual.sensor import CgmSensor

__all__ = ["SimBody", "SimCgmSource", "SimPumpSource"]

log = logging.getLogger("edgetwin.gateway.sim")

BACKFILL_MAX_MIN = 24 * 60
PUMP_REPORT_MIN = 5
RESERVOIR_START_U = 300.0


@dataclass
class _Temp:
    rate_u_per_h: float
    until_minute: int


@dataclass
class _Minute:
    """What the body received during one minute."""

    basal_u: float = 0.0
    bolus_u: float = 0.0
    temp: bool = False
    announced_g: float = 0.0


@dataclass
class SimBody:
    """The virtual patient behind the ``sim:`` devices; ``minute`` 0 is ``start_utc``."""

    clock: Clock
    start_utc: datetime
    patient: str = "adult#001"
    seed: int = 0
    sensor: str = "Dexcom"
    journal: Path | None = None
    days: int = 14
    minute: int = 0
    gsub: list[float] = field(default_factory=list)
    inputs: list[_Minute] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.start_utc = ensure_utc(self.start_utc).replace(second=0, microsecond=0)
        params = load_patient(self.patient)
        therapy = load_therapy(self.patient)
        self._vp = VirtualPatient(params)
        self._pump = VirtualPump()
        self.basal_u_per_h = self._pump.basal_rate(params.basal_u_per_h)
        self._ctl = BasalBolusController(
            self.basal_u_per_h, therapy.carb_ratio_g_per_u, therapy.correction_factor_mg_dl_per_u
        )
        self._cgm = CgmSensor(self.sensor, seed=self.seed)
        self.sample_min = int(round(self._cgm.sample_time_min))
        day0 = self.start_utc.hour * 60 + self.start_utc.minute
        self.meals: dict[int, MealEvent] = {}
        for m in RandomScenario(self.seed).meals(self.days + 1):
            wm = m.minute - day0
            if wm >= 0:
                self.meals[wm] = m
        self.gsub = [self._vp.gsub_mg_dl]
        self.inputs = []
        self._temp: _Temp | None = None
        self._commands: dict[int, list[dict[str, object]]] = {}
        self._pending_bolus: dict[int, float] = {}
        self._connect_lock = asyncio.Lock()
        self.reservoir_u = RESERVOIR_START_U
        self.delivered_u = 0.0
        self._load_journal()

    # --- time --------------------------------------------------------------------------------

    def now_minute(self) -> int:
        """The clock's minute (completed minutes since the start)."""
        return math.floor((self.clock.now_utc() - self.start_utc).total_seconds() / 60.0)

    def time_of(self, minute: int) -> datetime:
        return self.start_utc + timedelta(minutes=minute)

    def catch_up(self) -> int:
        self.advance_to(self.now_minute())
        return self.minute

    async def connect(self) -> int:
        """Catch up with the clock off the event loop (the first call loads the model kernels,
        a second or two), as a real device takes its time to connect."""
        async with self._connect_lock:
            return await asyncio.to_thread(self.catch_up)

    def advance_to(self, minute: int) -> None:
        """Run the patient to ``minute`` (its state is then the state at that minute)."""
        while self.minute < minute:
            m = self.minute
            for cmd in self._commands.get(m, ()):
                self._apply(m, cmd)
            meal = self.meals.get(m)
            cgm = self.cgm_value(self._last_sample_at_or_before(m))
            act = self._ctl.act(
                Observation(minute=m, cgm_mg_dl=cgm, announced_cho_g=meal.announced_g if meal else 0.0)
            )
            temp = self._temp if self._temp and self._temp.until_minute > m else None
            rate = temp.rate_u_per_h if temp else act.basal_u_per_h
            bolus = self._pump.bolus(act.bolus_u) if act.bolus_u > 0 else 0.0
            bolus += self._pending_bolus.pop(m, 0.0)
            basal_u = self._pump.basal_rate(rate) / 60.0 if rate > 0 else 0.0
            self._vp.step(meal.eaten_g if meal else 0.0, basal_u + bolus)
            self.gsub.append(self._vp.gsub_mg_dl)
            self.inputs.append(_Minute(basal_u, bolus, temp is not None, meal.announced_g if meal else 0.0))
            self.reservoir_u = max(0.0, self.reservoir_u - basal_u - bolus)
            self.delivered_u += basal_u + bolus
            self.minute += 1

    def _last_sample_at_or_before(self, m: int) -> int:
        return (m // self.sample_min) * self.sample_min

    def cgm_value(self, minute: int) -> float | None:
        """The sensor's value at a sample minute already simulated (None otherwise)."""
        if minute < 0 or minute >= len(self.gsub):
            return None
        return self._cgm.measure(minute, self.gsub[minute])

    # --- commands ----------------------------------------------------------------------------

    def command(self, cmd: PumpCommand) -> CommandResult:
        """Apply a pump command from the current minute on (journalled first)."""
        self.catch_up()
        m = self.minute
        doc: dict[str, object] = {
            "minute": m,
            "kind": str(cmd.kind),
            "rate": cmd.rate_u_per_h,
            "duration": cmd.duration_min,
            "units": cmd.units,
            "id": cmd.command_id,
        }
        if self.journal is not None:
            with open(self.journal, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(doc) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        self._commands.setdefault(m, []).append(doc)
        return CommandResult(cmd.command_id, self.clock.now_utc(), True, "applied by the simulated pump")

    def _apply(self, m: int, cmd: dict[str, object]) -> None:
        kind = cmd["kind"]
        if kind == PumpCommandKind.TEMP_BASAL:
            self._temp = _Temp(float(cmd["rate"]), m + int(float(cmd["duration"])))  # type: ignore[arg-type]
        elif kind in (PumpCommandKind.CANCEL_TEMP_BASAL, PumpCommandKind.RESUME):
            self._temp = None
        elif kind == PumpCommandKind.SUSPEND:
            self._temp = _Temp(0.0, m + 30)
        elif kind == PumpCommandKind.BOLUS:
            self._pending_bolus[m] = self._pending_bolus.get(m, 0.0) + self._pump.bolus(float(cmd["units"]))  # type: ignore[arg-type]

    def _load_journal(self) -> None:
        if self.journal is None or not self.journal.exists():
            return
        for line in self.journal.read_text("utf-8").splitlines():
            try:
                doc = json.loads(line)
                self._commands.setdefault(int(doc["minute"]), []).append(doc)
            except (ValueError, KeyError, TypeError):
                log.warning("sim body: ignoring a torn journal line", extra={"event": "sim_journal_torn"})

    def temp_basal(self) -> tuple[float | None, float]:
        t = self._temp
        if t is None or t.until_minute <= self.minute:
            return None, 0.0
        return t.rate_u_per_h, float(t.until_minute - self.minute)


# --- the device sources ------------------------------------------------------------------------


class SimCgmSource:
    """``sim:cgm``: the body's CGM, a reading every sample period, back-fill on (re)connect."""

    role = "cgm"

    def __init__(self, body: SimBody, name: str = "sim:cgm", latency_s: float = 10.0) -> None:
        self.body = body
        self.name = name
        self.device_id = f"sim-cgm-{body.seed}"
        self.latency_s = latency_s
        self.acknowledged = 0

    def _reading(self, minute: int, backfilled: bool) -> CgmReading | None:
        value = self.body.cgm_value(minute)
        if value is None:
            return None
        g = self.body.gsub
        trend = (g[minute] - g[minute - 5]) / 5.0 if minute >= 5 else None
        return CgmReading(
            time_utc=self.body.time_of(minute),
            glucose_mg_dl=round(value),
            device_id=self.device_id,
            sequence=minute,
            trend_mg_dl_per_min=None if trend is None else max(-100.0, min(100.0, round(trend, 2))),
            backfilled=backfilled,
        )

    async def records(self, resume: ResumePoint) -> AsyncIterator[object]:
        body = self.body
        now = await body.connect()
        first = max(0, now - BACKFILL_MAX_MIN)
        if resume.last_sequence is not None:
            first = max(first, resume.last_sequence + 1)
        k = -(-first // body.sample_min) * body.sample_min
        while k <= now:
            r = self._reading(k, backfilled=True)
            if r is not None:
                yield r
            k += body.sample_min
        while True:
            due = body.time_of(k) + timedelta(seconds=self.latency_s)
            wait = (due - body.clock.now_utc()).total_seconds()
            if wait > 0:
                await body.clock.sleep(wait)
            body.catch_up()
            if body.minute < k:
                continue
            r = self._reading(k, backfilled=False)
            if r is not None:
                yield r
            k += body.sample_min

    async def acknowledge(self, record: object, ack: Ack) -> None:
        self.acknowledged += 1

    async def aclose(self) -> None:
        return None


class SimPumpSource:
    """``sim:pump``: delivered insulin (5-min basal segments, boluses), carbs entered in the
    bolus wizard, a status every 5 min; commands applied by the body."""

    role = "pump"

    def __init__(self, body: SimBody, name: str = "sim:pump") -> None:
        self.body = body
        self.name = name
        self.device_id = f"sim-pump-{body.seed}"

    def _segment(self, start: int) -> list[object]:
        """Records for minutes [start, start + 5), all simulated."""
        b = self.body
        out: list[object] = []
        basal = sum(b.inputs[m].basal_u for m in range(start, start + PUMP_REPORT_MIN))
        temp = any(b.inputs[m].temp for m in range(start, start + PUMP_REPORT_MIN))
        for m in range(start, start + PUMP_REPORT_MIN):
            i = b.inputs[m]
            if i.announced_g > 0:
                out.append(CarbEntry(b.time_of(m), i.announced_g, source=self.device_id))
            if i.bolus_u > 0:
                out.append(
                    InsulinDelivery(
                        b.time_of(m),
                        round(i.bolus_u, 3),
                        InsulinKind.BOLUS,
                        self.device_id,
                        sequence=2 * m + 1,
                    )
                )
        out.append(
            InsulinDelivery(
                b.time_of(start),
                round(basal, 4),
                InsulinKind.TEMP_BASAL if temp else InsulinKind.BASAL,
                self.device_id,
                duration_min=float(PUMP_REPORT_MIN),
                sequence=2 * start,
            )
        )
        return out

    def _status(self) -> PumpStatus:
        b = self.body
        rate, remaining = b.temp_basal()
        return PumpStatus(
            time_utc=b.time_of(b.minute),
            device_id=self.device_id,
            reservoir_u=round(b.reservoir_u, 2),
            suspended=False,
            bolusing=False,
            basal_rate_u_per_h=b.basal_u_per_h,
            temp_basal_u_per_h=rate,
            temp_basal_remaining_min=remaining,
            battery_pct=80.0,
        )

    async def records(self, resume: ResumePoint) -> AsyncIterator[object]:
        body = self.body
        now = await body.connect()
        first = max(0, now - BACKFILL_MAX_MIN)
        if resume.last_time_utc is not None:
            first = max(first, math.floor((resume.last_time_utc - body.start_utc).total_seconds() / 60.0))
        seg = (first // PUMP_REPORT_MIN) * PUMP_REPORT_MIN
        while True:
            while seg + PUMP_REPORT_MIN <= body.minute:
                for r in self._segment(seg):
                    yield r
                seg += PUMP_REPORT_MIN
            yield self._status()
            due = body.time_of(seg + PUMP_REPORT_MIN) + timedelta(seconds=5)
            wait = (due - body.clock.now_utc()).total_seconds()
            if wait > 0:
                await body.clock.sleep(wait)
            body.catch_up()

    async def acknowledge(self, record: object, ack: Ack) -> None:
        return None

    async def send(self, command: PumpCommand) -> CommandResult:
        return self.body.command(command)

    async def aclose(self) -> None:
        return None


def glucose_trace(body: SimBody) -> np.ndarray:
    """The body's subcutaneous glucose per minute so far (mg/dL), for reports."""
    return np.asarray(body.gsub, dtype=np.float64)
