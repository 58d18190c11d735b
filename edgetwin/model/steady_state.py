"""Basal steady state of the model for any parameter vector and basal insulin rate.

The shipped cohort carries its steady states (``x0``); personalised or sampled parameter sets
need theirs computed. The insulin subsystem is linear and solved in closed form; glucose (Gp, Gt)
by Newton's method on the two remaining equations.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from edgetwin.errors import ModelError
from edgetwin.model.params import (
    N_STATES,
    P_BW,
    P_FSNC,
    P_IB,
    P_K1,
    P_K2,
    P_KA1,
    P_KA2,
    P_KD,
    P_KE1,
    P_KE2,
    P_KM0,
    P_KP1,
    P_KP2,
    P_KP3,
    P_M1,
    P_M2,
    P_M4,
    P_M30,
    P_U2SS,
    P_VI,
    P_VM0,
    P_VMX,
    X_GP,
    X_GS,
    X_GT,
    X_I1,
    X_ID,
    X_IL,
    X_IP,
    X_ISC1,
    X_ISC2,
    X_X,
    PatientParams,
)

__all__ = ["steady_state", "with_steady_state"]


@njit(cache=True)
def steady_state_kernel(p: np.ndarray, insulin_pmol_per_kg_min: float, out: np.ndarray) -> bool:
    """Write the steady state under a constant s.c. insulin rate into ``out``; False if none."""
    u = insulin_pmol_per_kg_min
    ka1 = p[P_KA1]
    ka2 = p[P_KA2]
    kd = p[P_KD]
    m1 = p[P_M1]
    m2 = p[P_M2]
    isc1 = u / (ka1 + kd)
    isc2 = kd * isc1 / ka2
    denom = p[P_M2] + p[P_M4] - m1 * m2 / (m1 + p[P_M30])
    if denom <= 0.0:
        return False
    ip = (ka1 * isc1 + ka2 * isc2) / denom
    il = m2 * ip / (m1 + p[P_M30])
    i_plasma = ip / p[P_VI]
    xx = i_plasma - p[P_IB]
    for i in range(N_STATES):
        out[i] = 0.0
    out[X_ISC1] = isc1
    out[X_ISC2] = isc2
    out[X_IP] = ip
    out[X_IL] = il
    out[X_X] = xx
    out[X_I1] = i_plasma
    out[X_ID] = i_plasma
    # Glucose: F1(gp, gt) = EGP+ - Fsnc - E - k1 gp + k2 gt = 0; F2 = -Uid + k1 gp - k2 gt = 0.
    k1 = p[P_K1]
    k2 = p[P_K2]
    vm = p[P_VM0] + p[P_VMX] * xx
    km = p[P_KM0]
    if vm <= 0.0:
        return False
    gp = 250.0
    gt = 150.0
    for _ in range(100):
        egp = p[P_KP1] - p[P_KP2] * gp - p[P_KP3] * i_plasma
        degp = -p[P_KP2]
        if egp < 0.0:
            egp = 0.0
            degp = 0.0
        e = 0.0
        de = 0.0
        if gp > p[P_KE2]:
            e = p[P_KE1] * (gp - p[P_KE2])
            de = p[P_KE1]
        f1 = egp - p[P_FSNC] - e - k1 * gp + k2 * gt
        f2 = -vm * gt / (km + gt) + k1 * gp - k2 * gt
        a11 = degp - de - k1
        a12 = k2
        a21 = k1
        a22 = -vm * km / ((km + gt) * (km + gt)) - k2
        det = a11 * a22 - a12 * a21
        if det == 0.0 or not math.isfinite(det):
            return False
        dgp = (f1 * a22 - a12 * f2) / det
        dgt = (a11 * f2 - a21 * f1) / det
        gp -= dgp
        gt -= dgt
        if gp < 1e-3:
            gp = 1e-3
        if gt < 1e-3:
            gt = 1e-3
        if abs(dgp) < 1e-12 * (1.0 + gp) and abs(dgt) < 1e-12 * (1.0 + gt):
            out[X_GP] = gp
            out[X_GT] = gt
            out[X_GS] = gp
            return True
    return False


def steady_state(params: PatientParams, basal_u_per_h: float | None = None) -> np.ndarray:
    """The 13-state steady state under ``basal_u_per_h`` (default: the patient's own basal)."""
    p = params.vector()
    if basal_u_per_h is None:
        u = p[P_U2SS]
    else:
        if basal_u_per_h < 0 or not math.isfinite(basal_u_per_h):
            raise ModelError(f"basal rate must be finite and >= 0 U/h, got {basal_u_per_h}")
        u = basal_u_per_h / 60.0 * 6000.0 / p[P_BW]
    out = np.zeros(N_STATES)
    if not steady_state_kernel(p, u, out):
        raise ModelError(f"patient {params.name!r}: no glucose steady state at this basal rate")
    return out


def with_steady_state(params: PatientParams) -> PatientParams:
    """``params`` with ``x0`` set to its steady state under its own basal (``u2ss``)."""
    return params.replace(x0=tuple(float(v) for v in steady_state(params)))
