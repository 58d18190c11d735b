"""UTC time helpers: every timestamp inside EdgeTwin is a timezone-aware UTC ``datetime``.

Storage and wire formats carry integer milliseconds since the Unix epoch (UTC); these helpers
are the one place where the two meet.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["UTC", "ensure_utc", "from_epoch_ms", "minutes_between", "to_epoch_ms", "utc_now"]


def utc_now() -> datetime:
    """The wall clock, in UTC. Prefer an injected clock object in long-running code."""
    return datetime.now(UTC)


def ensure_utc(t: datetime, what: str = "time") -> datetime:
    """``t`` as UTC; raises ValueError for a naive datetime (its zone would be a guess)."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (UTC), got naive {t.isoformat()}")
    return t.astimezone(UTC)


def to_epoch_ms(t: datetime) -> int:
    """Integer milliseconds since 1970-01-01T00:00Z."""
    t = ensure_utc(t)
    return (t - _EPOCH) // timedelta(milliseconds=1)


def from_epoch_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=int(ms))


def minutes_between(a: datetime, b: datetime) -> float:
    """``b - a`` in minutes (may be negative)."""
    return (b - a).total_seconds() / 60.0


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
