"""The gateway's small parts: the test trend twin, JSON logs, notifiers, systemd notify,
the minute map and the wall-clock guard."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgetwin.clock import ManualClock
from edgetwin.errors import InputDataError
from edgetwin.gateway import systemd
from edgetwin.gateway.alarms import AlarmCenter, CommandNotifier
from edgetwin.gateway.logs import JsonFormatter
from edgetwin.gateway.timekeeping import MinuteMap, WallClockGuard, device_skew_s
from edgetwin.messages import Alarm
from tests.gateway.helpers import START, CollectingNotifier
from tests.gateway.trend_twin import TrendTwin


def test_trend_twin_follows_a_trend_and_widens_its_band() -> None:
    twin = TrendTwin()
    with pytest.raises(InputDataError):
        twin.forecast()
    for i in range(8):
        assert twin.assimilate_cgm(5 * i, 100.0 + 5 * i) == "assimilated"
    fc = twin.forecast(120)
    assert list(fc.minutes[:2]) == [40, 45] and fc.minutes[-1] == 35 + 120
    assert fc.p50_mg_dl[0] > 135 and all(fc.p50_mg_dl[1:] >= fc.p50_mg_dl[:-1])  # still rising
    width = fc.p90_mg_dl - fc.p10_mg_dl
    assert all(width[1:] >= width[:-1]) and width[0] > 0


def test_trend_twin_dedupes_refuses_bad_values_and_round_trips() -> None:
    twin = TrendTwin()
    assert twin.assimilate_cgm(0, 120.0) == "assimilated"
    assert twin.assimilate_cgm(0, 120.2) == "duplicate"
    assert twin.assimilate_cgm(0, 150.0) == "conflict"
    assert twin.assimilate_cgm(5, None) == "unusable"
    assert twin.assimilate_cgm(5, 130.0, usable=False) == "unusable"
    assert twin.record_insulin(3, 1.5, event_id="insulin:1") == "recorded"
    assert twin.record_insulin(3, 1.5, event_id="insulin:1") == "duplicate"
    assert twin.record_carbs(4, 40.0, event_id="carbs:1") == "recorded"
    again = TrendTwin.restore(twin.checkpoint())
    assert again.readings == twin.readings and again.insulin == twin.insulin and again.carbs == twin.carbs
    assert again.minute == twin.minute
    with pytest.raises(InputDataError):
        TrendTwin.restore(b"\x93garbage")


@given(st.lists(st.tuples(st.integers(0, 2000), st.floats(40, 400)), min_size=1, max_size=60))
def test_trend_twin_forecast_is_ordered_and_bounded(points: list[tuple[int, float]]) -> None:
    twin = TrendTwin()
    for m, v in points:
        twin.assimilate_cgm(m, v)
    fc = twin.forecast(60)
    assert (fc.p10_mg_dl <= fc.p50_mg_dl).all() and (fc.p50_mg_dl <= fc.p90_mg_dl).all()
    assert (fc.p10_mg_dl >= 39).all() and (fc.p90_mg_dl <= 400).all()


def test_json_log_lines_carry_the_event_fields() -> None:
    record = logging.LogRecord(
        "edgetwin.gateway", logging.WARNING, __file__, 1, "clock %s", ("jumped",), None
    )
    record.event = "wall_clock_jump"
    record.jump_s = 3600.0
    record.when = START
    doc = json.loads(JsonFormatter().format(record))
    assert doc["event"] == "wall_clock_jump" and doc["jump_s"] == 3600.0 and doc["level"] == "warning"
    assert doc["message"] == "clock jumped" and doc["when"] == START.isoformat()
    assert doc["time"].endswith("+00:00")


def test_minute_map_and_skew() -> None:
    mm = MinuteMap(START + timedelta(seconds=42))
    assert mm.anchor_utc == START
    assert mm.minute(START + timedelta(minutes=5, seconds=59)) == 5
    assert mm.minute(START - timedelta(seconds=1)) == -1
    assert mm.time(90) == START + timedelta(minutes=90)
    assert device_skew_s(START + timedelta(minutes=2), START) == 120.0


def test_gateway_time_absorbs_a_jump_until_a_device_confirms_it() -> None:
    from edgetwin.gateway.timekeeping import GatewayTime

    raw = ManualClock(START)
    t = GatewayTime(raw)
    raw.advance(600)
    assert t.now_utc() == START + timedelta(minutes=10) and t.pop_jumps() == []
    raw.jump_wall_clock(-3600)  # someone sets the clock an hour back
    assert t.now_utc() == START + timedelta(minutes=10)  # the gateway's time carries on
    assert [round(j.jump_s) for j in t.pop_jumps()] == [-3600] and t.pop_jumps() == []
    raw.advance(300)
    # a live reading stamped with the true time confirms the gateway, not the wall clock
    assert not t.witness(START + timedelta(minutes=15))
    assert t.now_utc() == START + timedelta(minutes=15)
    raw.jump_wall_clock(7200)  # NTP now corrects the wall clock to a new time; a device agrees
    t.now_utc()
    assert t.witness(raw.now_utc()) and t.offset_s == 0.0
    assert t.now_utc() == raw.now_utc()


def test_wall_clock_guard_sees_jumps_but_not_time_passing() -> None:
    clock = ManualClock(START)
    guard = WallClockGuard(clock, tolerance_s=60)
    clock.advance(3600)
    assert guard.check() is None
    clock.jump_wall_clock(-7200)
    jump = guard.check()
    assert jump is not None and jump.jump_s == pytest.approx(-7200)


@pytest.mark.asyncio
async def test_alarms_repeat_on_schedule_until_resolved() -> None:
    clock = ManualClock(START)
    note = CollectingNotifier()
    stored: list[Alarm] = []

    async def store(a: Alarm) -> None:
        stored.append(a)

    center = AlarmCenter(clock, [note], store, repeat_min=5)
    assert await center.raise_alarm("no_glucose_data", "no data for 20 min")
    clock.advance(60)
    assert not await center.raise_alarm("no_glucose_data", "no data for 21 min")  # not due yet
    assert center.active["no_glucose_data"].message == "no data for 21 min"
    clock.advance(5 * 60)
    assert await center.raise_alarm("no_glucose_data", "no data for 26 min")
    assert await center.resolve("no_glucose_data", "data again")
    assert not await center.resolve("no_glucose_data", "data again")
    assert note.kinds() == ["no_glucose_data", "no_glucose_data", "no_glucose_data_resolved"]
    assert [a.kind for a in stored] == note.kinds()


@pytest.mark.asyncio
async def test_an_alarm_reaches_the_patient_even_when_the_store_fails() -> None:
    note = CollectingNotifier()

    async def broken(a: Alarm) -> None:
        raise OSError("disk gone")

    center = AlarmCenter(ManualClock(START), [note], broken)
    assert await center.raise_alarm("storage_failed", "cannot save")
    assert note.kinds() == ["storage_failed"]


@pytest.mark.asyncio
async def test_command_notifier_runs_the_program_with_the_alarm_text(tmp_path: Path) -> None:
    out = tmp_path / "got.txt"
    script = tmp_path / "alert.py"
    script.write_text(f"import sys; open({str(out)!r}, 'w').write(sys.argv[-1])\n")
    await CommandNotifier(f"{sys.executable} {script}").notify(
        Alarm(START, "k", "check the sensor", "urgent")
    )
    assert out.read_text() == "urgent: check the sensor"
    await CommandNotifier("/nonexistent/program").notify(Alarm(START, "k", "x"))  # logged, not raised


def test_systemd_notify_reaches_the_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False  # not under systemd: nothing to do
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert systemd.notify("READY=1")
        assert server.recv(100) == b"READY=1"
    monkeypatch.setenv("WATCHDOG_USEC", "120000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval_s() == 60.0


def test_a_device_resumes_at_the_first_hole_not_after_the_newest_reading() -> None:
    from edgetwin.gateway.runtime import contiguous_resume
    from edgetwin.messages import CgmReading

    def r(seq: int) -> CgmReading:
        return CgmReading(START + timedelta(minutes=5 * seq), 100.0, "dev", sequence=seq)

    # a back-fill of 5..8 was cut short by a kill after live reading 12 was stored
    got = contiguous_resume([r(s) for s in (0, 1, 2, 3, 4, 12)])
    assert got.last_sequence == 4 and got.last_time_utc == START + timedelta(minutes=20)
    assert contiguous_resume([r(s) for s in range(7)]).last_sequence == 6
    assert contiguous_resume([]).last_sequence is None


@pytest.mark.asyncio
async def test_stop_cancels_again_a_task_that_swallowed_its_cancellation() -> None:
    from edgetwin.gateway.runtime import cancel_and_wait

    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # what asyncio.wait_for can do on Python 3.11

    async def plain() -> None:
        await asyncio.sleep(3600)

    tasks = [asyncio.create_task(stubborn(), name="stubborn"), asyncio.create_task(plain(), name="plain")]
    await asyncio.sleep(0)
    assert await cancel_and_wait(tasks) == []
    assert swallowed == 1 and all(t.done() for t in tasks)
