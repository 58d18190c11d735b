"""The glucose risk a suggestion minimises: Kovatchev's risk function, lows weighted far more.

Kovatchev et al. (Diabetes Care 1997; 2001) symmetrise the glucose scale with
``f(BG) = 1.509 (ln(BG)^1.084 − 5.381)`` and take ``r = 10 f²``, which is zero at 112.5 mg/dL and
equal for 50 and 250 mg/dL. We shift the zero to the patient's target (``BG × 112.5 / target``)
and multiply the low branch by ``low_weight`` (default 10): a predicted 60 mg/dL costs as much
as a predicted 400 mg/dL would with an equal weighting times about three.

Lows are scored on a low quantile of the ensemble (the members that go lowest decide), highs on
the expectation over members: a candidate that looks good on the median but sends one member in
ten into a low is penalised.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edgetwin.metrics import risk_index

__all__ = ["KOVATCHEV_ZERO_MG_DL", "plan_risk", "quantile_trajectories"]

KOVATCHEV_ZERO_MG_DL = 112.5
"""Glucose (mg/dL) at which the Kovatchev risk is zero."""

F64 = npt.NDArray[np.float64]


def quantile_trajectories(glucose: F64, weights: F64, quantiles: tuple[float, ...]) -> F64:
    """Quantiles across members for every plan: glucose (K, N, T) → (K, len(quantiles), T).

    Same definition as :func:`~edgetwin.twin.ensemble.weighted_quantiles` (weighted empirical
    CDF at member midpoints, linear in between, flat beyond), vectorised over plans and times.
    """
    k, n, t = glucose.shape
    if n == 1:
        return np.repeat(glucose, len(quantiles), axis=1)
    w = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    order = np.argsort(glucose, axis=1)
    vs = np.take_along_axis(glucose, order, axis=1)
    ws = w[order]
    cdf = np.cumsum(ws, axis=1) - 0.5 * ws
    out = np.empty((k, len(quantiles), t))
    for i, q in enumerate(quantiles):
        j = np.count_nonzero(cdf < q, axis=1)  # first index with cdf >= q
        hi = np.minimum(j, n - 1)[:, None, :]
        lo = np.maximum(j - 1, 0)[:, None, :]
        c_lo = np.take_along_axis(cdf, lo, axis=1)[:, 0, :]
        c_hi = np.take_along_axis(cdf, hi, axis=1)[:, 0, :]
        v_lo = np.take_along_axis(vs, lo, axis=1)[:, 0, :]
        v_hi = np.take_along_axis(vs, hi, axis=1)[:, 0, :]
        span = c_hi - c_lo
        frac = np.where(span > 0, (q - c_lo) / np.where(span > 0, span, 1.0), 0.0)
        out[:, i, :] = v_lo + np.clip(frac, 0.0, 1.0) * (v_hi - v_lo)
    return out


def plan_risk(
    glucose: F64,
    weights: F64,
    target_mg_dl: float,
    *,
    low_quantile: float = 0.1,
    low_weight: float = 10.0,
    low_weight_at_end: float = 1.0,
    full_weight_until: int = 0,
    low_glucose: F64 | None = None,
) -> tuple[F64, F64]:
    """Mean asymmetric risk over the horizon for each plan.

    ``glucose`` (K plans, N members, T times) in mg/dL; ``weights`` (N,). The low weight is
    ``low_weight`` up to column ``full_weight_until`` and then falls linearly to
    ``low_weight × low_weight_at_end`` at the last column (a low far ahead can still be averted
    by a later suspension; one soon cannot). ``low_glucose`` (same shape), when given, is what the
    low term is scored on instead (e.g. the same plans with a later suspension as recourse).
    Returns (cost (K,), low-quantile trajectory of ``glucose`` (K, T)).
    """
    scale = KOVATCHEV_ZERO_MG_DL / target_mg_dl
    low_traj = quantile_trajectories(glucose, weights, (low_quantile,))[:, 0, :]
    scored_low = (
        low_traj
        if low_glucose is None
        else quantile_trajectories(low_glucose, weights, (low_quantile,))[:, 0, :]
    )
    rl, _ = risk_index(scored_low * scale)
    _, rh = risk_index(glucose * scale)
    expected_high = np.einsum("knt,n->kt", rh, weights)
    t = glucose.shape[2]
    w_low = np.full(t, low_weight)
    tail = t - 1 - full_weight_until
    if tail > 0:
        w_low[full_weight_until:] = low_weight * (
            1.0 - (1.0 - low_weight_at_end) * np.arange(tail + 1) / tail
        )
    cost = (w_low * rl + expected_high).mean(axis=1)
    return cost, low_traj
