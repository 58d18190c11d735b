"""What the twin assumes about CGM error: a slowly wandering bias plus a little white noise.

The public cohort's sensors (``specs/model.md``) add Johnson-SU noise driven by a latent
Gaussian sequence at 15-minute spacing, ``e_j = PACF * (e_{j-1} + N(0, 1))``, spline-interpolated
onto the sample grid (Breton & Kovatchev, J Diabetes Sci Technol 2008). The error is therefore
not white: consecutive 3- or 5-minute readings share most of it, and it decorrelates over about
40 minutes. Treating readings as independent would make the twin chase the sensor.

The twin models the error as an Ornstein-Uhlenbeck bias ``b`` (mean ``mean_mg_dl``, stationary
SD ``sd_mg_dl``, correlation ``PACF`` per 15 minutes) plus white noise of ``white_sd_mg_dl``.
Given a particle's glucose, ``b`` is linear-Gaussian, so each particle carries its own Kalman
mean of ``b`` and all share one variance (a Rao-Blackwellised particle filter). The Gaussian
observation density is replaced by a Student-t mixed with a small uniform floor, so an outlier
costs a particle little and moves no state much.

The Johnson-SU moments come from the latent's stationary variance ``v = PACF^2 / (1 - PACF^2)``
and the closed forms ``E sinh(aZ + c) = sinh(c) exp(a^2 v / 2)``,
``E sinh^2(aZ + c) = (cosh(2c) exp(2 a^2 v) - 1) / 2`` for ``Z ~ N(0, v)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgetwin.model.cohort import SensorSpec, load_sensor

__all__ = ["SensorErrorModel"]


@dataclass(frozen=True, slots=True)
class SensorErrorModel:
    """CGM error as the filter sees it (mg/dL, minutes)."""

    mean_mg_dl: float
    sd_mg_dl: float
    corr_per_min: float
    white_sd_mg_dl: float = 2.0
    t_dof: float = 5.0
    outlier_prob: float = 0.02
    outlier_range_mg_dl: float = 400.0
    low_clip_mg_dl: float = 39.0
    high_clip_mg_dl: float = 600.0

    def __post_init__(self) -> None:
        if not (self.sd_mg_dl > 0 and 0 < self.corr_per_min < 1 and self.white_sd_mg_dl > 0):
            raise ValueError("sensor error model: sd > 0, 0 < corr_per_min < 1, white_sd > 0 required")
        if not (self.t_dof > 2 and 0 <= self.outlier_prob < 0.5):
            raise ValueError("sensor error model: t_dof > 2 and outlier_prob in [0, 0.5) required")

    @classmethod
    def from_spec(cls, spec: SensorSpec | str = "Dexcom", *, white_sd_mg_dl: float = 2.0) -> SensorErrorModel:
        """The bias process implied by a cohort sensor's Johnson-SU noise parameters."""
        s = load_sensor(spec) if isinstance(spec, str) else spec
        v = s.pacf**2 / (1.0 - s.pacf**2)
        a = 1.0 / s.delta
        c = -s.gamma / s.delta
        e1 = math.sinh(c) * math.exp(a * a * v / 2.0)
        e2 = (math.cosh(2.0 * c) * math.exp(2.0 * a * a * v) - 1.0) / 2.0
        mean = s.xi + s.lambda_ * e1
        sd = s.lambda_ * math.sqrt(max(e2 - e1 * e1, 0.0))
        return cls(
            mean_mg_dl=mean,
            sd_mg_dl=sd,
            corr_per_min=s.pacf ** (1.0 / 15.0),
            white_sd_mg_dl=white_sd_mg_dl,
            low_clip_mg_dl=s.min_mg_dl,
            high_clip_mg_dl=s.max_mg_dl,
        )

    def decay(self, minutes: float) -> float:
        """Fraction of today's bias left after ``minutes``."""
        return float(self.corr_per_min ** max(minutes, 0.0))

    def predict_var(self, var: float, minutes: float) -> float:
        """Variance of the bias ``minutes`` later, from variance ``var`` now."""
        d2 = self.decay(minutes) ** 2
        return d2 * var + (1.0 - d2) * self.sd_mg_dl**2

    @property
    def t_log_norm(self) -> float:
        """log Gamma((nu+1)/2) - log Gamma(nu/2) - log(sqrt(nu pi)): the t density's constant."""
        nu = self.t_dof
        return math.lgamma((nu + 1.0) / 2.0) - math.lgamma(nu / 2.0) - 0.5 * math.log(nu * math.pi)
