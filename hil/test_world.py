"""The bench world: ground truth, the pump's command log, exercise in the heart-rate band."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devices.codecs.ids import IdsResponseCode, TherapyControlState
from devices.sim.faults import Fault
from edgetwin.clock import ManualClock
from edgetwin.virtual.scenario import MealEvent
from hil.scenario import ExerciseBout
from hil.world import RAMP_MIN, BenchWorld

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def world(**kw: object) -> BenchWorld:
    return BenchWorld(ManualClock(START), patient="adult#001", seed=1, **kw)  # type: ignore[arg-type]


def test_truth_is_recorded_every_minute() -> None:
    w = world(meals=[MealEvent(10, 50.0, 50.0)])
    w.advance(120)
    assert len(w.truth_bg) == len(w.truth_gsub) == len(w.insulin_u) == len(w.carbs_g) == 121
    assert w.carbs_g[11] == 50.0 and sum(w.carbs_g) == 50.0  # eaten during minute 10
    delivered = w.pump.delivered_basal_total_u + w.pump.delivered_bolus_total_u
    assert sum(w.insulin_u) == pytest.approx(delivered)
    assert max(w.truth_bg[30:]) > w.truth_bg[0] + 20  # the meal shows in plasma glucose


def test_who_commanded_the_pump() -> None:
    w = world(meals=[MealEvent(5, 60.0, 60.0), MealEvent(30, 40.0, 0.0)])
    w.advance(10)
    assert w.pump.set_temp_basal(2.0, 30) is IdsResponseCode.SUCCESS  # a control-point write
    w.advance(30)
    cmds = w.recording_pump.commands
    assert [(c.source, c.kind, c.applied) for c in cmds] == [
        ("patient", "bolus", True),
        ("gateway", "temp_basal", True),
    ]
    assert cmds[0].units == pytest.approx(60.0 / w.therapy.carb_ratio_g_per_u, abs=0.05)
    assert cmds[1].rate_u_per_h == 2.0 and cmds[1].duration_min == 30 and cmds[1].minute == 10


def test_unconfirmed_commands_are_answered_but_not_applied() -> None:
    w = world(meals=[])
    w.faults.add(Fault.UNCONFIRMED_COMMANDS, 0, 60, device="pump")
    w.advance(1)
    assert w.pump.set_temp_basal(2.0, 30) is IdsResponseCode.SUCCESS
    code, _, _ = w.pump.set_bolus(1.0)
    assert code is IdsResponseCode.SUCCESS
    assert w.pump.set_therapy_state(TherapyControlState.STOP) is IdsResponseCode.SUCCESS
    assert [(c.kind, c.response, c.applied) for c in w.recording_pump.commands] == [
        ("temp_basal", "SUCCESS", False),
        ("bolus", "SUCCESS", False),
        ("therapy_state", "SUCCESS", False),
    ]
    assert w.pump.temp_basal is None and not w.pump.bolusing


def test_a_command_repeated_in_the_same_minute_is_still_applied() -> None:
    # The same temp basal twice (a retry) and a second suspend leave the pump as asked: applied,
    # not "success without applying" (which only the unconfirmed-commands fault produces).
    w = world(meals=[])
    w.advance(1)
    assert w.pump.set_temp_basal(0.5, 30) is IdsResponseCode.SUCCESS
    assert w.pump.set_temp_basal(0.5, 30) is IdsResponseCode.SUCCESS
    assert w.pump.set_therapy_state(TherapyControlState.PAUSE) is IdsResponseCode.SUCCESS
    assert w.pump.set_therapy_state(TherapyControlState.PAUSE) is IdsResponseCode.SUCCESS
    assert [(c.kind, c.applied) for c in w.recording_pump.commands] == [
        ("temp_basal", True),
        ("temp_basal", True),
        ("therapy_state", True),
        ("therapy_state", True),
    ]


def test_refused_commands_are_logged_as_not_applied() -> None:
    w = world(meals=[])
    w.advance(1)
    assert w.pump.set_temp_basal(99.0, 30) is IdsResponseCode.PARAMETER_OUT_OF_RANGE
    assert [(c.kind, c.applied) for c in w.recording_pump.commands] == [("temp_basal", False)]


def test_exercise_raises_the_heart_rate_with_a_ramp() -> None:
    w = world(meals=[], exercise=(ExerciseBout(30, 40, 150.0),))
    heart = w.heart
    w.advance(29)
    assert heart.measurement().heart_rate_bpm < 100
    w.advance(1 + int(RAMP_MIN) + 5)
    assert heart.measurement().heart_rate_bpm > 135
    w.advance(40)
    assert heart.measurement().heart_rate_bpm < 100


def test_the_sensor_log_spans_sessions() -> None:
    w = world(meals=[])
    w.faults.add(Fault.SENSOR_WARMUP, 60, 61, device="cgm")
    w.advance(240)
    sessions = {e.session for e in w.sensor_log}
    assert sessions == {1, 2}
    assert len(w.cgm.records) < len(w.sensor_log)  # the sensor forgot session 1
    warm = [e for e in w.sensor_log if e.session == 2 and e.record.offset_min < w.cgm.warmup_min]
    assert warm and not any(e.has_value for e in warm)
