"""Glucose Service (0x1808): the Glucose Measurement (0x2A18) of blood-glucose meters.

``flags u8 | sequence u16 | base time (7) | [time offset s16 min if 0x01] | [concentration
SFLOAT + type/location u8 if 0x02] | [sensor status u16 if 0x08]``. Flag 0x04: the concentration
is in mol/L, else kg/L; 0x10: a Measurement Context follows. Unit trap: 120 mg/dL is 0.0012 kg/L;
``glucose_mg_dl`` converts (1 kg/L = 100 000 mg/dL; 1 mol/L = 18 015.6 mg/dL, glucose 180.156 g/mol).
Records come back through RACP (``devices.codecs.racp``, Glucose profile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from devices.codecs._wire import Reader, Writer
from devices.errors import DecodeError

__all__ = ["KG_PER_L_TO_MG_DL", "MOL_PER_L_TO_MG_DL", "GlucoseMeasurement"]

KG_PER_L_TO_MG_DL = 100_000.0
MOL_PER_L_TO_MG_DL = 18_015.6

_TIME_OFFSET = 0x01
_CONCENTRATION = 0x02
_MOL_PER_L = 0x04
_STATUS = 0x08
_CONTEXT = 0x10


@dataclass(frozen=True, slots=True)
class GlucoseMeasurement:
    sequence: int
    base_time: datetime  # naive: the meter's clock
    time_offset_min: int | None = None
    concentration: float | None = None  # in ``unit``
    unit: str = "kg/L"  # "kg/L" or "mol/L"
    type_location: int = 0
    sensor_status: int | None = None
    context_follows: bool = False

    WHAT = "Glucose Measurement"

    @property
    def time(self) -> datetime:
        """Base time plus offset, on the meter's (naive) clock."""
        return self.base_time + timedelta(minutes=self.time_offset_min or 0)

    @property
    def glucose_mg_dl(self) -> float | None:
        if self.concentration is None or not math.isfinite(self.concentration):
            return None
        factor = MOL_PER_L_TO_MG_DL if self.unit == "mol/L" else KG_PER_L_TO_MG_DL
        return self.concentration * factor

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> GlucoseMeasurement:
        data = bytes(data)
        r = Reader(data, cls.WHAT)
        flags = r.u8("flags")
        if flags & 0xE0:
            raise DecodeError(cls.WHAT, f"reserved flag bits set (0x{flags:02X})", field="flags", offset=0)
        seq = r.u16("sequence")
        base = r.date_time("base_time")
        offset = r.s16("time_offset") if flags & _TIME_OFFSET else None
        conc = None
        tl = 0
        if flags & _CONCENTRATION:
            conc = r.sfloat("concentration")
            tl = r.u8("type_location")
        status = r.u16("sensor_status") if flags & _STATUS else None
        r.end()
        return cls(
            seq,
            base,
            offset,
            conc,
            "mol/L" if flags & _MOL_PER_L else "kg/L",
            tl,
            status,
            bool(flags & _CONTEXT),
        )

    def __bytes__(self) -> bytes:
        flags = (_TIME_OFFSET if self.time_offset_min is not None else 0) | (
            _CONCENTRATION if self.concentration is not None else 0
        )
        flags |= (_MOL_PER_L if self.unit == "mol/L" else 0) | (
            _STATUS if self.sensor_status is not None else 0
        )
        flags |= _CONTEXT if self.context_follows else 0
        w = (
            Writer(self.WHAT)
            .u8("flags", flags)
            .u16("sequence", self.sequence)
            .date_time("base_time", self.base_time)
        )
        if self.time_offset_min is not None:
            w.s16("time_offset", self.time_offset_min)
        if self.concentration is not None:
            w.sfloat("concentration", self.concentration).u8("type_location", self.type_location)
        if self.sensor_status is not None:
            w.u16("sensor_status", self.sensor_status)
        return w.bytes()
