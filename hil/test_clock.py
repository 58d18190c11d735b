"""The bench's governed clock: speed changes without jumps, sleeps in clock time, slowing down when
the event loop stalls and speeding back up."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from hil.clock import GovernedClock, Governor

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def test_a_speed_change_does_not_move_time() -> None:
    c = GovernedClock(START, 1000.0)
    time.sleep(0.02)
    before = c.monotonic()
    c.set_factor(10.0)
    after = c.monotonic()
    assert 0 <= after - before < 1.0  # well under what a jump would be (1000 s per real second)
    assert c.now_utc() >= START
    c.jump_wall_clock(3600)
    assert (c.now_utc() - START).total_seconds() - c.monotonic() == pytest.approx(3600)
    with pytest.raises(ValueError):
        c.set_factor(0)


@pytest.mark.asyncio
async def test_a_sleeper_is_re_timed_when_the_clock_speeds_up() -> None:
    c = GovernedClock(START, 60.0)
    sleeper = asyncio.create_task(c.sleep(300.0))  # 5 s real at x60 ...
    await asyncio.sleep(0.01)
    t = time.monotonic()
    c.set_factor(6000.0)  # ... but 0.05 s once the clock runs fast
    await asyncio.wait_for(sleeper, 2.0)
    assert time.monotonic() - t < 1.0


@pytest.mark.asyncio
async def test_sleep_is_clock_time_even_when_slowed() -> None:
    c = GovernedClock(START, 600.0)
    t0 = c.monotonic()
    sleeper = asyncio.create_task(c.sleep(60.0))  # 0.1 s real at x600
    await asyncio.sleep(0.01)
    c.set_factor(300.0)  # slower: the rest of the minute takes longer in real time
    await sleeper
    assert c.monotonic() - t0 >= 60.0


def test_the_governor_slows_down_and_recovers() -> None:
    c = GovernedClock(START, 2400.0)
    g = Governor(c, target=2400.0, recover_after_s=0.0)
    g.on_lag(0.02, 10)  # 0.8 clock min: fine
    assert c.factor == 2400.0 and not g.changes
    g.on_lag(0.5, 20)  # 20 clock min: too much
    assert c.factor <= 2400.0 * 0.7 and g.changes[-1]["minute"] == 20
    slowed = c.factor
    g._calm_since -= 10
    g.on_lag(0.01, 30)
    assert slowed < c.factor <= 2400.0
    for _ in range(50):
        g._calm_since -= 10
        g.on_lag(0.01, 40)
    assert c.factor == 2400.0
    for _ in range(50):
        g.on_lag(5.0, 50)
    assert c.factor == g.min_factor
