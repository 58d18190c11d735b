"""Right-hand side of the UVA/Padova (2008) type-1 model: one numba function, no allocation.

Equations and conventions follow ``specs/model.md`` (Dalla Man et al., IEEE TBME 2007, as the
public simglucose cohort applies them). Inputs are held constant over each 1-minute step:
``cho_mg_per_min`` (carbohydrate being eaten, mg/min), ``insulin_pmol_per_kg_min`` (s.c. insulin
delivery, pmol/kg/min; 1 U = 6000 pmol) and ``dbar_mg`` (the size of the current meal, mg).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from numba import njit

from edgetwin.model.params import (
    P_B,
    P_BW,
    P_D,
    P_F,
    P_FSNC,
    P_IB,
    P_K1,
    P_K2,
    P_KA1,
    P_KA2,
    P_KABS,
    P_KD,
    P_KE1,
    P_KE2,
    P_KI,
    P_KM0,
    P_KMAX,
    P_KMIN,
    P_KP1,
    P_KP2,
    P_KP3,
    P_KSC,
    P_M1,
    P_M2,
    P_M4,
    P_M30,
    P_P2U,
    P_VI,
    P_VM0,
    P_VMX,
)

__all__ = ["exp_bounded", "front_slopes", "model_rhs", "rhs_scalars"]

_FAST = {"contract", "afn", "reassoc", "nsz", "arcp"}
# Division by zero gives inf/nan instead of raising: no exception branch in the hot loops, which is
# what lets LLVM vectorise the lock-step ensemble (an inf/nan is caught by the integrators' checks).
_ERR: Final = "numpy"

# Inverse factorials 1/k! for the Taylor polynomial in exp_bounded.
_INV_FACT = tuple(1.0 / math.factorial(k) for k in range(14))


@njit(cache=True, inline="always", fastmath=_FAST, error_model=_ERR)
def exp_bounded(y: float) -> float:
    """exp(y) for y in [-38, 38] (clamped), in plain arithmetic so that loops over it vectorise.

    exp(y) = (exp(y / 64)) ** 64: a degree-13 Taylor polynomial on |y / 64| <= 0.6 (truncation
    < 1e-14 relative), then six squarings (relative error x 64, so < 1e-12 overall). libm's exp is
    a call LLVM cannot vectorise without Intel's SVML, which a Raspberry Pi does not have.
    """
    y = y if y > -38.0 else -38.0
    y = y if y < 38.0 else 38.0
    r = y * (1.0 / 64.0)
    c = _INV_FACT
    e = c[13]
    e = c[12] + r * e
    e = c[11] + r * e
    e = c[10] + r * e
    e = c[9] + r * e
    e = c[8] + r * e
    e = c[7] + r * e
    e = c[6] + r * e
    e = c[5] + r * e
    e = c[4] + r * e
    e = c[3] + r * e
    e = c[2] + r * e
    e = c[1] + r * e
    e = c[0] + r * e
    e = e * e
    e = e * e
    e = e * e
    e = e * e
    e = e * e
    return e * e


@njit(cache=True, inline="always", fastmath=_FAST, error_model=_ERR)
def rhs_scalars(
    qsto1: float,
    qsto2: float,
    qgut: float,
    gp: float,
    gt: float,
    ip: float,
    xx: float,
    i1: float,
    id_: float,
    il: float,
    isc1: float,
    isc2: float,
    gs: float,
    p: np.ndarray,
    o: int,
    s: int,
    ra_per_qgut: float,
    inv_vi: float,
    cho_mg_per_min: float,
    insulin_pmol_per_kg_min: float,
    dbar_mg: float,
    front_slope_b: float,
    front_slope_d: float,
) -> tuple[float, float, float, float, float, float, float, float, float, float, float, float, float]:
    """dx/dt (per minute) of the 13 states, as scalars: the one statement of the model's equations.

    Parameter ``P_NAME`` is ``p[o + s * P_NAME]``: ``o, s = 0, 1`` for a patient vector, or a
    lane's column of a structure-of-arrays block. Derived once by the caller rather than per evaluation:
    ``ra_per_qgut`` = f·kabs/BW, ``inv_vi`` = 1/Vi, and the gastric-emptying fronts' slopes
    ``front_slope_b`` = 5 / (2·Dbar·(1-b)), ``front_slope_d`` = 5 / (2·Dbar·d) (any value when
    ``dbar_mg`` = 0). Only one division per evaluation: tanh(u) - tanh(v) =
    2(e^2u - e^2v) / ((e^2u + 1)(e^2v + 1)), and that denominator and uid's share one reciprocal.
    """
    kmax = p[o + s * P_KMAX]
    kmin = p[o + s * P_KMIN]
    kabs = p[o + s * P_KABS]

    # Gastro-intestinal tract: stomach solid/liquid, gut.
    qsto = qsto1 + qsto2
    eu = exp_bounded(2.0 * front_slope_b * (qsto - p[o + s * P_B] * dbar_mg))
    ev = exp_bounded(2.0 * front_slope_d * (qsto - p[o + s * P_D] * dbar_mg))
    den_front = (eu + 1.0) * (ev + 1.0)
    km = p[o + s * P_KM0] + gt
    inv_both = 1.0 / (den_front * km)
    kgut_meal = kmin + (kmax - kmin) * ((eu - ev) * km * inv_both + 1.0)
    kgut = kgut_meal if dbar_mg > 0.0 else kmax
    d_qsto1 = -kmax * qsto1 + cho_mg_per_min
    d_qsto2 = kmax * qsto1 - kgut * qsto2
    d_qgut = kgut * qsto2 - kabs * qgut

    # Glucose subsystem.
    ra = ra_per_qgut * qgut
    egp = p[o + s * P_KP1] - p[o + s * P_KP2] * gp - p[o + s * P_KP3] * id_
    egp = egp if egp > 0.0 else 0.0
    et = p[o + s * P_KE1] * (gp - p[o + s * P_KE2]) if gp > p[o + s * P_KE2] else 0.0
    k1 = p[o + s * P_K1]
    k2 = p[o + s * P_K2]
    dgp = egp + ra - p[o + s * P_FSNC] - et - k1 * gp + k2 * gt
    d_gp = dgp if gp >= 0.0 else 0.0
    uid = (p[o + s * P_VM0] + p[o + s * P_VMX] * xx) * gt * den_front * inv_both
    dgt = -uid + k1 * gp - k2 * gt
    d_gt = dgt if gt >= 0.0 else 0.0

    # Insulin subsystem.
    m1 = p[o + s * P_M1]
    m2 = p[o + s * P_M2]
    ka1 = p[o + s * P_KA1]
    ka2 = p[o + s * P_KA2]
    kd = p[o + s * P_KD]
    dip = -(m2 + p[o + s * P_M4]) * ip + m1 * il + ka1 * isc1 + ka2 * isc2
    d_ip = dip if ip >= 0.0 else 0.0
    it = ip * inv_vi
    p2u = p[o + s * P_P2U]
    d_x = -p2u * xx + p2u * (it - p[o + s * P_IB])
    ki = p[o + s * P_KI]
    d_i1 = -ki * (i1 - it)
    d_id = -ki * (id_ - i1)
    dil = -(m1 + p[o + s * P_M30]) * il + m2 * ip
    d_il = dil if il >= 0.0 else 0.0
    disc1 = insulin_pmol_per_kg_min - (ka1 + kd) * isc1
    d_isc1 = disc1 if isc1 >= 0.0 else 0.0
    disc2 = kd * isc1 - ka2 * isc2
    d_isc2 = disc2 if isc2 >= 0.0 else 0.0

    # Subcutaneous glucose (what a CGM sees, before noise).
    ksc = p[o + s * P_KSC]
    dgs = -ksc * gs + ksc * gp
    d_gs = dgs if gs >= 0.0 else 0.0
    return (d_qsto1, d_qsto2, d_qgut, d_gp, d_gt, d_ip, d_x, d_i1, d_id, d_il, d_isc1, d_isc2, d_gs)


@njit(cache=True, inline="always", fastmath=_FAST, error_model=_ERR)
def front_slopes(p: np.ndarray, o: int, s: int, dbar_mg: float) -> tuple[float, float]:
    """The gastric-emptying fronts' slopes 5/(2·Dbar·(1-b)) and 5/(2·Dbar·d) (1/mg); 0 with no meal.

    Parameters are read as in :func:`rhs_scalars`; straight-line code, so lanes vectorise.
    """
    meal = dbar_mg > 0.0
    safe = dbar_mg if meal else 1.0
    sb = 2.5 / (safe * (1.0 - p[o + s * P_B]))
    sd = 2.5 / (safe * p[o + s * P_D])
    return (sb if meal else 0.0), (sd if meal else 0.0)


@njit(cache=True, inline="always", fastmath=_FAST, error_model=_ERR)
def model_rhs(
    x: np.ndarray,
    p: np.ndarray,
    cho_mg_per_min: float,
    insulin_pmol_per_kg_min: float,
    dbar_mg: float,
    out: np.ndarray,
) -> None:
    """Write dx/dt (per minute) of the 13-state model at state ``x`` into ``out``."""
    sb, sd = front_slopes(p, 0, 1, dbar_mg)
    d = rhs_scalars(
        x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10], x[11], x[12],
        p,
        0,
        1,
        p[P_F] * p[P_KABS] / p[P_BW],
        1.0 / p[P_VI],
        cho_mg_per_min,
        insulin_pmol_per_kg_min,
        dbar_mg,
        sb,
        sd,
    )  # fmt: skip
    for i in range(13):
        out[i] = d[i]
