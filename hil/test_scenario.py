"""Scenario files: validation names the key, times parse, short versions keep their faults, and
the library covers every fault the bench can inject."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil import library
from hil.bench import plan_meals
from hil.errors import ScenarioError
from hil.scenario import FAULT_KINDS, load_scenario, parse_scenario, parse_when

BASE: dict[str, Any] = {
    "description": "test",
    "hours": 6,
    "assert": [{"kind": "no_reading_lost"}],
}


def scenario(**over: Any) -> Any:
    return parse_scenario({**BASE, **over}, name="t", source="t.toml")


def error_key(**over: Any) -> str:
    with pytest.raises(ScenarioError) as info:
        scenario(**over)
    assert str(info.value).startswith("t.toml: ")
    return info.value.key


def test_defaults() -> None:
    s = scenario()
    assert (s.patient, s.seed, s.mode, s.start_minute_of_day, s.run) == (
        "adult#001",
        1,
        "open-loop",
        360,
        "in-process",
    )
    assert s.devices == {"cgm": "ble-sim", "pump": "serial-sim", "heart_rate": "ble-sim"}
    assert s.minutes == 360 and s.short_hours == 6


@pytest.mark.parametrize(
    ("over", "key"),
    [
        ({"description": "  "}, "description"),
        ({"patient": "adult#099"}, "patient"),
        ({"days": 1}, "hours"),
        ({"hours": 0}, "hours"),
        ({"hours": "6"}, "hours"),
        ({"mode": "auto"}, "mode"),
        ({"start": "25:00"}, "start"),
        ({"speed": 0.5}, "speed"),
        ({"colour": "red"}, "colour"),
        ({"gateway": {"run": "docker"}}, "gateway.run"),
        ({"gateway": {"no_data_alarm_min": 2}}, "gateway.no_data_alarm_min"),
        ({"devices": {"cgm": "none"}}, "devices.cgm"),
        ({"devices": {"pump": "usb:1"}}, "devices.pump"),
        ({"devices": {"heart_rate": "serial:/dev/ttyUSB0"}}, "devices.heart_rate"),
        ({"meals": {"carb_error": 2}}, "meals.carb_error"),
        ({"meals": {"fixed": [{"at": "7:30"}]}}, "meals.fixed[0].grams"),
        ({"meals": {"fixed": [{"at": "noon", "grams": 20}]}}, "meals.fixed[0].at"),
        ({"exercise": [{"at": "+1h", "minutes": 30, "heart_rate_bpm": 300}]}, "exercise[0].heart_rate_bpm"),
        ({"faults": [{"kind": "meteor", "at": "+1h", "minutes": 5}]}, "faults[0].kind"),
        ({"faults": [{"kind": "disconnect", "at": "+1h"}]}, "faults[0].minutes"),
        (
            {"faults": [{"kind": "disconnect", "at": "+1h", "minutes": 5, "device": "meter"}]},
            "faults[0].device",
        ),
        (
            {"faults": [{"kind": "pump_occlusion", "at": "+1h", "minutes": 5, "status": 503}]},
            "faults[0].status",
        ),
        ({"faults": [{"kind": "cloud_error", "at": "+1h", "minutes": 5, "status": 404}]}, "faults[0].status"),
        ({"faults": [{"kind": "clock_jump", "at": "+1h", "jump_min": 0}]}, "faults[0].jump_min"),
        ({"assert": []}, "assert"),
        ({"assert": [{"kind": "time_below", "max_pct": 101}]}, "assert[0].max_pct"),
        ({"assert": [{"kind": "alarm_within", "alarm": "x", "fault": "disconnect"}]}, "assert[0].minutes"),
        ({"assert": [{"kind": "no_reading_lost", "cloud": "yes"}]}, "assert[0].cloud"),
    ],
)
def test_errors_name_the_key(over: dict[str, Any], key: str) -> None:
    assert error_key(**over) == key


@pytest.mark.parametrize(
    ("over", "key"),
    [
        # a fault on a device the scenario does not simulate
        ({"devices": {"heart_rate": "none"}, "faults": [{"kind": "disconnect", "device": "heart_rate", "at": "+1h", "minutes": 5}]}, "faults[0].device"),
        # notifications are a radio thing
        ({"devices": {"cgm": "serial-sim"}, "faults": [{"kind": "drop_notifications", "at": "+1h", "minutes": 5}]}, "faults[0].kind"),
        # SIGKILL needs a process; clock jumps need the gateway in the bench's process
        ({"gateway": {"run": "in-process"}, "faults": [{"kind": "gateway_kill", "at": "+1h"}]}, "faults[0].kind"),
        ({"gateway": {"run": "process"}, "devices": {"cgm": "serial-sim", "heart_rate": "none"},
          "faults": [{"kind": "clock_jump", "at": "+1h", "jump_min": 30}]}, "faults[0].kind"),
        # a gateway in its own process cannot reach the in-process radio
        ({"gateway": {"run": "process"}}, "devices.cgm"),
        ({"mode": "closed-loop", "devices": {"pump": "none"}}, "mode"),
        ({"assert": [{"kind": "alarm_within", "alarm": "x", "fault": "disconnect", "minutes": 5}]}, "assert[0].fault"),
        ({"faults": [{"kind": "disconnect", "device": "heart_rate", "at": "+1h", "minutes": 40}],
          "assert": [{"kind": "alarm_within", "alarm": "x", "fault": "disconnect", "device": "cgm", "minutes": 5}]}, "assert[0].fault"),
        ({"assert": [{"kind": "exercise_seen"}]}, "assert[0]"),
        ({"assert": [{"kind": "gateway_resumed"}]}, "assert[0]"),
    ],
)  # fmt: skip
def test_rules_across_tables(over: dict[str, Any], key: str) -> None:
    assert error_key(**over) == key


def test_a_kill_makes_the_gateway_a_process() -> None:
    s = scenario(
        devices={"cgm": "serial-sim", "heart_rate": "none"},
        faults=[{"kind": "gateway_kill", "at": "+1h", "down_min": 3}],
    )
    assert s.run == "process"
    assert s.faults[0].down_min == 3


def test_when() -> None:
    assert parse_when("+90m", 360) == 90
    assert parse_when("+1.5h", 360) == 90
    assert parse_when("+1d", 360) == 1440
    assert parse_when("07:30", 360) == 90
    assert parse_when("05:00", 360) == 23 * 60  # the first 05:00 after a 06:00 start
    assert parse_when("d2 03:00", 360) == 21 * 60
    for bad in ("7h", "+x", "24:00", "d0 06:00", "d1 05:00", ""):
        with pytest.raises(ValueError):
            parse_when(bad, 360)


@given(st.text(max_size=20), st.integers(0, 1439))
def test_when_never_crashes(text: str, start: int) -> None:
    with contextlib.suppress(ValueError):
        assert parse_when(text, start) >= 0


def test_truncated_keeps_what_starts_inside() -> None:
    s = scenario(
        hours=24,
        faults=[
            {"kind": "disconnect", "at": "+1h", "minutes": 300},
            {"kind": "disconnect", "at": "+10h", "minutes": 5},
        ],
        exercise=[{"at": "+2h", "minutes": 30}, {"at": "+20h", "minutes": 30}],
        meals={"random": False, "fixed": [{"at": "+3h", "grams": 20}, {"at": "+7h", "grams": 20}]},
    )
    t = s.truncated(4)
    assert t.hours == 4 and t.minutes == 240
    assert [f.minute for f in t.faults] == [60] and t.faults[0].minutes == 300
    assert [e.minute for e in t.exercise] == [120]
    assert [m.minute for m in t.meals.fixed] == [180]
    assert s.truncated(48) is s


def test_meals_plan_in_world_minutes() -> None:
    s = scenario(
        hours=24,
        seed=3,
        meals={
            "random": True,
            "p_missed_bolus": 1.0,
            "fixed": [{"at": "08:00", "grams": 30, "announced_g": 0}],
        },
    )
    meals = plan_meals(s)
    assert meals == sorted(meals, key=lambda m: m.minute)
    assert all(0 < m.minute < 1440 for m in meals)
    assert any(m.minute == 120 and m.eaten_g == 30 and m.announced_g == 0 for m in meals)
    big = [m for m in meals if m.eaten_g >= 30]
    assert big and all(m.announced_g == 0 for m in big)  # every main meal missed


def test_device_overrides_for_hardware() -> None:
    s = scenario().with_devices({"cgm": "ble:AA:BB:CC:DD:EE:FF", "pump": "serial:/dev/ttyUSB0"})
    assert s.devices["cgm"] == "ble:AA:BB:CC:DD:EE:FF" and s.sim_role("cgm") is None
    with pytest.raises(ScenarioError) as info:
        scenario().with_devices({"cgm": "wifi:1"})
    assert info.value.key == "--device cgm"
    with pytest.raises(ScenarioError):  # a device fault cannot be injected into a real sensor
        scenario(faults=[{"kind": "sensor_error", "at": "+1h", "minutes": 5}]).with_devices(
            {"cgm": "ble:AA:BB:CC:DD:EE:FF"}
        )


def test_files_errors(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text("description = 'x'\nhours = [")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(p)
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.toml")


# --- the library ----------------------------------------------------------------------------


def test_library_has_at_least_twelve_described_scenarios() -> None:
    scenarios = [load_scenario(p) for p in library()]
    assert len(scenarios) >= 12
    for s in scenarios:
        assert len(s.description) > 60, s.name
        assert s.name == Path(s.source).stem


def test_library_covers_every_fault() -> None:
    covered = {f.kind for p in library() for f in load_scenario(p).faults}
    assert covered == set(FAULT_KINDS)


def test_library_covers_meals_exercise_and_closed_loop() -> None:
    scenarios = [load_scenario(p) for p in library()]
    assert any(
        s.meals.carb_error > 0 and s.meals.p_missed_bolus > 0 and s.meals.p_unannounced_snack > 0
        for s in scenarios
    )
    assert any(s.exercise for s in scenarios)
    assert any(s.mode == "closed-loop" for s in scenarios)
    assert any(s.hours >= 7 * 24 for s in scenarios)  # a soak


@pytest.mark.parametrize("path", library(), ids=lambda p: p.stem)
def test_short_versions_keep_their_faults(path: Path) -> None:
    """What CI runs must exercise what the scenario is about (the soak excepted: it has its
    own full-length run)."""
    s = load_scenario(path)
    if s.hours >= 7 * 24:
        return
    short = s.truncated(s.short_hours)
    assert len(short.faults) == len(s.faults), f"{s.name}: faults after short_hours {s.short_hours}"
    assert short.short_hours <= 6
