"""A plain NumPy/SciPy transcription of the model, independent of the compiled kernels.

Two uses: the tight reference solve the kernels are tested against (``rtol = atol = 1e-10``),
and the "straightforward SciPy" baseline of ``edgetwin bench model``. It is written the obvious
way on purpose (a Python right-hand side, ``solve_ivp`` restarted every minute) and shares no
code with :mod:`edgetwin.model.rhs`, so a transcription error in either shows up as a mismatch.
SciPy is needed only here (install the ``dev`` extra).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from edgetwin.model.params import PatientParams

__all__ = ["reference_rhs", "reference_simulate"]


def reference_rhs(
    x: npt.NDArray[np.float64],
    pp: PatientParams,
    cho_mg_per_min: float,
    insulin_pmol_per_kg_min: float,
    dbar: float,
) -> npt.NDArray[np.float64]:
    dx = np.zeros(13)
    qsto = x[0] + x[1]
    if dbar > 0:
        aa = 5 / (2 * dbar * (1 - pp.b))
        cc = 5 / (2 * dbar * pp.d)
        kgut = pp.kmin + (pp.kmax - pp.kmin) / 2 * (
            math.tanh(aa * (qsto - pp.b * dbar)) - math.tanh(cc * (qsto - pp.d * dbar)) + 2
        )
    else:
        kgut = pp.kmax
    dx[0] = -pp.kmax * x[0] + cho_mg_per_min
    dx[1] = pp.kmax * x[0] - kgut * x[1]
    dx[2] = kgut * x[1] - pp.kabs * x[2]
    rat = pp.f * pp.kabs * x[2] / pp.BW
    egpt = pp.kp1 - pp.kp2 * x[3] - pp.kp3 * x[8]
    et = pp.ke1 * (x[3] - pp.ke2) if x[3] > pp.ke2 else 0.0
    dx[3] = max(egpt, 0) + rat - pp.Fsnc - et - pp.k1 * x[3] + pp.k2 * x[4]
    dx[3] = (x[3] >= 0) * dx[3]
    uidt = (pp.Vm0 + pp.Vmx * x[6]) * x[4] / (pp.Km0 + x[4])
    dx[4] = -uidt + pp.k1 * x[3] - pp.k2 * x[4]
    dx[4] = (x[4] >= 0) * dx[4]
    dx[5] = -(pp.m2 + pp.m4) * x[5] + pp.m1 * x[9] + pp.ka1 * x[10] + pp.ka2 * x[11]
    dx[5] = (x[5] >= 0) * dx[5]
    it = x[5] / pp.Vi
    dx[6] = -pp.p2u * x[6] + pp.p2u * (it - pp.Ib)
    dx[7] = -pp.ki * (x[7] - it)
    dx[8] = -pp.ki * (x[8] - x[7])
    dx[9] = -(pp.m1 + pp.m30) * x[9] + pp.m2 * x[5]
    dx[9] = (x[9] >= 0) * dx[9]
    dx[10] = insulin_pmol_per_kg_min - (pp.ka1 + pp.kd) * x[10]
    dx[10] = (x[10] >= 0) * dx[10]
    dx[11] = pp.kd * x[10] - pp.ka2 * x[11]
    dx[11] = (x[11] >= 0) * dx[11]
    dx[12] = -pp.ksc * x[12] + pp.ksc * x[3]
    dx[12] = (x[12] >= 0) * dx[12]
    return dx


def reference_simulate(
    pp: PatientParams,
    cho_g: npt.ArrayLike,
    insulin_u: npt.ArrayLike,
    *,
    method: str = "DOP853",
    rtol: float = 1e-10,
    atol: float = 1e-10,
    **solver_options: Any,
) -> npt.NDArray[np.float64]:
    """States at minutes 0..T (T+1 rows), ``solve_ivp`` over each minute with held inputs."""
    from scipy.integrate import solve_ivp

    cho = np.asarray(cho_g, dtype=np.float64)
    ins = np.asarray(insulin_u, dtype=np.float64)
    x = pp.state0()
    out = np.empty((cho.size + 1, 13))
    out[0] = x
    planned = 0.0
    last_eat = 0.0
    qsto_start = 0.0
    eaten = 0.0
    for k in range(cho.size):
        planned += cho[k]
        to_eat = min(5.0, planned)
        planned = max(planned - to_eat, 0.0)
        if to_eat > 0 and last_eat <= 0:
            qsto_start = x[0] + x[1]
            eaten = 0.0
        if to_eat > 0:
            eaten += to_eat
        last_eat = to_eat
        args = (pp, 1000.0 * to_eat, ins[k] * 6000.0 / pp.BW, qsto_start + 1000.0 * eaten)
        sol = solve_ivp(
            lambda t, y, *a: reference_rhs(y, *a),
            (0.0, 1.0),
            x,
            method=method,
            rtol=rtol,
            atol=atol,
            args=args,
            **solver_options,
        )
        x = sol.y[:, -1]
        out[k + 1] = x
    return out
