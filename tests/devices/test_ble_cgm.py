"""The real BLE CGM driver against the simulated CGMS peripheral over bumble's virtual link."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from devices.ble.cgm import BleCgm
from devices.sim.bench import SimBench
from devices.sim.faults import Fault
from devices.timing import Backoff
from edgetwin.clock import ScaledClock
from edgetwin.messages import CgmReading, CgmStatus
from tests.devices.conftest import FAST, T0

pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio]


async def collect(bench: SimBench, cgm: BleCgm, until_minute: int) -> list[CgmReading]:
    out: list[CgmReading] = []
    gen: AsyncIterator[CgmReading] = cgm.readings()

    async def consume() -> None:
        async for reading in gen:
            out.append(reading)

    task = asyncio.create_task(consume())
    await asyncio.wait_for(bench.world.wait_minute(until_minute), 40)
    # Give the driver time to drain what the sensor sent in the last minutes.
    target = {r.offset_min for r in bench.world.cgm.records if r.world_minute <= until_minute - 15}
    for _ in range(200):
        if target <= {r.sequence for r in out}:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await gen.aclose()
    return out


def driver(bench: SimBench, clock: ScaledClock) -> BleCgm:
    return BleCgm(
        bench.address("cgm"),
        backend=bench.backend,
        clock=clock,
        io_timeout_s=2.0,
        backoff=Backoff(initial_s=60.0, max_s=600.0),
    )


def check_against_sensor(bench: SimBench, readings: list[CgmReading], until_minute: int) -> None:
    by_offset = {r.sequence: r for r in readings}
    assert len(by_offset) == len(readings), "no duplicates"
    for rec in bench.world.cgm.records:
        if rec.world_minute > until_minute - 15:
            continue
        got = by_offset.get(rec.offset_min)
        assert got is not None, f"reading at offset {rec.offset_min} (minute {rec.world_minute}) lost"
        assert got.glucose_mg_dl == rec.glucose_mg_dl
        # Offsets are anchored to wall-clock time by one status read; at 14400x a millisecond of
        # radio latency is four clock minutes (at real time it is nothing).
        drift = abs((got.time_utc - bench.world.time_at(rec.world_minute)).total_seconds())
        assert drift <= 15 * 60


async def test_streams_a_day_in_accelerated_time() -> None:
    clock = ScaledClock(T0, FAST)
    async with SimBench(clock, kinds=("cgm",)) as bench:
        cgm = driver(bench, clock)
        readings = await collect(bench, cgm, 1440)
    assert len(readings) >= 470  # 480 samples a day at 3 min, minus the last quarter hour
    check_against_sensor(bench, readings, 1440)
    assert cgm.stats.crc_errors == 0 and cgm.stats.connections == 1 and cgm.e2e
    assert all(r.usable for r in readings)
    seqs = [r.sequence for r in readings if not r.backfilled]
    assert seqs == sorted(seqs)


async def test_dropped_and_corrupted_notifications_are_back_filled() -> None:
    clock = ScaledClock(T0, FAST)
    async with SimBench(clock, kinds=("cgm",)) as bench:
        bench.world.faults.add(Fault.DROP_NOTIFICATIONS, 200, 260, device="cgm")
        bench.world.faults.add(Fault.BAD_CRC, 400, 430, device="cgm")
        cgm = driver(bench, clock)
        readings = await collect(bench, cgm, 600)
    check_against_sensor(bench, readings, 600)
    assert cgm.stats.crc_errors >= 9 and cgm.stats.gaps >= 2
    dropped = [r for r in readings if r.backfilled and 200 <= (r.time_utc - T0).total_seconds() / 60 < 260]
    assert len(dropped) >= 15


async def test_disconnect_reconnects_with_backoff_and_back_fills() -> None:
    clock = ScaledClock(T0, FAST)
    async with SimBench(clock, kinds=("cgm",)) as bench:
        bench.world.faults.add(Fault.DISCONNECT, 300, 420, device="cgm")
        cgm = driver(bench, clock)
        readings = await collect(bench, cgm, 720)
    check_against_sensor(bench, readings, 720)
    assert cgm.stats.connections >= 2
    # Judged by the sensor's own minute (session offset), not by time_utc: at x14400 a loaded
    # machine's tenth of a second in the re-anchoring read is 24 clock minutes of skew.
    start = bench.world.cgm.session_start_minute
    gap = [r for r in readings if r.sequence is not None and 305 <= start + r.sequence < 420]
    assert gap and all(r.backfilled for r in gap)


async def test_warmup_error_and_new_session_reanchored() -> None:
    clock = ScaledClock(T0, FAST)
    async with SimBench(clock, kinds=("cgm",)) as bench:
        bench.world.faults.add(Fault.SENSOR_ERROR, 500, 530, device="cgm")
        bench.world.faults.add(Fault.SENSOR_WARMUP, 700, device="cgm")
        cgm = driver(bench, clock)
        readings = await collect(bench, cgm, 960)
    errors = [r for r in readings if CgmStatus.SENSOR_MALFUNCTION in r.status]
    assert errors and all(r.glucose_mg_dl is None and not r.usable for r in errors)
    warm = [r for r in readings if CgmStatus.WARMUP in r.status]
    assert warm and all(r.glucose_mg_dl is None for r in warm)
    # After the new session the offsets restart, yet times stay on the wall clock.
    late = [r for r in readings if r.usable and r.sequence is not None and r.sequence < 300]
    assert late and cgm.stats.sessions_anchored == 2
    for r in late:
        minute = bench.world.cgm.session_start_minute + r.sequence
        assert abs((r.time_utc - bench.world.time_at(minute)).total_seconds()) <= 15 * 60


async def test_absent_device_is_reported_unavailable_not_hung() -> None:
    from devices.errors import DeviceUnavailableError

    clock = ScaledClock(T0, FAST)
    async with SimBench(clock, kinds=("cgm",)) as bench:
        cgm = BleCgm("C0:00:00:00:09:99", backend=bench.backend, clock=clock, io_timeout_s=0.5)
        with pytest.raises(DeviceUnavailableError):
            async with cgm.link.connected():
                pass
        # The quirk fix: a later connect to a present device still works.
        ok = driver(bench, clock)
        async with ok.link.connected() as client:
            assert client.is_connected
