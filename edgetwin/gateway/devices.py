"""Opening the configured devices by their name strings, through the ``devices`` package.

Names (``devices.names``): ``ble:ADDRESS`` and ``serial:/dev/PATH?baud=N`` are real devices;
``ble-sim:KIND`` and ``serial-sim:KIND`` are simulated devices that the gateway starts itself —
a simulated body (:class:`devices.sim.world.SimWorld`, one virtual patient from ``[sim]``) whose
CGM, pump, heart-rate band and meter are GATT peripherals on bumble's in-process virtual radio
(``ble-sim:``) or serial devices on a pty pair (``serial-sim:``). Either way the gateway runs the
real drivers (bleak over the virtual link, pyserial on the tty), so a demo or bench exercises the
production code path. A role's kind is implied: ``pump = "ble:AA:..."`` opens a pump.

Each configured device becomes a :class:`DriverSource` (the runtime's
:class:`~edgetwin.gateway.ports.DeviceSource`). On every (re)connection it tells the driver what the
store already holds, so after a restart or a failed write the device re-sends exactly what is
missing: the serial CGM resumes after the store's newest sequence, pumps after the newest stored
delivery, and a BLE CGM — whose driver keeps its own high-water mark — is opened afresh and
back-fills through RACP (the store recognises what it already has).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from edgetwin.clock import Clock
from edgetwin.gateway.config import ROLE_KINDS, GatewayConfig, device_name_for
from edgetwin.gateway.errors import DeviceOpenError
from edgetwin.gateway.ports import DeviceSource, PumpControl, ResumePoint
from edgetwin.messages import CarbEntry, CommandResult, PumpCommand
from edgetwin.store import Ack

__all__ = ["DriverSource", "OpenedDevices", "PatientInputs", "open_devices"]

log = logging.getLogger("edgetwin.gateway.devices")


class DriverSource:
    """A ``devices`` driver as a :class:`~edgetwin.gateway.ports.DeviceSource`.

    ``make`` builds a driver; ``fresh_per_connection`` builds a new one for every connection
    (drivers that remember what they have sent, like the BLE CGM); otherwise one driver lives for
    the gateway's life and its resume attribute is set from the store before each connection.
    """

    def __init__(
        self, name: str, role: str, make: Callable[[], Any], *, fresh_per_connection: bool = False
    ) -> None:
        self.name = name
        self.role = role
        self._make = make
        self._fresh = fresh_per_connection
        self.driver = make()
        self.device_id: str = str(self.driver.device_id)

    def _resume(self, resume: ResumePoint) -> None:
        d = self.driver
        if self.role == "cgm" and hasattr(d, "last_seq"):
            d.last_seq = resume.last_sequence
        elif self.role == "pump" and hasattr(d, "last_sequence"):
            d.last_sequence = resume.last_sequence or 0

    async def records(self, resume: ResumePoint) -> AsyncIterator[object]:
        if self._fresh:
            with contextlib.suppress(Exception):
                await self._close_driver()
            self.driver = self._make()
        self._resume(resume)
        async for record in self.driver.readings():
            yield record

    async def acknowledge(self, record: object, ack: Ack) -> None:
        return None  # BLE and serial devices keep their history; the store's resume point is the ack

    async def _close_driver(self) -> None:
        close = getattr(self.driver, "close", None)
        if close is not None:
            await close()

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._close_driver()


class DriverPumpControl:
    """Commands through the pump source's current driver (the one the gateway reads)."""

    def __init__(self, source: DriverSource) -> None:
        self.source = source

    async def send(self, command: PumpCommand) -> CommandResult:
        result: CommandResult = await self.source.driver.send(command)
        return result


class PatientInputs:
    """``sim`` role ``patient``: the simulated patient announcing their meals (carbohydrate
    entries, as a phone app would send them), at the minute they eat."""

    name = "sim:patient"
    role = "patient"
    device_id = "sim-patient"

    def __init__(self, world: Any, meals: list[Any]) -> None:
        self.world = world
        self.meals = sorted((m for m in meals if m.announced_g > 0), key=lambda m: m.minute)

    async def records(self, resume: ResumePoint) -> AsyncIterator[object]:
        after: datetime | None = resume.last_time_utc
        for m in self.meals:
            t = self.world.time_at(m.minute)
            if after is not None and t <= after:
                continue
            if m.minute > self.world.minute:
                await self.world.wait_minute(m.minute)
            yield CarbEntry(t, float(m.announced_g), source="patient")
        await self.world.wait_minute(10**9)

    async def acknowledge(self, record: object, ack: Ack) -> None:
        return None

    async def aclose(self) -> None:
        return None


@dataclass
class OpenedDevices:
    sources: dict[str, DeviceSource] = field(default_factory=dict)
    pump_control: PumpControl | None = None
    world: Any = None
    """The simulated body when ``ble-sim:``/``serial-sim:`` devices are configured."""
    _closers: list[Callable[[], Any]] = field(default_factory=list)

    async def aclose(self) -> None:
        for close in reversed(self._closers):
            with contextlib.suppress(Exception):
                await close()
        self._closers.clear()


async def open_devices(cfg: GatewayConfig, clock: Clock) -> OpenedDevices:
    """Open every configured device; start the simulated body first when one is needed."""
    try:
        from devices.names import open_device
    except ImportError:
        raise DeviceOpenError(
            next(iter(cfg.devices.values())), "the devices package (BLE and serial drivers) is not installed"
        ) from None
    out = OpenedDevices()
    sims = {role: name for role, name in cfg.devices.items() if name.split(":", 1)[0].endswith("-sim")}
    bench = None
    sim_paths: dict[str, str] = {}
    try:
        if sims:
            bench, sim_paths = await _start_simulators(cfg, clock, sims, out)
        for role, name in cfg.devices.items():
            full = device_name_for(role, name)
            kind = ROLE_KINDS[role]

            def make(full: str = full) -> Any:
                return open_device(full, clock=clock, sim=bench, sim_paths=sim_paths)

            try:
                src = DriverSource(
                    name, role, make, fresh_per_connection=(kind != "pump" and name.startswith("ble"))
                )
            except Exception as exc:
                raise DeviceOpenError(name, str(exc)) from exc
            out.sources[role] = src
            if role == "pump":
                out.pump_control = DriverPumpControl(src)
    except BaseException:
        await out.aclose()
        raise
    return out


async def _start_simulators(
    cfg: GatewayConfig, clock: Clock, sims: dict[str, str], out: OpenedDevices
) -> tuple[Any, dict[str, str]]:
    from devices.sim.bench import SimBench
    from devices.sim.serial_devices import SimSerialCgmReceiver, SimSerialPumpBridge
    from devices.sim.world import SimWorld
    from edgetwin.virtual.scenario import RandomScenario

    start = clock.now_utc()
    day0 = start.hour * 60 + start.minute
    meals = [
        type(m)(m.minute - day0, m.eaten_g, m.announced_g)
        for m in RandomScenario(cfg.sim.seed).meals(15)
        if m.minute - day0 > 0
    ]
    world = SimWorld(clock, patient=cfg.sim.patient, sensor=cfg.sim.sensor, seed=cfg.sim.seed, meals=meals)
    out.world = world
    ble_kinds = tuple(ROLE_KINDS[r] for r, n in sims.items() if n.startswith("ble-sim:"))
    bench = SimBench(clock, kinds=ble_kinds, world=world, run_world=False)
    await bench.start()
    out._closers.append(bench.stop)
    paths: dict[str, str] = {}
    for role, name in sims.items():
        if name.startswith("serial-sim:"):
            cls = SimSerialCgmReceiver if role == "cgm" else SimSerialPumpBridge
            sim = cls(world)
            await sim.start()
            out._closers.append(sim.stop)
            paths[ROLE_KINDS[role]] = sim.path
    world.start()
    out._closers.append(world.stop)
    if cfg.sim.announce_meals:
        out.sources["patient"] = PatientInputs(world, meals)
    log.info(
        "simulated body started",
        extra={"event": "sim_started", "patient": cfg.sim.patient, "devices": dict(sims), "start": start},
    )
    return bench, paths
