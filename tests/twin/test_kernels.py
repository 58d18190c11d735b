"""Filter kernels against straightforward references."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from edgetwin.twin.kernels import assimilate_cgm_kernel, mixture_quantiles, systematic_resample


def reference_loglik(
    pred: np.ndarray, y: float, sd: float, nu: float, eps: float, rng_width: float
) -> np.ndarray:
    inlier = (1 - eps) * stats.t.pdf((y - pred) / sd, nu) / sd
    return np.log(inlier + eps / rng_width)


def test_likelihood_and_bias_update_match_the_mixture_formulae() -> None:
    rng = np.random.default_rng(0)
    gsub = rng.normal(140, 15, 50)
    bias = rng.normal(0, 5, 50)
    log_w = np.full(50, -math.log(50))
    resp = np.empty(50)
    var_pred, bias_var, nu = 40.0, 36.0, 5.0
    t_norm = math.lgamma(3.0) - math.lgamma(2.5) - 0.5 * math.log(5.0 * math.pi)
    pred = gsub + bias
    before = bias.copy()
    total = assimilate_cgm_kernel(
        gsub, bias, log_w, 150.0, var_pred, bias_var, nu, t_norm, 0.02, 400.0, 39.0, 600.0, resp
    )
    ll = reference_loglik(pred, 150.0, math.sqrt(var_pred), nu, 0.02, 400.0)
    np.testing.assert_allclose(log_w, -math.log(50) + ll, rtol=1e-10)
    np.testing.assert_allclose(total, math.log(np.mean(np.exp(ll))), rtol=1e-10)
    inlier = 0.98 * stats.t.pdf((150.0 - pred) / math.sqrt(var_pred), nu) / math.sqrt(var_pred)
    np.testing.assert_allclose(resp, inlier / np.exp(ll), rtol=1e-9)
    np.testing.assert_allclose(bias, before + resp * (bias_var / var_pred) * (150.0 - pred), rtol=1e-9)


def test_a_reading_at_the_clip_limit_is_censored() -> None:
    gsub = np.array([30.0, 60.0, 120.0])
    bias = np.zeros(3)
    log_w = np.zeros(3)
    resp = np.empty(3)
    assimilate_cgm_kernel(gsub, bias, log_w, 39.0, 25.0, 20.0, 5.0, 0.0, 0.02, 400.0, 39.0, 600.0, resp)
    p = stats.norm.cdf((39.0 - gsub) / 5.0)
    np.testing.assert_allclose(np.exp(log_w), p, rtol=1e-9, atol=1e-300)
    assert (bias == 0).all() and (resp == 0).all()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40), st.floats(0.0, 0.999))
def test_systematic_resampling_keeps_counts_within_one_of_the_weights(w: list[float], u: float) -> None:
    weights = np.array(w) + 1e-3
    weights /= weights.sum()
    n = 200
    idx = np.empty(n, dtype=np.int64)
    systematic_resample(weights, u, idx)
    assert (np.diff(idx) >= 0).all() and idx.min() >= 0 and idx.max() < len(w)
    counts = np.bincount(idx, minlength=len(w))
    assert (np.abs(counts - n * weights) <= 1.0 + 1e-9).all()


def test_mixture_quantiles_of_one_component_are_its_quantiles() -> None:
    z = np.array([stats.norm.ppf((k + 0.5) / 400) for k in range(400)])
    z /= np.sqrt(np.mean(z * z))
    centre = np.array([[100.0, 50.0]])
    sd = np.array([10.0, 2.0])
    qs = np.array([0.1, 0.5, 0.9])
    out = np.empty((3, 2))
    mixture_quantiles(centre, sd, z, qs, np.empty(400), out)
    np.testing.assert_allclose(out[:, 0], 100 + 10 * stats.norm.ppf(qs), atol=0.1)
    np.testing.assert_allclose(out[:, 1], 50 + 2 * stats.norm.ppf(qs), atol=0.02)


def test_mixture_quantiles_follow_the_mixture() -> None:
    z = np.array([stats.norm.ppf((k + 0.5) / 200) for k in range(200)])
    centre = np.array([[80.0], [160.0]])
    sd = np.array([5.0])
    out = np.empty((3, 1))
    mixture_quantiles(centre, sd, z, np.array([0.1, 0.5, 0.9]), np.empty(400), out)
    assert 70 < out[0, 0] < 80 and 80 < out[1, 0] < 160 and 160 < out[2, 0] < 170
