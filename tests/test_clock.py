import asyncio
from datetime import UTC, datetime

import pytest

from edgetwin.clock import ManualClock, ScaledClock

T0 = datetime(2026, 11, 22, tzinfo=UTC)


def test_scaled_clock_runs_faster_and_sleeps_shorter() -> None:
    clock = ScaledClock(T0, factor=600.0)

    async def go() -> float:
        start = clock.monotonic()
        await clock.sleep(60.0)  # one clock minute = 0.1 s real
        return clock.monotonic() - start

    elapsed = asyncio.run(go())
    assert 55.0 <= elapsed < 600.0
    assert clock.now_utc() > T0


def test_manual_clock_wakes_sleepers_when_advanced_and_wall_clock_can_jump() -> None:
    clock = ManualClock(T0)
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep(300.0)
        woke.append(clock.monotonic())

    async def go() -> None:
        task = asyncio.create_task(sleeper())
        await asyncio.sleep(0)
        clock.advance(299.0)
        await asyncio.sleep(0)
        assert not woke
        clock.advance(1.0)
        await task

    asyncio.run(go())
    assert woke == [300.0]
    clock.jump_wall_clock(-3600.0)
    assert clock.now_utc() < T0 and clock.monotonic() == 300.0
    with pytest.raises(ValueError):
        clock.advance(-1.0)
