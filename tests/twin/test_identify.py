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
