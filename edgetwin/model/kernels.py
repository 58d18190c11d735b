"""Compiled simulation kernels for one patient (the adaptive Dormand-Prince solve).

Every kernel takes per-minute inputs held over ``[k, k+1)``:

* ``cho_g[k]``: carbohydrate *announced* at minute k (g). The patient eats it at
  :data:`EAT_RATE_G_PER_MIN` (the cohort's 5 g/min); the remainder is queued.
* ``insulin_u[k]``: insulin delivered during minute k (U), i.e. basal/60 plus any bolus.

Meal bookkeeping follows the cohort convention (``specs/model.md``): when eating starts, the
stomach content is remembered, and the meal size ``Dbar`` = that content + everything eaten since,
which then stays until the next meal starts. That bookkeeping is part of each member's state: the
``aux`` vector (see ``AUX_*``), alongside the 13 model states ``x``.

Kernels write into caller-provided arrays and advance ``x`` and ``aux`` in place. Ensembles of
many members run in lock-step instead: :mod:`edgetwin.model.lockstep`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgetwin.model.integrate import N_WORK, dp5_segment, max_stable_step
from edgetwin.model.params import N_STATES, P_BW, X_QSTO1, X_QSTO2

__all__ = [
    "AUX_EATEN_G",
    "AUX_H_HINT",
    "AUX_LAST_EAT_G",
    "AUX_PLANNED_G",
    "AUX_QSTO_AT_START_MG",
    "EAT_RATE_G_PER_MIN",
    "N_AUX",
    "meal_minute",
    "run_member",
    "simulate_states",
]

EAT_RATE_G_PER_MIN = 5.0
U_TO_PMOL = 6000.0

N_AUX = 5
AUX_PLANNED_G = 0  # announced but not yet eaten (g)
AUX_QSTO_AT_START_MG = 1  # stomach content when the current meal started (mg)
AUX_EATEN_G = 2  # eaten since the current meal started (g)
AUX_LAST_EAT_G = 3  # eaten during the previous minute (g)
AUX_H_HINT = 4  # integrator step size to try next (min)

DEFAULT_RTOL = 1e-6


@njit(cache=True, inline="always", error_model="numpy")
def meal_minute(
    planned_g: float,
    last_eat_g: float,
    qsto_at_start_mg: float,
    eaten_g: float,
    qsto_now_mg: float,
    announced_g: float,
) -> tuple[float, float, float, float, float]:
    """One minute of the cohort's meal bookkeeping (straight-line code, so lanes vectorise).

    Takes the ``aux`` fields, the stomach content now and the grams announced this minute; returns
    (planned g, eaten this minute g, stomach content when the meal started mg, eaten since then g,
    meal size Dbar mg).
    """
    planned = planned_g + announced_g
    to_eat = EAT_RATE_G_PER_MIN if planned > EAT_RATE_G_PER_MIN else planned
    to_eat = to_eat if to_eat > 0.0 else 0.0
    planned -= to_eat
    planned = planned if planned > 0.0 else 0.0
    starts = (to_eat > 0.0) & (last_eat_g <= 0.0)
    at_start = qsto_now_mg if starts else qsto_at_start_mg
    eaten = to_eat if starts else eaten_g + to_eat
    return planned, to_eat, at_start, eaten, at_start + 1000.0 * eaten


@njit(cache=True)
def run_member(
    p: np.ndarray,
    x: np.ndarray,
    aux: np.ndarray,
    cho_g: np.ndarray,
    insulin_u: np.ndarray,
    rtol: float,
    stride: int,
    out_rows: np.ndarray,
    w: np.ndarray,
) -> None:
    """Advance one member over ``len(cho_g)`` minutes.

    Row ``j`` of ``out_rows`` receives the state at minute ``j * stride`` (row 0 = the initial
    state), for as many rows as ``out_rows`` has; pass zero rows for no output.
    """
    n_min = cho_g.shape[0]
    record = out_rows.shape[0] > 0
    if record:
        for i in range(N_STATES):
            out_rows[0, i] = x[i]
    to_pmol = U_TO_PMOL / p[P_BW]
    h_max = max_stable_step(p)
    k = 0
    while k < n_min:
        planned, to_eat, at_start, eaten, dbar = meal_minute(
            aux[AUX_PLANNED_G],
            aux[AUX_LAST_EAT_G],
            aux[AUX_QSTO_AT_START_MG],
            aux[AUX_EATEN_G],
            x[X_QSTO1] + x[X_QSTO2],
            cho_g[k],
        )
        aux[AUX_PLANNED_G] = planned
        aux[AUX_LAST_EAT_G] = to_eat
        aux[AUX_QSTO_AT_START_MG] = at_start
        aux[AUX_EATEN_G] = eaten
        ins = insulin_u[k]
        length = 1
        if to_eat <= 0.0:
            # Not eating: extend over the following minutes whose inputs are the same.
            while k + length < n_min and cho_g[k + length] == 0.0 and insulin_u[k + length] == ins:
                length += 1
        out_first = k // stride + 1
        aux[AUX_H_HINT] = dp5_segment(
            p,
            x,
            1000.0 * to_eat,
            ins * to_pmol,
            dbar,
            length,
            aux[AUX_H_HINT],
            h_max,
            rtol,
            out_rows,
            out_first,
            stride,
            k,
            w,
        )
        k += length


@njit(cache=True)
def simulate_states(
    p: np.ndarray,
    x: np.ndarray,
    aux: np.ndarray,
    cho_g: np.ndarray,
    insulin_u: np.ndarray,
    rtol: float,
    out_states: np.ndarray,
) -> None:
    """One patient, every minute: ``out_states[k]`` is the state at minute k (T+1 rows)."""
    w = np.empty((N_WORK, N_STATES))
    run_member(p, x, aux, cho_g, insulin_u, rtol, 1, out_states, w)
