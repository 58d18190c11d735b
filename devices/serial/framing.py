"""Byte-stuffed frames (``devices/SERIAL_PROTOCOL.md``), sans-I/O.

On the wire: ``7E | stuffed(kind u8 | seq u8 | length u16 | payload | CRC-16/MCRF4XX u16) | 7E``.
Stuffing: ``7E`` → ``7D 5E``, ``7D`` → ``7D 5D`` (escape, then the byte XOR 0x20). The CRC covers
kind..payload, little-endian. ``Framer.feed_data(bytes)`` returns every whole good frame; bad frames
(CRC, length, stuffing, oversize) are counted in ``errors`` and the framer resynchronises on the
next flag, so garbage can neither stall nor crash it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from devices.codecs.crc import crc16_mcrf4xx
from devices.errors import CrcError, EncodeError, FrameError

__all__ = ["ESC", "FLAG", "MAX_PAYLOAD", "Frame", "FrameKind", "Framer"]

FLAG = 0x7E
ESC = 0x7D
MAX_PAYLOAD = 512


class FrameKind(enum.IntEnum):
    DATA = 0x01
    ACK = 0x02
    NAK = 0x03


@dataclass(frozen=True, slots=True)
class Frame:
    kind: FrameKind
    seq: int
    payload: bytes = b""

    WHAT = "serial frame"

    def __post_init__(self) -> None:
        if not 0 <= self.seq <= 0xFF:
            raise EncodeError(f"sequence {self.seq} outside 0..255")
        if len(self.payload) > MAX_PAYLOAD:
            raise EncodeError(f"payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")

    def body(self) -> bytes:
        body = bytes([int(self.kind), self.seq]) + len(self.payload).to_bytes(2, "little") + self.payload
        return body + crc16_mcrf4xx(body).to_bytes(2, "little")

    def __bytes__(self) -> bytes:
        out = bytearray([FLAG])
        for b in self.body():
            if b in (FLAG, ESC):
                out += bytes([ESC, b ^ 0x20])
            else:
                out.append(b)
        out.append(FLAG)
        return bytes(out)

    @classmethod
    def from_body(cls, body: bytes) -> Frame:
        """Parse an unstuffed body (between flags)."""
        if len(body) < 6:
            raise FrameError(cls.WHAT, f"truncated: {len(body)} bytes", offset=0)
        length = int.from_bytes(body[2:4], "little")
        if len(body) != 6 + length:
            raise FrameError(
                cls.WHAT, f"length field {length} but {len(body) - 6} payload bytes", field="length", offset=2
            )
        expected = crc16_mcrf4xx(body[:-2])
        received = int.from_bytes(body[-2:], "little")
        if expected != received:
            raise CrcError(cls.WHAT, expected=expected, actual=received, offset=len(body) - 2)
        try:
            kind = FrameKind(body[0])
        except ValueError:
            raise FrameError(
                cls.WHAT, f"unknown frame kind 0x{body[0]:02X}", field="kind", offset=0
            ) from None
        return cls(kind, body[1], bytes(body[4:-2]))


class Framer:
    """Feed bytes as they arrive; get whole frames back."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._in_frame = False
        self._escaped = False
        self.errors: list[Exception] = []

    def feed_data(self, data: bytes | bytearray) -> list[Frame]:
        frames: list[Frame] = []
        for b in bytes(data):
            if b == FLAG:
                if self._in_frame and self._buf:
                    self._finish(frames)
                self._in_frame = True
                self._buf.clear()
                self._escaped = False
                continue
            if not self._in_frame:
                continue  # noise between frames
            if self._escaped:
                self._buf.append(b ^ 0x20)
                self._escaped = False
            elif b == ESC:
                self._escaped = True
            else:
                self._buf.append(b)
            if len(self._buf) > MAX_PAYLOAD + 6:
                self.errors.append(FrameError(Frame.WHAT, "oversized frame dropped"))
                self._in_frame = False
                self._buf.clear()
        return frames

    def _finish(self, frames: list[Frame]) -> None:
        if self._escaped:
            self.errors.append(FrameError(Frame.WHAT, "frame ends inside an escape"))
            return
        try:
            frames.append(Frame.from_body(bytes(self._buf)))
        except (FrameError, CrcError) as exc:
            self.errors.append(exc)

    def take_errors(self) -> list[Exception]:
        errors, self.errors = self.errors, []
        return errors
