"""Record factories shared by the store tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edgetwin.messages import CgmReading

T0 = datetime(2024, 3, 1, 6, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def cgm(i: int, glucose: float | None = None, device: str = "cgm-1", **kw: object) -> CgmReading:
    """The i-th reading of a 5-minute CGM stream (sequence = minutes since session start)."""
    value = 100.0 + (i * 7) % 80 if glucose is None else glucose
    return CgmReading(time_utc=at(5 * i), glucose_mg_dl=value, device_id=device, sequence=5 * i, **kw)  # type: ignore[arg-type]
