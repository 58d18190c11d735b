"""Compiled pieces of the particle filter: the CGM likelihood with its bias update, resampling.

Plain loops over caller-provided arrays, no allocation, no Python objects (``STYLE.md``). The
wrappers in :mod:`edgetwin.twin.filter` own the buffers and validate inputs.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["assimilate_cgm_kernel", "mixture_quantiles", "systematic_resample"]

_SQRT2 = math.sqrt(2.0)


@njit(cache=True)
def assimilate_cgm_kernel(
    gsub_mg_dl: np.ndarray,
    bias_mg_dl: np.ndarray,
    log_w: np.ndarray,
    y_mg_dl: float,
    var_pred: float,
    bias_var: float,
    t_dof: float,
    t_log_norm: float,
    outlier_prob: float,
    outlier_range_mg_dl: float,
    clip_lo: float,
    clip_hi: float,
    out_resp: np.ndarray,
) -> float:
    """Weigh particles by one CGM reading and update their sensor-bias means in place.

    Particle i predicts ``gsub_mg_dl[i] + bias_mg_dl[i]`` with variance ``var_pred`` (bias
    variance + white noise). The density is a Student-t (``t_dof``) mixed with a uniform outlier
    floor; a reading at the sensor's clip limits is treated as censored (only "at or beyond"
    is known). ``log_w`` must hold normalised log-weights; the log-likelihood is added to it.
    ``out_resp[i]`` receives the probability that the reading is no outlier for particle i, and
    the bias mean moves by that fraction of the Kalman step. Returns log p(y) under the
    ensemble (the weighted mean likelihood).
    """
    n = gsub_mg_dl.shape[0]
    sd = math.sqrt(var_pred)
    log_out = math.log(outlier_prob / outlier_range_mg_dl) if outlier_prob > 0.0 else -1e300
    log_in = math.log(1.0 - outlier_prob)
    gain = bias_var / var_pred
    censored_low = y_mg_dl <= clip_lo + 0.5
    censored_high = y_mg_dl >= clip_hi - 0.5
    m = -1e300
    for i in range(n):
        pred = gsub_mg_dl[i] + bias_mg_dl[i]
        r = y_mg_dl - pred
        if censored_low or censored_high:
            z = (clip_lo - pred) / sd if censored_low else (pred - clip_hi) / sd
            p = 0.5 * math.erfc(-z / _SQRT2)
            ll = math.log(p) if p > 1e-300 else -690.0
            out_resp[i] = 0.0
        else:
            q = r / sd
            lt = t_log_norm - math.log(sd) - 0.5 * (t_dof + 1.0) * math.log1p(q * q / t_dof) + log_in
            hi = lt if lt > log_out else log_out
            ll = hi + math.log(math.exp(lt - hi) + math.exp(log_out - hi))
            resp = math.exp(lt - ll)
            out_resp[i] = resp
            bias_mg_dl[i] += resp * gain * r
        log_w[i] += ll
        if log_w[i] > m:
            m = log_w[i]
    total = 0.0
    for i in range(n):
        total += math.exp(log_w[i] - m)
    return m + math.log(total)


@njit(cache=True)
def systematic_resample(weights: np.ndarray, u: float, out_idx: np.ndarray) -> None:
    """Systematic resampling: ``len(out_idx)`` indices drawn with offset ``u`` in [0, 1).

    ``weights`` must be normalised. Low variance and O(N), the usual choice for particle filters
    (Douc & Cappé, ISPA 2005).
    """
    n_out = out_idx.shape[0]
    n = weights.shape[0]
    step = 1.0 / n_out
    target = u * step
    cum = weights[0]
    j = 0
    for k in range(n_out):
        while cum < target and j < n - 1:
            j += 1
            cum += weights[j]
        out_idx[k] = j
        target += step


@njit(cache=True)
def mixture_quantiles(
    centre: np.ndarray, sd: np.ndarray, z: np.ndarray, qs: np.ndarray, work: np.ndarray, out: np.ndarray
) -> None:
    """Quantiles per column of an equal-weight Gaussian mixture, by stratified points.

    Column k mixes ``N(centre[i, k], sd[k]^2)`` over members i; each component is represented
    by the points ``centre[i, k] + z[s] * sd[k]``. ``out[j, k]`` receives quantile ``qs[j]``
    (midpoint rule: the r-th smallest of n points sits at probability (r + 0.5) / n).
    ``work`` needs ``centre.shape[0] * len(z)`` elements.
    """
    m, k_cols = centre.shape
    s_n = z.shape[0]
    n = m * s_n
    for k in range(k_cols):
        c = 0
        for i in range(m):
            for s in range(s_n):
                work[c] = centre[i, k] + z[s] * sd[k]
                c += 1
        v = np.sort(work[:n])
        for j in range(qs.shape[0]):
            pos = qs[j] * n - 0.5
            if pos <= 0.0:
                out[j, k] = v[0]
            elif pos >= n - 1:
                out[j, k] = v[n - 1]
            else:
                lo = int(pos)
                frac = pos - lo
                out[j, k] = v[lo] + frac * (v[lo + 1] - v[lo])
