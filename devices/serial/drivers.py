"""Drivers for the USB-serial CGM receiver and pump bridge (``devices/SERIAL_PROTOCOL.md``).

``SerialCgm(path).readings()`` yields ``CgmReading``s: on every (re)connection it says hello,
asks for history after the last sequence number it has, then streams live records; a jump in the
sequence number triggers a history request for the hole. ``SerialPump`` offers ``status()``,
``deliveries()`` and ``send(command)`` with the same read-back confirmation as the BLE pump.
Unplugging (``SerialException``, I/O errors) ends the connection; it is reopened with backoff on
the injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from devices.codecs.ids import (
    ActiveBasalRate,
    ActiveBolus,
    CancelTempBasal,
    HistoryEvent,
    IddAnnunciation,
    IddStatus,
    IdsResponse,
    IdsResponseCode,
    SetBolus,
    SetTempBasal,
    SetTherapyControlState,
    TherapyControlState,
)
from devices.codecs.mapping import insulin_delivery, pump_status
from devices.errors import DecodeError, DeviceUnavailableError, ProtocolError
from devices.readback import temp_basal_took
from devices.serial.link import MessageLink
from devices.serial.messages import CgmFlags, CgmRecord, DeviceKind, Msg, u32
from devices.serial.port import SerialPort
from devices.timing import Backoff
from edgetwin.clock import Clock, RealClock
from edgetwin.messages import (
    CgmReading,
    CgmStatus,
    CommandResult,
    InsulinDelivery,
    PumpCommand,
    PumpCommandKind,
    PumpStatus,
)

__all__ = ["SerialCgm", "SerialPump"]

log = logging.getLogger(__name__)

_FLAG_STATUS = {
    CgmFlags.WARMUP: CgmStatus.WARMUP,
    CgmFlags.SENSOR_ERROR: CgmStatus.SENSOR_MALFUNCTION,
    CgmFlags.BELOW_RANGE: CgmStatus.BELOW_DEVICE_RANGE,
    CgmFlags.ABOVE_RANGE: CgmStatus.ABOVE_DEVICE_RANGE,
    CgmFlags.CALIBRATION_REQUIRED: CgmStatus.CALIBRATION_REQUIRED,
}


class _SerialSession:
    """An open port plus its message link; ``lost`` fires on unplug."""

    def __init__(self, path: str, baudrate: int, io_timeout_s: float, name: str) -> None:
        self.port = SerialPort(path, baudrate)
        self.link = MessageLink(self.port.write, ack_timeout_s=min(io_timeout_s, 0.5), name=name)
        self.io_timeout_s = io_timeout_s

    async def __aenter__(self) -> _SerialSession:
        await self.port.open(self.link.feed_data)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.port.close()

    async def request(self, payload: bytes) -> None:
        await self.link.send(payload)

    async def receive(self, timeout_s: float | None = None) -> bytes:
        """The next message; DeviceUnavailableError when the port is lost first."""
        get = asyncio.ensure_future(self.link.inbox.get())
        lost = asyncio.ensure_future(self.port.lost.wait())
        try:
            done, _ = await asyncio.wait({get, lost}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not get.done():
                get.cancel()
        if get in done:
            return get.result()
        if lost in done:
            raise DeviceUnavailableError(f"{self.port.path}: unplugged")
        raise ProtocolError("serial receive", f"nothing within {timeout_s} s")

    async def hello(self, want: DeviceKind) -> str:
        await self.request(bytes([Msg.HELLO]))
        while True:
            msg = await self.receive(self.io_timeout_s)
            if msg[:1] == bytes([Msg.HELLO_REPLY]):
                if len(msg) < 2 or msg[1] != want:
                    raise ProtocolError("hello", f"device is not a {want.name} ({msg[1:2].hex()})")
                return msg[2:].decode("ascii", "replace")


@dataclass(slots=True)
class SerialStats:
    readings: int = 0
    backfilled: int = 0
    duplicates: int = 0
    rejected: int = 0
    connections: int = 0


class SerialCgm:
    def __init__(
        self,
        path: str,
        *,
        baudrate: int = 115200,
        clock: Clock | None = None,
        device_id: str | None = None,
        io_timeout_s: float = 2.0,
        backoff: Backoff = Backoff(),
        history_min: int = 24 * 60,
    ) -> None:
        self.path = path
        self.baudrate = baudrate
        self.clock = clock or RealClock()
        self.device_id = device_id or f"serial:{path}"
        self.io_timeout_s = io_timeout_s
        self.backoff = backoff
        self.stats = SerialStats()
        self.last_seq: int | None = None
        self._seen: set[int] = set()

    async def readings(self) -> AsyncIterator[CgmReading]:
        attempt = 0
        while True:
            try:
                async with _SerialSession(self.path, self.baudrate, self.io_timeout_s, self.device_id) as s:
                    await s.hello(DeviceKind.CGM_RECEIVER)
                    self.stats.connections += 1
                    attempt = 0
                    await s.request(
                        bytes([Msg.CGM_HISTORY_REQUEST])
                        + u32(0 if self.last_seq is None else self.last_seq + 1)
                    )
                    while True:
                        msg = await s.receive()
                        if msg[0] not in (Msg.CGM_RECORD, Msg.CGM_HISTORY_RECORD):
                            continue
                        reading, hole = self._accept(msg[1:], history=msg[0] == Msg.CGM_HISTORY_RECORD)
                        if hole is not None:
                            await s.request(bytes([Msg.CGM_HISTORY_REQUEST]) + u32(hole))
                        if reading is not None:
                            yield reading
            except (DeviceUnavailableError, ProtocolError) as exc:
                log.warning("%s: %s", self.device_id, exc)
            await self.clock.sleep(self.backoff.delay(attempt))
            attempt += 1

    def _accept(self, body: bytes, *, history: bool) -> tuple[CgmReading | None, int | None]:
        try:
            rec = CgmRecord.from_bytes(body)
        except DecodeError as exc:
            self.stats.rejected += 1
            log.warning("%s: rejected record: %s", self.device_id, exc)
            return None, None
        if rec.seq in self._seen:
            self.stats.duplicates += 1
            return None, None
        hole = None
        top = self.last_seq
        if top is not None and rec.seq > top + 1:
            hole = top + 1
        backfilled = history or (top is not None and rec.seq < top)
        self._seen.add(rec.seq)
        self.last_seq = rec.seq if top is None else max(top, rec.seq)
        status = {s for f, s in _FLAG_STATUS.items() if rec.flags & f}
        value = rec.glucose_mg_dl
        if value is None and not status:
            status.add(CgmStatus.INVALID_VALUE)
        trend = (
            rec.trend_mg_dl_per_min
            if rec.trend_mg_dl_per_min is None or abs(rec.trend_mg_dl_per_min) <= 100
            else None
        )
        try:
            reading = CgmReading(
                rec.time_utc,
                float(value) if value is not None and value <= 1000 else None,
                self.device_id,
                rec.seq,
                trend,
                None,
                frozenset(status),
                backfilled,
            )
        except ValueError as exc:
            self.stats.rejected += 1
            log.warning("%s: unusable record %d: %s", self.device_id, rec.seq, exc)
            return None, hole
        self.stats.readings += 1
        self.stats.backfilled += backfilled
        return reading, hole


class SerialPump:
    """The pump bridge. Each call opens the port if needed (``async with`` keeps it open)."""

    def __init__(
        self,
        path: str,
        *,
        baudrate: int = 115200,
        clock: Clock | None = None,
        device_id: str | None = None,
        io_timeout_s: float = 2.0,
    ) -> None:
        self.path = path
        self.baudrate = baudrate
        self.clock = clock or RealClock()
        self.device_id = device_id or f"serial:{path}"
        self.io_timeout_s = io_timeout_s
        self._session: _SerialSession | None = None
        self._lock = asyncio.Lock()
        self.last_sequence = 0

    async def __aenter__(self) -> SerialPump:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.__aexit__()

    async def _open(self) -> _SerialSession:
        if self._session is not None and not self._session.port.lost.is_set():
            return self._session
        await self.close()
        session = _SerialSession(self.path, self.baudrate, self.io_timeout_s, self.device_id)
        await session.__aenter__()
        try:
            await session.hello(DeviceKind.PUMP_BRIDGE)
        except Exception:
            await session.__aexit__()
            raise
        self._session = session
        return session

    async def _ask(self, request: bytes, reply: Msg) -> bytes:
        s = await self._open()
        await s.request(request)
        while True:
            msg = await s.receive(self.io_timeout_s)
            if msg[:1] == bytes([reply]):
                return msg[1:]

    async def _status_records(self) -> tuple[IddStatus, ActiveBasalRate, ActiveBolus, IddAnnunciation]:
        body = await self._ask(bytes([Msg.PUMP_STATUS_REQUEST]), Msg.PUMP_STATUS)
        return (
            IddStatus.from_bytes(body[:5]),
            ActiveBasalRate.from_bytes(body[5:14]),
            ActiveBolus.from_bytes(body[14:22]),
            IddAnnunciation.from_bytes(body[22:]),
        )

    async def status(self) -> PumpStatus:
        async with self._lock:
            st, basal, bolus, ann = await self._status_records()
            return pump_status(
                st,
                basal,
                self.clock.now_utc(),
                self.device_id,
                annunciation=ann,
                bolusing=bolus.bolus_id != 0,
            )

    async def deliveries(self, after_sequence: int = 0) -> list[InsulinDelivery]:
        async with self._lock:
            s = await self._open()
            await s.request(bytes([Msg.PUMP_HISTORY_REQUEST]) + u32(after_sequence))
            out: list[InsulinDelivery] = []
            while True:
                msg = await s.receive(self.io_timeout_s)
                if msg[:1] == bytes([Msg.PUMP_HISTORY_END]):
                    return out
                if msg[:1] == bytes([Msg.PUMP_HISTORY_EVENT]):
                    event = HistoryEvent.from_bytes(msg[1:])
                    self.last_sequence = max(self.last_sequence, event.sequence)
                    delivery = insulin_delivery(event, self.device_id)
                    if delivery is not None:
                        out.append(delivery)

    async def send(self, command: PumpCommand) -> CommandResult:
        async with self._lock:
            try:
                confirmed, detail = await self._run(command)
            except (DeviceUnavailableError, ProtocolError, DecodeError) as exc:
                confirmed, detail = False, f"not confirmed: {exc}"
        return CommandResult(command.command_id, self.clock.now_utc(), confirmed, detail)

    async def _run(self, c: PumpCommand) -> tuple[bool, str]:
        before = await self._status_records()
        k = c.kind
        if k is PumpCommandKind.TEMP_BASAL:
            msg: object = SetTempBasal(c.rate_u_per_h or 0.0, int(round(c.duration_min or 0)))
        elif k is PumpCommandKind.CANCEL_TEMP_BASAL:
            msg = CancelTempBasal()
        elif k is PumpCommandKind.BOLUS:
            msg = SetBolus(c.units or 0.0)
        else:
            msg = SetTherapyControlState(
                TherapyControlState.PAUSE if k is PumpCommandKind.SUSPEND else TherapyControlState.RUN
            )
        sent = self.clock.monotonic()
        reply = IdsResponse.from_bytes(
            await self._ask(
                bytes([Msg.PUMP_COMMAND]) + bytes(msg),  # type: ignore[call-overload]
                Msg.PUMP_COMMAND_RESULT,
            )
        )
        if reply.code is not IdsResponseCode.SUCCESS:
            return False, f"pump refused: {reply.code.name}"
        st, basal, bolus, _ = await self._status_records()
        if k is PumpCommandKind.TEMP_BASAL:
            tbr = basal.temp_basal_u_per_h
            left = basal.temp_basal_remaining_min if tbr is not None else None
            elapsed_min = (self.clock.monotonic() - sent) / 60.0
            ok = temp_basal_took(c.rate_u_per_h or 0.0, round(c.duration_min or 0), tbr, left, elapsed_min)
            return ok, f"read-back temp basal {tbr!r} U/h, {left} min left"
        if k is PumpCommandKind.CANCEL_TEMP_BASAL:
            return basal.temp_basal_u_per_h is None, "read-back temp basal cancelled"
        if k is PumpCommandKind.BOLUS:
            started = bolus.bolus_id != 0 and bolus.bolus_id != before[2].bolus_id
            reservoir_drop = before[0].reservoir_u - st.reservoir_u
            ok = started or reservoir_drop >= (c.units or 0) * 0.9
            return ok, "read-back bolus running" if ok else "read-back shows no bolus"
        running = st.therapy_control_state is TherapyControlState.RUN
        ok = running == (k is PumpCommandKind.RESUME)
        return ok, f"read-back therapy {st.therapy_control_state.name}"

    async def readings(self, poll_interval_s: float = 300.0) -> AsyncIterator[PumpStatus | InsulinDelivery]:
        while True:
            try:
                yield await self.status()
                for d in await self.deliveries(self.last_sequence):
                    yield d
            except (DeviceUnavailableError, ProtocolError, DecodeError) as exc:
                log.warning("%s: %s", self.device_id, exc)
                with contextlib.suppress(Exception):
                    await self.close()
            await self.clock.sleep(poll_interval_s)
