"""An insulin pump profile modelled on the Insulin Delivery Service (IDS, 0x183A).

Real pumps mostly speak vendor protocols shaped like IDS; this profile is what our simulated pump
and our pump driver speak, and the model for the pump abstraction. Layouts follow IDS where the
public facts are known (``specs/ble.md``); the op codes and event types below are this profile's
own, chosen like IDS's far apart in Hamming distance so a flipped bit never turns one into another
(an unknown code is a ``DecodeError``, never a guess).

E2E protection: every record may end with ``E2E counter u8 | CRC-16/MCRF4XX u16`` (CRC over all
bytes before it). Records have a layout fixed by their op code, so the protection is detected from
the length and always verified; ``require_e2e=True`` rejects an unprotected record.

Characteristics and records:

* IDD Status (0x2B21, read/indicate): therapy control state u8 | operational state u8 | reservoir
  remaining SFLOAT (IU) | flags u8 (bit 0 reservoir attached) — ``IddStatus``.
* IDD Annunciation Status (0x2B22): flags u8 (bit 0 present) | [instance id u16 | type u16 |
  status u8] — ``IddAnnunciation``.
* Status Reader CP (0x2B24, write/indicate): op code u16 | operand — ``StatusReaderRequest`` and
  the responses ``ActiveBasalRate``, ``ActiveBolus``, ``TotalDailyInsulin``, ``InsulinOnBoard``,
  ``DeliveredInsulin``, ``IdsResponse``.
* Command CP (0x2B25, write/indicate): ``SetTherapyControlState``, ``SetTempBasal`` (absolute
  U/h, minutes), ``CancelTempBasal``, ``SetBolus`` (IU), ``CancelBolus``; answered by an
  ``IdsResponse`` indication.
* Command Data (0x2B26, notify): data a command returns — ``SetBolusResponse`` (bolus id).
* History via RACP (0x2B27, ``devices.codecs.racp`` IDS profile, filter = sequence number u32) and
  History Data (0x2B28, notify): ``HistoryEvent``: event type u16 | sequence u32 | time u32 (seconds
  since 2000-01-01T00:00Z) | event data (by type).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar, TypeVar

from devices.codecs._wire import Reader, Writer, check_crc
from devices.errors import CrcError, DecodeError, EncodeError

__all__ = [
    "ActiveBasalRate",
    "ActiveBolus",
    "AnnunciationStatus",
    "AnnunciationType",
    "CancelBolus",
    "CancelTempBasal",
    "DeliveredInsulin",
    "HistoryEvent",
    "HistoryEventType",
    "IddAnnunciation",
    "IddStatus",
    "IdsOpcode",
    "IdsResponse",
    "IdsResponseCode",
    "InsulinOnBoard",
    "OperationalState",
    "SetBolus",
    "SetBolusResponse",
    "SetTempBasal",
    "SetTherapyControlState",
    "StatusReaderRequest",
    "TherapyControlState",
    "TotalDailyInsulin",
    "decode_command",
    "decode_command_data",
    "decode_status_reader",
]

HISTORY_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class TherapyControlState(enum.IntEnum):
    UNDETERMINED = 0x0F
    STOP = 0x33
    PAUSE = 0x3C
    RUN = 0x55


class OperationalState(enum.IntEnum):
    UNDETERMINED = 0x0F
    OFF = 0x33
    STANDBY = 0x3C
    PREPARING = 0x55
    PRIMING = 0x5A
    WAITING = 0x66
    READY = 0x96


class AnnunciationType(enum.IntEnum):
    SYSTEM_ISSUE = 0x000F
    MECHANISM_ISSUE = 0x0033
    OCCLUSION_DETECTED = 0x003C
    RESERVOIR_ISSUE = 0x0055
    RESERVOIR_EMPTY = 0x005A
    RESERVOIR_LOW = 0x0066
    PRIMING_ISSUE = 0x0069
    INFUSION_SET_DETACHED = 0x0099
    BATTERY_EMPTY = 0x00AA
    BATTERY_LOW = 0x00C3


class AnnunciationStatus(enum.IntEnum):
    UNDETERMINED = 0x0F
    PENDING = 0x33
    SNOOZED = 0x3C
    CONFIRMED = 0x55


class IdsOpcode(enum.IntEnum):
    # Status Reader CP
    SR_RESPONSE_CODE = 0x0303
    GET_ACTIVE_BOLUS = 0x0356
    ACTIVE_BOLUS_RESPONSE = 0x0359
    GET_ACTIVE_BASAL_RATE = 0x0365
    ACTIVE_BASAL_RATE_RESPONSE = 0x036A
    GET_TOTAL_DAILY_INSULIN = 0x0395
    TOTAL_DAILY_INSULIN_RESPONSE = 0x039A
    GET_DELIVERED_INSULIN = 0x03C0
    DELIVERED_INSULIN_RESPONSE = 0x03CF
    GET_INSULIN_ON_BOARD = 0x03F3
    INSULIN_ON_BOARD_RESPONSE = 0x03FC
    # Command CP and Command Data
    CMD_RESPONSE_CODE = 0x0F55
    SET_THERAPY_CONTROL_STATE = 0x0F5A
    SET_TEMP_BASAL = 0x0F66
    CANCEL_TEMP_BASAL = 0x0F69
    SET_BOLUS = 0x0F96
    CANCEL_BOLUS = 0x0F99
    SET_BOLUS_RESPONSE = 0x0FA5


class IdsResponseCode(enum.IntEnum):
    SUCCESS = 0x0F
    OP_CODE_NOT_SUPPORTED = 0x70
    INVALID_OPERAND = 0x71
    PROCEDURE_NOT_COMPLETED = 0x72
    PARAMETER_OUT_OF_RANGE = 0x73
    PROCEDURE_NOT_APPLICABLE = 0x74


class HistoryEventType(enum.IntEnum):
    BOLUS_DELIVERED = 0x0033
    BASAL_DELIVERED = 0x003C
    TEMP_BASAL_STARTED = 0x0055
    TEMP_BASAL_ENDED = 0x005A
    THERAPY_STATE_CHANGED = 0x0066
    ANNUNCIATION = 0x0069


E = TypeVar("E", bound=enum.IntEnum)


def _enum(cls: type[E], raw: int, what: str, field: str, offset: int) -> E:
    try:
        return cls(raw)
    except ValueError:
        raise DecodeError(
            what, f"unknown {cls.__name__} code 0x{raw:02X}", field=field, offset=offset
        ) from None


def _unprotect(data: bytes, body_len: int, what: str, require_e2e: bool) -> tuple[bytes, int | None]:
    """Split off and verify the E2E counter and CRC (detected from the record length)."""
    if len(data) == body_len:
        if require_e2e:
            raise CrcError(what, expected=0, actual=None, offset=body_len)
        return data, None
    if len(data) == body_len + 3:
        body = check_crc(data, what)
        return body[:-1], body[-1]
    raise DecodeError(what, f"length {len(data)} is neither {body_len} nor {body_len + 3} (with E2E)")


def _protect(w: Writer, counter: int | None) -> bytes:
    if counter is not None:
        w.u8("e2e_counter", counter).crc()
    return w.bytes()


@dataclass(frozen=True, slots=True)
class IddStatus:
    therapy_control_state: TherapyControlState
    operational_state: OperationalState
    reservoir_u: float
    reservoir_attached: bool = True
    e2e_counter: int | None = None

    WHAT: ClassVar[str] = "IDD Status"

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, require_e2e: bool = False) -> IddStatus:
        body, counter = _unprotect(bytes(data), 5, cls.WHAT, require_e2e)
        r = Reader(body, cls.WHAT)
        tcs = _enum(TherapyControlState, r.u8("therapy_control_state"), cls.WHAT, "therapy_control_state", 0)
        ops = _enum(OperationalState, r.u8("operational_state"), cls.WHAT, "operational_state", 1)
        reservoir = r.sfloat("reservoir")
        flags = r.u8("flags")
        if flags & 0xFE:
            raise DecodeError(cls.WHAT, f"reserved flag bits set (0x{flags:02X})", field="flags", offset=4)
        return cls(tcs, ops, reservoir, bool(flags & 1), counter)

    def __bytes__(self) -> bytes:
        w = Writer(self.WHAT).u8("therapy_control_state", int(self.therapy_control_state))
        w.u8("operational_state", int(self.operational_state)).sfloat("reservoir", self.reservoir_u)
        w.u8("flags", int(self.reservoir_attached))
        return _protect(w, self.e2e_counter)


@dataclass(frozen=True, slots=True)
class IddAnnunciation:
    """The pump's most urgent pending annunciation (``type is None``: nothing to announce)."""

    instance_id: int = 0
    type: AnnunciationType | None = None
    status: AnnunciationStatus = AnnunciationStatus.PENDING
    e2e_counter: int | None = None

    WHAT: ClassVar[str] = "IDD Annunciation Status"

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, require_e2e: bool = False) -> IddAnnunciation:
        data = bytes(data)
        if not data:
            raise DecodeError(cls.WHAT, "empty", offset=0)
        present = bool(data[0] & 1)
        body, counter = _unprotect(data, 6 if present else 1, cls.WHAT, require_e2e)
        r = Reader(body, cls.WHAT)
        flags = r.u8("flags")
        if flags & 0xFE:
            raise DecodeError(cls.WHAT, f"reserved flag bits set (0x{flags:02X})", field="flags", offset=0)
        if not present:
            return cls(e2e_counter=counter)
        iid = r.u16("instance_id")
        kind = _enum(AnnunciationType, r.u16("type"), cls.WHAT, "type", 3)
        status = _enum(AnnunciationStatus, r.u8("status"), cls.WHAT, "status", 5)
        return cls(iid, kind, status, counter)

    def __bytes__(self) -> bytes:
        w = Writer(self.WHAT).u8("flags", int(self.type is not None))
        if self.type is not None:
            w.u16("instance_id", self.instance_id).u16("type", int(self.type)).u8("status", int(self.status))
        return _protect(w, self.e2e_counter)


# --- control-point messages: op code u16 | operand | [E2E] ---------------------------------


class _Message:
    """Shared decoding for op-code messages; subclasses define OPCODE, BODY and the operand."""

    OPCODE: ClassVar[IdsOpcode]
    BODY: ClassVar[int]  # operand bytes after the op code
    WHAT: ClassVar[str] = "IDS control point"

    @classmethod
    def _open(cls, data: bytes | bytearray, require_e2e: bool) -> tuple[Reader, int | None]:
        body, counter = _unprotect(bytes(data), 2 + cls.BODY, cls.__name__, require_e2e)
        r = Reader(body, cls.__name__)
        op = r.u16("opcode")
        if op != cls.OPCODE:
            raise DecodeError(
                cls.__name__, f"op code 0x{op:04X} is not {cls.OPCODE.name}", field="opcode", offset=0
            )
        return r, counter

    def _writer(self) -> Writer:
        return Writer(type(self).__name__).u16("opcode", int(self.OPCODE))


@dataclass(frozen=True, slots=True)
class StatusReaderRequest(_Message):
    opcode: IdsOpcode
    e2e_counter: int | None = None
    BODY: ClassVar[int] = 0

    def __post_init__(self) -> None:
        if self.opcode not in _SR_REQUESTS:
            raise EncodeError(f"{self.opcode!r} is not a Status Reader request")

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, require_e2e: bool = False) -> StatusReaderRequest:
        body, counter = _unprotect(bytes(data), 2, cls.__name__, require_e2e)
        op = int.from_bytes(body, "little")
        if op not in _SR_REQUESTS:
            raise DecodeError(
                cls.__name__, f"op code 0x{op:04X} is not a Status Reader request", field="opcode"
            )
        return cls(IdsOpcode(op), counter)

    def __bytes__(self) -> bytes:
        return _protect(Writer(type(self).__name__).u16("opcode", int(self.opcode)), self.e2e_counter)


_SR_REQUESTS = {
    IdsOpcode.GET_ACTIVE_BOLUS,
    IdsOpcode.GET_ACTIVE_BASAL_RATE,
    IdsOpcode.GET_TOTAL_DAILY_INSULIN,
    IdsOpcode.GET_DELIVERED_INSULIN,
    IdsOpcode.GET_INSULIN_ON_BOARD,
}


@dataclass(frozen=True, slots=True)
class IdsResponse(_Message):
    """Response Code on either control point: ``opcode`` says which (SR_ or CMD_RESPONSE_CODE)."""

    opcode: IdsOpcode
    request_opcode: int
    code: IdsResponseCode
    e2e_counter: int | None = None
    BODY: ClassVar[int] = 3

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, require_e2e: bool = False) -> IdsResponse:
        body, counter = _unprotect(bytes(data), 5, cls.__name__, require_e2e)
        r = Reader(body, cls.__name__)
        op = r.u16("opcode")
        if op not in (IdsOpcode.SR_RESPONSE_CODE, IdsOpcode.CMD_RESPONSE_CODE):
            raise DecodeError(
                cls.__name__, f"op code 0x{op:04X} is not a response code", field="opcode", offset=0
            )
        req = r.u16("request_opcode")
        code = _enum(IdsResponseCode, r.u8("response_code"), cls.__name__, "response_code", 4)
        return cls(IdsOpcode(op), req, code, counter)

    def __bytes__(self) -> bytes:
        w = (
            Writer(type(self).__name__)
            .u16("opcode", int(self.opcode))
            .u16("request_opcode", self.request_opcode)
        )
        return _protect(w.u8("response_code", int(self.code)), self.e2e_counter)


@dataclass(frozen=True, slots=True)
class ActiveBasalRate(_Message):
    """The basal the pump runs: scheduled rate, and the temp basal (U/h, minutes left) if any."""

    scheduled_u_per_h: float
    temp_basal_u_per_h: float | None = None
    temp_basal_remaining_min: int = 0
    e2e_counter: int | None = None
    OPCODE: ClassVar[IdsOpcode] = IdsOpcode.ACTIVE_BASAL_RATE_RESPONSE
    BODY: ClassVar[int] = 7

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, require_e2e: bool = False) -> ActiveBasalRate:
        r, counter = cls._open(data, require_e2e)
        flags = r.u8("flags")
        if flags & 0xFE:
            raise DecodeError(
                cls.__name__, f"reserved flag bits set (0x{flags:02X})", field="flags", offset=2
            )
        scheduled = r.sfloat("scheduled_rate")
        tbr = r.sfloat("temp_basal_rate")
        remaining = r.u16("temp_basal_remaining")
        return cls(scheduled, tbr if flags & 1 else None, remaining if flags & 1 else 0, counter)

    def __bytes__(self) -> bytes:
        w = self._writer().u8("flags", int(self.temp_basal_u_per_h is not None))
        w.sfloat("scheduled_rate", self.scheduled_u_per_h).sfloat(
            "temp_basal_rate", self.temp_basal_u_per_h or 0.0
        )
        return _protect(w.u16("temp_basal_remaining", self.temp_basal_remaining_min), self.e2e_counter)


@dataclass(frozen=True, slots=True)
class ActiveBolus(_Message):
    """The bolus being delivered (``bolus_id`` 0: none)."""

    bolus_id: int
    programmed_u: float = 0.0
    delivered_u: float = 0.0
    e2e_counter: int | None = None
    OPCODE: ClassVar[IdsOpcode] = IdsOpcode.ACTIVE_BOLUS_RESPONSE
    BODY: ClassVar[int] = 6

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, require_e2e: bool = False) -> ActiveBolus:
        r, counter = cls._open(data, require_e2e)
        return cls(r.u16("bolus_id"), r.sfloat("programmed"), r.sfloat("delivered"), counter)

    def __bytes__(self) -> bytes:
        w = self._writer().u16("bolus_id", self.bolus_id).sfloat("programmed", self.programmed_u)
        return _protect(w.sfloat("delivered", self.delivered_u), self.e2e_counter)


@dataclass(frozen=True, slots=True)
class TotalDailyInsulin(_Message):
    bolus_u: float
    basal_u: float
    e2e_counter: int | None = None
    OPCODE: ClassVar[IdsOpcode] = IdsOpcode.TOTAL_DAILY_INSULIN_RESPONSE
    BODY: ClassVar[int] = 4

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, require_e2e: bool = False) -> TotalDailyInsulin:
        r, counter = cls._open(data, require_e2e)
        return cls(r.sfloat("bolus"), r.sfloat("basal"), counter)

    def __bytes__(self) -> bytes:
        w = self._writer().sfloat("bolus", self.bolus_u).sfloat("basal", self.basal_u)
        return _protect(w, self.e2e_counter)


@dataclass(frozen=True, slots=True)
class DeliveredInsulin(_Message):
    """Lifetime delivered insulin, bolus and basal, in units (on the wire: u32 hundredths of IU)."""

    bolus_u: float
    basal_u: float
    e2e_counter: int | None = None
    OPCODE: ClassVar[IdsOpcode] = IdsOpcode.DELIVERED_INSULIN_RESPONSE
    BODY: ClassVar[int] = 8

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, require_e2e: bool = False) -> DeliveredInsulin:
        r, counter = cls._open(data, require_e2e)
        return cls(r.u32("bolus") / 100.0, r.u32("basal") / 100.0, counter)

    def __bytes__(self) -> bytes:
        w = self._writer().u32("bolus", round(self.bolus_u * 100)).u32("basal", round(self.basal_u * 100))
        return _protect(w, self.e2e_counter)


@dataclass(frozen=True, slots=True)
class InsulinOnBoard(_Message):
    iob_u: float
    remaining_min: int = 0
    e2e_counter: int | None = None
    OPCODE: ClassVar[IdsOpcode] = IdsOpcode.INSULIN_ON_BOARD_RESPONSE
    BODY: ClassVar[int] = 4

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, require_e2e: bool = False) -> InsulinOnBoard:
        r, counter = cls._open(data, require_e2e)
        return cls(r.sfloat("iob"), r.u16("remaining"), counter)

    def __bytes__(self) -> bytes:
        w = self._writer().sfloat("iob", self.iob_u).u16("remaining", self.remaining_min)
        return _protect(w, self.e2e_counter)


@dataclass(frozen=True, slots=True)
class SetTherapyControlState(_Message):
    state: TherapyControlState
    e2e_counter: int | None = None
    OPCODE: ClassVar[IdsOpcode] = IdsOpcode.SET_THERAPY_CONTROL_STATE
    BODY: ClassVar[int] = 1

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, require_e2e: bool = False) -> SetTherapyControlState:
        r, counter = cls._open(data, require_e2e)
        return cls(_enum(TherapyControlState, r.u8("state"), cls.__name__, "state", 2), counter)

    def __bytes__(self) -> bytes:
        return _protect(self._writer().u8("state", int(self.state)), self.e2e_counter)


@dataclass(frozen=True, slots=True)
class SetTempBasal(_Message):
    """An absolute temporary basal rate (U/h) for ``duration_min`` minutes."""

    rate_u_per_h: float
    duration_min: int
    e2e_counter: int | None = None
    OPCODE: ClassVar[IdsOpcode] = IdsOpcode.SET_TEMP_BASAL
    BODY: ClassVar[int] = 5
    ABSOLUTE: ClassVar[int] = 0x33

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, require_e2e: bool = False) -> SetTempBasal:
        r, counter = cls._open(data, require_e2e)
        kind = r.u8("type")
        if kind != cls.ABSOLUTE:
            raise DecodeError(
                cls.__name__,
                f"temp basal type 0x{kind:02X} not supported (absolute 0x33)",
                field="type",
                offset=2,
            )
        return cls(r.sfloat("rate"), r.u16("duration"), counter)

    def __bytes__(self) -> bytes:
        w = self._writer().u8("type", self.ABSOLUTE).sfloat("rate", self.rate_u_per_h)
        return _protect(w.u16("duration", self.duration_min), self.e2e_counter)


@dataclass(frozen=True, slots=True)
class CancelTempBasal(_Message):
    e2e_counter: int | None = None
    OPCODE: ClassVar[IdsOpcode] = IdsOpcode.CANCEL_TEMP_BASAL
    BODY: ClassVar[int] = 0

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, require_e2e: bool = False) -> CancelTempBasal:
        _, counter = cls._open(data, require_e2e)
        return cls(counter)

    def __bytes__(self) -> bytes:
        return _protect(self._writer(), self.e2e_counter)


@dataclass(frozen=True, slots=True)
class SetBolus(_Message):
    units: float
    e2e_counter: int | None = None
    OPCODE: ClassVar[IdsOpcode] = IdsOpcode.SET_BOLUS
    BODY: ClassVar[int] = 2

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, require_e2e: bool = False) -> SetBolus:
        r, counter = cls._open(data, require_e2e)
        return cls(r.sfloat("amount"), counter)

    def __bytes__(self) -> bytes:
        return _protect(self._writer().sfloat("amount", self.units), self.e2e_counter)


@dataclass(frozen=True, slots=True)
class CancelBolus(_Message):
    bolus_id: int
    e2e_counter: int | None = None
    OPCODE: ClassVar[IdsOpcode] = IdsOpcode.CANCEL_BOLUS
    BODY: ClassVar[int] = 2

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, require_e2e: bool = False) -> CancelBolus:
        r, counter = cls._open(data, require_e2e)
        return cls(r.u16("bolus_id"), counter)

    def __bytes__(self) -> bytes:
        return _protect(self._writer().u16("bolus_id", self.bolus_id), self.e2e_counter)


@dataclass(frozen=True, slots=True)
class SetBolusResponse(_Message):
    """Command Data after Set Bolus: the id the pump gave the bolus and the amount it accepted."""

    bolus_id: int
    units: float
    e2e_counter: int | None = None
    OPCODE: ClassVar[IdsOpcode] = IdsOpcode.SET_BOLUS_RESPONSE
    BODY: ClassVar[int] = 4

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, require_e2e: bool = False) -> SetBolusResponse:
        r, counter = cls._open(data, require_e2e)
        return cls(r.u16("bolus_id"), r.sfloat("amount"), counter)

    def __bytes__(self) -> bytes:
        return _protect(
            self._writer().u16("bolus_id", self.bolus_id).sfloat("amount", self.units), self.e2e_counter
        )


Decoder = Callable[..., object]


def _dispatch(table: dict[int, Decoder], what: str, data: bytes | bytearray, require_e2e: bool) -> object:
    if len(data) < 2:
        raise DecodeError(what, f"truncated: {len(data)} byte(s), need an op code", field="opcode", offset=0)
    op = int.from_bytes(bytes(data[:2]), "little")
    decoder = table.get(op)
    if decoder is None:
        raise DecodeError(what, f"unknown op code 0x{op:04X}", field="opcode", offset=0)
    return decoder(data, require_e2e=require_e2e)


_SR_TABLE: dict[int, Decoder] = {op: StatusReaderRequest.from_bytes for op in _SR_REQUESTS}
_SR_TABLE.update(
    {
        IdsOpcode.SR_RESPONSE_CODE: IdsResponse.from_bytes,
        IdsOpcode.ACTIVE_BASAL_RATE_RESPONSE: ActiveBasalRate.from_bytes,
        IdsOpcode.ACTIVE_BOLUS_RESPONSE: ActiveBolus.from_bytes,
        IdsOpcode.TOTAL_DAILY_INSULIN_RESPONSE: TotalDailyInsulin.from_bytes,
        IdsOpcode.DELIVERED_INSULIN_RESPONSE: DeliveredInsulin.from_bytes,
        IdsOpcode.INSULIN_ON_BOARD_RESPONSE: InsulinOnBoard.from_bytes,
    }
)
_CMD_TABLE: dict[int, Decoder] = {
    IdsOpcode.CMD_RESPONSE_CODE: IdsResponse.from_bytes,
    IdsOpcode.SET_THERAPY_CONTROL_STATE: SetTherapyControlState.from_bytes,
    IdsOpcode.SET_TEMP_BASAL: SetTempBasal.from_bytes,
    IdsOpcode.CANCEL_TEMP_BASAL: CancelTempBasal.from_bytes,
    IdsOpcode.SET_BOLUS: SetBolus.from_bytes,
    IdsOpcode.CANCEL_BOLUS: CancelBolus.from_bytes,
}
_DATA_TABLE: dict[int, Decoder] = {IdsOpcode.SET_BOLUS_RESPONSE: SetBolusResponse.from_bytes}


def decode_status_reader(data: bytes | bytearray, *, require_e2e: bool = False) -> object:
    """Any Status Reader CP message (request or response), by its op code."""
    return _dispatch(_SR_TABLE, "IDD Status Reader CP", data, require_e2e)


def decode_command(data: bytes | bytearray, *, require_e2e: bool = False) -> object:
    """Any Command CP message (command or response code), by its op code."""
    return _dispatch(_CMD_TABLE, "IDD Command CP", data, require_e2e)


def decode_command_data(data: bytes | bytearray, *, require_e2e: bool = False) -> object:
    return _dispatch(_DATA_TABLE, "IDD Command Data", data, require_e2e)


# --- history -------------------------------------------------------------------------------

_EVENT_BODY = {
    HistoryEventType.BOLUS_DELIVERED: 4,  # bolus id u16, amount SFLOAT
    HistoryEventType.BASAL_DELIVERED: 7,  # rate SFLOAT, duration u16, amount SFLOAT, flags u8 (bit0 temp)
    HistoryEventType.TEMP_BASAL_STARTED: 4,  # rate SFLOAT, duration u16
    HistoryEventType.TEMP_BASAL_ENDED: 0,
    HistoryEventType.THERAPY_STATE_CHANGED: 2,  # from u8, to u8
    HistoryEventType.ANNUNCIATION: 2,  # annunciation type u16
}


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One pump history record (History Data, 0x2B28). Fields used depend on ``event_type``."""

    event_type: HistoryEventType
    sequence: int
    time_utc: datetime
    units: float | None = None
    rate_u_per_h: float | None = None
    duration_min: int | None = None
    bolus_id: int | None = None
    temp: bool = False
    state_from: TherapyControlState | None = None
    state_to: TherapyControlState | None = None
    annunciation: AnnunciationType | None = None
    e2e_counter: int | None = None

    WHAT: ClassVar[str] = "IDD History Data"

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, *, require_e2e: bool = False) -> HistoryEvent:
        data = bytes(data)
        if len(data) < 2:
            raise DecodeError(cls.WHAT, "truncated: no event type", field="event_type", offset=0)
        kind = _enum(HistoryEventType, int.from_bytes(data[:2], "little"), cls.WHAT, "event_type", 0)
        body, counter = _unprotect(data, 10 + _EVENT_BODY[kind], cls.WHAT, require_e2e)
        r = Reader(body, cls.WHAT)
        r.u16("event_type")
        seq = r.u32("sequence")
        t = HISTORY_EPOCH + timedelta(seconds=r.u32("time"))
        if kind is HistoryEventType.BOLUS_DELIVERED:
            return cls(
                kind, seq, t, bolus_id=r.u16("bolus_id"), units=r.sfloat("amount"), e2e_counter=counter
            )
        if kind is HistoryEventType.BASAL_DELIVERED:
            rate, dur, units, flags = r.sfloat("rate"), r.u16("duration"), r.sfloat("amount"), r.u8("flags")
            return cls(
                kind,
                seq,
                t,
                units=units,
                rate_u_per_h=rate,
                duration_min=dur,
                temp=bool(flags & 1),
                e2e_counter=counter,
            )
        if kind is HistoryEventType.TEMP_BASAL_STARTED:
            return cls(
                kind,
                seq,
                t,
                rate_u_per_h=r.sfloat("rate"),
                duration_min=r.u16("duration"),
                e2e_counter=counter,
            )
        if kind is HistoryEventType.THERAPY_STATE_CHANGED:
            a = _enum(TherapyControlState, r.u8("from"), cls.WHAT, "from", 10)
            b = _enum(TherapyControlState, r.u8("to"), cls.WHAT, "to", 11)
            return cls(kind, seq, t, state_from=a, state_to=b, e2e_counter=counter)
        if kind is HistoryEventType.ANNUNCIATION:
            ann = _enum(AnnunciationType, r.u16("annunciation"), cls.WHAT, "annunciation", 10)
            return cls(kind, seq, t, annunciation=ann, e2e_counter=counter)
        return cls(kind, seq, t, e2e_counter=counter)

    def __bytes__(self) -> bytes:
        seconds = int((self.time_utc - HISTORY_EPOCH).total_seconds())
        w = Writer(self.WHAT).u16("event_type", int(self.event_type)).u32("sequence", self.sequence)
        w.u32("time", seconds)
        k = self.event_type
        try:
            if k is HistoryEventType.BOLUS_DELIVERED:
                w.u16("bolus_id", self.bolus_id or 0).sfloat("amount", _need(self.units))
            elif k is HistoryEventType.BASAL_DELIVERED:
                w.sfloat("rate", _need(self.rate_u_per_h)).u16("duration", _need(self.duration_min))
                w.sfloat("amount", _need(self.units)).u8("flags", int(self.temp))
            elif k is HistoryEventType.TEMP_BASAL_STARTED:
                w.sfloat("rate", _need(self.rate_u_per_h)).u16("duration", _need(self.duration_min))
            elif k is HistoryEventType.THERAPY_STATE_CHANGED:
                w.u8("from", int(_need(self.state_from))).u8("to", int(_need(self.state_to)))
            elif k is HistoryEventType.ANNUNCIATION:
                w.u16("annunciation", int(_need(self.annunciation)))
        except ValueError:
            raise EncodeError(f"{self.WHAT}: {k.name} is missing a field") from None
        return _protect(w, self.e2e_counter)


T = TypeVar("T")


def _need(value: T | None) -> T:
    if value is None:
        raise ValueError("missing")
    return value
