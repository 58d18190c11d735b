"""Property-based: over random patients, states, targets and limits, the suggester proposes
only what the limits allow before any gate, and what the gate passes stays inside them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgetwin.messages import CgmReading, PumpStatus, SuggestionKind
from edgetwin.model.cohort import cohort_names, load_patient
from edgetwin.model.params import X_GP, X_GS, X_GT, X_ISC1, X_ISC2, X_QSTO1
from edgetwin.safety import GateInputs, SafetyGate, SafetyLimits, max_safe_basal_u_per_h
from edgetwin.suggest import Suggester, SuggestInputs
from edgetwin.trial.run import trial_profile
from edgetwin.twin.ensemble import TwinEnsemble

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
K = SuggestionKind


@st.composite
def situations(draw: st.DrawFn) -> tuple[str, TwinEnsemble, SafetyLimits]:
    name = draw(st.sampled_from(cohort_names()))
    pp = load_patient(name)
    n = draw(st.sampled_from([1, 4]))
    x = np.tile(pp.state0(), (n, 1))
    glucose_scale = draw(st.floats(0.4, 3.0))
    x[:, [X_GP, X_GT, X_GS]] *= glucose_scale
    x[:, [X_ISC1, X_ISC2]] *= draw(st.floats(0.0, 6.0))
    x[:, X_QSTO1] = draw(st.floats(0.0, 80_000.0))  # mg of carbohydrate in the stomach
    if n > 1:
        x[1:, [X_GP, X_GS]] *= np.array(draw(st.lists(st.floats(0.8, 1.2), min_size=n - 1, max_size=n - 1)))[
            :, None
        ]
    aux = np.zeros((n, 5))
    aux[:, 4] = 1.0
    mode = draw(st.sampled_from(["open-loop", "closed-loop"]))
    limits = SafetyLimits(
        mode=mode,  # type: ignore[arg-type]
        max_basal_u_per_h=draw(st.floats(0.1, 10.0)),
        max_bolus_u=draw(st.floats(0.5, 20.0)),
        max_iob_u=draw(st.floats(0.0, 20.0)),
        suspend_threshold_mg_dl=draw(st.floats(60, 90)),
    )
    return name, TwinEnsemble(0, pp.vector()[None, :], x, aux), limits


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(situations(), st.floats(0, 120))
def test_suggestions_respect_the_limits_before_and_after_the_gate(
    case: tuple[str, TwinEnsemble, SafetyLimits], meal: float
) -> None:
    name, ens, limits = case
    profile = trial_profile(name)
    s = Suggester().suggest(ens, SuggestInputs(NOW, profile, limits, reservoir_u=100.0, meal_carbs_g=meal))
    basal = profile.basal_at(NOW)
    max_basal = max_safe_basal_u_per_h(profile, NOW, limits)
    if s.rate_u_per_h is not None and s.kind is not K.KEEP_BASAL:
        assert s.rate_u_per_h <= max_basal + 1e-9 and (s.duration_min or 0) <= 30
    if s.units is not None:
        assert s.units <= limits.max_bolus_u + 1e-9
    if s.kind is K.MICRO_BOLUS:
        assert limits.closed_loop and s.units is not None and s.need_u is not None
        assert s.units <= basal * 0.5 + 1e-9 and s.units <= 0.5 * s.need_u + 1e-9
    if s.carbs_g is not None:
        assert s.carbs_g <= limits.max_rescue_carbs_g
    assert s.created_utc == NOW and s.expires_utc > NOW and s.reason
    g0 = float(ens.x[0, X_GS] / load_patient(name).Vg)
    readings = [
        CgmReading(NOW - timedelta(minutes=5 * i), min(max(g0, 40.0), 400.0), "cgm") for i in range(6)
    ]
    pump = PumpStatus(NOW, "pump", 100.0, False, False, basal)
    result = SafetyGate(limits).review(s, GateInputs(NOW, profile, readings, (), pump, "cgm"))
    g = result.suggestion
    if g is None or g.kind is K.KEEP_BASAL:
        return
    room = max(0.0, limits.effective_max_iob_u - (result.iob_u or 0.0))
    extra = g.units or 0.0 if g.kind in (K.BOLUS, K.MICRO_BOLUS) else 0.0
    if g.rate_u_per_h is not None:
        assert g.rate_u_per_h <= max_basal + 1e-9
        extra += max(0.0, (g.rate_u_per_h - basal) * (g.duration_min or 0.0) / 60.0)
    assert extra <= room + 1e-6
