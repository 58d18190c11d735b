"""Ensemble runs: N parameter sets or particles × T minutes in one compiled, parallel call.

The building block for state estimation (particles), forecasts (ensembles with uncertainty) and
what-if trials (one member per intervention). This wrapper checks shapes and owns the buffers;
the arithmetic is :func:`edgetwin.model.lockstep.ensemble_glucose` (fixed RK4 steps chosen per
block of members; under 0.02 mg/dL from a tight solve, see that module).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edgetwin.errors import InputDataError
from edgetwin.model.kernels import AUX_H_HINT, N_AUX
from edgetwin.model.lockstep import ensemble_glucose
from edgetwin.model.params import N_PARAMS, N_STATES

__all__ = ["EnsembleOutput", "new_aux", "run_ensemble"]


@dataclass(frozen=True)
class EnsembleOutput:
    """Glucose every ``stride`` minutes from minute 0, shape (N, T // stride + 1), mg/dL."""

    gsub_mg_dl: npt.NDArray[np.float64]
    bg_mg_dl: npt.NDArray[np.float64]
    stride: int


def new_aux(n: int) -> npt.NDArray[np.float64]:
    """Fresh meal bookkeeping for ``n`` members (nothing eaten, step hint 1 min)."""
    aux = np.zeros((n, N_AUX))
    aux[:, AUX_H_HINT] = 1.0
    return aux


def _as_2d(name: str, a: npt.ArrayLike, width: int | None = None) -> npt.NDArray[np.float64]:
    arr = np.ascontiguousarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or (width is not None and arr.shape[1] != width):
        raise InputDataError(f"{name} must be 2-D with {width or 'T'} columns, got shape {arr.shape}")
    return arr


def run_ensemble(
    params: npt.ArrayLike,
    x: npt.NDArray[np.float64],
    aux: npt.NDArray[np.float64],
    cho_g: npt.ArrayLike,
    insulin_u: npt.ArrayLike,
    *,
    stride: int = 1,
    want_bg: bool = False,
) -> EnsembleOutput:
    """Advance ``x`` (N, 13) and ``aux`` (N, 5) in place over T minutes of inputs.

    ``params`` is (N, 32) or one shared (32,) vector; ``cho_g`` and ``insulin_u`` are (N, T) or
    one shared (T,) row (announced grams and delivered units per minute, as in ``simulate``).
    """
    p = _as_2d("params", params, N_PARAMS)
    if x.dtype != np.float64 or x.ndim != 2 or x.shape[1] != N_STATES or not x.flags.c_contiguous:
        raise InputDataError(f"x must be a C-contiguous float64 array (N, {N_STATES})")
    n = x.shape[0]
    if aux.shape != (n, N_AUX) or aux.dtype != np.float64 or not aux.flags.c_contiguous:
        raise InputDataError(f"aux must be a C-contiguous float64 array ({n}, {N_AUX})")
    cho = _as_2d("cho_g", cho_g)
    ins = _as_2d("insulin_u", insulin_u)
    if cho.shape != ins.shape or cho.shape[0] not in (1, n):
        raise InputDataError(f"inputs must both be (1, T) or ({n}, T); got {cho.shape} and {ins.shape}")
    if p.shape[0] not in (1, n):
        raise InputDataError(f"params must have 1 or {n} rows, got {p.shape[0]}")
    if stride < 1:
        raise InputDataError("stride must be >= 1")
    if (cho < 0).any() or (ins < 0).any():
        raise InputDataError("inputs must be >= 0")
    n_out = cho.shape[1] // stride + 1
    gsub = np.empty((n, n_out))
    bg = np.empty((n, n_out if want_bg else 0))
    ensemble_glucose(p, x, aux, cho, ins, stride, gsub, bg)
    return EnsembleOutput(gsub_mg_dl=gsub, bg_mg_dl=bg, stride=stride)
