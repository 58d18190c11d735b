"""Little-endian field readers and writers shared by the profile codecs.

``Reader`` walks a record and raises ``DecodeError`` naming the record, the field and the byte
offset when the bytes run out; ``end()`` rejects trailing bytes. ``Writer`` packs fields and
checks their ranges (``EncodeError``).
"""

from __future__ import annotations

import math
import struct
from datetime import datetime

from devices.codecs.crc import crc16_mcrf4xx
from devices.codecs.sfloat import decode_sfloat, encode_sfloat
from devices.errors import CrcError, DecodeError, EncodeError

__all__ = ["Reader", "Writer", "check_crc", "split_crc"]


class Reader:
    def __init__(self, data: bytes | bytearray | memoryview, what: str) -> None:
        self.data = bytes(data)
        self.what = what
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, field: str) -> bytes:
        if self.remaining < n:
            raise DecodeError(
                self.what, f"truncated: need {n} byte(s), {self.remaining} left", field=field, offset=self.pos
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self, field: str) -> int:
        return self.take(1, field)[0]

    def s8(self, field: str) -> int:
        return int(struct.unpack("<b", self.take(1, field))[0])

    def u16(self, field: str) -> int:
        return int.from_bytes(self.take(2, field), "little")

    def s16(self, field: str) -> int:
        return int(struct.unpack("<h", self.take(2, field))[0])

    def u24(self, field: str) -> int:
        return int.from_bytes(self.take(3, field), "little")

    def u32(self, field: str) -> int:
        return int.from_bytes(self.take(4, field), "little")

    def sfloat(self, field: str) -> float:
        return decode_sfloat(self.u16(field))

    def date_time(self, field: str) -> datetime:
        """The 7-byte Date Time: year u16, month, day, hours, minutes, seconds (naive)."""
        start = self.pos
        year = self.u16(field)
        month, day, hour, minute, second = self.take(5, field)
        try:
            return datetime(year, month, day, hour, minute, second)
        except ValueError as exc:
            raise DecodeError(self.what, f"invalid date/time: {exc}", field=field, offset=start) from None

    def end(self) -> None:
        if self.remaining:
            raise DecodeError(self.what, f"{self.remaining} unexpected trailing byte(s)", offset=self.pos)


class Writer:
    def __init__(self, what: str) -> None:
        self.what = what
        self.buf = bytearray()

    def _range(self, field: str, value: int, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise EncodeError(f"{self.what}.{field}={value!r} outside [{lo}, {hi}]")
        return value

    def u8(self, field: str, value: int) -> Writer:
        self.buf += self._range(field, value, 0, 0xFF).to_bytes(1, "little")
        return self

    def s8(self, field: str, value: int) -> Writer:
        self.buf += struct.pack("<b", self._range(field, value, -128, 127))
        return self

    def u16(self, field: str, value: int) -> Writer:
        self.buf += self._range(field, value, 0, 0xFFFF).to_bytes(2, "little")
        return self

    def s16(self, field: str, value: int) -> Writer:
        self.buf += struct.pack("<h", self._range(field, value, -0x8000, 0x7FFF))
        return self

    def u24(self, field: str, value: int) -> Writer:
        self.buf += self._range(field, value, 0, 0xFFFFFF).to_bytes(3, "little")
        return self

    def u32(self, field: str, value: int) -> Writer:
        self.buf += self._range(field, value, 0, 0xFFFFFFFF).to_bytes(4, "little")
        return self

    def sfloat(self, field: str, value: float) -> Writer:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise EncodeError(f"{self.what}.{field}={value!r} is not a number")
        try:
            raw = encode_sfloat(float(value))
        except EncodeError as exc:
            raise EncodeError(f"{self.what}.{field}: {exc}") from None
        if math.isfinite(value) and raw in (0x07FF, 0x0800, 0x07FE, 0x0802):
            raise EncodeError(f"{self.what}.{field}={value!r} collides with a reserved SFLOAT")
        self.buf += raw.to_bytes(2, "little")
        return self

    def date_time(self, field: str, value: datetime) -> Writer:
        self.u16(field, value.year)
        for part in (value.month, value.day, value.hour, value.minute, value.second):
            self.u8(field, part)
        return self

    def raw(self, data: bytes) -> Writer:
        self.buf += data
        return self

    def crc(self) -> Writer:
        """Append the CRC-16/MCRF4XX of everything written so far (little-endian)."""
        self.buf += crc16_mcrf4xx(self.buf).to_bytes(2, "little")
        return self

    def bytes(self) -> bytes:
        return bytes(self.buf)


def split_crc(data: bytes, what: str) -> tuple[bytes, int]:
    """``(body, received_crc)`` of a record whose last two bytes are its CRC."""
    if len(data) < 2:
        raise DecodeError(what, "truncated: no room for the CRC", field="crc", offset=0)
    return data[:-2], int.from_bytes(data[-2:], "little")


def check_crc(data: bytes, what: str, *, offset: int = 0) -> bytes:
    """Verify the trailing CRC of ``data``; return the bytes it covers."""
    body, received = split_crc(data, what)
    expected = crc16_mcrf4xx(body)
    if expected != received:
        raise CrcError(what, expected=expected, actual=received, offset=offset + len(body))
    return body
