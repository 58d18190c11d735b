"""Batch personalisation finds what the data say, with an honest spread."""

from __future__ import annotations

import numpy as np
import pytest

from edgetwin.errors import InputDataError
from edgetwin.model import load_patient
from edgetwin.twin.history import History
from edgetwin.twin.identify import identify
from edgetwin.twin.prior import N_THETA, TH_SI, Donors, ParticlePrior
from edgetwin.virtual.scenario import RandomScenario

from .conftest import simulate_day


@pytest.fixture(scope="module")
def two_days():  # type: ignore[no-untyped-def]
    meals = RandomScenario(4, carb_error=0.2).meals(2)
    return simulate_day("adolescent#003", meals, 2 * 1440, seed=4)


def test_identification_pulls_a_wrong_start_back_to_the_patient(two_days) -> None:  # type: ignore[no-untyped-def]
    pp = load_patient("adolescent#003")
    donors = Donors.from_vectors((pp.name,), pp.vector()[None, :])
    mean = np.zeros(N_THETA)
    mean[TH_SI] = np.log(0.6)  # the prior believes the patient 40 % less sensitive than they are
    prior = ParticlePrior(donors, np.ones(1), mean, np.array([0.4, 0.3, 0.05, 0.02]), "test")
    res = identify(prior, two_days.history)
    si = float(np.exp(res.posterior.theta_mean[0, TH_SI]))
    sd = float(res.posterior.theta_sd[0, TH_SI])
    assert abs(si - 1.0) < 0.2, si
    assert 0.01 <= sd < 0.4  # narrower than the prior, never zero
    assert res.evaluations > 50 and res.temperature >= 1.0
    assert res.readings > 800


def test_identification_needs_enough_data(two_days) -> None:  # type: ignore[no-untyped-def]
    pp = load_patient("adult#001")
    prior = ParticlePrior(
        Donors.from_vectors(("a",), pp.vector()[None, :]),
        np.ones(1),
        np.zeros(N_THETA),
        np.full(N_THETA, 0.1),
        "t",
    )
    short = History(
        two_days.history.cgm_mg_dl[:200], two_days.history.cho_g[:200], two_days.history.insulin_u[:200]
    )
    with pytest.raises(InputDataError):
        identify(prior, short)


def test_a_point_estimate_for_the_cloud_from_event_lists(two_days) -> None:  # type: ignore[no-untyped-def]
    h = two_days.history
    readings = [(m, float(g)) for m, g in enumerate(h.cgm_mg_dl) if np.isfinite(g)] + [(5, None)]
    insulin = [(m, float(u), 0) for m, u in enumerate(h.insulin_u) if u > 0]
    carbs = [(m, float(g)) for m, g in enumerate(h.cho_g) if g > 0]
    rebuilt = History.from_events(h.minutes, readings, insulin, carbs)
    np.testing.assert_array_equal(rebuilt.cgm_mg_dl, h.cgm_mg_dl)
    np.testing.assert_allclose(rebuilt.insulin_u, h.insulin_u)
    np.testing.assert_array_equal(rebuilt.cho_g, h.cho_g)
    spread = History.from_events(10, [], [(2, 1.0, 4)], [])
    np.testing.assert_allclose(spread.insulin_u, [0, 0, 0.25, 0.25, 0.25, 0.25, 0, 0, 0, 0])

    from edgetwin.twin.prior import patient_prior

    current = load_patient("adolescent#003")
    res = identify(patient_prior(current, theta_sd=(0.3, 0.3, 0.1, 0.02)), rebuilt)
    best = res.best_params()
    assert best.out_of_bounds() == []
    assert best.basal_glucose_mg_dl == pytest.approx(current.basal_glucose_mg_dl, rel=0.15)
    assert 0.7 < best.Vmx / current.Vmx < 1.4
