"""Insulin pump over BLE, speaking the IDS-modelled profile (``devices.codecs.ids``).

``async with BlePump(...) as pump:`` connects (reconnecting transparently, with backoff, when an
operation finds the link down). ``status()`` reads IDD Status, the active basal and bolus, the
pending annunciation and insulin on board; ``deliveries(after_sequence)`` reads the history through
RACP; ``send(command)`` runs a command and then *reads the pump's state back*: the result is
``confirmed`` only when the read-back shows the command in effect. A refused, unanswered or
unconfirmed command is reported ``CommandResult(confirmed=False)`` with the reason — never as done.
``readings()`` polls status and new history on the clock, forever.

Every write carries an E2E counter and CRC; every record received must carry a valid one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from types import TracebackType

from devices.ble.transport import BleakBackend, BleLink, Disconnected
from devices.codecs import uuids
from devices.codecs.ids import (
    ActiveBasalRate,
    ActiveBolus,
    CancelTempBasal,
    DeliveredInsulin,
    HistoryEvent,
    IddAnnunciation,
    IddStatus,
    IdsOpcode,
    IdsResponse,
    IdsResponseCode,
    InsulinOnBoard,
    SetBolus,
    SetBolusResponse,
    SetTempBasal,
    SetTherapyControlState,
    StatusReaderRequest,
    TherapyControlState,
    decode_command,
    decode_command_data,
    decode_status_reader,
)
from devices.codecs.mapping import insulin_delivery, pump_status
from devices.codecs.racp import Racp, RacpOperator, RacpProfile, RacpResponseCode
from devices.errors import DecodeError, DeviceUnavailableError, ProtocolError
from devices.readback import temp_basal_took
from devices.timing import Backoff
from edgetwin.clock import Clock, RealClock
from edgetwin.messages import CommandResult, InsulinDelivery, PumpCommand, PumpCommandKind, PumpStatus

__all__ = ["BlePump"]

log = logging.getLogger(__name__)


class BlePump:
    def __init__(
        self,
        address: str | None = None,
        *,
        backend: BleakBackend = BleakBackend(),
        clock: Clock | None = None,
        device_id: str | None = None,
        io_timeout_s: float = 10.0,
        backoff: Backoff = Backoff(),
        connect_attempts: int = 5,
        poll_interval_s: float = 300.0,
    ) -> None:
        self.clock = clock or RealClock()
        self.link = BleLink(
            backend,
            self.clock,
            address=address,
            service_uuid=uuids.INSULIN_DELIVERY_SERVICE,
            io_timeout_s=io_timeout_s,
            backoff=backoff,
        )
        self._device_id = device_id
        self.connect_attempts = connect_attempts
        self.poll_interval_s = poll_interval_s
        self._stack: contextlib.AsyncExitStack | None = None
        self._lock = asyncio.Lock()
        self._counter = 0
        self.last_sequence = 0

    @property
    def device_id(self) -> str:
        return self._device_id or f"ble:{self.link.address or 'pump'}"

    async def __aenter__(self) -> BlePump:
        await self._ensure()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    # --- connection -------------------------------------------------------------------------

    async def _ensure(self) -> None:
        if self._stack is not None and self.link.client is not None and self.link.client.is_connected:
            return
        await self.close()
        last: Exception | None = None
        for attempt in range(self.connect_attempts):
            stack = contextlib.AsyncExitStack()
            try:
                await stack.enter_async_context(self.link.connected())
                for uuid in (
                    uuids.IDD_STATUS_READER_CONTROL_POINT,
                    uuids.IDD_COMMAND_CONTROL_POINT,
                    uuids.IDD_COMMAND_DATA,
                    uuids.IDD_RECORD_ACCESS_CONTROL_POINT,
                    uuids.IDD_HISTORY_DATA,
                ):
                    await self.link.subscribe(uuid)
                self._stack = stack
                return
            except (DeviceUnavailableError, ProtocolError) as exc:
                await stack.aclose()
                last = exc
                if attempt + 1 < self.connect_attempts:
                    await self.link.wait_before_retry()
        raise DeviceUnavailableError(f"pump {self.link.address or ''} unreachable: {last}")

    def _next(self) -> int:
        self._counter = (self._counter + 1) & 0xFF
        return self._counter

    async def _wait(self, uuid: str) -> bytes:
        return (await self._wait_any(uuid))[1]

    async def _wait_any(self, *wanted: str) -> tuple[str, bytes]:
        while True:
            event = await self.link.next_event(self.link.io_timeout_s)
            if isinstance(event, Disconnected):
                await self.close()
                raise DeviceUnavailableError("link lost during a pump procedure")
            if event[0] in wanted:
                return event
            log.debug("%s: ignoring unexpected %s", self.device_id, event[0])

    async def _reader(self, opcode: IdsOpcode) -> object:
        await self.link.write(
            uuids.IDD_STATUS_READER_CONTROL_POINT, bytes(StatusReaderRequest(opcode, self._next()))
        )
        reply = decode_status_reader(
            await self._wait(uuids.IDD_STATUS_READER_CONTROL_POINT), require_e2e=True
        )
        if isinstance(reply, IdsResponse):
            raise ProtocolError(
                f"status reader {opcode.name}", f"pump answered {reply.code.name}", code=reply.code
            )
        return reply

    # --- reading ------------------------------------------------------------------------------

    async def status(self) -> PumpStatus:
        async with self._lock:
            await self._ensure()
            return await self._status()

    async def _status(self) -> PumpStatus:
        status = IddStatus.from_bytes(await self.link.read(uuids.IDD_STATUS), require_e2e=True)
        annunciation = IddAnnunciation.from_bytes(
            await self.link.read(uuids.IDD_ANNUNCIATION_STATUS), require_e2e=True
        )
        basal = await self._reader(IdsOpcode.GET_ACTIVE_BASAL_RATE)
        bolus = await self._reader(IdsOpcode.GET_ACTIVE_BOLUS)
        iob = await self._reader(IdsOpcode.GET_INSULIN_ON_BOARD)
        assert (
            isinstance(basal, ActiveBasalRate)
            and isinstance(bolus, ActiveBolus)
            and isinstance(iob, InsulinOnBoard)
        )
        return pump_status(
            status,
            basal,
            self.clock.now_utc(),
            self.device_id,
            annunciation=annunciation,
            bolusing=bolus.bolus_id != 0,
            insulin_on_board_u=iob.iob_u,
        )

    async def history(self, after_sequence: int = 0) -> list[HistoryEvent]:
        """History events with a sequence number above ``after_sequence``, oldest first."""
        async with self._lock:
            await self._ensure()
            request = Racp.report(
                RacpOperator.GREATER_OR_EQUAL,
                after_sequence + 1,
                profile=RacpProfile.IDS,
                e2e_counter=self._next(),
            )
            await self.link.write(uuids.IDD_RECORD_ACCESS_CONTROL_POINT, bytes(request))
            events: list[HistoryEvent] = []
            spoiled = False  # after a record we cannot trust, keep nothing newer: it is asked for again
            while True:
                event = await self.link.next_event(self.link.io_timeout_s)
                if isinstance(event, Disconnected):
                    await self.close()
                    raise DeviceUnavailableError("link lost while reading pump history")
                uuid, data = event
                if uuid == uuids.IDD_HISTORY_DATA and not spoiled:
                    try:
                        events.append(HistoryEvent.from_bytes(data, require_e2e=True))
                    except DecodeError as exc:
                        spoiled = True
                        log.warning("%s: rejected history record: %s", self.device_id, exc)
                elif uuid == uuids.IDD_RECORD_ACCESS_CONTROL_POINT:
                    resp = Racp.from_bytes(data, profile=RacpProfile.IDS, e2e=True)
                    if resp.response_code not in (
                        RacpResponseCode.SUCCESS,
                        RacpResponseCode.NO_RECORDS_FOUND,
                    ):
                        raise ProtocolError(
                            "pump history", f"RACP answered {resp.response_code}", code=resp.response_code
                        )
                    break
            events.sort(key=lambda e: e.sequence)
            if events:
                self.last_sequence = max(self.last_sequence, events[-1].sequence)
            return events

    async def deliveries(self, after_sequence: int = 0) -> list[InsulinDelivery]:
        out = []
        for event in await self.history(after_sequence):
            delivery = insulin_delivery(event, self.device_id)
            if delivery is not None:
                out.append(delivery)
        return out

    async def readings(self) -> AsyncIterator[PumpStatus | InsulinDelivery]:
        """Status and newly delivered insulin every ``poll_interval_s`` clock seconds, forever."""
        while True:
            try:
                yield await self.status()
                for delivery in await self.deliveries(self.last_sequence):
                    yield delivery
            except (DeviceUnavailableError, ProtocolError, DecodeError) as exc:
                log.warning("%s: %s", self.device_id, exc)
            await self.clock.sleep(self.poll_interval_s)

    # --- commands -------------------------------------------------------------------------------

    async def send(self, command: PumpCommand) -> CommandResult:
        """Run ``command`` and confirm it by reading the pump's state back."""
        async with self._lock:
            try:
                await self._ensure()
                confirmed, detail = await self._run(command)
            except (DeviceUnavailableError, ProtocolError, DecodeError) as exc:
                confirmed, detail = False, f"not confirmed: {exc}"
        if not confirmed:
            log.warning(
                "%s: command %s (%s) NOT confirmed: %s",
                self.device_id,
                command.command_id,
                command.kind,
                detail,
            )
        return CommandResult(command.command_id, self.clock.now_utc(), confirmed, detail)

    async def _command(self, message: object) -> IdsResponseCode:
        await self.link.write(uuids.IDD_COMMAND_CONTROL_POINT, bytes(message))  # type: ignore[call-overload]
        reply = decode_command(await self._wait(uuids.IDD_COMMAND_CONTROL_POINT), require_e2e=True)
        if not isinstance(reply, IdsResponse):
            raise ProtocolError("pump command", f"unexpected reply {type(reply).__name__}")
        return reply.code

    async def _run(self, c: PumpCommand) -> tuple[bool, str]:
        kind = c.kind
        if kind is PumpCommandKind.TEMP_BASAL:
            assert c.rate_u_per_h is not None and c.duration_min is not None
            minutes = int(round(c.duration_min))
            sent = self.clock.monotonic()
            code = await self._command(SetTempBasal(c.rate_u_per_h, minutes, self._next()))
            if code is not IdsResponseCode.SUCCESS:
                return False, f"pump refused: {code.name}"
            basal = await self._reader(IdsOpcode.GET_ACTIVE_BASAL_RATE)
            assert isinstance(basal, ActiveBasalRate)
            tbr = basal.temp_basal_u_per_h
            left = basal.temp_basal_remaining_min if tbr is not None else None
            elapsed_min = (self.clock.monotonic() - sent) / 60.0
            ok = temp_basal_took(c.rate_u_per_h, minutes, tbr, left, elapsed_min)
            return ok, (
                f"temp basal {tbr} U/h for {left} min"
                if ok
                else f"read-back shows temp basal {tbr!r} U/h with {left} min left, asked "
                f"{c.rate_u_per_h} U/h for {minutes} min"
            )
        if kind is PumpCommandKind.CANCEL_TEMP_BASAL:
            code = await self._command(CancelTempBasal(self._next()))
            basal = await self._reader(IdsOpcode.GET_ACTIVE_BASAL_RATE)
            assert isinstance(basal, ActiveBasalRate)
            ok = basal.temp_basal_u_per_h is None
            return (
                ok,
                "no temp basal running" if ok else f"read-back shows temp basal still running ({code.name})",
            )
        if kind is PumpCommandKind.BOLUS:
            assert c.units is not None
            before = await self._reader(IdsOpcode.GET_DELIVERED_INSULIN)
            await self.link.write(uuids.IDD_COMMAND_CONTROL_POINT, bytes(SetBolus(c.units, self._next())))
            data: object = None  # the bolus id comes on Command Data, before the response code
            while True:
                uuid, raw = await self._wait_any(uuids.IDD_COMMAND_DATA, uuids.IDD_COMMAND_CONTROL_POINT)
                if uuid == uuids.IDD_COMMAND_DATA:
                    data = decode_command_data(raw, require_e2e=True)
                    continue
                reply = decode_command(raw, require_e2e=True)
                break
            if not isinstance(reply, IdsResponse) or reply.code is not IdsResponseCode.SUCCESS:
                refusal = reply.code.name if isinstance(reply, IdsResponse) else type(reply).__name__
                return False, f"pump refused: {refusal}"
            if not isinstance(data, SetBolusResponse):
                return False, "pump answered success but sent no bolus id"
            active = await self._reader(IdsOpcode.GET_ACTIVE_BOLUS)
            after = await self._reader(IdsOpcode.GET_DELIVERED_INSULIN)
            assert isinstance(active, ActiveBolus) and isinstance(before, DeliveredInsulin)
            assert isinstance(after, DeliveredInsulin)
            running = active.bolus_id == data.bolus_id
            delivered = after.bolus_u - before.bolus_u
            ok = running or delivered >= data.units - 0.01
            return ok, (
                f"bolus {data.bolus_id}: {data.units} U accepted"
                if ok
                else f"read-back shows no bolus {data.bolus_id} and {delivered:.2f} U delivered"
            )
        if kind in (PumpCommandKind.SUSPEND, PumpCommandKind.RESUME):
            want = TherapyControlState.PAUSE if kind is PumpCommandKind.SUSPEND else TherapyControlState.RUN
            code = await self._command(SetTherapyControlState(want, self._next()))
            status = IddStatus.from_bytes(await self.link.read(uuids.IDD_STATUS), require_e2e=True)
            ok = (status.therapy_control_state is TherapyControlState.RUN) == (
                want is TherapyControlState.RUN
            )
            return ok, (
                f"therapy {status.therapy_control_state.name}"
                if ok
                else f"read-back shows therapy {status.therapy_control_state.name} ({code.name})"
            )
        return False, f"unsupported command {kind}"
