"""The pipeline end to end on an accelerated clock: store before acknowledge, restart and resume,
full and corrupt stores, the watchdog, alarms, device clocks and wall-clock jumps."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from edgetwin.clock import ScaledClock
from edgetwin.gateway import Gateway, GatewayLockedError, StartupError
from edgetwin.gateway.devices import OpenedDevices
from edgetwin.messages import CgmReading
from edgetwin.store import Store, StoreCorruptError, StoreFullError
from tests.gateway.helpers import START, CollectingNotifier, ScriptedCgm, make_config
from tests.gateway.trend_twin import TrendTwinFactory

FAST = 3000.0  # 5 clock minutes in 0.1 s


def _gateway(tmp_path: Path, src: ScriptedCgm, clock: ScaledClock, notifier: CollectingNotifier | None = None,
             **tables: dict[str, object]) -> Gateway:  # fmt: skip
    cfg = make_config(tmp_path, **tables)
    return Gateway(
        cfg,
        clock=clock,
        devices=OpenedDevices(sources={"cgm": src}),
        notifiers=[notifier] if notifier else [],
        twin_factory=TrendTwinFactory(),  # these tests are about the pipeline, so a cheap twin
    )


async def _run_for(clock: ScaledClock, minutes: float) -> None:
    await asyncio.sleep(minutes * 60.0 / clock.factor)


async def _until(cond: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Wait (real time) until ``cond()`` holds: accelerated clocks run late on a loaded machine."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def _stored(path: Path) -> list[CgmReading]:
    with Store.open(path, readonly=True, integrity="none") as s:
        return s.cgm_between(START - timedelta(days=1), START + timedelta(days=30))


@pytest.mark.asyncio
async def test_a_reading_is_acknowledged_only_once_it_is_durable(tmp_path: Path) -> None:
    clock = ScaledClock(START, FAST)
    src = ScriptedCgm(clock)
    seen_in_store: list[bool] = []

    def check(record: CgmReading, ack: object) -> None:
        # A second connection (as after a crash) must already find the acknowledged reading.
        with Store.open(tmp_path / "edgetwin.db", readonly=True, integrity="none") as s:
            seen_in_store.append(
                record in s.cgm_between(record.time_utc, record.time_utc + timedelta(seconds=1))
            )

    src.ack_hook = check
    async with _gateway(tmp_path, src, clock) as gw:
        await _until(lambda: len(seen_in_store) >= 5)
        assert gw.state.latest is not None
    assert len(seen_in_store) >= 5 and all(seen_in_store)


@pytest.mark.asyncio
async def test_restart_resumes_the_twin_and_the_device_without_loss_or_duplicates(tmp_path: Path) -> None:
    clock = ScaledClock(START, FAST)
    src = ScriptedCgm(clock)
    async with _gateway(tmp_path, src, clock) as gw:
        await _run_for(clock, 60)
        minute_before = gw.twin.minute if gw.twin else -1
    first = _stored(tmp_path / "edgetwin.db")
    await _run_for(clock, 30)  # the gateway is down for a while
    src2 = ScriptedCgm(clock)
    async with _gateway(tmp_path, src2, clock) as gw2:
        assert gw2.state.restored_from_utc is not None
        assert gw2.twin is not None and gw2.twin.minute >= minute_before
        await _run_for(clock, 30)
        assert gw2.state.forecast is not None
    stored = _stored(tmp_path / "edgetwin.db")
    seqs = [r.sequence for r in stored]
    assert seqs == list(range(len(seqs)))  # contiguous, no duplicates
    assert len(stored) > len(first)
    assert stored[: len(first)] == first


@pytest.mark.asyncio
async def test_a_second_gateway_on_the_same_data_is_refused(tmp_path: Path) -> None:
    clock = ScaledClock(START, FAST)
    async with _gateway(tmp_path, ScriptedCgm(clock), clock):
        with pytest.raises(GatewayLockedError):
            await _gateway(tmp_path, ScriptedCgm(clock), clock).start()


@pytest.mark.asyncio
async def test_a_corrupt_store_is_reported_and_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "edgetwin.db"
    db.write_bytes(b"not a database at all " * 500)
    before = db.read_bytes()
    clock = ScaledClock(START, FAST)
    with pytest.raises(StartupError) as info:
        await _gateway(tmp_path, ScriptedCgm(clock), clock).start()
    assert isinstance(info.value.cause, StoreCorruptError)
    assert db.read_bytes() == before
    # the lock was released: a repaired store can be started at once
    db.unlink()
    async with _gateway(tmp_path, ScriptedCgm(clock), clock):
        pass


@pytest.mark.asyncio
async def test_a_truncated_store_is_reported_and_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "edgetwin.db"
    clock = ScaledClock(START, FAST)
    async with _gateway(tmp_path, ScriptedCgm(clock), clock):
        await _run_for(clock, 60)
    size = db.stat().st_size
    with open(db, "r+b") as fh:
        fh.truncate(size // 2)
    before = db.read_bytes()
    with pytest.raises(StartupError, match="store") as info:
        await _gateway(tmp_path, ScriptedCgm(clock), clock).start()
    assert isinstance(info.value.cause, StoreCorruptError)
    assert db.read_bytes() == before


def _fill(db: Path, cap: int) -> int:
    """Fill a store up to ``cap`` bytes with readings of another device; returns how many fit."""
    n = 0
    with Store.open(db, max_size_bytes=cap) as s:
        for batch in (200, 1):
            try:
                while True:
                    s.add_many(
                        CgmReading(
                            START - timedelta(days=2, minutes=-(n + i)), 100.0, "filler", sequence=n + i
                        )
                        for i in range(batch)
                    )
                    n += batch
            except StoreFullError:
                pass
    return n


@pytest.mark.asyncio
async def test_a_full_store_raises_an_alarm_acknowledges_nothing_unsaved_and_keeps_data(
    tmp_path: Path,
) -> None:
    db = tmp_path / "edgetwin.db"
    filled = _fill(db, 2**20)
    clock = ScaledClock(START, FAST)
    src = ScriptedCgm(clock)
    note = CollectingNotifier()
    async with _gateway(tmp_path, src, clock, note, gateway={"max_store_mb": 1}) as gw:
        await _until(
            lambda: "storage_full" in note.kinds() and gw.health["cgm"].state == "waiting for storage"
        )
        assert gw.state.store_state == "full"
        assert gw.health["cgm"].state == "waiting for storage"
        doc = await __import__("edgetwin.gateway.status", fromlist=["x"]).status_document(gw)
        assert doc["store"]["state"] == "full"
    acked = [r for r, a in src.acks]
    with Store.open(db, readonly=True) as s:
        assert s.counts()["cgm"] == filled + len(acked)
        stored = set(s.cgm_between(START - timedelta(days=1), START + timedelta(days=1)))
    assert set(acked) <= stored
    # Room again (the cap lifted): the device resumes from what the store holds, nothing lost.
    src2 = ScriptedCgm(clock)
    async with _gateway(tmp_path, src2, clock, note) as gw:
        await _until(lambda: gw.state.store_state == "ok" and len(src2.acks) >= 4)
    seqs = [r.sequence for r in _stored(db) if r.device_id == "scripted-cgm"]
    assert seqs == list(range(len(seqs))) and len(seqs) >= 4


@pytest.mark.asyncio
async def test_watchdog_restarts_a_stalled_device_and_the_no_data_alarm_repeats(tmp_path: Path) -> None:
    clock = ScaledClock(START, FAST)
    src = ScriptedCgm(clock, hang_after=1)
    note = CollectingNotifier()
    wd = {"device_stall_min": 2, "no_data_alarm_min": 5, "alarm_repeat_min": 1}
    gw = _gateway(tmp_path, src, clock, note, watchdog=wd)
    gw.min_stall_real_s = 0.01  # this scripted source connects instantly
    async with gw:
        await _until(lambda: gw.health["cgm"].restarts >= 2 and note.kinds().count("no_glucose_data") >= 3)
        assert gw.health["cgm"].restarts >= 2
        assert src.connections >= 3
        sounded = note.kinds().count("no_glucose_data")
        assert sounded >= 3  # repeats while the data stay away: never silent
        assert gw.alarms.active["no_glucose_data"].severity == "urgent"
        src.hang_after = None  # the sensor comes back
        await _until(lambda: "no_glucose_data_resolved" in note.kinds())
        assert "no_glucose_data" not in gw.alarms.active
    with Store.open(tmp_path / "edgetwin.db", readonly=True) as s:
        kinds = [a.alarm.kind for a in s.alarms(START - timedelta(days=1), START + timedelta(days=1))]
    assert kinds.count("no_glucose_data") >= sounded  # every sounding is in the store too


@pytest.mark.asyncio
async def test_readings_from_a_device_clock_in_the_future_are_kept_but_not_used(tmp_path: Path) -> None:
    clock = ScaledClock(START, FAST)
    src = ScriptedCgm(clock, skew=timedelta(minutes=20))
    note = CollectingNotifier()
    async with _gateway(tmp_path, src, clock, note) as gw:
        await _until(lambda: "device_clock_cgm" in gw.alarms.active and len(src.acks) >= 4)
        assert gw.state.latest is None  # nothing given to the twin or shown as current
        assert gw.health["cgm"].clock_skew_s is not None and gw.health["cgm"].clock_skew_s > 1000
        assert "device_clock_cgm" in gw.alarms.active
    assert "device_clock_cgm" in note.kinds()
    assert len(_stored(tmp_path / "edgetwin.db")) == len(src.acks) >= 4


@pytest.mark.asyncio
async def test_a_wall_clock_jump_is_detected_and_does_not_fake_a_data_loss(tmp_path: Path) -> None:
    clock = ScaledClock(START, FAST)
    src = ScriptedCgm(clock)
    note = CollectingNotifier()
    async with _gateway(tmp_path, src, clock, note) as gw:
        await _run_for(clock, 10)
        clock.jump_wall_clock(3 * 3600.0)
        await _until(lambda: gw.state.clock_jumps == 1)
        assert "wall_clock_jump" in gw.alarms.active
        await _run_for(clock, 10)
        assert gw.state.clock_jumps == 1
    assert "no_glucose_data" not in note.kinds()


@pytest.mark.asyncio
async def test_real_drivers_on_simulated_devices_over_the_virtual_radio_and_a_pty(tmp_path: Path) -> None:
    from edgetwin.gateway.demo import warm_up

    warm_up("adult#001")  # load the model kernels and the radio stack before a clock that runs 4000x
    clock = ScaledClock(START, 2000.0)
    devs = {"cgm": "ble-sim:cgm", "pump": "serial-sim:pump", "heart_rate": "ble-sim:heart"}
    cfg = make_config(tmp_path, devices=devs, sim={"seed": 2})
    async with Gateway(cfg, clock=clock, twin_factory=TrendTwinFactory()) as gw:  # the drivers are the point
        await _run_for(clock, 4 * 60)
        assert gw.devices.world is not None
        await _until(lambda: all(gw.health[r].records > 10 for r in ("cgm", "pump", "heart_rate")), 30)
        for role in ("cgm", "pump", "heart_rate"):
            assert gw.health[role].state == "ok"
        assert gw.health["cgm"].device_id.startswith("ble:")
        assert gw.health["pump"].device_id.startswith("serial:")
        assert gw.state.forecast is not None
        assert "no_glucose_data" not in gw.alarms.active
    async with Gateway(dataclasses.replace(cfg), clock=clock, twin_factory=TrendTwinFactory()) as gw:
        assert gw.state.restored_from_utc is not None
        await _run_for(clock, 60)
        await _until(lambda: gw.health["cgm"].records > 10, 30)
    with Store.open(tmp_path / "edgetwin.db", readonly=True) as s:
        cgm = s.cgm_between(START - timedelta(days=1), START + timedelta(days=2))
        insulin = s.insulin_between(START - timedelta(days=1), START + timedelta(days=2))
        statuses = s.pump_status_between(START - timedelta(days=1), START + timedelta(days=2))
        hr = s.heart_rate_between(START - timedelta(days=1), START + timedelta(days=2))
    keys = [(r.device_id, r.sequence, r.time_utc) for r in cgm]
    assert len(keys) == len(set(keys))
    assert len(cgm) >= 5 * 20 * 0.8  # a Dexcom reading every 3 min over ~5 h
    assert sum(d.units for d in insulin) > 3.0
    assert len(statuses) >= 10 and len(hr) >= 10


@pytest.mark.asyncio
async def test_a_taken_status_port_stops_the_start_cleanly(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        clock = ScaledClock(START, FAST)
        with pytest.raises(StartupError, match=f"127.0.0.1:{port}"):
            await _gateway(tmp_path, ScriptedCgm(clock), clock, status={"port": port}).start()
    async with _gateway(tmp_path, ScriptedCgm(clock), clock) as gw:  # lock and store were released
        assert gw.status_port
