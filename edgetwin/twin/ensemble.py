"""The twin as an ensemble: weighted members (parameters + states), and plans run on it.

This is the shared currency between estimation (which keeps the ensemble in step with the
patient), forecasting and what-if (which run input plans on a copy) and the suggestion engine
(which scores candidate actions the same way). Time is the twin's own minute counter
(``minute``); mapping it to UTC is the caller's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edgetwin.errors import InputDataError
from edgetwin.model.ensemble import new_aux, run_ensemble
from edgetwin.model.kernels import N_AUX
from edgetwin.model.params import N_PARAMS, N_STATES, PatientParams

__all__ = ["InputPlan", "TwinEnsemble", "run_members", "simulate_plans", "weighted_quantiles"]

F64 = npt.NDArray[np.float64]


@dataclass
class TwinEnsemble:
    """N weighted members at twin minute ``minute``: params (N, 32), x (N, 13), aux (N, 5).

    ``switches`` are parameter changes ahead, ``(minutes after minute, params)`` in time order:
    a twin with insulin sensitivity by time of day switches at the parts' boundaries."""

    minute: int
    params: F64
    x: F64
    aux: F64
    weights: F64 = field(default_factory=lambda: np.empty(0))
    switches: tuple[tuple[int, F64], ...] = ()

    def __post_init__(self) -> None:
        n = self.x.shape[0]
        if self.params.shape not in ((n, N_PARAMS), (1, N_PARAMS)):
            raise InputDataError(f"params must be ({n}, {N_PARAMS}) or (1, {N_PARAMS})")
        if self.x.shape != (n, N_STATES) or self.aux.shape != (n, N_AUX):
            raise InputDataError("x and aux must have one row per member")
        if self.weights.size == 0:
            self.weights = np.full(n, 1.0 / n)
        if self.weights.shape != (n,) or not np.isfinite(self.weights).all() or (self.weights < 0).any():
            raise InputDataError("weights must be N finite non-negative numbers")
        total = self.weights.sum()
        if total <= 0:
            raise InputDataError("weights must not all be zero")
        self.weights = self.weights / total
        last = 0
        for at, p in self.switches:
            if at <= last or p.shape != self.params.shape:
                raise InputDataError("switches must be in time order, after now, shaped like params")
            last = at

    @property
    def size(self) -> int:
        return int(self.x.shape[0])

    def member_params(self) -> F64:
        """Parameters with one row per member (broadcast if shared)."""
        if self.params.shape[0] == self.size:
            return self.params
        return np.repeat(self.params, self.size, axis=0)

    def copy(self) -> TwinEnsemble:
        return TwinEnsemble(
            self.minute,
            self.params.copy(),
            self.x.copy(),
            self.aux.copy(),
            self.weights.copy(),
            tuple((at, p.copy()) for at, p in self.switches),
        )

    def select(self, idx: npt.NDArray[np.int64]) -> TwinEnsemble:
        """The members ``idx`` (copies), equally weighted."""
        pick = lambda p: (p if p.shape[0] == 1 else p[idx]).copy()  # noqa: E731
        return TwinEnsemble(
            self.minute,
            pick(self.params),
            self.x[idx].copy(),
            self.aux[idx].copy(),
            switches=tuple((at, pick(p)) for at, p in self.switches),
        )

    @classmethod
    def from_patient(cls, params: PatientParams, n: int = 1, minute: int = 0) -> TwinEnsemble:
        """``n`` identical members at the patient's basal steady state."""
        return cls(
            minute=minute,
            params=params.vector()[None, :].copy(),
            x=np.tile(params.state0(), (n, 1)),
            aux=new_aux(n),
        )


@dataclass(frozen=True)
class InputPlan:
    """Inputs for the minutes after the ensemble's ``minute``: announced carbohydrate (g) and
    delivered insulin (U) per minute, as in ``edgetwin simulate``."""

    name: str
    cho_g: F64
    insulin_u: F64

    def __post_init__(self) -> None:
        if self.cho_g.shape != self.insulin_u.shape or self.cho_g.ndim != 1:
            raise InputDataError(f"plan {self.name!r}: cho_g and insulin_u must be 1-D and equal length")

    @property
    def minutes(self) -> int:
        return int(self.cho_g.size)


def simulate_plans(ens: TwinEnsemble, plans: list[InputPlan], *, stride: int = 5) -> F64:
    """Run every plan on every member (the ensemble is not changed).

    Returns subcutaneous glucose (mg/dL), shape (n_plans, N, minutes // stride + 1), column 0 being
    the current state. All plans must have the same length.
    """
    if not plans:
        raise InputDataError("no plans to simulate")
    minutes = plans[0].minutes
    if any(p.minutes != minutes for p in plans):
        raise InputDataError("all plans must cover the same number of minutes")
    n = ens.size
    k = len(plans)

    def tiled(p: F64) -> F64:
        return np.tile(p if p.shape[0] == n else np.repeat(p, n, axis=0), (k, 1))

    x = np.tile(ens.x, (k, 1))
    aux = np.tile(ens.aux, (k, 1))
    cho = np.repeat(np.stack([p.cho_g for p in plans]), n, axis=0)
    ins = np.repeat(np.stack([p.insulin_u for p in plans]), n, axis=0)
    switches = tuple((at, tiled(p)) for at, p in ens.switches)
    g = run_members(tiled(ens.params), switches, x, aux, cho, ins, stride=stride)
    return g.reshape(k, n, -1)


def run_members(
    params: F64,
    switches: tuple[tuple[int, F64], ...],
    x: F64,
    aux: F64,
    cho_g: F64,
    insulin_u: F64,
    *,
    stride: int,
) -> F64:
    """Subcutaneous glucose (N, T // stride + 1) of members run from ``x``/``aux`` (advanced in
    place) over T minutes of inputs, with ``params`` until the first of ``switches`` (minutes
    from the start, params) and each switch's params after it. A switch takes effect at the
    first output step at or after its minute (at most ``stride`` - 1 minutes late)."""
    if not switches:
        return run_ensemble(params, x, aux, cho_g, insulin_u, stride=stride).gsub_mg_dl
    total = cho_g.shape[-1]
    cuts = [0]
    for at, _ in switches:
        cuts.append(max(cuts[-1], min(total, -(-at // stride) * stride)))
    cuts.append(total)
    plist = [params, *(p for _, p in switches)]
    parts: list[F64] = []
    for k, p in enumerate(plist):
        a, b = cuts[k], cuts[k + 1]
        if b <= a:
            continue
        g = run_ensemble(p, x, aux, cho_g[..., a:b], insulin_u[..., a:b], stride=stride).gsub_mg_dl
        parts.append(g if not parts else g[:, 1:])
    return np.concatenate(parts, axis=1)


def weighted_quantiles(values: F64, weights: F64, quantiles: tuple[float, ...]) -> F64:
    """Quantiles across members (axis 0) of ``values`` (N, K) with member ``weights`` (N,).

    Returns (len(quantiles), K). Uses the weighted empirical CDF with midpoint interpolation.
    """
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    order = np.argsort(v, axis=0)
    vs = np.take_along_axis(v, order, axis=0)
    ws = w[order]
    cdf = np.cumsum(ws, axis=0) - 0.5 * ws
    cdf /= ws.sum(axis=0)
    out = np.empty((len(quantiles), v.shape[1]))
    for j in range(v.shape[1]):
        out[:, j] = np.interp(quantiles, cdf[:, j], vs[:, j])
    return out
