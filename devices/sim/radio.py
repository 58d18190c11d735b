"""An in-process Bluetooth LE "air": bumble virtual controllers on one ``LocalLink``.

Devices on the radio exchange real HCI, L2CAP and ATT packets; nothing touches a real adapter.
Simulated peripherals (``devices.sim.gatt_*``) and the bleak backend (``devices.sim.bleak_backend``)
both live here.

bumble 0.0.236 quirk worked around here: the virtual controller answers LE Create Connection
Cancel with success but neither clears the pending connection nor reports the Connection Complete
event, so a connect to an absent peer hangs and the next attempt is refused. ``_Controller`` does
what the Core specification (Vol 4, Part E, 7.8.13) requires: it drops the pending connection and
reports an LE Connection Complete with status Unknown Connection Identifier, so bumble's connect
times out cleanly and can be retried.
"""

from __future__ import annotations

import asyncio
import itertools

from bumble import hci
from bumble.controller import Controller
from bumble.device import Device
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

__all__ = ["VirtualRadio"]


class _Controller(Controller):
    def on_hci_le_create_connection_cancel_command(
        self, _command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        pending = self.pending_le_connection
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        self.pending_le_connection = None
        event = hci.HCI_LE_Connection_Complete_Event(
            status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
            connection_handle=0,
            role=hci.Role.CENTRAL,
            peer_address_type=pending.peer_address.address_type,
            peer_address=pending.peer_address,
            connection_interval=0,
            peripheral_latency=0,
            supervision_timeout=0,
            central_clock_accuracy=0,
        )
        # After the Command Complete that the caller sends for this command.
        asyncio.get_running_loop().call_soon(self.send_hci_packet, event)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)


class VirtualRadio:
    """One virtual LE link. Create it inside the event loop that will use it."""

    def __init__(self) -> None:
        self.link = LocalLink()
        self._numbers = itertools.count(1)
        self._central: Device | None = None
        self._central_ready: asyncio.Lock = asyncio.Lock()
        self.connect_lock = asyncio.Lock()
        """Held while the shared central connects (a controller has one pending connection)."""
        self._scanners = 0

    def next_address(self, prefix: int = 0xC0) -> str:
        """A fresh static random address (top bits 11), e.g. ``C0:00:00:00:00:01``."""
        n = next(self._numbers)
        return ":".join(
            f"{b:02X}" for b in ((prefix | 0xC0), 0, 0, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF)
        )

    def new_device(self, name: str, address: str | None = None) -> Device:
        """A bumble ``Device`` with its own virtual controller on this radio (not yet powered on)."""
        address = address or self.next_address()
        controller = _Controller(name, link=self.link, public_address=address)
        return Device(
            name=name, address=hci.Address(address), host=Host(controller, AsyncPipeSink(controller))
        )

    def remove_device(self, device: Device) -> None:
        """Take a device's controller off the air (as if switched off)."""
        host = device.host
        controller = getattr(host, "hci_sink", None)
        controller = getattr(controller, "sink", controller)
        if isinstance(controller, Controller) and controller in self.link.controllers:
            self.link.remove_controller(controller)

    async def central(self) -> Device:
        """The collector's adapter on this radio (shared by scanners and clients of the backend)."""
        async with self._central_ready:
            if self._central is None:
                device = self.new_device("edgetwin-central", self.next_address(0xE0))
                await device.power_on()
                self._central = device
            return self._central

    async def start_scanning(self) -> Device:
        central = await self.central()
        self._scanners += 1
        if self._scanners == 1:
            await central.start_scanning(filter_duplicates=False)
        return central

    async def stop_scanning(self) -> None:
        self._scanners = max(0, self._scanners - 1)
        if self._scanners == 0 and self._central is not None:
            await self._central.stop_scanning()
