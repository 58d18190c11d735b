"""What every BLE driver needs from bleak: an injectable backend, finding a device, connecting
with backoff, and notifications turned into an ``asyncio.Queue``.

``BleakBackend()`` (both fields None) is the platform's own bleak backend; tests and benches pass
``devices.sim.bleak_backend.bleak_backend(radio)``. Drivers never import a backend directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError

from devices.errors import DeviceUnavailableError, ProtocolError, ResponseTimeoutError
from devices.timing import Backoff
from edgetwin.clock import Clock

T = TypeVar("T")

__all__ = ["BleLink", "BleakBackend", "Disconnected", "find_device"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BleakBackend:
    """bleak backend classes to use (None: the platform's)."""

    scanner: type[BaseBleakScanner] | None = None
    client: type[BaseBleakClient] | None = None


class Disconnected:
    """Queue sentinel: the link dropped."""


DISCONNECTED = Disconnected()


async def find_device(
    backend: BleakBackend,
    *,
    address: str | None = None,
    service_uuid: str | None = None,
    timeout_s: float = 10.0,
) -> BLEDevice:
    """The advertising device with ``address`` (or the first advertising ``service_uuid``)."""
    if address is None and service_uuid is None:
        raise ValueError("give an address or a service UUID")
    want = address.lower() if address else None

    def match(device: BLEDevice, ad: AdvertisementData) -> bool:
        if want is not None:
            return device.address.lower() == want
        return service_uuid in ad.service_uuids

    kwargs: dict[str, Any] = {"backend": backend.scanner} if backend.scanner is not None else {}
    if service_uuid:
        kwargs["service_uuids"] = [service_uuid]
    found = await BleakScanner.find_device_by_filter(match, timeout=timeout_s, **kwargs)
    if found is None:
        what = address or f"a device advertising {service_uuid}"
        raise DeviceUnavailableError(f"{what} not found within {timeout_s:g} s")
    return found


class BleLink:
    """One connection at a time to one device, with notification queues and backoff.

    ``async with link.connected() as client:`` finds and connects (raising
    DeviceUnavailableError); ``await link.wait_before_retry()`` sleeps the backoff on the clock.
    """

    def __init__(
        self,
        backend: BleakBackend,
        clock: Clock,
        *,
        address: str | None = None,
        service_uuid: str | None = None,
        io_timeout_s: float = 10.0,
        backoff: Backoff = Backoff(),
    ) -> None:
        self.backend = backend
        self.clock = clock
        self.address = address
        self.service_uuid = service_uuid
        self.io_timeout_s = io_timeout_s
        self.backoff = backoff
        self.attempts = 0
        self.connections = 0
        self.events: asyncio.Queue[tuple[str, bytes] | Disconnected] = asyncio.Queue()
        self.client: BleakClient | None = None

    @contextlib.asynccontextmanager
    async def connected(self) -> AsyncIterator[BleakClient]:
        device = await find_device(
            self.backend, address=self.address, service_uuid=self.service_uuid, timeout_s=self.io_timeout_s
        )
        self.address = device.address
        self.events = asyncio.Queue()
        events = self.events

        def on_disconnect(_: BleakClient) -> None:
            events.put_nowait(DISCONNECTED)

        kwargs = {"backend": self.backend.client} if self.backend.client is not None else {}
        client = BleakClient(device, disconnected_callback=on_disconnect, timeout=self.io_timeout_s, **kwargs)  # type: ignore[arg-type]
        try:
            await client.connect()
        except (BleakError, TimeoutError, OSError) as exc:
            raise DeviceUnavailableError(f"cannot connect to {device.address}: {exc}") from exc
        self.client = client
        self.attempts = 0
        self.connections += 1
        try:
            yield client
        finally:
            self.client = None
            with contextlib.suppress(BleakError, TimeoutError, OSError):
                await asyncio.wait_for(client.disconnect(), self.io_timeout_s)

    async def wait_before_retry(self) -> None:
        delay = self.backoff.delay(self.attempts)
        self.attempts += 1
        log.info(
            "reconnecting to %s in %.0f s (attempt %d)",
            self.address or self.service_uuid,
            delay,
            self.attempts,
        )
        await self.clock.sleep(delay)

    async def subscribe(self, uuid: str) -> None:
        """Route notifications/indications of ``uuid`` into ``events`` as ``(uuid, bytes)``."""
        client = self._client()
        events = self.events

        def on_value(_: object, data: bytearray) -> None:
            events.put_nowait((uuid, bytes(data)))

        await self._guard(f"subscribe {uuid}", client.start_notify(uuid, on_value))

    async def read(self, uuid: str) -> bytes:
        return bytes(await self._guard(f"read {uuid}", self._client().read_gatt_char(uuid)))

    async def write(self, uuid: str, data: bytes) -> None:
        await self._guard(f"write {uuid}", self._client().write_gatt_char(uuid, data, response=True))

    async def next_event(self, timeout_s: float | None = None) -> tuple[str, bytes] | Disconnected:
        try:
            return await asyncio.wait_for(self.events.get(), timeout_s)
        except TimeoutError:
            raise ResponseTimeoutError("notification", f"nothing within {timeout_s:g} s") from None

    def _client(self) -> BleakClient:
        if self.client is None or not self.client.is_connected:
            raise DeviceUnavailableError("not connected")
        return self.client

    async def _guard(self, what: str, op: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(op, self.io_timeout_s)
        except TimeoutError:
            raise ResponseTimeoutError(what, f"no answer within {self.io_timeout_s:g} s") from None
        except BleakError as exc:
            raise DeviceUnavailableError(f"{what}: {exc}") from exc
        except Exception as exc:  # bumble/OS errors from a backend: a protocol failure, typed
            if isinstance(exc, (asyncio.CancelledError, ProtocolError, DeviceUnavailableError)):
                raise
            raise ProtocolError(what, f"{type(exc).__name__}: {exc}") from exc
