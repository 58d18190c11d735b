"""A CGM sensor: the cohort's Johnson-SU noise with 15-minute autocorrelation, seeded.

Noise model (``specs/model.md``; Breton & Kovatchev, J Diabetes Sci Technol 2008, as the public
cohort applies it): a latent sequence at 15-minute spacing, ``e_0 ~ N(0, 1)``,
``e_j = PACF * (e_{j-1} + N(0, 1))``, transformed by Johnson SU,
``eps = xi + lambda * sinh((e - gamma) / delta)`` (mg/dL), then interpolated with a cubic spline
onto the sensor's sample grid in blocks of ten 15-minute values. The sensor samples every
``sample_time_min`` minutes (zero-order hold in between) and clips to its measuring range.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from edgetwin.model.cohort import SensorSpec, load_sensor

__all__ = ["CgmSensor", "cubic_spline_not_a_knot"]

_BLOCK = 10  # 15-minute values per interpolation block


def cubic_spline_not_a_knot(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], x_new: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Interpolating cubic spline with not-a-knot ends (as ``interp1d(kind='cubic')``)."""
    n = x.size
    h = np.diff(x)
    # Unknowns: second derivatives M_0..M_{n-1}.
    a = np.zeros((n, n))
    r = np.zeros(n)
    for i in range(1, n - 1):
        a[i, i - 1] = h[i - 1]
        a[i, i] = 2.0 * (h[i - 1] + h[i])
        a[i, i + 1] = h[i]
        r[i] = 6.0 * ((y[i + 1] - y[i]) / h[i] - (y[i] - y[i - 1]) / h[i - 1])
    # Not-a-knot: third derivative continuous at x_1 and x_{n-2}.
    a[0, 0], a[0, 1], a[0, 2] = h[1], -(h[0] + h[1]), h[0]
    a[n - 1, n - 3], a[n - 1, n - 2], a[n - 1, n - 1] = h[n - 2], -(h[n - 3] + h[n - 2]), h[n - 3]
    m = np.linalg.solve(a, r)
    idx = np.clip(np.searchsorted(x, x_new, side="right") - 1, 0, n - 2)
    x0, x1 = x[idx], x[idx + 1]
    hh = x1 - x0
    t0 = x1 - x_new
    t1 = x_new - x0
    return (
        m[idx] * t0**3 / (6 * hh)
        + m[idx + 1] * t1**3 / (6 * hh)
        + (y[idx] / hh - m[idx] * hh / 6) * t0
        + (y[idx + 1] / hh - m[idx + 1] * hh / 6) * t1
    )


class CgmSensor:
    """Noise and sampling of one CGM. ``measure(minute, gsub)`` returns mg/dL or None between samples."""

    def __init__(self, spec: SensorSpec | str = "Dexcom", seed: int = 0, *, noiseless: bool = False) -> None:
        self.spec = load_sensor(spec) if isinstance(spec, str) else spec
        self.noiseless = noiseless
        self._rng = np.random.default_rng(seed)
        self._latent = float(self._rng.standard_normal())
        self._last_eps = self._jsu(self._latent)
        self._noise: list[float] = []  # noise at sample k, computed block by block

    @property
    def sample_time_min(self) -> float:
        return self.spec.sample_time_min

    def _jsu(self, e: float) -> float:
        s = self.spec
        return s.xi + s.lambda_ * math.sinh((e - s.gamma) / s.delta)

    def _extend(self) -> None:
        s = self.spec
        vals = [self._last_eps]
        for _ in range(_BLOCK):
            self._latent = s.pacf * (self._latent + float(self._rng.standard_normal()))
            vals.append(self._jsu(self._latent))
        t15 = np.arange(_BLOCK + 1, dtype=np.float64) * 15.0
        n_samples = int(math.floor(_BLOCK * 15.0 / s.sample_time_min))
        t = np.arange(n_samples, dtype=np.float64) * s.sample_time_min
        self._noise.extend(cubic_spline_not_a_knot(t15, np.array(vals), t).tolist())
        self._last_eps = vals[-1]

    def noise_at_sample(self, k: int) -> float:
        """Noise (mg/dL) of the k-th sample (taken at minute ``k * sample_time_min``)."""
        while len(self._noise) <= k:
            self._extend()
        return self._noise[k]

    def is_sample_minute(self, minute: int) -> bool:
        st = self.spec.sample_time_min
        return math.isclose(minute % st, 0.0, abs_tol=1e-9)

    def measure(self, minute: int, gsub_mg_dl: float) -> float | None:
        """The CGM value at ``minute`` if the sensor samples then, else None."""
        if not self.is_sample_minute(minute):
            return None
        k = int(round(minute / self.spec.sample_time_min))
        value = gsub_mg_dl if self.noiseless else gsub_mg_dl + self.noise_at_sample(k)
        return float(min(max(value, self.spec.min_mg_dl), self.spec.max_mg_dl))

    def trace(self, gsub_mg_dl: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """CGM for a per-minute glucose trace: a value at sample minutes, NaN elsewhere."""
        g = np.asarray(gsub_mg_dl, dtype=np.float64)
        out = np.full(g.shape, np.nan)
        for minute in range(g.size):
            v = self.measure(minute, float(g[minute]))
            if v is not None:
                out[minute] = v
        return out
