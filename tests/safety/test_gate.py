"""The safety gate, rule by rule: each limit bites where it should and says so."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from edgetwin.messages import InsulinDelivery, InsulinKind, PumpCommandKind, SuggestionKind
from edgetwin.safety import GateInputs, Outcome, Rule, SafetyGate
from tests.safety.builders import NOW, basal_history, inputs, limits, profile, pump, readings, suggestion

K = SuggestionKind


def rules(result: object) -> set[Rule]:
    return {d.rule for d in result.interventions}  # type: ignore[attr-defined]


def test_a_suggestion_inside_every_limit_passes_unchanged() -> None:
    s = suggestion(K.TEMP_BASAL, rate_u_per_h=1.5, duration_min=30)
    result = SafetyGate(limits()).review(s, inputs())
    assert result.suggestion is s and result.unchanged
    assert result.max_safe_basal_u_per_h == 3.0 and result.scheduled_basal_u_per_h == 1.0
    assert result.iob_u is not None and result.iob_u < 0.05
    (cmd,) = result.pump_commands("c1")
    assert cmd.kind is PumpCommandKind.TEMP_BASAL and cmd.rate_u_per_h == 1.5 and cmd.duration_min == 30


def test_temp_basal_is_clamped_to_max_safe_basal_duration_and_increment() -> None:
    s = suggestion(K.TEMP_BASAL, rate_u_per_h=2.97, duration_min=120)
    r = SafetyGate(limits(max_iob_u=20)).review(s, inputs())
    assert r.suggestion is not None
    assert r.suggestion.duration_min == 30 and r.suggestion.rate_u_per_h == 2.95
    assert rules(r) == {Rule.TEMP_BASAL_DURATION, Rule.PUMP_INCREMENT}
    r = SafetyGate(limits(max_iob_u=20)).review(dataclasses.replace(s, rate_u_per_h=9.0), inputs())
    assert r.suggestion is not None and r.suggestion.rate_u_per_h == 3.0
    d = next(d for d in r.decisions if d.rule is Rule.MAX_SAFE_BASAL)
    assert d.outcome is Outcome.CLAMPED and dict(d.values)["requested_u_per_h"] == 9.0
    assert "max safe basal" in r.suggestion.reason


def test_max_iob_limits_extra_insulin() -> None:
    recent = [*basal_history(), InsulinDelivery(NOW - timedelta(minutes=10), 4.6, InsulinKind.BOLUS, "pump")]
    gate = SafetyGate(limits(max_iob_u=5.0))
    r = gate.review(suggestion(K.BOLUS, units=2.0), inputs(deliveries=recent))
    assert r.suggestion is not None and r.suggestion.units is not None
    assert r.suggestion.units <= 5.0 - (r.iob_u or 0) + 1e-9 and Rule.MAX_IOB in rules(r)
    r = gate.review(suggestion(K.TEMP_BASAL, rate_u_per_h=3.0, duration_min=30), inputs(deliveries=recent))
    assert r.suggestion is not None and r.suggestion.rate_u_per_h is not None
    assert (r.suggestion.rate_u_per_h - 1.0) * 0.5 <= 5.0 - (r.iob_u or 0) + 1e-9


def test_micro_bolus_caps_half_need_interval_and_mode() -> None:
    gate = SafetyGate(limits())
    r = gate.review(suggestion(K.MICRO_BOLUS, units=2.0, need_u=4.0), inputs())
    assert r.suggestion is not None and r.suggestion.units == 0.5  # 30 min of 1 U/h
    assert Rule.MICRO_BOLUS_BASAL_CAP in rules(r)
    r = SafetyGate(limits()).review(suggestion(K.MICRO_BOLUS, units=0.5, need_u=0.6), inputs())
    assert r.suggestion is not None and r.suggestion.units == 0.3
    assert Rule.MICRO_BOLUS_HALF_NEED in rules(r)
    # The gate remembers its own approval: a second one a minute later is refused.
    r2 = gate.review(
        suggestion(K.MICRO_BOLUS, units=0.2, need_u=4.0), inputs(now_utc=NOW + timedelta(minutes=1))
    )
    assert r2.suggestion is None and Rule.MICRO_BOLUS_INTERVAL in rules(r2)
    # ... and so does the pump's record of one it delivered two minutes ago.
    hist = [
        *basal_history(),
        InsulinDelivery(NOW - timedelta(minutes=2), 0.2, InsulinKind.MICRO_BOLUS, "pump"),
    ]
    r3 = SafetyGate(limits()).review(
        suggestion(K.MICRO_BOLUS, units=0.2, need_u=4.0), inputs(deliveries=hist)
    )
    assert r3.suggestion is None and Rule.MICRO_BOLUS_INTERVAL in rules(r3)
    no_need = SafetyGate(limits()).review(suggestion(K.MICRO_BOLUS, units=0.2), inputs())
    assert no_need.suggestion is None and Rule.MICRO_BOLUS_HALF_NEED in rules(no_need)
    open_loop = SafetyGate(limits(mode="open-loop")).review(
        suggestion(K.MICRO_BOLUS, units=0.2, need_u=4.0), inputs()
    )
    assert open_loop.suggestion is None and Rule.MODE in rules(open_loop)


def test_an_automatic_bolus_with_its_temp_basal_shares_the_iob_room() -> None:
    s = suggestion(K.MICRO_BOLUS, units=0.5, need_u=4.0, rate_u_per_h=3.0, duration_min=30)
    r = SafetyGate(limits(max_iob_u=1.0)).review(s, inputs())
    g = r.suggestion
    assert g is not None and g.kind is K.MICRO_BOLUS and g.rate_u_per_h is not None and g.units is not None
    assert (g.rate_u_per_h - 1.0) * 0.5 + g.units <= 1.0 + 1e-9
    assert Rule.MAX_IOB in rules(r)
    kinds = [c.kind for c in r.pump_commands("c7")]
    assert kinds == [PumpCommandKind.TEMP_BASAL, PumpCommandKind.BOLUS]
    # When the bolus part is refused the temp basal still goes.
    hist = [
        *basal_history(),
        InsulinDelivery(NOW - timedelta(minutes=1), 0.2, InsulinKind.MICRO_BOLUS, "pump"),
    ]
    r = SafetyGate(limits()).review(dataclasses.replace(s, rate_u_per_h=1.5), inputs(deliveries=hist))
    assert r.suggestion is not None and r.suggestion.kind is K.TEMP_BASAL and r.suggestion.rate_u_per_h == 1.5


def test_no_automatic_bolus_after_a_jump_or_on_noise() -> None:
    jumpy = readings([120.0] * 8 + [165.0, 166.0, 167.0])
    r = SafetyGate(limits()).review(suggestion(K.MICRO_BOLUS, units=0.3, need_u=2.0), inputs(readings=jumpy))
    assert r.suggestion is None and Rule.JUMP in rules(r)
    # A temp basal is still allowed on the same data.
    r = SafetyGate(limits()).review(
        suggestion(K.TEMP_BASAL, rate_u_per_h=2.0, duration_min=30), inputs(readings=jumpy)
    )
    assert r.suggestion is not None and r.suggestion.rate_u_per_h == 2.0


@pytest.mark.parametrize(
    ("pump_kw", "rule"),
    [
        ({"time_utc": NOW - timedelta(minutes=11)}, Rule.PUMP_STATUS),
        ({"suspended": True}, Rule.PUMP_SUSPENDED),
        ({"bolusing": True}, Rule.PUMP_BOLUSING),
        ({"reservoir_u": 119.85}, Rule.RESERVOIR_MISMATCH),
    ],
)
def test_pump_state_blocks_boluses(pump_kw: dict[str, object], rule: Rule) -> None:
    r = SafetyGate(limits()).review(suggestion(K.BOLUS, units=1.0), inputs(pump=pump(**pump_kw)))
    assert r.suggestion is None and rule in rules(r)


def test_reservoir_within_tolerance_and_missing_pump_status() -> None:
    ok = SafetyGate(limits()).review(suggestion(K.BOLUS, units=1.0), inputs(pump=pump(reservoir_u=119.95)))
    assert ok.suggestion is not None and ok.suggestion.units == 1.0
    r = SafetyGate(limits()).review(suggestion(K.BOLUS, units=1.0, reservoir_u=None), inputs())
    assert r.suggestion is None and Rule.RESERVOIR_MISMATCH in rules(r)
    r = SafetyGate(limits()).review(suggestion(K.BOLUS, units=1.0), inputs(pump=None))
    assert r.suggestion is None and Rule.PUMP_STATUS in rules(r)
    r = SafetyGate(limits()).review(
        suggestion(K.TEMP_BASAL, rate_u_per_h=2.0, duration_min=30), inputs(pump=None)
    )
    assert r.suggestion is None and Rule.PUMP_STATUS in rules(r)
    # Lowering insulin needs no fresh pump status.
    r = SafetyGate(limits()).review(
        suggestion(K.TEMP_BASAL, rate_u_per_h=0.5, duration_min=30), inputs(pump=None)
    )
    assert r.suggestion is not None and r.suggestion.rate_u_per_h == 0.5


def test_old_future_or_expired_suggestions_are_refused() -> None:
    gate = SafetyGate(limits())
    old = suggestion(K.BOLUS, units=1.0, created_utc=NOW - timedelta(seconds=61))
    assert Rule.SUGGESTION_STALE in rules(gate.review(old, inputs()))
    future = suggestion(K.BOLUS, units=1.0, created_utc=NOW + timedelta(minutes=2))
    assert Rule.SUGGESTION_STALE in rules(gate.review(future, inputs()))
    expired = suggestion(
        K.TEMP_BASAL, rate_u_per_h=2, duration_min=30, expires_utc=NOW - timedelta(seconds=1)
    )
    r = gate.review(expired, inputs())
    assert r.suggestion is None and Rule.SUGGESTION_EXPIRED in rules(r)


def test_stale_data_cancel_a_high_temp_and_never_add_insulin() -> None:
    stale = readings(newest_age_min=20.0)
    high = pump(temp_basal_u_per_h=2.5, temp_basal_remaining_min=20.0)
    for s in (
        suggestion(K.TEMP_BASAL, rate_u_per_h=2.5, duration_min=30),
        suggestion(K.BOLUS, units=1.0),
        suggestion(K.MICRO_BOLUS, units=0.2, need_u=2.0),
        None,
    ):
        r = SafetyGate(limits()).review(s, inputs(readings=stale, pump=high))
        assert r.suggestion is not None and r.suggestion.kind is K.KEEP_BASAL
        assert r.pump_commands("x")[0].kind is PumpCommandKind.CANCEL_TEMP_BASAL
        r = SafetyGate(limits()).review(s, inputs(readings=stale))
        assert r.suggestion is None  # no temp running: nothing to send
    r = SafetyGate(limits()).review(suggestion(K.BOLUS, units=1.0), inputs(readings=stale))
    assert Rule.STALE_DATA in rules(r)


AT_THRESHOLD = readings([130.0, 120.0, 110.0, 100.0, 92.0, 86.0, 80.0, 76.0, 73.0, 71.0, 68.0])
FALLING = readings([160.0 - 6.0 * i for i in range(13)])  # 88 mg/dL, falling 1.2 mg/dL/min


@pytest.mark.parametrize("data", [AT_THRESHOLD, FALLING], ids=["at-threshold", "trend"])
def test_predictive_low_glucose_suspend_replaces_insulin_by_a_zero_temp(data: list[object]) -> None:
    for s in (
        suggestion(K.KEEP_BASAL, rate_u_per_h=1.0),
        suggestion(K.TEMP_BASAL, rate_u_per_h=2.0, duration_min=30),
        suggestion(K.MICRO_BOLUS, units=0.3, need_u=1.0),
    ):
        r = SafetyGate(limits()).review(s, inputs(readings=data))
        assert r.suggestion is not None
        assert r.suggestion.kind in (K.SUSPEND, K.CARBS) and r.suggestion.rate_u_per_h == 0.0
        assert r.suggestion.duration_min == 30
        assert rules(r) & {Rule.LOW_GLUCOSE_SUSPEND, Rule.NO_BOLUS_AT_LOW}
        (cmd,) = r.pump_commands("x")
        assert cmd.kind is PumpCommandKind.TEMP_BASAL and cmd.rate_u_per_h == 0.0


@pytest.mark.parametrize(
    "data", [AT_THRESHOLD, FALLING, readings([40.0])], ids=["at-threshold", "trend", "one-40"]
)
def test_with_no_suggestion_at_a_low_the_gate_itself_pauses_insulin(data: list[object]) -> None:
    """Found by the property test: no suggestion (the twin failed), glucose 40 mg/dL and a temp
    basal above the schedule running. The fallback returned to the scheduled basal; a low needs
    insulin paused, whatever the twin does."""
    for running in (pump(temp_basal_u_per_h=2.0, temp_basal_remaining_min=10.0), pump(), None):
        r = SafetyGate(limits()).review(None, inputs(readings=data, pump=running))
        assert r.suggestion is not None and r.suggestion.kind is K.SUSPEND
        assert r.suggestion.rate_u_per_h == 0.0 and r.suggestion.duration_min == 30
        assert Rule.LOW_GLUCOSE_SUSPEND in rules(r) and "insulin paused" in r.suggestion.reason
        (cmd,) = r.pump_commands("x")
        assert cmd.kind is PumpCommandKind.TEMP_BASAL and cmd.rate_u_per_h == 0.0
    r = SafetyGate(limits()).review(None, inputs(readings=data, pump=pump(suspended=True)))
    assert r.suggestion is None  # already paused: nothing to send
    # Unusable data are not a low: the fallback still only cancels a high temp basal.
    stale = readings([40.0], newest_age_min=20.0)
    high = pump(temp_basal_u_per_h=2.0, temp_basal_remaining_min=10.0)
    r = SafetyGate(limits()).review(None, inputs(readings=stale, pump=high))
    assert r.suggestion is not None and r.suggestion.kind is K.KEEP_BASAL


@pytest.mark.parametrize("rate", [0.0, 1e-308])
@pytest.mark.parametrize(("minutes", "sent_min"), [(1, 1), (30, 30), (120, 30)])
def test_a_zero_temp_basal_at_a_low_goes_out_as_a_suspension(
    minutes: int, sent_min: int, rate: float
) -> None:
    """Found by the property test: at glucose at the threshold a temp basal of 1e-308 U/h passed
    as "already suspended" and went out as a temp basal; at a low the patient and the log must
    read that insulin is paused, at exactly 0 U/h."""
    zero = suggestion(K.TEMP_BASAL, rate_u_per_h=rate, duration_min=minutes)
    gate = SafetyGate(limits(suspend_threshold_mg_dl=80.0))
    r = gate.review(zero, inputs(readings=readings([81.0, 81.0, 80.0, 80.0, 80.0])))
    assert r.suggestion is not None and r.suggestion.kind is K.SUSPEND
    assert r.suggestion.rate_u_per_h == 0.0 and r.suggestion.duration_min == sent_min
    (cmd,) = r.pump_commands("x")
    assert cmd.kind is PumpCommandKind.TEMP_BASAL and cmd.rate_u_per_h == 0.0
    # Away from a low the same zero temp basal is what it says.
    r = gate.review(zero, inputs())
    assert r.suggestion is not None and r.suggestion.kind is K.TEMP_BASAL


def test_a_meal_bolus_is_refused_at_a_low_or_on_its_own_prediction_not_on_the_trend_alone() -> None:
    meal = suggestion(K.BOLUS, units=2.0)
    r = SafetyGate(limits()).review(meal, inputs(readings=AT_THRESHOLD))
    assert r.suggestion is not None and r.suggestion.kind in (K.SUSPEND, K.CARBS)
    assert Rule.NO_BOLUS_AT_LOW in rules(r)
    r = SafetyGate(limits()).review(meal, inputs(readings=FALLING))
    assert r.suggestion is meal
    low_ahead = dataclasses.replace(
        meal,
        trajectory_minutes=(0, 60, 120),
        trajectory_quantiles=(0.1, 0.5),
        predicted_mg_dl=((88.0, 75.0, 62.0), (95.0, 110.0, 100.0)),
    )
    r = SafetyGate(limits()).review(low_ahead, inputs(readings=FALLING))
    assert r.suggestion is not None and r.suggestion.kind is K.SUSPEND and Rule.NO_BOLUS_AT_LOW in rules(r)


def test_the_suggestions_own_low_prediction_triggers_a_suspension() -> None:
    s = suggestion(
        K.TEMP_BASAL,
        rate_u_per_h=1.5,
        duration_min=30,
        trajectory_minutes=(0, 30, 60),
        trajectory_quantiles=(0.1, 0.5),
        predicted_mg_dl=((150.0, 100.0, 65.0), (150.0, 120.0, 100.0)),
    )
    r = SafetyGate(limits()).review(s, inputs())
    assert r.suggestion is not None and r.suggestion.kind is K.SUSPEND
    assert Rule.LOW_GLUCOSE_SUSPEND in rules(r)
    # A dip beyond the checked window (120 min by default) is left to later cycles.
    later = dataclasses.replace(s, trajectory_minutes=(0, 60, 180))
    assert SafetyGate(limits()).review(later, inputs()).suggestion is later
    strict = SafetyGate(limits(low_prediction_horizon_min=240)).review(later, inputs())
    assert strict.suggestion is not None and strict.suggestion.kind is K.SUSPEND


def test_rescue_carbs_when_low_and_not_again_within_the_interval() -> None:
    low = readings([90.0, 86.0, 82.0, 78.0, 75.0, 72.0, 70.0, 68.0, 66.0])
    gate = SafetyGate(limits())
    r = gate.review(suggestion(K.SUSPEND, rate_u_per_h=0.0, duration_min=30), inputs(readings=low))
    assert r.suggestion is not None and r.suggestion.kind is K.CARBS and r.suggestion.carbs_g == 15.0
    assert r.suggestion.rate_u_per_h == 0.0
    assert Rule.RESCUE_CARBS in rules(r)
    later = gate.review(
        suggestion(K.SUSPEND, rate_u_per_h=0.0, duration_min=30, created_utc=NOW + timedelta(minutes=5)),
        inputs(
            readings=low, now_utc=NOW + timedelta(minutes=5), pump=pump(time_utc=NOW + timedelta(minutes=5))
        ),
    )
    assert later.suggestion is not None and later.suggestion.kind is K.SUSPEND
    big = gate.review(
        suggestion(K.CARBS, carbs_g=80.0, rate_u_per_h=0.0, duration_min=30), inputs(readings=low)
    )
    assert big.suggestion is not None and big.suggestion.carbs_g == 30.0


def test_a_bad_profile_or_garbage_input_never_raises_and_never_adds_insulin() -> None:
    prof = profile()
    object.__setattr__(prof, "target_mg_dl", 30.0)  # corrupted after validation
    r = SafetyGate(limits()).review(suggestion(K.BOLUS, units=3.0), inputs(profile=prof))
    assert r.suggestion is None or r.suggestion.kind is K.KEEP_BASAL
    assert Rule.PROFILE in rules(r)
    for bad in (
        GateInputs(now_utc=NOW.replace(tzinfo=None), profile=profile()),
        GateInputs(now_utc="noon", profile=profile()),  # type: ignore[arg-type]
        GateInputs(now_utc=NOW, profile=None, readings=[1, 2], deliveries=[None]),  # type: ignore[arg-type]
        "not inputs",
    ):
        r = SafetyGate(limits()).review(suggestion(K.BOLUS, units=3.0), bad)  # type: ignore[arg-type]
        assert r.suggestion is None or r.suggestion.kind is K.KEEP_BASAL
    r = SafetyGate(limits()).review("bolus 10", inputs())  # type: ignore[arg-type]
    assert r.suggestion is None or r.suggestion.kind is K.KEEP_BASAL


def test_outcomes_map_onto_the_stores_vocabulary() -> None:
    gate = SafetyGate(limits())
    ok = gate.review(suggestion(K.TEMP_BASAL, rate_u_per_h=1.5, duration_min=30), inputs())
    assert ok.outcome == "accepted"
    clamped = gate.review(suggestion(K.TEMP_BASAL, rate_u_per_h=9.0, duration_min=30), inputs())
    assert clamped.outcome == "clamped"
    assert {d.action for d in clamped.interventions} == {"clamp"}
    stale = gate.review(suggestion(K.BOLUS, units=1.0), inputs(readings=readings(newest_age_min=30)))
    assert stale.outcome == "refused" and {d.action for d in stale.interventions} == {"refuse"}


def test_needs_confirmation_follows_the_mode() -> None:
    temp = suggestion(K.TEMP_BASAL, rate_u_per_h=1.5, duration_min=30)
    assert SafetyGate(limits(mode="open-loop")).review(temp, inputs()).needs_confirmation
    assert not SafetyGate(limits()).review(temp, inputs()).needs_confirmation
    assert SafetyGate(limits()).review(suggestion(K.BOLUS, units=1.0), inputs()).needs_confirmation


def test_the_gate_does_not_import_the_suggester() -> None:
    root = Path(__file__).resolve().parents[2] / "edgetwin" / "safety"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.startswith("edgetwin.suggest") for n in names), path
    code = (
        "import sys, edgetwin.safety; assert not [m for m in sys.modules if m.startswith('edgetwin.suggest')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root.parents[1])
