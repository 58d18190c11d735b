"""The risk the suggester minimises: asymmetric, zero at target, quantiles as the twin defines them."""

from __future__ import annotations

import numpy as np
import pytest

from edgetwin.suggest.risk import plan_risk, quantile_trajectories
from edgetwin.twin.ensemble import weighted_quantiles


@pytest.mark.parametrize("n", [1, 2, 5, 32])
def test_vectorised_quantiles_match_the_twins_definition(n: int) -> None:
    rng = np.random.default_rng(n)
    g = rng.normal(120, 40, (3, n, 7))
    w = rng.random(n) + 0.01
    q = (0.05, 0.1, 0.5, 0.9)
    ours = quantile_trajectories(g, w, q)
    ref = np.stack([weighted_quantiles(g[i], w, q) for i in range(3)])
    np.testing.assert_allclose(ours, ref, atol=1e-9)


def test_lows_cost_far_more_than_equally_distant_highs_and_target_is_free() -> None:
    flat = lambda v: np.full((1, 1, 10), v)  # noqa: E731
    w = np.ones(1)
    at_target, _ = plan_risk(flat(110.0), w, 110.0)
    low, _ = plan_risk(flat(60.0), w, 110.0)
    high, _ = plan_risk(flat(250.0), w, 110.0)
    assert at_target[0] < 0.01
    assert low[0] > 5 * high[0] > 0


def test_a_minority_of_low_members_is_penalised_through_the_low_quantile() -> None:
    w = np.full(10, 0.1)
    safe = np.full((1, 10, 10), 150.0)
    risky = safe.copy()
    risky[0, :2] = 55.0  # two members in ten go low, the median stays at 150
    c_safe, low_safe = plan_risk(safe, w, 110.0)
    c_risky, low_risky = plan_risk(risky, w, 110.0)
    assert low_risky.min() < 70 <= low_safe.min()
    assert c_risky[0] > 3 * c_safe[0]
