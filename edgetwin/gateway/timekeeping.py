"""Time on the gateway: which clock runs, wall-clock jumps, device clocks that disagree, and
the mapping from UTC to the twin's minute clock.

* :func:`clock_from_config`: ``RealClock`` on a gateway; on benches a ``ScaledClock`` *anchored
  to real time* (clock time = ``start_utc + (real now − anchor_utc) × factor``), so a gateway
  restarted in the middle of an accelerated run finds the time where it would have been.
* :class:`WallClockGuard`: compares how far ``now_utc()`` moved with how far ``monotonic()``
  moved between two looks; a difference beyond ``tolerance_s`` is a wall-clock jump (NTP step,
  someone setting the clock), logged and reported. Intervals (staleness, watchdog, cycles) use
  the monotonic clock, so a jump can neither silence nor fake the no-data alarm.
* :func:`device_skew_s`: how far a device's time stamp is from the gateway's time. A live
  reading stamped more than ``FUTURE_TOLERANCE_S`` ahead is stored (never lost) but not given
  to the twin, and the patient is told the device clock is wrong.
* :class:`MinuteMap`: UTC ↔ twin minute from a fixed anchor (kept in every twin checkpoint).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from edgetwin.clock import Clock, RealClock, ScaledClock
from edgetwin.gateway.config import ClockConfig
from edgetwin.timeutil import ensure_utc, utc_now

__all__ = [
    "FUTURE_TOLERANCE_S",
    "ClockJump",
    "MinuteMap",
    "WallClockGuard",
    "clock_from_config",
    "device_skew_s",
]

log = logging.getLogger("edgetwin.gateway.time")

FUTURE_TOLERANCE_S = 5 * 60.0
"""A live reading stamped further ahead than this is from a device whose clock is wrong."""
SKEW_WARN_S = 2 * 60.0
"""A live reading whose stamp is this far from the gateway's time is logged as clock skew."""


def clock_from_config(cfg: ClockConfig) -> Clock:
    if cfg.kind == "real":
        return RealClock()
    start = cfg.start_utc or utc_now()
    anchor = cfg.anchor_utc or start
    elapsed_real_s = (utc_now() - anchor).total_seconds()
    return ScaledClock(start + timedelta(seconds=elapsed_real_s * cfg.factor), cfg.factor)


@dataclass(frozen=True)
class ClockJump:
    at_utc: datetime
    jump_s: float
    """Positive: the wall clock moved forward more than real time passed."""


class WallClockGuard:
    """Detects wall-clock jumps by comparing wall and monotonic progress between looks."""

    def __init__(self, clock: Clock, tolerance_s: float = 60.0) -> None:
        self.clock = clock
        self.tolerance_s = tolerance_s
        self._wall = clock.now_utc()
        self._mono = clock.monotonic()
        self.jumps: list[ClockJump] = []

    def check(self) -> ClockJump | None:
        wall = self.clock.now_utc()
        mono = self.clock.monotonic()
        drift = (wall - self._wall).total_seconds() - (mono - self._mono)
        self._wall, self._mono = wall, mono
        if abs(drift) <= self.tolerance_s:
            return None
        jump = ClockJump(wall, drift)
        self.jumps.append(jump)
        log.warning(
            "the system clock jumped by %+.0f s", drift, extra={"event": "wall_clock_jump", "jump_s": drift}
        )
        return jump


def device_skew_s(device_time_utc: datetime, gateway_now_utc: datetime) -> float:
    """Seconds the device's stamp is ahead (+) or behind (−) the gateway's clock."""
    return (ensure_utc(device_time_utc) - ensure_utc(gateway_now_utc)).total_seconds()


@dataclass(frozen=True)
class MinuteMap:
    """Twin minute ``m`` covers ``[anchor + m min, anchor + (m+1) min)``."""

    anchor_utc: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "anchor_utc", ensure_utc(self.anchor_utc).replace(second=0, microsecond=0))

    def minute(self, t: datetime) -> int:
        return math.floor((ensure_utc(t) - self.anchor_utc).total_seconds() / 60.0)

    def time(self, minute: int) -> datetime:
        return self.anchor_utc + timedelta(minutes=minute)
