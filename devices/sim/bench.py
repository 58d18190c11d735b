"""Start a simulated world and its devices in-process: the entry point for tests, HIL benches,
the gateway demo and ``edgetwin devices read ble-sim:...``.

::

    clock = ScaledClock(start, factor=600)
    async with SimBench(clock, patient="adult#001") as bench:
        cgm = BleCgm(bench.address("cgm"), backend=bench.backend, clock=clock)
        async for reading in cgm.readings(): ...

``bench.world`` is the ``SimWorld`` (patient, faults, meals); ``bench.backend`` the bleak backend
over the virtual radio; ``bench.peripherals`` the GATT simulators by kind (``cgm``, ``pump``,
``heart``, ``meter``). Serial simulators are started separately (``devices.sim.serial_devices``)
because they own a pty.
"""

from __future__ import annotations

import contextlib
from types import TracebackType

from devices.ble.transport import BleakBackend
from devices.sim.bleak_backend import bleak_backend
from devices.sim.gatt_body import SimHeartRateBand, SimMeter
from devices.sim.gatt_cgm import SimCgm
from devices.sim.gatt_pump import SimPump
from devices.sim.peripheral import SimPeripheral
from devices.sim.radio import VirtualRadio
from devices.sim.world import SimWorld
from edgetwin.clock import Clock

__all__ = ["KINDS", "SimBench"]

KINDS = ("cgm", "pump", "heart", "meter")


class SimBench:
    def __init__(
        self,
        clock: Clock,
        *,
        kinds: tuple[str, ...] = KINDS,
        world: SimWorld | None = None,
        cgm_e2e: bool = True,
        run_world: bool = True,
        **world_options: object,
    ) -> None:
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown simulated device kind(s) {sorted(unknown)}; known: {', '.join(KINDS)}")
        self.clock = clock
        self.kinds = kinds
        self._world = world
        self._world_options = world_options
        self.cgm_e2e = cgm_e2e
        self.run_world = run_world
        self.peripherals: dict[str, SimPeripheral] = {}
        self._radio: VirtualRadio | None = None

    @property
    def world(self) -> SimWorld:
        if self._world is None:
            raise RuntimeError("the bench is not started")
        return self._world

    @property
    def radio(self) -> VirtualRadio:
        if self._radio is None:
            raise RuntimeError("the bench is not started")
        return self._radio

    @property
    def backend(self) -> BleakBackend:
        return bleak_backend(self.radio)

    def address(self, kind: str) -> str:
        return self.peripherals[kind].address

    async def start(self) -> SimBench:
        self._radio = VirtualRadio()
        if self._world is None:
            self._world = SimWorld(self.clock, **self._world_options)  # type: ignore[arg-type]
        makers = {
            "cgm": lambda: SimCgm(self.world, self.radio, e2e=self.cgm_e2e),
            "pump": lambda: SimPump(self.world, self.radio),
            "heart": lambda: SimHeartRateBand(self.world, self.radio),
            "meter": lambda: SimMeter(self.world, self.radio),
        }
        for kind in self.kinds:
            peripheral = makers[kind]()
            await peripheral.start()
            self.peripherals[kind] = peripheral
        if self.run_world:
            self.world.start()
        return self

    async def stop(self) -> None:
        if self._world is not None:
            await self._world.stop()
        for peripheral in self.peripherals.values():
            with contextlib.suppress(Exception):
                await peripheral.stop()
        self.peripherals.clear()

    async def __aenter__(self) -> SimBench:
        return await self.start()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
