"""Serial simulators on a pty pair: a CGM receiver and a pump bridge speaking
``devices/SERIAL_PROTOCOL.md``, so the real ``serial.Serial(path)`` path is exercised.

Each simulator owns ``os.openpty()`` (device side in raw mode) and keeps a stable symlink
``path`` pointing at the current slave, as udev does for a USB adapter. ``unplug()`` closes the
pty (the host sees I/O errors), ``replug()`` makes a new one behind the same path. Faults:
DISCONNECT (device ``"serial-cgm"``/``"serial-pump"``) unplugs for its window; BAD_CRC corrupts the
first transmission of each DATA frame in its window (the link's NAK/retransmission recovers it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import tty
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from devices.codecs.cgms import CgmAnnunciation
from devices.codecs.ids import (
    CancelBolus,
    CancelTempBasal,
    IdsOpcode,
    IdsResponse,
    IdsResponseCode,
    SetBolus,
    SetTempBasal,
    SetTherapyControlState,
    decode_command,
)
from devices.errors import DecodeError
from devices.serial.framing import FrameKind
from devices.serial.link import MessageLink
from devices.serial.messages import CgmFlags, CgmRecord, DeviceKind, Msg
from devices.sim.cgm_sensor import SensorRecord
from devices.sim.faults import Fault
from devices.sim.world import SimWorld

__all__ = ["PtyDevice", "SimSerialCgmReceiver", "SimSerialPumpBridge"]

log = logging.getLogger(__name__)


class PtyDevice:
    KIND = DeviceKind.CGM_RECEIVER
    FAULT_NAME = "serial"

    def __init__(self, world: SimWorld, path: str | Path | None = None) -> None:
        self.world = world
        self._dir = tempfile.mkdtemp(prefix="edgetwin-tty-") if path is None else None
        self.path = str(path or Path(self._dir or ".") / f"tty{self.FAULT_NAME}")
        self._master: int | None = None
        self._slave: int | None = None
        self.link: MessageLink | None = None
        self._task: asyncio.Task[None] | None = None
        self._unsub: Callable[[], None] | None = None
        self.plugged = False
        self._corrupted: set[int] = set()
        self.hello_done = False

    async def start(self) -> None:
        self._unsub = self.world.on_minute(self._minute)
        self.replug()

    async def stop(self) -> None:
        if self._unsub is not None:
            self._unsub()
        self.unplug()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        if self._dir:
            with contextlib.suppress(OSError):
                os.rmdir(self._dir)

    async def __aenter__(self) -> PtyDevice:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def replug(self) -> None:
        if self.plugged:
            return
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        tmp = self.path + ".new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.path)
        self._master, self._slave = master, slave
        self.link = MessageLink(self._write, name=f"sim {self.FAULT_NAME}")
        self.hello_done = False
        loop = asyncio.get_running_loop()
        loop.add_reader(master, self._readable)
        self._task = loop.create_task(self._serve(self.link))
        self.plugged = True

    def unplug(self) -> None:
        if not self.plugged:
            return
        self.plugged = False
        loop = asyncio.get_running_loop()
        if self._master is not None:
            loop.remove_reader(self._master)
        if self._task is not None:
            self._task.cancel()
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None

    def _readable(self) -> None:
        if self._master is None or self.link is None:
            return
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # the host closed its end; it will reopen
        if data:
            self.link.feed_data(data)

    async def _write(self, data: bytes) -> None:
        if self._master is None:
            raise OSError("unplugged")
        if data[1:2] == bytes([FrameKind.DATA]) and self.world.faults.active(
            Fault.BAD_CRC, self.world.minute, self.FAULT_NAME
        ):
            seq = data[2]
            if seq not in self._corrupted:
                self._corrupted.add(seq)
                data = data[:-3] + bytes([data[-3] ^ 0x01]) + data[-2:]
        else:
            self._corrupted.discard(data[2] if len(data) > 2 else -1)
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                await asyncio.sleep(0.001)
                continue
            view = view[n:]

    def _minute(self, minute: int) -> None:
        off = self.world.faults.active(Fault.DISCONNECT, minute, self.FAULT_NAME)
        if off and self.plugged:
            self.unplug()
        elif not off and not self.plugged:
            self.replug()
        self.on_minute(minute)

    def on_minute(self, minute: int) -> None:
        """Hook for subclasses."""

    async def _serve(self, link: MessageLink) -> None:
        while True:
            msg = await link.inbox.get()
            try:
                await self.handle(link, msg)
            except (OSError, DecodeError) as exc:
                log.debug("%s: %s", self.FAULT_NAME, exc)
            except Exception:
                log.exception("%s: handler failed", self.FAULT_NAME)

    async def handle(self, link: MessageLink, msg: bytes) -> None:
        if msg[:1] == bytes([Msg.HELLO]):
            await link.send(bytes([Msg.HELLO_REPLY, self.KIND]) + f"EdgeTwin sim {self.FAULT_NAME}".encode())
            self.hello_done = True


class SimSerialCgmReceiver(PtyDevice):
    """Relays the world's CGM samples; numbers them 0, 1, 2... and keeps them all for history."""

    KIND = DeviceKind.CGM_RECEIVER
    FAULT_NAME = "serial-cgm"

    def __init__(self, world: SimWorld, path: str | Path | None = None) -> None:
        super().__init__(world, path)
        self.records: list[CgmRecord] = []
        world.cgm.subscribe(self._on_sample)

    def _on_sample(self, s: SensorRecord) -> None:
        flags = CgmFlags(0)
        if s.annunciation & CgmAnnunciation.DEVICE_SPECIFIC_ALERT and s.glucose_mg_dl != s.glucose_mg_dl:
            flags |= CgmFlags.WARMUP
        if s.annunciation & CgmAnnunciation.SENSOR_MALFUNCTION:
            flags |= CgmFlags.SENSOR_ERROR
        if s.annunciation & CgmAnnunciation.BELOW_DEVICE_RANGE:
            flags |= CgmFlags.BELOW_RANGE
        if s.annunciation & CgmAnnunciation.ABOVE_DEVICE_RANGE:
            flags |= CgmFlags.ABOVE_RANGE
        value = None if s.glucose_mg_dl != s.glucose_mg_dl else int(s.glucose_mg_dl)
        rec = CgmRecord(
            len(self.records), self.world.time_at(s.world_minute), value, flags, s.trend_mg_dl_per_min
        )
        self.records.append(rec)
        if self.plugged and self.hello_done and self.link is not None:
            link = self.link
            asyncio.get_running_loop().create_task(self._send(link, rec))

    async def _send(self, link: MessageLink, rec: CgmRecord) -> None:
        with contextlib.suppress(Exception):
            await link.send(bytes([Msg.CGM_RECORD]) + bytes(rec))

    async def handle(self, link: MessageLink, msg: bytes) -> None:
        if msg[:1] == bytes([Msg.CGM_HISTORY_REQUEST]) and len(msg) == 5:
            start = int.from_bytes(msg[1:5], "little")
            chosen = [r for r in self.records if r.seq >= start]
            for rec in chosen:
                await link.send(bytes([Msg.CGM_HISTORY_RECORD]) + bytes(rec))
            await link.send(bytes([Msg.CGM_HISTORY_END]) + len(chosen).to_bytes(4, "little"))
            return
        await super().handle(link, msg)


class SimSerialPumpBridge(PtyDevice):
    """Bridges the world's pump: status, IDS-modelled commands and history over the serial link."""

    KIND = DeviceKind.PUMP_BRIDGE
    FAULT_NAME = "serial-pump"

    async def handle(self, link: MessageLink, msg: bytes) -> None:
        pump = self.world.pump
        kind = msg[:1]
        if kind == bytes([Msg.PUMP_STATUS_REQUEST]):
            body = (
                bytes(pump.status())
                + bytes(pump.active_basal())
                + bytes(pump.active_bolus())
                + bytes(pump.annunciation)
            )
            await link.send(bytes([Msg.PUMP_STATUS]) + body)
        elif kind == bytes([Msg.PUMP_COMMAND]):
            try:
                cmd = decode_command(msg[1:])
            except DecodeError:
                op = int.from_bytes(msg[1:3], "little") if len(msg) >= 3 else 0
                await link.send(
                    bytes([Msg.PUMP_COMMAND_RESULT])
                    + bytes(IdsResponse(IdsOpcode.CMD_RESPONSE_CODE, op, IdsResponseCode.INVALID_OPERAND))
                )
                return
            if isinstance(cmd, SetTempBasal):
                code = pump.set_temp_basal(cmd.rate_u_per_h, cmd.duration_min)
            elif isinstance(cmd, CancelTempBasal):
                code = pump.cancel_temp_basal()
            elif isinstance(cmd, SetBolus):
                code = pump.set_bolus(cmd.units)[0]
            elif isinstance(cmd, CancelBolus):
                code = pump.cancel_bolus(cmd.bolus_id)
            elif isinstance(cmd, SetTherapyControlState):
                code = pump.set_therapy_state(cmd.state)
            else:
                code = IdsResponseCode.OP_CODE_NOT_SUPPORTED
            await link.send(
                bytes([Msg.PUMP_COMMAND_RESULT])
                + bytes(IdsResponse(IdsOpcode.CMD_RESPONSE_CODE, int(getattr(cmd, "OPCODE", 0)), code))
            )
        elif kind == bytes([Msg.PUMP_HISTORY_REQUEST]) and len(msg) == 5:
            after = int.from_bytes(msg[1:5], "little")
            for event in [e for e in pump.history if e.sequence > after]:
                await link.send(bytes([Msg.PUMP_HISTORY_EVENT]) + bytes(replace(event, e2e_counter=None)))
            await link.send(bytes([Msg.PUMP_HISTORY_END]))
        else:
            await super().handle(link, msg)
