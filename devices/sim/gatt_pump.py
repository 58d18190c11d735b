"""A simulated insulin pump as a GATT peripheral speaking the IDS-modelled profile
(``devices.codecs.ids``) over the world's ``SimInsulinPump``.

Every record it sends carries an E2E counter and CRC; writes from the collector must too (a write
without or with a bad CRC is refused with an ATT error). Command CP: set therapy state, temp basal,
cancel temp basal, bolus (its id goes out on Command Data), cancel bolus; Status Reader CP: active
basal, active bolus, total daily insulin, delivered insulin, insulin on board; history through the
IDS RACP and History Data. UNCONFIRMED_COMMANDS makes the pump answer success without acting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import SupportsBytes

from bumble import gatt
from bumble.core import UUID
from bumble.device import Connection

from devices.codecs.ids import (
    CancelBolus,
    CancelTempBasal,
    IdsOpcode,
    IdsResponse,
    IdsResponseCode,
    SetBolus,
    SetBolusResponse,
    SetTempBasal,
    SetTherapyControlState,
    StatusReaderRequest,
    TotalDailyInsulin,
    decode_command,
)
from devices.codecs.ids import DeliveredInsulin as _Delivered
from devices.codecs.ids import InsulinOnBoard as _Iob
from devices.codecs.racp import Racp, RacpOpcode, RacpOperator, RacpProfile, RacpResponseCode
from devices.errors import CrcError, DecodeError
from devices.sim.peripheral import ATT_INVALID_CRC, ATT_MISSING_CRC, SimPeripheral, char, value
from devices.sim.radio import VirtualRadio
from devices.sim.world import SimWorld

__all__ = ["SimPump"]

_P = gatt.Characteristic.Properties
_R = gatt.Characteristic.READABLE
_RW = gatt.Characteristic.READABLE | gatt.Characteristic.WRITEABLE


class SimPump(SimPeripheral):
    KIND = "pump"
    SERVICE = 0x183A

    def __init__(
        self, world: SimWorld, radio: VirtualRadio, *, name: str | None = None, address: str | None = None
    ) -> None:
        super().__init__(world, radio, name=name, address=address)
        self.pump = world.pump
        self._counter = 0
        self.commands_received = 0

    def _next(self) -> int:
        self._counter = (self._counter + 1) & 0xFF
        return self._counter

    def services(self) -> list[gatt.Service]:
        def u(x: int) -> UUID:
            return UUID.from_16_bits(x)

        self.status_char = char(
            u(0x2B21),
            _P.READ | _P.INDICATE,
            _R,
            value(read=lambda c: bytes(self.pump.status(e2e_counter=self._next()))),
        )
        self.annunciation_char = char(
            u(0x2B22),
            _P.READ | _P.INDICATE,
            _R,
            value(read=lambda c: bytes(_with_counter(self.pump.annunciation, self._next()))),
        )
        self.reader_cp = char(u(0x2B24), _P.WRITE | _P.INDICATE, _RW, value(write=self._write_reader))
        self.command_cp = char(u(0x2B25), _P.WRITE | _P.INDICATE, _RW, value(write=self._write_command))
        self.command_data = char(u(0x2B26), _P.NOTIFY, _R, b"")
        self.racp = char(u(0x2B27), _P.WRITE | _P.INDICATE, _RW, value(write=self._write_racp))
        self.history_data = char(u(0x2B28), _P.NOTIFY, _R, b"")
        chars = [
            self.status_char,
            self.annunciation_char,
            self.reader_cp,
            self.command_cp,
            self.command_data,
            self.racp,
            self.history_data,
        ]
        return [gatt.Service(u(self.SERVICE), chars)]

    def _checked(self, decoder, data: bytes):
        try:
            return decoder(data, require_e2e=True)
        except CrcError as exc:
            raise self.att_error(ATT_MISSING_CRC if exc.actual is None else ATT_INVALID_CRC) from None

    def _write_reader(self, _: Connection, data: bytes) -> None:
        try:
            req = self._checked(StatusReaderRequest.from_bytes, data)
        except DecodeError:
            op = int.from_bytes(data[:2], "little") if len(data) >= 2 else 0
            reply = IdsResponse(
                IdsOpcode.SR_RESPONSE_CODE, op, IdsResponseCode.OP_CODE_NOT_SUPPORTED, self._next()
            )
            self.spawn(self.indicate(self.reader_cp, bytes(reply)))
            return
        p, n = self.pump, self._next()
        answers: dict[IdsOpcode, Callable[[], SupportsBytes]] = {
            IdsOpcode.GET_ACTIVE_BASAL_RATE: lambda: p.active_basal(e2e_counter=n),
            IdsOpcode.GET_ACTIVE_BOLUS: lambda: p.active_bolus(e2e_counter=n),
            IdsOpcode.GET_INSULIN_ON_BOARD: lambda: _Iob(p.insulin_on_board_u(), 240, n),
            IdsOpcode.GET_DELIVERED_INSULIN: lambda: _Delivered(
                round(p.delivered_bolus_total_u, 2), round(p.delivered_basal_total_u, 2), n
            ),
            IdsOpcode.GET_TOTAL_DAILY_INSULIN: lambda: TotalDailyInsulin(
                round(p.delivered_bolus_total_u, 1), round(p.delivered_basal_total_u, 1), n
            ),
        }
        self.spawn(self.indicate(self.reader_cp, bytes(answers[req.opcode]())))

    def _write_command(self, _: Connection, data: bytes) -> None:
        try:
            cmd = self._checked(decode_command, data)
        except DecodeError:
            op = int.from_bytes(data[:2], "little") if len(data) >= 2 else 0
            self.spawn(
                self.indicate(
                    self.command_cp,
                    bytes(
                        IdsResponse(
                            IdsOpcode.CMD_RESPONSE_CODE, op, IdsResponseCode.INVALID_OPERAND, self._next()
                        )
                    ),
                )
            )
            return
        self.commands_received += 1
        self.spawn(self._command(cmd))

    async def _command(self, cmd: object) -> None:
        p = self.pump
        data_reply: bytes | None = None
        if isinstance(cmd, SetTherapyControlState):
            code = p.set_therapy_state(cmd.state)
        elif isinstance(cmd, SetTempBasal):
            code = p.set_temp_basal(cmd.rate_u_per_h, cmd.duration_min)
        elif isinstance(cmd, CancelTempBasal):
            code = p.cancel_temp_basal()
        elif isinstance(cmd, SetBolus):
            code, bolus_id, accepted = p.set_bolus(cmd.units)
            if code is IdsResponseCode.SUCCESS:
                data_reply = bytes(SetBolusResponse(bolus_id, accepted, self._next()))
        elif isinstance(cmd, CancelBolus):
            code = p.cancel_bolus(cmd.bolus_id)
        else:
            code = IdsResponseCode.OP_CODE_NOT_SUPPORTED
        if data_reply is not None:
            await self.notify(self.command_data, data_reply)
        op = getattr(cmd, "OPCODE", 0)
        await self.indicate(
            self.command_cp, bytes(IdsResponse(IdsOpcode.CMD_RESPONSE_CODE, int(op), code, self._next()))
        )

    def _write_racp(self, _: Connection, data: bytes) -> None:
        try:
            req = self._checked(
                lambda d, require_e2e: Racp.from_bytes(d, profile=RacpProfile.IDS, e2e=True), data
            )
        except DecodeError:
            self.spawn(
                self.indicate(
                    self.racp,
                    bytes(
                        Racp.response(
                            data[0] if data else 0,
                            RacpResponseCode.INVALID_OPERAND,
                            profile=RacpProfile.IDS,
                            e2e_counter=self._next(),
                        )
                    ),
                )
            )
            return
        self.spawn(self._racp(req))

    async def _racp(self, req: Racp) -> None:
        events = self.pump.history
        o = req.operands
        match req.operator:
            case RacpOperator.ALL:
                chosen = list(events)
            case RacpOperator.GREATER_OR_EQUAL:
                chosen = [e for e in events if e.sequence >= o[0]]
            case RacpOperator.LESS_OR_EQUAL:
                chosen = [e for e in events if e.sequence <= o[0]]
            case RacpOperator.WITHIN_RANGE:
                chosen = [e for e in events if o[0] <= e.sequence <= o[1]]
            case RacpOperator.LAST:
                chosen = events[-1:]
            case _:
                chosen = events[:1]
        if req.opcode is RacpOpcode.REPORT_NUMBER_OF_RECORDS:
            await self.indicate(
                self.racp,
                bytes(
                    Racp(
                        RacpOpcode.NUMBER_OF_RECORDS_RESPONSE,
                        number_of_records=len(chosen),
                        profile=RacpProfile.IDS,
                        e2e_counter=self._next(),
                    )
                ),
            )
            return
        if req.opcode is RacpOpcode.REPORT_STORED_RECORDS:
            for event in chosen:
                await self.notify(self.history_data, bytes(_with_counter(event, self._next())))
        code = RacpResponseCode.SUCCESS if chosen else RacpResponseCode.NO_RECORDS_FOUND
        if req.opcode not in (RacpOpcode.REPORT_STORED_RECORDS, RacpOpcode.REPORT_NUMBER_OF_RECORDS):
            code = RacpResponseCode.OP_CODE_NOT_SUPPORTED
        await self.indicate(
            self.racp,
            bytes(Racp.response(req.opcode, code, profile=RacpProfile.IDS, e2e_counter=self._next())),
        )


def _with_counter(record, counter: int):
    from dataclasses import replace

    return replace(record, e2e_counter=counter)
