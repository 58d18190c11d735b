"""A bleak backend over the virtual radio, so unchanged bleak code talks to simulated devices.

``bleak_backend(radio)`` returns a ``devices.ble.transport.BleakBackend`` whose scanner and client
classes implement bleak's ``BaseBleakScanner`` and ``BaseBleakClient`` with a bumble central on
``radio``::

    backend = bleak_backend(radio)
    device = await BleakScanner.find_device_by_address(addr, backend=backend.scanner)
    async with BleakClient(device, backend=backend.client) as client: ...

The client negotiates a 247-byte ATT MTU (as BlueZ and CoreBluetooth do) and discovers all
services, characteristics and descriptors on connect.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, ClassVar

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError
from bumble import core, gatt, hci
from bumble.core import AdvertisingData
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy

from devices.ble.transport import BleakBackend
from devices.sim.radio import VirtualRadio

__all__ = ["bleak_backend", "uuid_str"]

log = logging.getLogger(__name__)

ATT_MTU = 247

_PROPERTY_NAMES = {
    gatt.Characteristic.Properties.BROADCAST: "broadcast",
    gatt.Characteristic.Properties.READ: "read",
    gatt.Characteristic.Properties.WRITE_WITHOUT_RESPONSE: "write-without-response",
    gatt.Characteristic.Properties.WRITE: "write",
    gatt.Characteristic.Properties.NOTIFY: "notify",
    gatt.Characteristic.Properties.INDICATE: "indicate",
    gatt.Characteristic.Properties.AUTHENTICATED_SIGNED_WRITES: "authenticated-signed-writes",
    gatt.Characteristic.Properties.EXTENDED_PROPERTIES: "extended-properties",
}


def uuid_str(u: core.UUID) -> str:
    """bleak's form of a UUID: 128-bit, lower case."""
    return str(uuid.UUID(bytes=bytes(reversed(u.uuid_128_bytes))))


def bleak_backend(radio: VirtualRadio) -> BleakBackend:
    """Scanner and client backend classes bound to ``radio``."""
    scanner = type("VirtualRadioScanner", (_Scanner,), {"radio": radio})
    client = type("VirtualRadioClient", (_Client,), {"radio": radio})
    return BleakBackend(scanner=scanner, client=client)


class _Scanner(BaseBleakScanner):
    radio: ClassVar[VirtualRadio]

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._central: Device | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        self._central = await self.radio.start_scanning()
        self._central.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)

    async def stop(self) -> None:
        if self._central is not None:
            self._central.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
            self._central = None
            await self.radio.stop_scanning()

    def _on_advertisement(self, adv: Advertisement) -> None:
        data = adv.data
        name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(AdvertisingData.SHORTENED_LOCAL_NAME)
        uuids: list[str] = []
        for kind in (
            AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
            AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
            AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
        ):
            uuids.extend(uuid_str(u) for u in data.get(kind) or [])
        if not self.is_allowed_uuid(uuids):
            return
        address = str(adv.address)
        ad = AdvertisementData(
            local_name=name if isinstance(name, str) else None,
            manufacturer_data={},
            service_data={},
            service_uuids=uuids,
            tx_power=None,
            rssi=adv.rssi,
            platform_data=(adv,),
        )
        device = self.create_or_update_device(address, address, ad.local_name, adv.address, ad)
        self.call_detection_callbacks(device, ad)


class _Client(BaseBleakClient):
    radio: ClassVar[VirtualRadio]

    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        kwargs.setdefault("disconnected_callback", None)
        kwargs.setdefault("timeout", 10.0)
        super().__init__(address_or_ble_device, **kwargs)
        details = address_or_ble_device.details if isinstance(address_or_ble_device, BLEDevice) else None
        self._peer_address = details if isinstance(details, hci.Address) else hci.Address(self.address)
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._proxies: dict[int, Any] = {}
        self._subscriptions: dict[int, Any] = {}

    @property
    def name(self) -> str:
        return self.address

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        timeout = float(kwargs.get("timeout", self._timeout))
        central = await self.radio.central()
        async with self.radio.connect_lock:
            try:
                connection = await central.connect(self._peer_address, timeout=timeout)
            except (core.TimeoutError, core.ConnectionError, TimeoutError) as exc:
                raise BleakDeviceNotFoundError(
                    self.address, f"cannot connect to {self.address}: {exc}"
                ) from None
        self._connection = connection
        connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)
        try:
            peer = Peer(connection)
            await peer.request_mtu(ATT_MTU)
            await peer.discover_services()
            services = BleakGATTServiceCollection()
            for svc in peer.services:
                await svc.discover_characteristics()
                bsvc = BleakGATTService(svc, svc.handle, uuid_str(svc.uuid))
                services.add_service(bsvc)
                for ch in svc.characteristics:
                    await peer.discover_descriptors(ch)
                    props = [n for bit, n in _PROPERTY_NAMES.items() if ch.properties & bit]
                    bch = BleakGATTCharacteristic(
                        ch,
                        ch.handle,
                        uuid_str(ch.uuid),
                        props,  # type: ignore[arg-type]
                        lambda: ATT_MTU - 3,
                        bsvc,
                    )
                    services.add_characteristic(bch)
                    self._proxies[ch.handle] = ch
                    for d in ch.descriptors:
                        services.add_descriptor(BleakGATTDescriptor(d, d.handle, uuid_str(d.type), bch))
                        self._proxies[d.handle] = d
            self._peer = peer
            self.services = services
        except Exception:
            await self.disconnect()
            raise

    def _on_disconnection(self, reason: int) -> None:
        was = self._connection is not None
        self._connection = None
        self._peer = None
        self._subscriptions.clear()
        if was and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        connection = self._connection
        if connection is None:
            return
        callback, self._disconnected_callback = self._disconnected_callback, None
        try:
            await connection.disconnect()
        except (core.BaseBumbleError, hci.HCI_Error) as exc:
            log.debug("disconnect: %s", exc)
        finally:
            self._connection = None
            self._disconnected_callback = callback

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise BleakError("pairing is not simulated on the virtual radio")

    async def unpair(self) -> None:
        raise BleakError("pairing is not simulated on the virtual radio")

    def _require(self, handle: int) -> tuple[Peer, Any]:
        if self._peer is None:
            raise BleakError("Not connected")
        return self._peer, self._proxies[handle]

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, **kwargs: Any) -> bytearray:
        peer, proxy = self._require(characteristic.handle)
        return bytearray(await peer.read_value(proxy))

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, **kwargs: Any) -> bytearray:
        peer, proxy = self._require(descriptor.handle)
        return bytearray(await peer.read_value(proxy))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: Any, response: bool
    ) -> None:
        peer, proxy = self._require(characteristic.handle)
        await peer.write_value(proxy, bytes(data), with_response=response)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        peer, proxy = self._require(descriptor.handle)
        await peer.write_value(proxy, bytes(data), with_response=True)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        peer, proxy = self._require(characteristic.handle)
        assert isinstance(proxy, CharacteristicProxy)

        def on_value(value: bytes) -> None:
            callback(bytearray(value))

        self._subscriptions[characteristic.handle] = on_value
        await peer.subscribe(proxy, on_value, prefer_notify=True)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        peer, proxy = self._require(characteristic.handle)
        await peer.unsubscribe(proxy, self._subscriptions.pop(characteristic.handle, None))
