"""The bench's clock: accelerated time whose speed the bench lowers when the machine cannot keep up.

On an accelerated clock every real stall is many clock minutes: at x1800, half a second of a busy
machine (or of the gateway's own CPU work, harmless in real time) is 15 minutes without data, long
enough for a no-data alarm. :class:`GovernedClock` is a scaled clock (``factor`` clock seconds per
real second, like :class:`edgetwin.clock.ScaledClock`) whose factor can change while it runs,
without time ever jumping: a change re-bases the clock at the current instant. :class:`Governor`
measures how late the event loop wakes up and slows the clock when a stall costs more than
``max_stall_clock_min``, then speeds it back up towards the target while the loop keeps time. The
report gives the effective speed and every change.

The bench's world, devices and (in-process) gateway share one clock object; a gateway in its own
process keeps the fixed factor of its configuration.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from edgetwin.timeutil import ensure_utc

__all__ = ["GovernedClock", "Governor"]


class GovernedClock:
    """``factor`` clock seconds per real second from ``start_utc``; ``set_factor`` changes it."""

    def __init__(self, start_utc: datetime, factor: float) -> None:
        if factor <= 0:
            raise ValueError("factor must be > 0")
        self._start = ensure_utc(start_utc, "start_utc")
        self._factor = float(factor)
        self._real0 = time.monotonic()
        self._mono0 = 0.0
        self._offset_s = 0.0
        self._sleepers: set[asyncio.Future[None]] = set()

    @property
    def factor(self) -> float:
        return self._factor

    def set_factor(self, factor: float) -> None:
        if factor <= 0:
            raise ValueError("factor must be > 0")
        now = time.monotonic()
        self._mono0 += (now - self._real0) * self._factor
        self._real0 = now
        self._factor = float(factor)
        for fut in list(self._sleepers):  # wake every sleeper to re-time its rest at the new speed
            if not fut.done():
                fut.set_result(None)

    def monotonic(self) -> float:
        return self._mono0 + (time.monotonic() - self._real0) * self._factor

    def now_utc(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic() + self._offset_s)

    def jump_wall_clock(self, seconds: float) -> None:
        """Move the wall clock (only) by ``seconds``, as a badly set clock or an NTP step would."""
        self._offset_s += seconds

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of clock time, re-timed whenever the speed changes."""
        target = self.monotonic() + max(0.0, seconds)
        loop = asyncio.get_running_loop()
        while (left := target - self.monotonic()) > 0:
            fut: asyncio.Future[None] = loop.create_future()
            handle = loop.call_later(left / self._factor, _wake, fut)
            self._sleepers.add(fut)
            try:
                await fut
            finally:
                handle.cancel()
                self._sleepers.discard(fut)
        await asyncio.sleep(0)


@dataclass
class Governor:
    """Keeps a :class:`GovernedClock` as fast as the machine allows, up to ``target``."""

    clock: GovernedClock
    target: float
    min_factor: float = 300.0
    max_stall_clock_min: float = 6.0
    """A stall worth more clock minutes than this slows the clock down."""
    recover_after_s: float = 3.0
    """Real seconds without such a stall before the clock speeds up again."""
    changes: list[dict[str, Any]] = field(default_factory=list)
    held: bool = False
    """While held (``hold``), the clock runs at a slow factor and never speeds up by itself."""
    _calm_since: float = field(default_factory=time.monotonic)

    def hold(self, factor: float, minute: int, why: str) -> None:
        """Run slowly (e.g. while the gateway starts: real seconds of loading would otherwise be
        clock hours) until :meth:`release`."""
        self.held = True
        self._set(min(factor, self.clock.factor), minute, why)

    def release(self, minute: int) -> None:
        """Back to the target speed."""
        self.held = False
        self._calm_since = time.monotonic()
        if self.clock.factor != self.target:
            self._set(self.target, minute, "running")

    def on_lag(self, lag_s: float, minute: int) -> None:
        """Told how late (real seconds) the event loop woke up, at world ``minute``."""
        now = time.monotonic()
        cost_min = lag_s * self.clock.factor / 60.0
        if cost_min > self.max_stall_clock_min and not self.held:
            slower = max(
                self.min_factor, min(self.clock.factor * 0.7, self.max_stall_clock_min * 60.0 / lag_s)
            )
            if slower < self.clock.factor - 1e-9:
                self._set(slower, minute, f"a {lag_s:.2f} s stall cost {cost_min:.0f} clock min")
            self._calm_since = now
        elif (
            not self.held
            and now - self._calm_since >= self.recover_after_s
            and self.clock.factor < self.target
        ):
            self._set(min(self.target, self.clock.factor * 1.2), minute, "keeping time")
            self._calm_since = now

    def _set(self, factor: float, minute: int, why: str) -> None:
        self.clock.set_factor(factor)
        self.changes.append({"minute": minute, "factor": round(factor), "why": why})


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
