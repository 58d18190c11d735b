"""A virtual patient: the model advanced minute by minute, with its meal bookkeeping."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edgetwin.errors import InputDataError, ModelError
from edgetwin.model.kernels import AUX_H_HINT, DEFAULT_RTOL, N_AUX, simulate_states
from edgetwin.model.params import N_STATES, X_GP, X_GS, PatientParams

__all__ = ["VirtualPatient"]


class VirtualPatient:
    """One patient's physiology. ``step`` eats and doses over a minute; glucose in mg/dL.

    Inputs follow the kernel convention: ``cho_g`` announced at this minute (eaten at 5 g/min),
    ``insulin_u`` delivered during this minute.
    """

    def __init__(
        self,
        params: PatientParams,
        state: npt.ArrayLike | None = None,
        *,
        rtol: float = DEFAULT_RTOL,
    ) -> None:
        self.params = params
        self._p = params.vector()
        self._x = params.state0() if state is None else np.array(state, dtype=np.float64)
        if self._x.shape != (N_STATES,):
            raise ModelError(f"state must have {N_STATES} values")
        self._aux = np.zeros(N_AUX)
        self._aux[AUX_H_HINT] = 1.0
        self._rtol = rtol
        self.minute = 0
        self._one = np.zeros((2, N_STATES))

    @property
    def state(self) -> npt.NDArray[np.float64]:
        """A copy of the 13 model states."""
        return self._x.copy()

    @property
    def gsub_mg_dl(self) -> float:
        """Subcutaneous glucose (what a CGM measures, before noise)."""
        return float(self._x[X_GS] / self.params.Vg)

    @property
    def bg_mg_dl(self) -> float:
        """Plasma glucose."""
        return float(self._x[X_GP] / self.params.Vg)

    def use_parameter_vector(self, vector: npt.ArrayLike) -> None:
        """Run on with other physiology from now on (time-varying patients, e.g. a diurnal insulin
        sensitivity in benches); ``vector`` is a full parameter vector in the order of
        :data:`edgetwin.model.params.PARAM_NAMES`. The state carries over."""
        v = np.ascontiguousarray(vector, dtype=np.float64)
        if v.shape != self._p.shape or not np.isfinite(v).all():
            raise ModelError(f"a parameter vector must be {self._p.size} finite numbers")
        self._p = v

    def step(self, cho_g: float = 0.0, insulin_u: float = 0.0) -> None:
        """Advance one minute."""
        self.run(np.array([cho_g], dtype=np.float64), np.array([insulin_u], dtype=np.float64))

    def run(self, cho_g: npt.ArrayLike, insulin_u: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Advance ``len(cho_g)`` minutes; returns the states at each minute (T+1 rows)."""
        cho = np.ascontiguousarray(cho_g, dtype=np.float64)
        ins = np.ascontiguousarray(insulin_u, dtype=np.float64)
        if cho.ndim != 1 or cho.shape != ins.shape:
            raise InputDataError("cho_g and insulin_u must be 1-D arrays of the same length")
        if (cho < 0).any() or (ins < 0).any() or not (np.isfinite(cho).all() and np.isfinite(ins).all()):
            raise InputDataError("cho_g and insulin_u must be finite and >= 0")
        out = np.empty((cho.size + 1, N_STATES))
        simulate_states(self._p, self._x, self._aux, cho, ins, self._rtol, out)
        if not np.isfinite(self._x).all():
            raise ModelError(f"patient {self.params.name!r}: state became non-finite")
        self.minute += int(cho.size)
        return out

    def snapshot(self) -> dict[str, object]:
        """Everything needed to resume this patient exactly."""
        return {"minute": self.minute, "x": self._x.tolist(), "aux": self._aux.tolist()}

    def restore(self, snap: dict[str, object]) -> None:
        self.minute = int(snap["minute"])  # type: ignore[call-overload]
        self._x = np.array(snap["x"], dtype=np.float64)
        self._aux = np.array(snap["aux"], dtype=np.float64)
