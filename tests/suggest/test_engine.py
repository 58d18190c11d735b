"""The suggestion engine on real model ensembles: it acts the way the situation calls for, stays
inside the limits it knows, explains itself, and its suggestions pass the gate."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from edgetwin.messages import CgmReading, PumpStatus, SuggestionKind
from edgetwin.model.cohort import load_patient
from edgetwin.model.params import P_VMX
from edgetwin.safety import GateInputs, SafetyGate, SafetyLimits, assess_cgm
from edgetwin.suggest import Suggester, SuggestInputs
from edgetwin.trial.run import trial_limits, trial_profile
from edgetwin.twin.ensemble import TwinEnsemble
from edgetwin.virtual.patient import VirtualPatient

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
NAME = "adult#001"
K = SuggestionKind


def state_after(
    cho: dict[int, float], insulin: dict[int, float], minutes: int, n: int = 1, name: str = NAME
) -> TwinEnsemble:
    """A patient's true state after ``minutes`` of basal plus the given extra inputs."""
    pp = load_patient(name)
    c = np.zeros(minutes)
    u = np.full(minutes, pp.basal_u_per_h / 60.0)
    for m, g in cho.items():
        c[m] += g
    for m, units in insulin.items():
        u[m] += units
    vp = VirtualPatient(pp)
    vp.run(c, u)
    snap = vp.snapshot()
    x = np.tile(np.array(snap["x"]), (n, 1))
    aux = np.tile(np.array(snap["aux"]), (n, 1))
    return TwinEnsemble(minutes, pp.vector()[None, :], x, aux)


def inputs(limits: SafetyLimits | None = None, name: str = NAME, **kw: object) -> SuggestInputs:
    prof = trial_profile(name)
    args: dict[str, object] = {
        "now_utc": NOW,
        "profile": prof,
        "limits": limits or trial_limits(prof),
        "reservoir_u": 150.0,
    }
    args.update(kw)
    return SuggestInputs(**args)  # type: ignore[arg-type]


def gate_inputs(glucose: list[float]) -> GateInputs:
    prof = trial_profile(NAME)
    readings = [
        CgmReading(NOW - timedelta(minutes=5 * (len(glucose) - 1 - i)), g, "cgm")
        for i, g in enumerate(glucose)
    ]
    pump = PumpStatus(NOW, "pump", 150.0, False, False, prof.basal_at(NOW))
    return GateInputs(NOW, prof, readings, (), pump, "cgm")


def test_at_its_target_it_keeps_or_barely_changes_the_basal_and_explains() -> None:
    ens = state_after({}, {}, 10)
    prof = dataclasses.replace(trial_profile(NAME), target_mg_dl=load_patient(NAME).basal_glucose_mg_dl)
    s = Suggester().suggest(ens, inputs(profile=prof))
    assert s.kind in (K.KEEP_BASAL, K.TEMP_BASAL, K.MICRO_BOLUS)
    assert abs(s.predicted_mg_dl[1][-1] - s.baseline_mg_dl[1][-1]) < 10
    assert "The twin sees glucose at" in s.reason and "scheduled basal only it predicts" in s.reason
    assert s.trajectory_minutes[0] == 0 and s.trajectory_minutes[-1] == 240
    assert s.trajectory_quantiles == (0.1, 0.5, 0.9)
    assert len(s.predicted_mg_dl) == 3 and len(s.baseline_mg_dl[0]) == len(s.trajectory_minutes)
    assert NOW < s.expires_utc <= NOW + timedelta(minutes=5)


def test_an_unannounced_meal_gets_automatic_boluses_within_caps_that_pass_the_gate() -> None:
    ens = state_after({0: 70.0}, {}, 40)  # 70 g eaten 40 min ago, no bolus
    prof = trial_profile(NAME)
    lim = trial_limits(prof)
    s = Suggester().suggest(ens, inputs(lim))
    assert s.kind is K.MICRO_BOLUS
    assert s.need_u is not None and s.need_u > 2.0
    assert s.units is not None
    assert s.units <= prof.basal_at(NOW) * 0.5 + 1e-9 and s.units <= 0.5 * s.need_u + 1e-9
    assert "automatic bolus" in s.reason and "Limits applied" in s.reason
    result = SafetyGate(lim).review(s, gate_inputs([150.0, 165.0, 180.0, 195.0, 208.0, 220.0]))
    assert result.suggestion is s, result.decisions


def test_in_open_loop_the_same_situation_gets_a_correction_bolus_to_confirm() -> None:
    ens = state_after({0: 70.0}, {}, 40)
    prof = trial_profile(NAME)
    lim = SafetyLimits(max_basal_u_per_h=trial_limits(prof).max_basal_u_per_h, max_bolus_u=10.0)
    s = Suggester().suggest(ens, inputs(lim))
    assert s.kind is K.BOLUS
    assert s.units is not None and 1.0 < s.units <= 10.0
    assert s.expires_utc - s.created_utc <= timedelta(seconds=60)


def test_an_overdose_heading_low_gets_a_suspension_then_rescue_carbs() -> None:
    name = "adult#004"  # an insulin-sensitive adult (CF 43 mg/dL/U)
    early = Suggester().suggest(state_after({}, {0: 4.0}, 60, name=name), inputs(name=name))
    assert early.kind is K.SUSPEND and early.rate_u_per_h == 0.0 and early.duration_min == 30
    assert "Pause insulin" in early.reason
    late = Suggester().suggest(state_after({}, {0: 6.0}, 60, name=name), inputs(name=name))
    assert late.kind is K.CARBS
    assert late.carbs_g is not None and 5 <= late.carbs_g <= 30 and late.rate_u_per_h == 0.0
    assert "fast-acting carbohydrate" in late.reason
    assert min(late.predicted_mg_dl[0]) > min(late.baseline_mg_dl[0]) + 20


def test_an_announced_meal_gets_a_meal_bolus_near_the_carb_ratio() -> None:
    ens = state_after({}, {}, 10)
    ens.aux[:, 0] = 60.0  # announced, about to be eaten (the twin's record_carbs does this)
    prof = trial_profile(NAME)
    s = Suggester().suggest(ens, inputs(meal_carbs_g=60.0))
    assert s.kind is K.BOLUS and s.units is not None
    assert 0.5 * 60 / prof.carb_ratio_g_per_u <= s.units <= 2.0 * 60 / prof.carb_ratio_g_per_u
    assert "60 g" in s.reason


def test_uncertainty_about_sensitivity_makes_it_more_careful() -> None:
    ens = state_after({0: 70.0}, {}, 40, n=10)
    certain = Suggester().suggest(ens, inputs(SafetyLimits(max_basal_u_per_h=5.0, max_bolus_u=20.0)))
    doubtful = ens.copy()
    doubtful.params = np.repeat(doubtful.params, 10, axis=0)
    doubtful.params[:2, P_VMX] *= 4.0  # two members in ten are far more insulin-sensitive
    careful = Suggester().suggest(doubtful, inputs(SafetyLimits(max_basal_u_per_h=5.0, max_bolus_u=20.0)))
    assert certain.need_u is not None and careful.need_u is not None
    assert careful.need_u < certain.need_u


def test_a_noisy_sensor_raises_the_target_and_says_so() -> None:
    noisy = [
        CgmReading(NOW - timedelta(minutes=5 * (9 - i)), 150.0 + (10.0 if i % 2 else -10.0), "cgm")
        for i in range(10)
    ]
    prof = trial_profile(NAME)
    cgm = assess_cgm(noisy, NOW, trial_limits(prof), "cgm")
    s = Suggester().suggest(state_after({0: 70.0}, {}, 40), inputs(cgm=cgm))
    assert "target raised to 143 mg/dL" in s.reason


@pytest.mark.parametrize("members", [1, 50])
def test_large_ensembles_are_resampled_and_still_give_a_valid_suggestion(members: int) -> None:
    ens = state_after({0: 40.0}, {}, 20, n=members)
    ens.weights = np.linspace(1.0, 2.0, members)
    s = Suggester().suggest(ens, inputs())
    assert s.kind in tuple(K)
    assert all(0 <= v <= 1000 for row in s.predicted_mg_dl for v in row)
