"""Time on the gateway: which clock runs, wall-clock jumps, device clocks that disagree, and
the mapping from UTC to the twin's minute clock.

* :func:`clock_from_config`: ``RealClock`` on a gateway; on benches a ``ScaledClock`` *anchored
  to real time* (clock time = ``start_utc + (real now − anchor_utc) × factor``), so a gateway
  restarted in the middle of an accelerated run finds the time where it would have been.
* :class:`WallClockGuard`: compares how far ``now_utc()`` moved with how far ``monotonic()``
  moved between two looks; a difference beyond ``tolerance_s`` is a wall-clock jump (NTP step,
  someone setting the clock), logged and reported. Intervals (staleness, watchdog, cycles) use
  the monotonic clock, so a jump can neither silence nor fake the no-data alarm.
* :class:`GatewayTime`: the time the gateway lives by. It follows the wall clock, but a jump the
  guard sees is absorbed (time carries on along the monotonic clock) until a live device reading
  agrees with the new wall time better than with the gateway's: then the step was a correction
  and is taken. So a clock set wrong neither makes live readings look stale or from the future
  nor fakes the no-data alarm, and a real correction is still followed.
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
    "GatewayTime",
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


class GatewayTime:
    """A :class:`~edgetwin.clock.Clock` over ``raw`` that absorbs wall-clock jumps (see the module
    docstring). Every ``now_utc()`` looks for a jump, so none is seen late; ``pop_jumps()`` hands
    the ones seen since the last call to the watchdog (which tells the patient)."""

    def __init__(self, raw: Clock, tolerance_s: float = 60.0) -> None:
        self.raw = raw
        self.guard = WallClockGuard(raw, tolerance_s)
        self.offset_s = 0.0
        """Seconds the raw wall clock is ahead of this time (the jumps not taken)."""
        self._new: list[ClockJump] = []

    @property
    def factor(self) -> float:
        return self.raw.factor

    def monotonic(self) -> float:
        return self.raw.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self.raw.sleep(seconds)

    def now_utc(self) -> datetime:
        jump = self.guard.check()
        if jump is not None:
            self.offset_s += jump.jump_s
            self._new.append(jump)
        return self.raw.now_utc() - timedelta(seconds=self.offset_s)

    def pop_jumps(self) -> list[ClockJump]:
        self.now_utc()
        out, self._new = self._new, []
        return out

    def witness(self, device_time_utc: datetime) -> bool:
        """A live reading's device time: True when it showed the absorbed jump was a correction
        (the device agrees with the raw wall clock, not with this time), which is then taken."""
        if self.offset_s == 0.0:
            return False
        mine = abs(device_skew_s(device_time_utc, self.now_utc()))
        wall = abs(device_skew_s(device_time_utc, self.raw.now_utc()))
        if wall <= SKEW_WARN_S < mine:
            log.warning(
                "a device agrees with the system clock's new time: taking it (a %+.0f s step)",
                self.offset_s,
                extra={"event": "wall_clock_taken", "jump_s": self.offset_s},
            )
            self.offset_s = 0.0
            return True
        return False


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
