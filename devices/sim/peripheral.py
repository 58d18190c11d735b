"""What every simulated GATT peripheral shares: power, advertising, the disconnect fault, and
sending notifications and indications from the world's (synchronous) minute callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from typing import Any

from bumble import att, gatt
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device

from devices.sim.faults import Fault
from devices.sim.radio import VirtualRadio
from devices.sim.world import SimWorld

__all__ = ["ATT_INVALID_CRC", "ATT_MISSING_CRC", "SimPeripheral", "char", "value"]

log = logging.getLogger(__name__)

ATT_MISSING_CRC = 0x80
ATT_INVALID_CRC = 0x81


def value(
    read: Callable[[Connection], bytes] | None = None,
    write: Callable[[Connection, bytes], None] | None = None,
) -> gatt.CharacteristicValue[bytes]:
    return gatt.CharacteristicValue(read=read, write=write)


def char(
    uuid: UUID,
    properties: gatt.Characteristic.Properties,
    permissions: Any,
    val: gatt.CharacteristicValue[bytes] | bytes,
) -> gatt.Characteristic[bytes]:
    """A characteristic whose value is bytes (our codecs do the encoding)."""
    return gatt.Characteristic[bytes](uuid, properties, permissions, val)


class SimPeripheral(ABC):
    """Base of the simulated devices. Subclasses set KIND (the fault device name), SERVICE (16-bit
    UUID) and build ``services()``; ``start()`` puts the device on the air."""

    KIND = "device"
    SERVICE = 0x0000

    def __init__(
        self, world: SimWorld, radio: VirtualRadio, *, name: str | None = None, address: str | None = None
    ) -> None:
        self.world = world
        self.radio = radio
        self.name = name or f"EdgeTwin sim {self.KIND}"
        self.device: Device = radio.new_device(self.name, address)
        self.address = str(self.device.random_address)
        self.connection: Connection | None = None
        self.connections = 0
        self._off_air = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._advertising = False

    @abstractmethod
    def services(self) -> list[gatt.Service]:
        """The GATT services this peripheral offers (every simulated device defines its own)."""

    async def start(self) -> None:
        self.device.add_services(self.services())
        self.device.on(Device.EVENT_CONNECTION, self._on_connection)
        await self.device.power_on()
        await self._advertise()
        self._unsubscribe = self.world.on_minute(self._world_minute)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._tasks:  # let in-flight HCI commands finish: a cancelled one leaves bumble's host confused
            await asyncio.wait(list(self._tasks), timeout=1.0)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.disconnect()
        with contextlib.suppress(Exception):
            await self.device.stop_advertising()
        self.radio.remove_device(self.device)

    async def __aenter__(self) -> SimPeripheral:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- air -------------------------------------------------------------------------------

    def advertising_data(self) -> bytes:
        return bytes(
            AdvertisingData(
                [
                    (AdvertisingData.FLAGS, bytes([0x06])),
                    (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode()),
                    (
                        AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                        bytes(UUID.from_16_bits(self.SERVICE)),
                    ),
                ]
            )
        )

    async def _advertise(self) -> None:
        if self._off_air or self._advertising or self.connection is not None:
            return
        self._advertising = True
        await self.device.start_advertising(
            advertising_data=self.advertising_data(), advertising_interval_min=20, advertising_interval_max=20
        )

    def _on_connection(self, connection: Connection) -> None:
        self._advertising = False
        self.connection = connection
        self.connections += 1
        connection.on(Connection.EVENT_DISCONNECTION, lambda reason: self._on_disconnection(connection))
        self.on_connected(connection)

    def _on_disconnection(self, connection: Connection) -> None:
        if self.connection is connection:
            self.connection = None
        self.spawn(self._advertise())

    def on_connected(self, connection: Connection) -> None:
        """Hook for subclasses (a new central connected); optional."""
        return None

    def _world_minute(self, minute: int) -> None:
        off = self.world.faults.active(Fault.DISCONNECT, minute, self.KIND)
        if off and not self._off_air:
            self._off_air = True
            self.spawn(self._go_off_air())
        elif not off and self._off_air:
            self._off_air = False
            self.spawn(self._advertise())
        self.on_minute(minute)

    async def _go_off_air(self) -> None:
        if self._advertising:
            self._advertising = False
            await self.device.stop_advertising()
        if self.connection is not None:
            await self.connection.disconnect()

    def on_minute(self, minute: int) -> None:
        """Hook for subclasses (after each world minute); optional."""
        return None

    # --- sending -----------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            # A link that dropped mid-send is normal radio life, anything else is a bug to see.
            if isinstance(exc, (TimeoutError, ConnectionError)) or type(exc).__module__.startswith("bumble"):
                log.debug("%s: send failed: %s", self.name, exc)
            else:
                log.error("%s: task failed", self.name, exc_info=exc)

    @property
    def att_payload(self) -> int:
        return (self.connection.att_mtu if self.connection is not None else 23) - 3

    @property
    def on_air(self) -> bool:
        """Connected and not inside a DISCONNECT window (the radio is down from the window's first minute,
        even while bumble is still tearing the link down)."""
        return self.connection is not None and not self._off_air

    async def notify(self, characteristic: gatt.Characteristic[Any], data: bytes) -> None:
        if self.on_air and self.connection is not None:
            await self.device.notify_subscriber(self.connection, characteristic, data)

    async def indicate(self, characteristic: gatt.Characteristic[Any], data: bytes) -> None:
        if self.on_air and self.connection is not None:
            await self.device.indicate_subscriber(self.connection, characteristic, data)

    @staticmethod
    def att_error(code: int) -> att.ATT_Error:
        return att.ATT_Error(code)
