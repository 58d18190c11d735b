"""Record Access Control Point (RACP): back-fill for CGMS (0x2A52), Glucose (0x2A52) and the
IDS-modelled pump history (0x2B27).

``op code u8 | operator u8 | [filter type u8 | operand(s)]``. Op codes: 1 report stored records,
2 delete, 3 abort, 4 report number, 5 number response (operand u16), 6 response code (operand:
request op u8, response u8). Operators: 0 null, 1 all, 2 ≤, 3 ≥, 4 within range (two operands),
5 first, 6 last. The operand width depends on the profile's filter: CGMS filter 0x01 is the Time
Offset (u16), Glucose filter 0x01 the sequence number (u16), IDS filter 0x01 the history sequence
number (u32). The IDS RACP carries an E2E counter (u8) and CRC like every IDS record.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from devices.codecs._wire import Reader, Writer, check_crc
from devices.errors import CrcError, DecodeError, EncodeError

__all__ = ["Racp", "RacpOpcode", "RacpOperator", "RacpProfile", "RacpResponseCode"]


class RacpOpcode(enum.IntEnum):
    REPORT_STORED_RECORDS = 1
    DELETE_STORED_RECORDS = 2
    ABORT = 3
    REPORT_NUMBER_OF_RECORDS = 4
    NUMBER_OF_RECORDS_RESPONSE = 5
    RESPONSE_CODE = 6


class RacpOperator(enum.IntEnum):
    NULL = 0
    ALL = 1
    LESS_OR_EQUAL = 2
    GREATER_OR_EQUAL = 3
    WITHIN_RANGE = 4
    FIRST = 5
    LAST = 6


class RacpResponseCode(enum.IntEnum):
    SUCCESS = 1
    OP_CODE_NOT_SUPPORTED = 2
    INVALID_OPERATOR = 3
    OPERATOR_NOT_SUPPORTED = 4
    INVALID_OPERAND = 5
    NO_RECORDS_FOUND = 6
    ABORT_UNSUCCESSFUL = 7
    PROCEDURE_NOT_COMPLETED = 8
    OPERAND_NOT_SUPPORTED = 9


class RacpProfile(enum.StrEnum):
    CGMS = "cgms"
    GLUCOSE = "glucose"
    IDS = "ids"


_OPERAND_WIDTH = {RacpProfile.CGMS: 2, RacpProfile.GLUCOSE: 2, RacpProfile.IDS: 4}
_FILTERED_OPS = {
    RacpOpcode.REPORT_STORED_RECORDS,
    RacpOpcode.DELETE_STORED_RECORDS,
    RacpOpcode.REPORT_NUMBER_OF_RECORDS,
}
FILTER_PRIMARY = 0x01  # CGMS time offset / Glucose and IDS sequence number


@dataclass(frozen=True, slots=True)
class Racp:
    """One RACP message. ``operands`` holds the filter values (one, or two for a range).

    For NUMBER_OF_RECORDS_RESPONSE ``number_of_records`` is set; for RESPONSE_CODE
    ``request_opcode`` and ``response_code``. ``e2e_counter`` is set on IDS messages with E2E.
    """

    opcode: RacpOpcode
    operator: RacpOperator = RacpOperator.NULL
    filter_type: int | None = None
    operands: tuple[int, ...] = ()
    number_of_records: int | None = None
    request_opcode: int | None = None
    response_code: int | None = None
    profile: RacpProfile = RacpProfile.CGMS
    e2e_counter: int | None = None

    WHAT = "RACP"

    @classmethod
    def report(
        cls,
        operator: RacpOperator,
        *operands: int,
        profile: RacpProfile = RacpProfile.CGMS,
        e2e_counter: int | None = None,
    ) -> Racp:
        needs_filter = operator in (
            RacpOperator.LESS_OR_EQUAL,
            RacpOperator.GREATER_OR_EQUAL,
            RacpOperator.WITHIN_RANGE,
        )
        return cls(
            RacpOpcode.REPORT_STORED_RECORDS,
            operator,
            FILTER_PRIMARY if needs_filter else None,
            tuple(operands),
            profile=profile,
            e2e_counter=e2e_counter,
        )

    @classmethod
    def response(
        cls,
        request: RacpOpcode | int,
        code: RacpResponseCode,
        *,
        profile: RacpProfile = RacpProfile.CGMS,
        e2e_counter: int | None = None,
    ) -> Racp:
        return cls(
            RacpOpcode.RESPONSE_CODE,
            request_opcode=int(request),
            response_code=int(code),
            profile=profile,
            e2e_counter=e2e_counter,
        )

    @classmethod
    def from_bytes(
        cls, data: bytes | bytearray, *, profile: RacpProfile = RacpProfile.CGMS, e2e: bool = False
    ) -> Racp:
        """Decode; ``e2e`` (IDS only) expects a trailing E2E counter and CRC and verifies them."""
        data = bytes(data)
        what = f"{cls.WHAT} ({profile})"
        counter = None
        if e2e:
            if len(data) < 3:
                raise CrcError(what, expected=0, actual=None, offset=len(data))
            body = check_crc(data, what)
            counter = body[-1]
            data = body[:-1]
        r = Reader(data, what)
        raw_op, raw_operator = r.u8("opcode"), r.u8("operator")
        try:
            op = RacpOpcode(raw_op)
        except ValueError:
            raise DecodeError(what, f"unknown op code {raw_op}", field="opcode", offset=0) from None
        try:
            operator = RacpOperator(raw_operator)
        except ValueError:
            raise DecodeError(what, f"unknown operator {raw_operator}", field="operator", offset=1) from None
        width = _OPERAND_WIDTH[profile]
        filter_type = None
        operands: tuple[int, ...] = ()
        number = req = code = None
        if op in _FILTERED_OPS:
            n = {
                RacpOperator.LESS_OR_EQUAL: 1,
                RacpOperator.GREATER_OR_EQUAL: 1,
                RacpOperator.WITHIN_RANGE: 2,
            }
            count = n.get(operator, 0)
            if operator is RacpOperator.NULL:
                raise DecodeError(what, f"{op.name} needs an operator", field="operator", offset=1)
            if count:
                filter_type = r.u8("filter_type")
                if filter_type != FILTER_PRIMARY:
                    raise DecodeError(
                        what, f"filter type 0x{filter_type:02X} not supported", field="filter_type", offset=2
                    )
                operands = tuple(int.from_bytes(r.take(width, "operand"), "little") for _ in range(count))
                if count == 2 and operands[0] > operands[1]:
                    raise DecodeError(
                        what, f"range {operands[0]}..{operands[1]} is reversed", field="operand"
                    )
        elif op is RacpOpcode.NUMBER_OF_RECORDS_RESPONSE:
            number = r.u16("number_of_records")
        elif op is RacpOpcode.RESPONSE_CODE:
            req = r.u8("request_opcode")
            code = r.u8("response_code")
        r.end()
        if op not in _FILTERED_OPS and operator is not RacpOperator.NULL:
            raise DecodeError(
                what, f"{op.name} takes the null operator, got {operator.name}", field="operator", offset=1
            )
        return cls(op, operator, filter_type, operands, number, req, code, profile, counter)

    def __bytes__(self) -> bytes:
        op = RacpOpcode(self.opcode)
        w = Writer(self.WHAT).u8("opcode", int(op)).u8("operator", int(self.operator))
        width = _OPERAND_WIDTH[RacpProfile(self.profile)]
        if op in _FILTERED_OPS and self.operands:
            w.u8("filter_type", self.filter_type if self.filter_type is not None else FILTER_PRIMARY)
            for value in self.operands:
                if not 0 <= value < 1 << (8 * width):
                    raise EncodeError(f"RACP operand {value} does not fit {width} bytes")
                w.raw(value.to_bytes(width, "little"))
        elif op is RacpOpcode.NUMBER_OF_RECORDS_RESPONSE:
            w.u16("number_of_records", self.number_of_records or 0)
        elif op is RacpOpcode.RESPONSE_CODE:
            if self.request_opcode is None or self.response_code is None:
                raise EncodeError("an RACP response needs request_opcode and response_code")
            w.u8("request_opcode", self.request_opcode).u8("response_code", self.response_code)
        if self.e2e_counter is not None:
            w.u8("e2e_counter", self.e2e_counter).crc()
        return w.bytes()
