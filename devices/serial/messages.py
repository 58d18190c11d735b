"""Messages carried in DATA frames (``devices/SERIAL_PROTOCOL.md``): ``type u8 | body``.

CGM receiver: ``CgmRecord`` (0x10 live, 0x13 from history; device → host), history request
(0x11, ``from seq u32``), history end (0x12, ``count u32``). Pump bridge: status request (0x20) → status
(0xA0: IDS-modelled IDD Status | Active Basal Rate | Active Bolus | Annunciation records), command
(0x21: an IDS Command CP message) → result (0xA1: IDS response code message), history request
(0x22, ``after seq u32``) → history events (0xA2: IDS History Data record) then end (0xA3).
Hello (0x01) → hello reply (0x81: kind u8 1 CGM receiver / 2 pump bridge | name ASCII).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from devices.codecs._wire import Reader, Writer

__all__ = ["CgmFlags", "CgmRecord", "DeviceKind", "Msg", "u32"]

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class Msg(enum.IntEnum):
    HELLO = 0x01
    HELLO_REPLY = 0x81
    CGM_RECORD = 0x10
    CGM_HISTORY_REQUEST = 0x11
    CGM_HISTORY_END = 0x12
    CGM_HISTORY_RECORD = 0x13
    PUMP_STATUS_REQUEST = 0x20
    PUMP_STATUS = 0xA0
    PUMP_COMMAND = 0x21
    PUMP_COMMAND_RESULT = 0xA1
    PUMP_HISTORY_REQUEST = 0x22
    PUMP_HISTORY_EVENT = 0xA2
    PUMP_HISTORY_END = 0xA3


class DeviceKind(enum.IntEnum):
    CGM_RECEIVER = 1
    PUMP_BRIDGE = 2


class CgmFlags(enum.IntFlag):
    WARMUP = 1 << 0
    SENSOR_ERROR = 1 << 1
    BELOW_RANGE = 1 << 2
    ABOVE_RANGE = 1 << 3
    CALIBRATION_REQUIRED = 1 << 4


TREND_NONE = 0x7FFF


@dataclass(frozen=True, slots=True)
class CgmRecord:
    """seq u32 | time u32 (s since 2000-01-01Z) | glucose u16 mg/dL (0: none) | flags u16 |
    trend s16 (0.1 mg/dL/min; 0x7FFF: none)."""

    seq: int
    time_utc: datetime
    glucose_mg_dl: int | None
    flags: CgmFlags = CgmFlags(0)
    trend_mg_dl_per_min: float | None = None

    WHAT = "serial CGM record"

    @classmethod
    def from_bytes(cls, body: bytes) -> CgmRecord:
        r = Reader(body, cls.WHAT)
        seq, t, g, flags, trend = (
            r.u32("seq"),
            r.u32("time"),
            r.u16("glucose"),
            r.u16("flags"),
            r.s16("trend"),
        )
        r.end()
        return cls(
            seq,
            EPOCH + timedelta(seconds=t),
            g or None,
            CgmFlags(flags),
            None if trend == TREND_NONE else trend / 10.0,
        )

    def __bytes__(self) -> bytes:
        w = Writer(self.WHAT).u32("seq", self.seq).u32("time", int((self.time_utc - EPOCH).total_seconds()))
        w.u16("glucose", self.glucose_mg_dl or 0).u16("flags", int(self.flags))
        trend = TREND_NONE if self.trend_mg_dl_per_min is None else round(self.trend_mg_dl_per_min * 10)
        return w.s16("trend", trend).bytes()


def u32(value: int) -> bytes:
    return value.to_bytes(4, "little")
