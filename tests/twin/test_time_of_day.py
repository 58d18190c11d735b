"""The twin with insulin sensitivity by time of day: each part of the day runs with its own
sensitivity (filter, forecasts, what-if, suggestions), the dosing view never assumes a part is
less sensitive than the day-long value, and the pattern survives a checkpoint."""

from __future__ import annotations

import dataclasses

import msgpack
import numpy as np
import pytest

from edgetwin.errors import InputDataError, ModelError
from edgetwin.model import load_patient
from edgetwin.model.ensemble import new_aux, run_ensemble
from edgetwin.model.params import P_VMX
from edgetwin.twin.ensemble import InputPlan, TwinEnsemble, run_members, simulate_plans
from edgetwin.twin.filter import FilterConfig
from edgetwin.twin.prior import patient_prior
from edgetwin.twin.timeofday import part_at
from edgetwin.twin.twin import BasalSchedule, Twin

PP = load_patient("adult#003")
NIGHT, MORNING, AFTERNOON, EVENING = range(4)


def _twin(pattern: tuple[float, float, float, float], start_tod_min: int = 0) -> Twin:
    prior = dataclasses.replace(patient_prior(PP), si_by_part=np.array(pattern))
    return Twin(
        prior,
        BasalSchedule((0,), (PP.basal_u_per_h,), start_tod_min),
        config=FilterConfig(particles=64),
        initial_glucose_mg_dl=150.0,
        seed=3,
    )


def test_a_pattern_outside_its_bounds_is_refused() -> None:
    base = patient_prior(PP)
    for bad in ([0.1, 0.2, 0.3], [0.0, np.nan, 0.0, 0.0], [0.0, 1.5, 0.0, 0.0]):
        with pytest.raises(ModelError):
            dataclasses.replace(base, si_by_part=np.array(bad))
    assert np.all(base.si_by_part == 0.0)


def test_switches_run_as_consecutive_segments() -> None:
    p0 = PP.vector()[None, :].copy()
    p1 = p0.copy()
    p1[0, P_VMX] *= 1.5
    x0 = np.tile(PP.state0(), (2, 1))
    cho = np.zeros(120)
    ins = np.full(120, PP.basal_u_per_h / 60.0)
    ins[0] += 4.0
    g = run_members(p0, ((62, p1),), x0.copy(), new_aux(2), cho, ins, stride=5)
    xa, aa = x0.copy(), new_aux(2)
    first = run_ensemble(p0, xa, aa, cho[:65], ins[:65], stride=5).gsub_mg_dl
    rest = run_ensemble(p1, xa, aa, cho[65:], ins[65:], stride=5).gsub_mg_dl
    assert g.shape == (2, 25)
    np.testing.assert_allclose(g, np.concatenate([first, rest[:, 1:]], axis=1))
    plain = run_members(p0, (), x0.copy(), new_aux(2), cho, ins, stride=5)
    np.testing.assert_allclose(g[:, :14], plain[:, :14])
    assert np.all(g[:, -1] < plain[:, -1])  # more sensitive after the switch: lower after a bolus
    with pytest.raises(InputDataError):
        TwinEnsemble(0, p0, x0, new_aux(2), switches=((0, p1),))


def test_forecast_follows_the_part_of_the_day_it_reaches() -> None:
    # Twin minute 0 is 04:00: the morning starts 120 min in. A bolus now, a much more sensitive
    # morning: the forecasts agree until 06:00 and part after.
    flat, patterned = _twin((0, 0, 0, 0), 240), _twin((0, 0.5, 0, 0), 240)
    for tw in (flat, patterned):
        tw.assimilate_cgm(0, 150.0)
        tw.record_insulin(0, 3.0)
    f_flat, f_pat = flat.forecast(240), patterned.forecast(240)
    before = f_flat.minutes <= 120
    np.testing.assert_allclose(f_pat.p50_mg_dl[before], f_flat.p50_mg_dl[before], atol=1e-9)
    assert f_pat.p50_mg_dl[-1] < f_flat.p50_mg_dl[-1] - 5.0

    plan = patterned.baseline_plan(240)
    g_pat = simulate_plans(patterned.ensemble(members=16), [plan])
    g_flat = simulate_plans(flat.ensemble(members=16), [plan])
    assert np.median(g_pat[0, :, -1]) < np.median(g_flat[0, :, -1]) - 5.0


def test_the_filter_runs_each_part_with_its_own_sensitivity() -> None:
    # From 05:00 through the morning: the morning twin is twice as sensitive, so the same bolus
    # leaves its particles lower once the morning began.
    flat, patterned = _twin((0, 0, 0, 0), 300), _twin((0, 0.7, 0, 0), 300)
    for tw in (flat, patterned):
        tw.assimilate_cgm(0, 150.0)
        tw.record_insulin(0, 3.0)
        tw.advance_to(180)
    assert part_at(300, 180) == MORNING
    assert patterned.glucose_now()[1] < flat.glucose_now()[1] - 5.0


def test_dosing_view_never_assumes_a_part_less_sensitive_than_the_day() -> None:
    resistant_night = _twin((-0.5, 0.3, 0, 0), 0)  # twin minute 0 is midnight
    resistant_night.assimilate_cgm(0, 150.0)
    day_long = _twin((0, 0, 0, 0), 0)
    day_long.assimilate_cgm(0, 150.0)
    ens = resistant_night.ensemble(members=8)
    dosing = resistant_night.ensemble(members=8, for_dosing=True)
    ref = day_long.ensemble(members=8)
    vmx = lambda e: float(np.median(e.member_params()[:, P_VMX]))  # noqa: E731
    assert vmx(ens) < vmx(ref) * 0.7  # the twin's own view: the resistant night
    assert vmx(dosing) == pytest.approx(vmx(ref), rel=0.05)  # dosing: the day-long value
    (at_morning, p_morning), *_ = dosing.switches
    assert at_morning == 360
    assert float(np.median(p_morning[:, P_VMX])) > vmx(ref) * 1.2  # a sensitive part stays


def test_the_pattern_is_reported_and_survives_a_checkpoint() -> None:
    tw = _twin((0.3, 0, 0, 0), 0)
    tw.assimilate_cgm(0, 150.0)
    s = tw.parameters()
    day = s["insulin_sensitivity_mg_dl_per_u"].mean
    assert s["insulin_sensitivity_mg_dl_per_u_night_00_06"].mean > 1.15 * day
    assert s["insulin_sensitivity_mg_dl_per_u_morning_06_12"].mean == pytest.approx(day)
    assert "no pattern identified" in s["insulin_sensitivity_mg_dl_per_u_evening_18_24"].description

    back = Twin.restore(tw.checkpoint())
    np.testing.assert_allclose(back.prior.si_by_part, [0.3, 0, 0, 0])
    np.testing.assert_allclose(back.forecast(60).p50_mg_dl, tw.forecast(60).p50_mg_dl)

    doc = msgpack.unpackb(tw.checkpoint(), raw=False)
    del doc["prior"]["si_by_part"]  # written before the pattern existed
    older = Twin.restore(msgpack.packb(doc, use_bin_type=True))
    assert np.all(older.prior.si_by_part == 0.0)


def test_an_empty_plan_list_and_mismatched_plans_are_refused() -> None:
    tw = _twin((0, 0.2, 0, 0), 0)
    ens = tw.ensemble(members=4)
    with pytest.raises(InputDataError):
        simulate_plans(ens, [])
    with pytest.raises(InputDataError):
        simulate_plans(
            ens, [InputPlan("a", np.zeros(10), np.zeros(10)), InputPlan("b", np.zeros(5), np.zeros(5))]
        )


def test_a_pattern_can_be_adopted_before_any_data() -> None:
    tw = Twin.from_patient(PP, config=FilterConfig(particles=64), initial_glucose_mg_dl=150.0)
    tw.adopt(dataclasses.replace(patient_prior(PP), si_by_part=np.array([0.2, 0, 0, 0])))
    np.testing.assert_allclose(tw.prior.si_by_part, [0.2, 0, 0, 0])
    tw.assimilate_cgm(0, 150.0)
    assert np.isfinite(tw.forecast(60).p50_mg_dl).all()
    assert "night_00_06" in tw.parameters().format()
