"""Parts of the local day, the time base of insulin sensitivity by time of day.

The twin counts minutes from its own minute 0; ``minute_of_day_at_zero`` (the local time of day
of twin minute 0, minutes after midnight) places them on the clock. A day has four 6-h parts.
"""

from __future__ import annotations

from edgetwin.errors import InputDataError

__all__ = ["DAYPARTS", "DAYPART_MIN", "N_DAYPARTS", "part_at", "part_segments"]

DAYPARTS: tuple[tuple[str, int, int], ...] = (
    ("night 00-06", 0, 360),
    ("morning 06-12", 360, 720),
    ("afternoon 12-18", 720, 1080),
    ("evening 18-24", 1080, 1440),
)
"""(name, first local minute of day, end) of each part."""
N_DAYPARTS = len(DAYPARTS)
DAYPART_MIN = 1440 // N_DAYPARTS


def part_at(minute_of_day_at_zero: int, minute: int) -> int:
    """The part of the day (index into :data:`DAYPARTS`) twin ``minute`` falls in."""
    return ((minute + minute_of_day_at_zero) % 1440) // DAYPART_MIN


def part_segments(minute_of_day_at_zero: int, start: int, end: int) -> list[tuple[int, int, int]]:
    """Split twin minutes [start, end) at part boundaries: (first, end, part index)."""
    if not 0 <= minute_of_day_at_zero < 1440:
        raise InputDataError("minute_of_day_at_zero must be in [0, 1440)")
    out: list[tuple[int, int, int]] = []
    m = start
    while m < end:
        tod = (m + minute_of_day_at_zero) % 1440
        nxt = min(end, m + (DAYPART_MIN - tod % DAYPART_MIN))
        out.append((m, nxt, tod // DAYPART_MIN))
        m = nxt
    return out
