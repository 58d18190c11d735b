"""Patient parameters: a frozen dataclass on the Python side, one float64 vector for the kernels.

The order of :data:`PARAM_NAMES` is the kernel ABI. Kernels index the vector with the ``P_*``
constants below; this module is the only place where names and positions meet.

Units (Dalla Man et al., IEEE TBME 2007; simglucose conventions, see ``specs/model.md``):
BW kg; kabs, kmax, kmin, k1, k2, p2u, ki, kp2, ke1, m1, m2, m4, m30, ka1, ka2, kd, ksc 1/min;
b, d, f dimensionless; kp1, Fsnc, Vm0 mg/kg/min; Vmx, kp3 mg/kg/min per pmol/L; Km0, ke2 mg/kg;
Vg dL/kg; Vi L/kg; Ib pmol/L; u2ss pmol/kg/min (basal insulin at steady state).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = [
    "N_PARAMS",
    "N_STATES",
    "PARAM_NAMES",
    "STATE_NAMES",
    "PatientParams",
]

PARAM_NAMES: tuple[str, ...] = (
    "BW", "kabs", "kmax", "kmin", "b", "d", "f",
    "kp1", "kp2", "kp3", "Fsnc", "ke1", "ke2", "k1", "k2",
    "Vm0", "Vmx", "Km0", "m1", "m2", "m4", "m30",
    "ka1", "ka2", "kd", "Vi", "p2u", "Ib", "ki", "ksc", "Vg", "u2ss",
)  # fmt: skip
N_PARAMS = len(PARAM_NAMES)

(
    P_BW, P_KABS, P_KMAX, P_KMIN, P_B, P_D, P_F,
    P_KP1, P_KP2, P_KP3, P_FSNC, P_KE1, P_KE2, P_K1, P_K2,
    P_VM0, P_VMX, P_KM0, P_M1, P_M2, P_M4, P_M30,
    P_KA1, P_KA2, P_KD, P_VI, P_P2U, P_IB, P_KI, P_KSC, P_VG, P_U2SS,
) = range(N_PARAMS)  # fmt: skip

STATE_NAMES: tuple[str, ...] = (
    "Qsto1", "Qsto2", "Qgut", "Gp", "Gt", "Ip", "X", "I1", "Id", "Il", "Isc1", "Isc2", "Gs",
)  # fmt: skip
"""State units: Qsto1, Qsto2, Qgut mg; Gp, Gt, Gs mg/kg; Ip, Il, Isc1, Isc2 pmol/kg; X, I1, Id pmol/L."""
N_STATES = len(STATE_NAMES)
(X_QSTO1, X_QSTO2, X_QGUT, X_GP, X_GT, X_IP, X_X, X_I1, X_ID, X_IL, X_ISC1, X_ISC2, X_GS) = range(N_STATES)

# Loose physiological bounds used to reject nonsense (a parameter outside these is not a human).
# They bracket the 30-patient cohort by a wide margin and are used when validating parameter
# updates from the cloud or from personalisation.
PARAM_BOUNDS: dict[str, tuple[float, float]] = {
    "BW": (10.0, 250.0),
    "kabs": (0.001, 5.0),
    "kmax": (0.001, 1.0),
    "kmin": (0.0001, 1.0),
    "b": (0.05, 0.999),
    "d": (0.01, 0.95),
    "f": (0.5, 1.0),
    "kp1": (0.5, 30.0),
    "kp2": (0.0, 0.1),
    "kp3": (0.0, 0.1),
    "Fsnc": (0.0, 5.0),
    "ke1": (0.0, 0.01),
    "ke2": (100.0, 1000.0),
    "k1": (0.001, 1.0),
    "k2": (0.001, 1.0),
    "Vm0": (0.1, 50.0),
    "Vmx": (0.0, 1.0),
    "Km0": (10.0, 1000.0),
    "m1": (0.01, 2.0),
    "m2": (0.01, 2.0),
    "m4": (0.01, 2.0),
    "m30": (0.01, 2.0),
    "ka1": (0.0001, 0.1),
    "ka2": (0.0005, 0.2),
    "kd": (0.001, 0.2),
    "Vi": (0.01, 0.2),
    "p2u": (0.001, 0.5),
    "Ib": (5.0, 500.0),
    "ki": (0.0005, 0.2),
    "ksc": (0.01, 1.0),
    "Vg": (0.5, 4.0),
    "u2ss": (0.1, 10.0),
}


@dataclass(frozen=True, slots=True)
class PatientParams:
    """One virtual or personalised patient: the model parameters and its basal steady state.

    ``x0`` is the 13-element basal steady state (see :data:`STATE_NAMES` for units). Build one
    from a cohort name with :func:`edgetwin.model.cohort.load_patient` or from a vector with
    :meth:`from_vector`.
    """

    name: str
    BW: float
    kabs: float
    kmax: float
    kmin: float
    b: float
    d: float
    f: float
    kp1: float
    kp2: float
    kp3: float
    Fsnc: float
    ke1: float
    ke2: float
    k1: float
    k2: float
    Vm0: float
    Vmx: float
    Km0: float
    m1: float
    m2: float
    m4: float
    m30: float
    ka1: float
    ka2: float
    kd: float
    Vi: float
    p2u: float
    Ib: float
    ki: float
    ksc: float
    Vg: float
    u2ss: float
    x0: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in PARAM_NAMES:
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"patient {self.name!r}: parameter {name} is not finite ({value})")
        if self.BW <= 0 or self.Vg <= 0 or self.Vi <= 0:
            raise ValueError(f"patient {self.name!r}: BW, Vg and Vi must be positive")
        if self.x0 and len(self.x0) != N_STATES:
            raise ValueError(f"patient {self.name!r}: x0 needs {N_STATES} values, got {len(self.x0)}")

    @property
    def basal_u_per_h(self) -> float:
        """Insulin rate (U/h) that holds this patient at its basal steady state."""
        return self.u2ss * self.BW / 6000.0 * 60.0

    @property
    def basal_glucose_mg_dl(self) -> float:
        """Plasma glucose at the basal steady state (mg/dL)."""
        return self.x0[X_GP] / self.Vg if self.x0 else float("nan")

    def vector(self) -> npt.NDArray[np.float64]:
        """The kernel view: a new contiguous float64 vector in :data:`PARAM_NAMES` order."""
        return np.array([getattr(self, n) for n in PARAM_NAMES], dtype=np.float64)

    def state0(self) -> npt.NDArray[np.float64]:
        """The basal steady state as a new float64 vector."""
        if not self.x0:
            raise ValueError(f"patient {self.name!r} has no steady state; use with_steady_state()")
        return np.array(self.x0, dtype=np.float64)

    @classmethod
    def from_vector(cls, name: str, vector: npt.ArrayLike, x0: npt.ArrayLike | None = None) -> PatientParams:
        v = np.asarray(vector, dtype=np.float64)
        if v.shape != (N_PARAMS,):
            raise ValueError(f"parameter vector must have shape ({N_PARAMS},), got {v.shape}")
        kwargs = {n: float(v[i]) for i, n in enumerate(PARAM_NAMES)}
        x0_t = tuple(float(a) for a in np.asarray(x0, dtype=np.float64)) if x0 is not None else ()
        return cls(name=name, x0=x0_t, **kwargs)

    def replace(self, **changes: object) -> PatientParams:
        """A copy with some parameters changed (the steady state is not recomputed)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def out_of_bounds(self) -> list[str]:
        """Names of parameters outside :data:`PARAM_BOUNDS`, with their values (empty if sane)."""
        bad = []
        for name in PARAM_NAMES:
            lo, hi = PARAM_BOUNDS[name]
            value = getattr(self, name)
            if not lo <= value <= hi:
                bad.append(f"{name}={value:g} not in [{lo:g}, {hi:g}]")
        return bad
