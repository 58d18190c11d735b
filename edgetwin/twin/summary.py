"""How well the twin knows its patient: each learned quantity with its posterior spread.

Never a bare number: every estimate carries the weighted mean, standard deviation and the 10-90 %
range across the particles, so a parameter the data have not pinned down shows as wide.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from edgetwin.twin.ensemble import weighted_quantiles

__all__ = ["ParameterEstimate", "ParameterSummary", "estimate"]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ParameterEstimate:
    name: str
    unit: str
    mean: float
    sd: float
    p10: float
    p90: float
    description: str = ""

    @property
    def relative_sd(self) -> float:
        """SD as a fraction of the mean (the identification quality; 0.05 = well identified)."""
        return self.sd / abs(self.mean) if self.mean else float("inf")


def estimate(name: str, unit: str, values: F64, weights: F64, description: str = "") -> ParameterEstimate:
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    ok = np.isfinite(v)
    v, w = v[ok], w[ok]
    if v.size == 0:
        nan = float("nan")
        return ParameterEstimate(name, unit, nan, nan, nan, nan, description)
    w = w / w.sum()
    mean = float(w @ v)
    sd = float(np.sqrt(w @ (v - mean) ** 2))
    q = weighted_quantiles(v[:, None], w, (0.1, 0.9))
    return ParameterEstimate(name, unit, mean, sd, float(q[0, 0]), float(q[1, 0]), description)


@dataclass(frozen=True)
class ParameterSummary:
    """The twin's parameter posterior at ``minute``."""

    minute: int
    estimates: tuple[ParameterEstimate, ...]
    donors: tuple[tuple[str, float], ...]
    effective_particles: float
    prior: str

    def __getitem__(self, name: str) -> ParameterEstimate:
        for e in self.estimates:
            if e.name == name:
                return e
        raise KeyError(name)

    def to_dict(self) -> dict[str, object]:
        return {
            "minute": self.minute,
            "estimates": [asdict(e) for e in self.estimates],
            "donors": [list(d) for d in self.donors],
            "effective_particles": self.effective_particles,
            "prior": self.prior,
        }

    def format(self) -> str:
        w = max([34, *(len(e.name) + 2 for e in self.estimates)])
        lines = [f"{'parameter':<{w}}{'mean':>10}{'sd':>9}{'10%':>10}{'90%':>10}  unit"]
        for e in self.estimates:
            lines.append(f"{e.name:<{w}}{e.mean:10.3g}{e.sd:9.2g}{e.p10:10.3g}{e.p90:10.3g}  {e.unit}")
        return "\n".join(lines)
