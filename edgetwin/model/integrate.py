"""Adaptive Dormand-Prince 5(4) integration of the model over minute-held inputs (numba).

Why adaptive: the gastric emptying rate ``kgut`` switches through two ``tanh`` fronts whose width
is a fraction of a minute for patients with ``b`` near 1, and ``kabs`` reaches 1.2/min; fixed-step
RK4 at h = 1 min is then off by ~0.3 mg/dL (``specs/model.md``). An embedded 5(4) pair with error
control resolves those fronts and strides over quiet hours in steps of several minutes, so it is
both more exact and cheaper than fixed steps.

Inputs are piecewise constant on minutes. The caller passes a *segment* of minutes over which the
inputs do not change; steps never cross a segment end. Inside a segment, states at whole minutes
come from the method's 4th-order dense output (Hairer, Norsett & Wanner, "Solving ODEs I", II.6),
so output points never shorten steps.

Coefficients: Dormand & Prince (1980), J. Comput. Appl. Math. 6:19-26; dense output weights from
Hairer et al. (as in their DOPRI5 code).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from edgetwin.model.params import (
    N_STATES,
    P_K1,
    P_K2,
    P_KA1,
    P_KA2,
    P_KABS,
    P_KD,
    P_KI,
    P_KM0,
    P_KMAX,
    P_KP2,
    P_KSC,
    P_M1,
    P_M2,
    P_M4,
    P_M30,
    P_P2U,
    P_VM0,
    P_VMX,
)
from edgetwin.model.rhs import model_rhs

__all__ = ["ERROR_SCALE", "N_WORK", "dp5_segment", "fastest_rate", "max_stable_step"]

# Butcher tableau.
C2, C3, C4, C5 = 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0
A21 = 1.0 / 5.0
A31, A32 = 3.0 / 40.0, 9.0 / 40.0
A41, A42, A43 = 44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0
A51, A52, A53, A54 = 19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0
A61, A62, A63, A64, A65 = (
    9017.0 / 3168.0,
    -355.0 / 33.0,
    46732.0 / 5247.0,
    49.0 / 176.0,
    -5103.0 / 18656.0,
)
B1, B3, B4, B5, B6 = 35.0 / 384.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0
# Error weights: 5th-order minus embedded 4th-order solution.
E1 = 71.0 / 57600.0
E3 = -71.0 / 16695.0
E4 = 71.0 / 1920.0
E5 = -17253.0 / 339200.0
E6 = 22.0 / 525.0
E7 = -1.0 / 40.0
# Dense output.
D1 = -12715105075.0 / 11282082432.0
D3 = 87487479700.0 / 32700410799.0
D4 = -10690763975.0 / 1880347072.0
D5 = 701980252875.0 / 199316789632.0
D6 = -1453857185.0 / 822651844.0
D7 = 69997945.0 / 29380423.0

# Typical magnitude of each state (units as STATE_NAMES); atol_i = rtol * ERROR_SCALE[i].
ERROR_SCALE = np.array(
    [1000.0, 1000.0, 1000.0, 100.0, 100.0, 10.0, 10.0, 100.0, 100.0, 10.0, 100.0, 100.0, 100.0]
)

# Rows of the work array: k1..k7, trial state, 5 dense-output coefficient rows.
N_WORK = 13
_K1, _K2, _K3, _K4, _K5, _K6, _K7, _YT, _R1, _R2, _R3, _R4, _R5 = range(N_WORK)

MAX_STEP_MIN = 30.0
MIN_STEP_MIN = 1e-6
# DP5's stability region meets the negative real axis near -3.3; stay inside it.
STABILITY_LIMIT = 3.0


@njit(cache=True)
def fastest_rate(p: np.ndarray) -> float:
    """The model's fastest linear rate (1/min): what limits an explicit method's step size."""
    # Plasma/liver insulin exchange [Ip, Il]: the faster eigenvalue of the 2x2 block.
    a = p[P_M2] + p[P_M4]
    d = p[P_M1] + p[P_M30]
    tr = a + d
    det = a * d - p[P_M1] * p[P_M2]
    disc = tr * tr - 4.0 * det
    lam = 0.5 * (tr + math.sqrt(disc if disc > 0.0 else 0.0))
    for rate in (
        p[P_KABS],
        p[P_KMAX],
        p[P_KA1] + p[P_KD],
        p[P_KA2],
        p[P_P2U],
        p[P_KI],
        p[P_KSC],
        # Glucose exchange plus utilisation at a generous insulin action (X = 100 pmol/L).
        p[P_K1] + p[P_K2] + p[P_KP2] + (p[P_VM0] + 100.0 * p[P_VMX]) / p[P_KM0],
    ):
        if rate > lam:
            lam = rate
    return lam


@njit(cache=True)
def max_stable_step(p: np.ndarray) -> float:
    """Largest step (min) that keeps DP5 stable on the model's fastest linear modes.

    Without this cap the controller lets steps grow through quiet hours until the fast insulin
    and gut modes go unstable, then cuts them back: a costly accept/reject cycle.
    """
    h = STABILITY_LIMIT / fastest_rate(p)
    return h if h < MAX_STEP_MIN else MAX_STEP_MIN


@njit(cache=True, fastmath={"contract", "afn", "reassoc", "nsz", "arcp"}, error_model="numpy")
def dp5_segment(
    p: np.ndarray,
    x: np.ndarray,
    cho_mg_per_min: float,
    insulin_pmol_per_kg_min: float,
    dbar_mg: float,
    n_minutes: int,
    h_hint: float,
    h_max: float,
    rtol: float,
    out_rows: np.ndarray,
    out_first: int,
    stride: int,
    phase: int,
    w: np.ndarray,
) -> float:
    """Advance ``x`` in place over ``n_minutes`` minutes of constant inputs.

    Writes the state at every whole minute ``m`` (1..n_minutes) with ``(phase + m) % stride == 0``
    into ``out_rows[out_first + j]`` for the j-th such minute, while rows remain; pass
    ``out_first >= len(out_rows)`` for no output. ``w`` is caller-owned work space of shape ``(N_WORK, 13)``.
    Returns the step size to try next (minutes).
    """
    n = N_STATES
    t_end = float(n_minutes)
    t = 0.0
    h = min(max(h_hint, MIN_STEP_MIN), h_max)
    next_minute = 1
    row = out_first
    n_rows = out_rows.shape[0]
    record = n_rows > out_first
    reject_streak = 0
    first_stage = 0  # stage 0 (k1 = f(x)) is computed once; later steps reuse the last stage
    k1 = w[_K1]
    k2 = w[_K2]
    k3 = w[_K3]
    k4 = w[_K4]
    k5 = w[_K5]
    k6 = w[_K6]
    k7 = w[_K7]
    yt = w[_YT]
    while t < t_end:
        clipped = False
        if t + h >= t_end:
            h_step = t_end - t
            clipped = True
        else:
            h_step = h
        # One loop over the stages keeps a single call site of the (inlined) right-hand side,
        # which keeps compile time short (seven inlined copies took minutes to compile). The
        # last stage is evaluated at the 5th-order solution (first same as last).
        for st in range(first_stage, 7):
            if st == 0:
                for i in range(n):
                    yt[i] = x[i]
            elif st == 1:
                for i in range(n):
                    yt[i] = x[i] + h_step * A21 * k1[i]
            elif st == 2:
                for i in range(n):
                    yt[i] = x[i] + h_step * (A31 * k1[i] + A32 * k2[i])
            elif st == 3:
                for i in range(n):
                    yt[i] = x[i] + h_step * (A41 * k1[i] + A42 * k2[i] + A43 * k3[i])
            elif st == 4:
                for i in range(n):
                    yt[i] = x[i] + h_step * (A51 * k1[i] + A52 * k2[i] + A53 * k3[i] + A54 * k4[i])
            elif st == 5:
                for i in range(n):
                    yt[i] = x[i] + h_step * (
                        A61 * k1[i] + A62 * k2[i] + A63 * k3[i] + A64 * k4[i] + A65 * k5[i]
                    )
            else:
                for i in range(n):
                    yt[i] = x[i] + h_step * (B1 * k1[i] + B3 * k3[i] + B4 * k4[i] + B5 * k5[i] + B6 * k6[i])
            model_rhs(yt, p, cho_mg_per_min, insulin_pmol_per_kg_min, dbar_mg, w[st])
        first_stage = 1
        err = 0.0
        for i in range(n):
            e = h_step * (E1 * k1[i] + E3 * k3[i] + E4 * k4[i] + E5 * k5[i] + E6 * k6[i] + E7 * k7[i])
            a = abs(x[i])
            b = abs(yt[i])
            sc = rtol * (ERROR_SCALE[i] + (a if a > b else b))
            r = e / sc
            err += r * r
        err = math.sqrt(err / n)
        if not math.isfinite(err):
            err = 1e10
        if err <= 1.0 or h_step <= MIN_STEP_MIN:
            # Accept. Dense output for whole minutes inside (t, t + h_step].
            t_new = t + h_step
            if record:
                have_dense = False
                while next_minute <= n_minutes and next_minute <= t_new + 1e-9:
                    if (phase + next_minute) % stride == 0 and row < n_rows:
                        if next_minute >= t_new - 1e-9:
                            for i in range(n):
                                out_rows[row, i] = yt[i]
                        else:
                            if not have_dense:
                                r1 = w[_R1]
                                r2 = w[_R2]
                                r3 = w[_R3]
                                r4 = w[_R4]
                                r5 = w[_R5]
                                for i in range(n):
                                    dy = yt[i] - x[i]
                                    bspl = h_step * k1[i] - dy
                                    r1[i] = x[i]
                                    r2[i] = dy
                                    r3[i] = bspl
                                    r4[i] = dy - h_step * k7[i] - bspl
                                    r5[i] = h_step * (
                                        D1 * k1[i]
                                        + D3 * k3[i]
                                        + D4 * k4[i]
                                        + D5 * k5[i]
                                        + D6 * k6[i]
                                        + D7 * k7[i]
                                    )
                                have_dense = True
                            th = (next_minute - t) / h_step
                            th1 = 1.0 - th
                            for i in range(n):
                                out_rows[row, i] = w[_R1, i] + th * (
                                    w[_R2, i] + th1 * (w[_R3, i] + th * (w[_R4, i] + th1 * w[_R5, i]))
                                )
                        row += 1
                    next_minute += 1
            for i in range(n):
                x[i] = yt[i]
                k1[i] = k7[i]  # first same as last
            t = t_new
            if err < 1e-10:
                fac = 5.0
            else:
                fac = 0.9 * err**-0.2
                if fac > 5.0:
                    fac = 5.0
                if fac < 0.2:
                    fac = 0.2
            if reject_streak > 0:
                fac = min(fac, 1.0)
            reject_streak = 0
            h_new = h_step * fac
            if clipped and h_new < h:
                # A step shortened to land on the segment end says nothing about stiffness.
                h_new = h
            h = min(h_new, h_max)
        else:
            fac = 0.9 * err**-0.2
            if fac < 0.1:
                fac = 0.1
            h = h_step * fac
            reject_streak += 1
    return h
