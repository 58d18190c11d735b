"""Clocks: real time on a gateway, accelerated time on benches, hand-driven time in tests.

Everything that waits or stamps time takes a clock object instead of calling ``time`` directly,
so the same gateway code runs a day in under a minute on a bench. Two readings matter:

* ``now_utc()``: wall-clock time (UTC) used to stamp data. It can jump (NTP, a user setting the
  clock); code that must notice jumps compares it against ``monotonic()``.
* ``monotonic()``: seconds that never go backwards, for timeouts, intervals and staleness.

``ScaledClock`` runs ``factor`` times faster than real time from a chosen start; ``sleep`` waits
the correspondingly shorter real time, so real I/O (virtual radio, pty, HTTP on loopback) keeps
working underneath. ``ManualClock`` only moves when a test calls ``advance``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Protocol

from edgetwin.timeutil import ensure_utc, utc_now

__all__ = ["Clock", "ManualClock", "RealClock", "ScaledClock"]


class Clock(Protocol):
    def now_utc(self) -> datetime: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    @property
    def factor(self) -> float:
        """How many clock seconds pass per real second (1 on a gateway)."""
        ...


class RealClock:
    factor = 1.0

    def now_utc(self) -> datetime:
        return utc_now()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Accelerated time: ``factor`` clock seconds per real second, from ``start_utc``."""

    def __init__(self, start_utc: datetime, factor: float) -> None:
        if factor <= 0:
            raise ValueError("factor must be > 0")
        self._start = ensure_utc(start_utc, "start_utc")
        self._factor = float(factor)
        self._t0 = time.monotonic()
        self._offset_s = 0.0

    @property
    def factor(self) -> float:
        return self._factor

    def monotonic(self) -> float:
        return (time.monotonic() - self._t0) * self._factor

    def now_utc(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic() + self._offset_s)

    def jump_wall_clock(self, seconds: float) -> None:
        """Move the wall clock (only) by ``seconds``, as a badly set clock or NTP step would."""
        self._offset_s += seconds

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self._factor)


class ManualClock:
    """Time that moves only when told; ``sleep`` returns once ``advance`` has passed its deadline."""

    factor = 1.0

    def __init__(self, start_utc: datetime) -> None:
        self._start = ensure_utc(start_utc, "start_utc")
        self._mono = 0.0
        self._offset_s = 0.0
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self._mono

    def now_utc(self) -> datetime:
        return self._start + timedelta(seconds=self._mono + self._offset_s)

    def jump_wall_clock(self, seconds: float) -> None:
        self._offset_s += seconds

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("monotonic time cannot go backwards")
        self._mono += seconds
        due = [(t, f) for t, f in self._waiters if t <= self._mono]
        self._waiters = [(t, f) for t, f in self._waiters if t > self._mono]
        for _, fut in due:
            if not fut.done():
                fut.set_result(None)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._mono + seconds, fut))
        await fut
