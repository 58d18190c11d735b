"""Heart Rate Measurement (0x2A37).

``flags u8 | heart rate u8 (u16 if flags bit 0) | [energy expended u16 kJ if bit 3] |
[RR intervals u16 each, 1/1024 s, if bit 4]``. Flags bits 1-2: sensor contact (bit 2 supported,
bit 1 detected).
"""

from __future__ import annotations

from dataclasses import dataclass

from devices.codecs._wire import Reader, Writer
from devices.errors import DecodeError, EncodeError

__all__ = ["HeartRateMeasurement"]

_U16 = 0x01
_CONTACT_DETECTED = 0x02
_CONTACT_SUPPORTED = 0x04
_ENERGY = 0x08
_RR = 0x10


@dataclass(frozen=True, slots=True)
class HeartRateMeasurement:
    heart_rate_bpm: int
    sensor_contact: bool | None = None
    energy_expended_kj: int | None = None
    rr_intervals_s: tuple[float, ...] | None = None

    WHAT = "Heart Rate Measurement"

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> HeartRateMeasurement:
        data = bytes(data)
        r = Reader(data, cls.WHAT)
        flags = r.u8("flags")
        if flags & 0xE0:
            raise DecodeError(cls.WHAT, f"reserved flag bits set (0x{flags:02X})", field="flags", offset=0)
        hr = r.u16("heart_rate") if flags & _U16 else r.u8("heart_rate")
        contact = bool(flags & _CONTACT_DETECTED) if flags & _CONTACT_SUPPORTED else None
        energy = r.u16("energy_expended") if flags & _ENERGY else None
        rr: tuple[float, ...] | None = None
        if flags & _RR:
            if r.remaining % 2:
                raise DecodeError(
                    cls.WHAT, "odd number of RR-interval bytes", field="rr_interval", offset=r.pos
                )
            rr = tuple(r.u16("rr_interval") / 1024.0 for _ in range(r.remaining // 2))
        r.end()
        return cls(hr, contact, energy, rr)

    def __bytes__(self) -> bytes:
        flags = 0
        if self.heart_rate_bpm > 0xFF:
            flags |= _U16
        if self.sensor_contact is not None:
            flags |= _CONTACT_SUPPORTED | (_CONTACT_DETECTED if self.sensor_contact else 0)
        if self.energy_expended_kj is not None:
            flags |= _ENERGY
        if self.rr_intervals_s is not None:
            flags |= _RR
        w = Writer(self.WHAT).u8("flags", flags)
        if flags & _U16:
            w.u16("heart_rate", self.heart_rate_bpm)
        else:
            w.u8("heart_rate", self.heart_rate_bpm)
        if self.energy_expended_kj is not None:
            w.u16("energy_expended", self.energy_expended_kj)
        for rr in self.rr_intervals_s or ():
            if not 0 <= rr * 1024 <= 0xFFFF:
                raise EncodeError(f"RR interval {rr} s out of range")
            w.u16("rr_interval", round(rr * 1024))
        return w.bytes()
