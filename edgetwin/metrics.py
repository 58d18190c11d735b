"""Glycaemic outcome metrics, as consensus reports define them.

Time in ranges per Battelino et al., Diabetes Care 2019 (International Consensus on Time in
Range): TIR 70-180, TBR < 70 and < 54, TAR > 180 and > 250 mg/dL, CV = SD / mean.
Risk indices per Kovatchev et al., Diabetes Care 1997/2001: f(BG) = 1.509 (ln(BG)^1.084 - 5.381),
r = 10 f^2, LBGI = mean of r where f < 0, HBGI = mean of r where f > 0 (BG in mg/dL).
GMI per Bergenstal et al., Diabetes Care 2018: 3.31 + 0.02392 × mean glucose (mg/dL).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["GlucoseMetrics", "glucose_metrics", "risk_index"]


@dataclass(frozen=True, slots=True)
class GlucoseMetrics:
    n: int
    tir_70_180_pct: float
    tbr_70_pct: float
    tbr_54_pct: float
    tar_180_pct: float
    tar_250_pct: float
    mean_mg_dl: float
    sd_mg_dl: float
    cv_pct: float
    min_mg_dl: float
    max_mg_dl: float
    lbgi: float
    hbgi: float
    gmi_pct: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def risk_index(glucose_mg_dl: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per-sample low and high risk (rl, rh) of the Kovatchev risk function."""
    g = np.clip(np.asarray(glucose_mg_dl, dtype=np.float64), 1.0, None)
    f = 1.509 * (np.log(g) ** 1.084 - 5.381)
    r = 10.0 * f * f
    return np.where(f < 0, r, 0.0), np.where(f > 0, r, 0.0)


def glucose_metrics(glucose_mg_dl: npt.ArrayLike) -> GlucoseMetrics:
    """Metrics over equally spaced samples; NaN samples (no reading) are left out."""
    g = np.asarray(glucose_mg_dl, dtype=np.float64).ravel()
    g = g[np.isfinite(g)]
    n = int(g.size)
    if n == 0:
        nan = float("nan")
        return GlucoseMetrics(0, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan)

    def pct(mask: npt.NDArray[np.bool_]) -> float:
        return float(100.0 * np.count_nonzero(mask) / n)

    mean = float(g.mean())
    sd = float(g.std(ddof=1)) if n > 1 else 0.0
    rl, rh = risk_index(g)
    return GlucoseMetrics(
        n=n,
        tir_70_180_pct=pct((g >= 70) & (g <= 180)),
        tbr_70_pct=pct(g < 70),
        tbr_54_pct=pct(g < 54),
        tar_180_pct=pct(g > 180),
        tar_250_pct=pct(g > 250),
        mean_mg_dl=mean,
        sd_mg_dl=sd,
        cv_pct=100.0 * sd / mean if mean > 0 else float("nan"),
        min_mg_dl=float(g.min()),
        max_mg_dl=float(g.max()),
        lbgi=float(rl.mean()),
        hbgi=float(rh.mean()),
        gmi_pct=3.31 + 0.02392 * mean,
    )
