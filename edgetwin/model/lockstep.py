"""Ensembles in lock-step: every member on the same minute, members across SIMD lanes.

An ensemble (particles, forecast members, what-if candidates, a population search) is many runs of
the same equations over the same minutes. :func:`ensemble_glucose` advances them in blocks of
:data:`BLOCK` members laid out structure-of-arrays (one row of ``BLOCK`` lanes per state and per
parameter), so one compiled loop over the lanes runs 8 members per AVX-512 instruction (4 with
AVX2, 2 with NEON on a Raspberry Pi). That loop is plain arithmetic with no early exit: the
equations are :func:`edgetwin.model.rhs.rhs_scalars` (the code the single-patient integrator
uses), exp is :func:`~edgetwin.model.rhs.exp_bounded`, branches are selects.

Lanes cannot each pick an adaptive step, so the block picks one for all its lanes, minute by
minute, with the classical 4th-order Runge-Kutta method:

* inputs are held over each minute, so a step never crosses a minute where any lane's inputs
  change, nor an output minute;
* through quiet stretches (nothing being eaten, insulin rate unchanged, glucose and plasma
  insulin changing slowly: :data:`QUIET_GLUCOSE_RATE`, :data:`QUIET_INSULIN_RATE`) a step spans up to
  :data:`MAX_SPAN_MIN` minutes, capped by RK4's stability on the block's fastest linear mode
  (:func:`edgetwin.model.integrate.fastest_rate`);
* while any lane's stomach content is crossing a steep gastric-emptying front (``b`` near 1 makes
  the tanh switch within a fraction of a minute), the minute is cut into up to
  :data:`MAX_SUBSTEPS` steps so the front's argument moves by at most one unit per step.

Error against a tight solve of the same equations, all 30 patients, a day with meals, a snack
and boluses (``tests/model/test_lockstep.py``): under 0.02 mg/dL, against 0.3 mg/dL for plain
1-minute RK4 (``specs/model.md``). Single runs (the virtual patients, ``edgetwin simulate``) keep
the adaptive Dormand-Prince solve of :mod:`edgetwin.model.integrate`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from edgetwin.model.integrate import fastest_rate
from edgetwin.model.kernels import (
    AUX_EATEN_G,
    AUX_LAST_EAT_G,
    AUX_PLANNED_G,
    AUX_QSTO_AT_START_MG,
    U_TO_PMOL,
    meal_minute,
)
from edgetwin.model.params import (
    N_PARAMS,
    N_STATES,
    P_B,
    P_BW,
    P_D,
    P_F,
    P_KABS,
    P_KMAX,
    P_VG,
    P_VI,
    X_GP,
    X_GS,
    X_IP,
    X_QSTO1,
    X_QSTO2,
)
from edgetwin.model.rhs import front_slopes, rhs_scalars

__all__ = ["BLOCK", "MAX_SPAN_MIN", "MAX_SUBSTEPS", "ensemble_glucose"]

BLOCK = 32
"""Members per block: a few vector widths; a block's work array (84 rows x 32 lanes, 21 kB) stays
in L1 cache."""

MAX_SPAN_MIN = 3
"""Longest step (minutes) through a quiet stretch. With 5-minute outputs 4 saves no step (4 + 1
against 3 + 2) and cost accuracy (0.017 against 0.004 mg/dL on the bench day)."""

QUIET_GLUCOSE_RATE = 0.5
"""mg/dL/min: a stretch where any lane's plasma glucose moves faster than this is not quiet (one
minute per step)."""

QUIET_INSULIN_RATE = 0.06
"""Per minute: nor is one where any lane's plasma insulin changes by more than this fraction a
minute. Without these a 10 U bolus into a fasting child was 0.39 mg/dL off at 3-minute steps (the
insulin peak's error carried into glucose; found by the property test in
tests/model/test_lockstep.py)."""

MAX_SUBSTEPS = 8
"""Most steps a minute is cut into while a lane's stomach crosses a steep front."""

MAX_BASE_SUBSTEPS = 64
"""Most steps per minute for stiffness (a rate of 160/min; the cohort's fastest is about 1.2)."""

RK4_STABLE_H_LAMBDA = 2.5
"""h·λ kept under this on the fastest linear mode (RK4's real stability limit is 2.785)."""

FRONT_FREE_Z = 5.0
"""A front's tanh argument beyond ±5 is saturated (1 - tanh 5 < 1e-4): the front is inactive."""

_FAST = {"contract", "afn", "reassoc", "nsz", "arcp"}

# Rows of a block's work array; row r of lane j is element r * BLOCK + j.
_R_X = 0  # states
_R_K = _R_X + N_STATES  # derivative at the last stage
_R_S = _R_K + N_STATES  # weighted sum of the stages' derivatives, times h
_R_P = _R_S + N_STATES  # parameters (the kernel ABI's order)
_R_RA = _R_P + N_PARAMS  # f * kabs / BW
_R_INV_VI = _R_RA + 1  # 1 / Vi
_R_TO_PMOL = _R_INV_VI + 1  # U -> pmol/kg
_R_AUX = _R_TO_PMOL + 1  # meal bookkeeping (AUX_PLANNED_G .. AUX_LAST_EAT_G)
_N_AUX_USED = 4
_R_CHO = _R_AUX + _N_AUX_USED  # this minute's eating, mg/min
_R_INS = _R_CHO + 1  # this minute's insulin, pmol/kg/min
_R_DBAR = _R_INS + 1  # current meal size Dbar, mg
_R_SB = _R_DBAR + 1  # gastric-emptying front slopes
_R_SD = _R_SB + 1
_R_NEED = _R_SD + 1  # steps per minute each lane's fronts need
_N_ROWS = _R_NEED + 1

# Classical RK4: stage offsets and weights.
_RK_C = (0.0, 0.5, 0.5, 1.0)
_RK_W = (1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0)


@njit(cache=True, inline="always")
def _ix(row: int, lane: np.uint64) -> np.uint64:
    # Unsigned indices: numba then emits no negative-index wrap-around, whose select would hide
    # the affine address pattern the loop vectoriser needs.
    return np.uint64(row * BLOCK) + lane


@njit(cache=True, inline="always")
def _at(row: int, j: int) -> int:
    """Index of row ``row``, lane ``j`` (signed; for the loops outside the vectorised stages)."""
    return row * BLOCK + j


@njit(cache=True, inline="always", fastmath=_FAST, error_model="numpy")
def _complete(w: np.ndarray, j: int) -> None:
    """End of a step for lane ``j``: x += S, S cleared (one statement per state, so it vectorises)."""
    u = np.uint64(j)
    w[_ix(_R_X + 0, u)] += w[_ix(_R_S + 0, u)]
    w[_ix(_R_S + 0, u)] = 0.0
    w[_ix(_R_X + 1, u)] += w[_ix(_R_S + 1, u)]
    w[_ix(_R_S + 1, u)] = 0.0
    w[_ix(_R_X + 2, u)] += w[_ix(_R_S + 2, u)]
    w[_ix(_R_S + 2, u)] = 0.0
    w[_ix(_R_X + 3, u)] += w[_ix(_R_S + 3, u)]
    w[_ix(_R_S + 3, u)] = 0.0
    w[_ix(_R_X + 4, u)] += w[_ix(_R_S + 4, u)]
    w[_ix(_R_S + 4, u)] = 0.0
    w[_ix(_R_X + 5, u)] += w[_ix(_R_S + 5, u)]
    w[_ix(_R_S + 5, u)] = 0.0
    w[_ix(_R_X + 6, u)] += w[_ix(_R_S + 6, u)]
    w[_ix(_R_S + 6, u)] = 0.0
    w[_ix(_R_X + 7, u)] += w[_ix(_R_S + 7, u)]
    w[_ix(_R_S + 7, u)] = 0.0
    w[_ix(_R_X + 8, u)] += w[_ix(_R_S + 8, u)]
    w[_ix(_R_S + 8, u)] = 0.0
    w[_ix(_R_X + 9, u)] += w[_ix(_R_S + 9, u)]
    w[_ix(_R_S + 9, u)] = 0.0
    w[_ix(_R_X + 10, u)] += w[_ix(_R_S + 10, u)]
    w[_ix(_R_S + 10, u)] = 0.0
    w[_ix(_R_X + 11, u)] += w[_ix(_R_S + 11, u)]
    w[_ix(_R_S + 11, u)] = 0.0
    w[_ix(_R_X + 12, u)] += w[_ix(_R_S + 12, u)]
    w[_ix(_R_S + 12, u)] = 0.0


@njit(cache=True, inline="always", fastmath=_FAST, error_model="numpy")
def _stage(w: np.ndarray, j: int, a: float, wgt: float) -> None:
    """One RK4 stage for lane ``j``: derivative at x + a·k, accumulated into S with weight ``wgt``."""
    u = np.uint64(j)
    y = (
        w[_ix(_R_X + 0, u)] + a * w[_ix(_R_K + 0, u)],
        w[_ix(_R_X + 1, u)] + a * w[_ix(_R_K + 1, u)],
        w[_ix(_R_X + 2, u)] + a * w[_ix(_R_K + 2, u)],
        w[_ix(_R_X + 3, u)] + a * w[_ix(_R_K + 3, u)],
        w[_ix(_R_X + 4, u)] + a * w[_ix(_R_K + 4, u)],
        w[_ix(_R_X + 5, u)] + a * w[_ix(_R_K + 5, u)],
        w[_ix(_R_X + 6, u)] + a * w[_ix(_R_K + 6, u)],
        w[_ix(_R_X + 7, u)] + a * w[_ix(_R_K + 7, u)],
        w[_ix(_R_X + 8, u)] + a * w[_ix(_R_K + 8, u)],
        w[_ix(_R_X + 9, u)] + a * w[_ix(_R_K + 9, u)],
        w[_ix(_R_X + 10, u)] + a * w[_ix(_R_K + 10, u)],
        w[_ix(_R_X + 11, u)] + a * w[_ix(_R_K + 11, u)],
        w[_ix(_R_X + 12, u)] + a * w[_ix(_R_K + 12, u)],
    )
    d = rhs_scalars(
        y[0], y[1], y[2], y[3], y[4], y[5], y[6], y[7], y[8], y[9], y[10], y[11], y[12],
        w,
        _R_P * BLOCK + j,
        BLOCK,
        w[_ix(_R_RA, u)],
        w[_ix(_R_INV_VI, u)],
        w[_ix(_R_CHO, u)],
        w[_ix(_R_INS, u)],
        w[_ix(_R_DBAR, u)],
        w[_ix(_R_SB, u)],
        w[_ix(_R_SD, u)],
    )  # fmt: skip
    # One statement per state: a loop indexing the tuple would compile to a switch, not vector code.
    w[_ix(_R_K + 0, u)] = d[0]
    w[_ix(_R_S + 0, u)] += wgt * d[0]
    w[_ix(_R_K + 1, u)] = d[1]
    w[_ix(_R_S + 1, u)] += wgt * d[1]
    w[_ix(_R_K + 2, u)] = d[2]
    w[_ix(_R_S + 2, u)] += wgt * d[2]
    w[_ix(_R_K + 3, u)] = d[3]
    w[_ix(_R_S + 3, u)] += wgt * d[3]
    w[_ix(_R_K + 4, u)] = d[4]
    w[_ix(_R_S + 4, u)] += wgt * d[4]
    w[_ix(_R_K + 5, u)] = d[5]
    w[_ix(_R_S + 5, u)] += wgt * d[5]
    w[_ix(_R_K + 6, u)] = d[6]
    w[_ix(_R_S + 6, u)] += wgt * d[6]
    w[_ix(_R_K + 7, u)] = d[7]
    w[_ix(_R_S + 7, u)] += wgt * d[7]
    w[_ix(_R_K + 8, u)] = d[8]
    w[_ix(_R_S + 8, u)] += wgt * d[8]
    w[_ix(_R_K + 9, u)] = d[9]
    w[_ix(_R_S + 9, u)] += wgt * d[9]
    w[_ix(_R_K + 10, u)] = d[10]
    w[_ix(_R_S + 10, u)] += wgt * d[10]
    w[_ix(_R_K + 11, u)] = d[11]
    w[_ix(_R_S + 11, u)] += wgt * d[11]
    w[_ix(_R_K + 12, u)] = d[12]
    w[_ix(_R_S + 12, u)] += wgt * d[12]


@njit(cache=True, inline="always", fastmath=_FAST, error_model="numpy")
def _front_steps_per_min(w: np.ndarray, j: int, minutes: float) -> float:
    """Steps per minute lane ``j`` needs for its gastric-emptying fronts over the next ``minutes``.

    A front's tanh argument z = slope·(Qsto - b·Dbar) moves at slope·|dQsto/dt|, which is at most
    slope·(eating + kmax·(Qsto1 + Qsto)); a step should move it by at most 1 while |z| can come
    below :data:`FRONT_FREE_Z`. 0 when no meal has been eaten. Straight-line code: it vectorises.
    """
    u = np.uint64(j)
    dbar = w[_ix(_R_DBAR, u)]
    q1 = w[_ix(_R_X + X_QSTO1, u)]
    q = q1 + w[_ix(_R_X + X_QSTO2, u)]
    rate = w[_ix(_R_CHO, u)] + w[_ix(_R_P + P_KMAX, u)] * (q + q1)
    sb = w[_ix(_R_SB, u)]
    sd = w[_ix(_R_SD, u)]
    vb = sb * rate
    vd = sd * rate
    nb = vb if abs(sb * (q - w[_ix(_R_P + P_B, u)] * dbar)) < FRONT_FREE_Z + vb * minutes else 0.0
    nd = vd if abs(sd * (q - w[_ix(_R_P + P_D, u)] * dbar)) < FRONT_FREE_Z + vd * minutes else 0.0
    need = nb if nb > nd else nd
    return need if dbar > 0.0 else 0.0


@njit(cache=True, inline="always", fastmath=_FAST, error_model="numpy")
def _minute_inputs(w: np.ndarray, j: int, cho_g: float, insulin_u: float) -> None:
    """Meal bookkeeping and this minute's inputs for lane ``j`` (:func:`kernels.meal_minute`)."""
    u = np.uint64(j)
    planned, to_eat, at_start, eaten, dbar = meal_minute(
        w[_ix(_R_AUX + AUX_PLANNED_G, u)],
        w[_ix(_R_AUX + AUX_LAST_EAT_G, u)],
        w[_ix(_R_AUX + AUX_QSTO_AT_START_MG, u)],
        w[_ix(_R_AUX + AUX_EATEN_G, u)],
        w[_ix(_R_X + X_QSTO1, u)] + w[_ix(_R_X + X_QSTO2, u)],
        cho_g,
    )
    w[_ix(_R_AUX + AUX_PLANNED_G, u)] = planned
    w[_ix(_R_AUX + AUX_LAST_EAT_G, u)] = to_eat
    w[_ix(_R_AUX + AUX_QSTO_AT_START_MG, u)] = at_start
    w[_ix(_R_AUX + AUX_EATEN_G, u)] = eaten
    sb, sd = front_slopes(w, _R_P * BLOCK + j, BLOCK, dbar)
    w[_ix(_R_DBAR, u)] = dbar
    w[_ix(_R_SB, u)] = sb
    w[_ix(_R_SD, u)] = sd
    w[_ix(_R_CHO, u)] = 1000.0 * to_eat
    w[_ix(_R_INS, u)] = insulin_u * w[_ix(_R_TO_PMOL, u)]


@njit(cache=True, parallel=True, fastmath=_FAST, error_model="numpy")
def ensemble_glucose(
    params: np.ndarray,
    x: np.ndarray,
    aux: np.ndarray,
    cho_g: np.ndarray,
    insulin_u: np.ndarray,
    stride: int,
    out_gsub_mg_dl: np.ndarray,
    out_bg_mg_dl: np.ndarray,
) -> None:
    """N members × T minutes in one call, parallel over blocks of members, lanes in lock-step.

    ``params`` (N, 32) or (1, 32) shared; ``x`` (N, 13) and ``aux`` (N, N_AUX) advanced in place;
    ``cho_g`` and ``insulin_u`` (N, T) or (1, T) shared (announced g and delivered U per minute).
    ``out_gsub_mg_dl`` and ``out_bg_mg_dl`` (N, T // stride + 1) receive subcutaneous and plasma
    glucose every ``stride`` minutes from minute 0; either may have zero columns.
    """
    n = x.shape[0]
    n_min = cho_g.shape[1]
    shared_p = params.shape[0] == 1
    shared_in = cho_g.shape[0] == 1
    n_gsub = out_gsub_mg_dl.shape[1]
    n_bg = out_bg_mg_dl.shape[1]
    n_blocks = (n + BLOCK - 1) // BLOCK
    for blk in prange(n_blocks):
        lo = blk * BLOCK
        used = min(n, lo + BLOCK) - lo
        w = np.zeros(_N_ROWS * BLOCK)
        # Load. Unused lanes of the last block repeat its first member and are never stored.
        for j in range(BLOCK):
            m = lo + (j if j < used else 0)
            ip = 0 if shared_p else m
            for i in range(N_PARAMS):
                w[_at(_R_P + i, j)] = params[ip, i]
            for i in range(N_STATES):
                w[_at(_R_X + i, j)] = x[m, i]
            for i in range(_N_AUX_USED):
                w[_at(_R_AUX + i, j)] = aux[m, i]
            p = params[ip]
            w[_at(_R_RA, j)] = p[P_F] * p[P_KABS] / p[P_BW]
            w[_at(_R_INV_VI, j)] = 1.0 / p[P_VI]
            w[_at(_R_TO_PMOL, j)] = U_TO_PMOL / p[P_BW]
        for j in range(used):
            vg = w[_at(_R_P + P_VG, j)]
            if n_gsub > 0:
                out_gsub_mg_dl[lo + j, 0] = w[_at(_R_X + X_GS, j)] / vg
            if n_bg > 0:
                out_bg_mg_dl[lo + j, 0] = w[_at(_R_X + X_GP, j)] / vg
        # Step limits from the block's fastest linear mode.
        lam = 0.0
        for j in range(BLOCK):
            lam = max(lam, fastest_rate(params[0 if shared_p else lo + (j if j < used else 0)]))
        h_stable = RK4_STABLE_H_LAMBDA / lam if lam > 0.0 else float(MAX_SPAN_MIN)
        if not h_stable >= 1.0 / MAX_BASE_SUBSTEPS:
            # A nonsense rate (garbage or NaN parameters) must not stall the block: that lane may
            # go non-finite, the others stay exact.
            h_stable = 1.0 / MAX_BASE_SUBSTEPS
        span_cap = max(1, min(MAX_SPAN_MIN, int(h_stable)))
        base_sub = max(1, int(math.ceil(1.0 / h_stable)))
        k = 0
        while k < n_min:
            if shared_in:
                c = cho_g[0, k]
                q = insulin_u[0, k]
                for j in range(BLOCK):
                    _minute_inputs(w, j, c, q)
            else:
                for j in range(BLOCK):
                    m = lo + (j if j < used else 0)
                    _minute_inputs(w, j, cho_g[m, k], insulin_u[m, k])
            # Span: minutes until an input changes, an output is due, or the stability cap.
            span = 1
            quiet = True
            for j in range(BLOCK):
                if w[_at(_R_AUX + AUX_PLANNED_G, j)] > 0.0 or w[_at(_R_AUX + AUX_LAST_EAT_G, j)] > 0.0:
                    quiet = False
                    break
                if abs(w[_at(_R_K + X_GP, j)]) > QUIET_GLUCOSE_RATE * w[_at(_R_P + P_VG, j)]:
                    quiet = False
                    break
                if abs(w[_at(_R_K + X_IP, j)]) > QUIET_INSULIN_RATE * w[_at(_R_X + X_IP, j)]:
                    quiet = False
                    break
            while quiet and span < span_cap and k + span < n_min and (k + span) % stride != 0:
                for j in range(1 if shared_in else BLOCK):
                    m = 0 if shared_in else lo + (j if j < used else 0)
                    if cho_g[m, k + span] != 0.0 or insulin_u[m, k + span] != insulin_u[m, k]:
                        quiet = False
                        break
                if quiet:
                    span += 1
            # Substeps: more while a steep front is being crossed.
            for j in range(BLOCK):
                w[_at(_R_NEED, j)] = _front_steps_per_min(w, j, float(span))
            need = 0.0
            for j in range(BLOCK):
                need = max(need, w[_at(_R_NEED, j)])
            n_sub = base_sub
            if need * span > n_sub:
                span = 1
                n_sub = max(base_sub, min(MAX_SUBSTEPS, int(math.ceil(need))))
            hs = span / n_sub
            for _ in range(n_sub):
                for st in range(4):
                    a = _RK_C[st] * hs
                    wgt = _RK_W[st] * hs
                    for j in range(BLOCK):
                        _stage(w, j, a, wgt)
                for j in range(BLOCK):
                    _complete(w, j)
            k += span
            if k % stride == 0:
                r = k // stride
                for j in range(used):
                    vg = w[_at(_R_P + P_VG, j)]
                    if r < n_gsub:
                        out_gsub_mg_dl[lo + j, r] = w[_at(_R_X + X_GS, j)] / vg
                    if r < n_bg:
                        out_bg_mg_dl[lo + j, r] = w[_at(_R_X + X_GP, j)] / vg
        for j in range(used):
            for i in range(N_STATES):
                x[lo + j, i] = w[_at(_R_X + i, j)]
            for i in range(_N_AUX_USED):
                aux[lo + j, i] = w[_at(_R_AUX + i, j)]
