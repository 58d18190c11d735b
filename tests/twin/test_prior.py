"""Starting twins: a known patient, or a therapy profile made consistent with the population."""

from __future__ import annotations

import numpy as np
import pytest

from edgetwin.errors import ModelError
from edgetwin.model import load_patient, load_therapy
from edgetwin.model.params import P_BW, P_KABS, P_KMAX, P_U2SS, P_VMX
from edgetwin.therapy import TherapyProfile
from edgetwin.twin.indices import (
    absorption_half_time_min,
    basal_glucose_mg_dl,
    insulin_sensitivity_mg_dl_per_u,
    steady_states,
)
from edgetwin.twin.prior import (
    GUT_PARAMS,
    N_THETA,
    Donors,
    ParticlePrior,
    compose_params,
    mix_guts,
    patient_prior,
    profile_prior,
)


def cohort_profile(name: str) -> TherapyProfile:
    pp = load_patient(name)
    th = load_therapy(name)
    return TherapyProfile(
        weight_kg=pp.BW,
        basal_schedule=((0, pp.basal_u_per_h * 0.9), (360, pp.basal_u_per_h * 1.1)),
        carb_ratio_g_per_u=th.carb_ratio_g_per_u,
        correction_factor_mg_dl_per_u=th.correction_factor_mg_dl_per_u,
        age_years=th.age_years,
    )


def test_profile_donors_are_made_consistent_with_the_profile() -> None:
    profile = cohort_profile("adult#004")
    prior = profile_prior(profile, exclude=("adult#004",), mixed_guts=False)
    assert "adult#004" not in prior.donors.names
    assert prior.donor_weights.sum() == pytest.approx(1.0)
    v = prior.donors.vectors
    assert np.allclose(v[:, P_BW], profile.weight_kg)
    # Each donor sits at a steady state under the profile's mean basal, at its own basal glucose.
    np.testing.assert_allclose(v[:, P_U2SS] * v[:, P_BW] / 6000 * 60, profile.daily_basal_u / 24, rtol=1e-12)
    _, ok = steady_states(v)
    assert ok.all()
    own = [load_patient(n).basal_glucose_mg_dl for n in prior.donors.names]
    np.testing.assert_allclose(basal_glucose_mg_dl(v), own, rtol=1e-6)
    # Model correction factors follow the profile's (through each donor's own model/clinic ratio).
    isf = insulin_sensitivity_mg_dl_per_u(v)
    for name, value in zip(prior.donors.names, isf, strict=True):
        own_pp = load_patient(name)
        ratio = (
            insulin_sensitivity_mg_dl_per_u(own_pp.vector()[None, :])[0]
            / load_therapy(name).correction_factor_mg_dl_per_u
        )
        assert value == pytest.approx(profile.correction_factor_mg_dl_per_u * ratio, rel=0.05)


def test_donors_resemble_the_profile() -> None:
    child = profile_prior(cohort_profile("child#003"), exclude=("child#003",))
    adult = profile_prior(cohort_profile("adult#002"), exclude=("adult#002",))
    top_child = child.donors.names[int(np.argmax(child.donor_weights))]
    top_adult = adult.donors.names[int(np.argmax(adult.donor_weights))]
    assert not top_child.startswith("adult") and top_adult.startswith("adult")


def test_multipliers_mean_what_their_names_say() -> None:
    prior = patient_prior(load_patient("adult#001"))
    d = prior.donors
    idx = np.zeros(4, dtype=np.int64)
    theta = np.zeros((4, N_THETA))
    theta[1, 0] = np.log(1.5)  # insulin sensitivity x1.5
    theta[2, 1] = np.log(2.0)  # meals absorb twice as fast
    theta[3, 2] = np.log(1.1)  # 10 % more glucose production
    p = compose_params(d, idx, theta)
    np.testing.assert_array_equal(p[0], d.vectors[0])
    assert p[1, P_VMX] == pytest.approx(1.5 * d.vectors[0, P_VMX]) and p[2, P_KABS] == pytest.approx(
        2 * d.vectors[0, P_KABS]
    )
    g = basal_glucose_mg_dl(p)
    assert g[1] == pytest.approx(g[0], abs=1e-6)  # sensitivity does not move the fasting level
    assert g[3] > g[0] + 5  # production does
    isf = insulin_sensitivity_mg_dl_per_u(p)
    assert isf[1] > 1.3 * isf[0]
    t50 = absorption_half_time_min(p)
    assert t50[2] < 0.7 * t50[0]


def test_prior_validation() -> None:
    d = Donors.from_vectors(("a",), load_patient("adult#001").vector()[None, :])
    with pytest.raises(ModelError):
        ParticlePrior(d, np.array([0.0]), np.zeros(N_THETA), np.ones(N_THETA), "x")
    with pytest.raises(ModelError):
        ParticlePrior(d, np.ones(1), np.zeros(2), np.ones(N_THETA), "x")
    pr = ParticlePrior(d, np.ones(1), np.zeros(N_THETA), np.full(N_THETA, 0.1), "x")
    idx, theta = pr.sample(500, np.random.default_rng(0))
    assert theta.shape == (500, N_THETA) and (idx == 0).all()
    assert 0.08 < theta[:, 0].std() < 0.12


def test_mixed_guts_pair_every_body_with_every_gut() -> None:
    base = profile_prior(cohort_profile("adolescent#002"), exclude=("adolescent#002",), mixed_guts=False)
    mixed = mix_guts(base)
    d = base.donors.size
    assert mixed.donors.size == d * d and mixed.mixed_from is base
    assert mixed.donor_weights.sum() == pytest.approx(1.0)
    # the bodies keep their prior weights; every gut is equally likely
    np.testing.assert_allclose(mixed.donor_weights.reshape(d, d).sum(axis=1), base.donor_weights)
    gut = list(GUT_PARAMS)
    body = [i for i in range(base.donors.vectors.shape[1]) if i not in gut]
    i, j = d - 1, 0
    hybrid = mixed.donors.vectors[i * d + j]
    np.testing.assert_array_equal(hybrid[body], base.donors.vectors[i, body])
    np.testing.assert_array_equal(hybrid[gut], base.donors.vectors[j, gut])
    assert mixed.donors.names[i * d + j] == f"{base.donors.names[i]}+gut:{base.donors.names[j]}"
    assert mixed.donors.names[i * d + i] == base.donors.names[i]
    # a gut does not move the fasting state: every hybrid sits at its body's basal glucose
    np.testing.assert_allclose(
        basal_glucose_mg_dl(mixed.donors.vectors).reshape(d, d),
        np.repeat(basal_glucose_mg_dl(base.donors.vectors)[:, None], d, axis=1),
        rtol=1e-9,
    )
    assert profile_prior(cohort_profile("adolescent#002"), exclude=("adolescent#002",)).donors.size == d * d
    assert base.donors.vectors[:, P_KMAX].std() > 0  # the donors' guts do differ
