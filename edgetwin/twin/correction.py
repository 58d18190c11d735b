"""A per-patient error model of the twin's forecast median, learned from its own forecasts.

A twin that starts from a therapy profile carries population physiology, not the patient's: a
donor's meal response rises earlier or later than the patient's, its insulin acts a little
sooner or later. Its forecasts then err in ways that repeat, tied to what happened before the
forecast (a meal an hour ago, a bolus, the trend). The twin already issues a forecast for itself
every 30 minutes to calibrate its bands (:class:`~edgetwin.twin.forecast.Calibrator`); when the
reading arrives, each resolved forecast becomes one training pair here:

* target: reading minus the forecast median (mg/dL), per calibration horizon;
* features known when the forecast was issued (:data:`FEATURE_NAMES`): the change the twin
  predicts (at this horizon and at the last one, 120 minutes), the CGM trend of the last 20
  minutes (alone and times the glucose level), the latest resolved error at the same horizon,
  announced carbs and delivered insulin in six windows of the last four hours, whether a meal
  was announced in the last two hours (alone and times the predicted change: after a meal the
  twin's predicted rise or fall is what errs most), how far glucose moved over the last 30 and
  60 minutes, and the glucose level (linear, below 100 and above 180 mg/dL: errors differ near a
  low and when high).

Each horizon has its own ridge regression (sufficient statistics only: an F x F matrix and a
vector), with old pairs forgotten slowly (half-life :attr:`MedianCorrector.half_life_days`)
because nightly re-personalisation changes the twin whose errors are learned. It is shrunk
towards its prior coefficients: for a twin that starts from a therapy profile, the error model
of such twins on the virtual population (:mod:`edgetwin.twin.error_prior`), which is also the
whole correction until the patient's own pairs are enough; for a known patient, "no
correction". Whenever the inputs are missing (no reading in the last 15 minutes) the
correction is zero; it never exceeds :attr:`MedianCorrector.max_abs_mg_dl`, and it never raises
a forecast whose median is near a low (:meth:`~edgetwin.twin.forecast.Calibrator.shift`).

It corrects the forecast a user sees (``Twin.forecast``, ``edgetwin forecast``/``backtest``,
the gateway's published forecast). It does not touch the particles, the what-if comparison or
the suggestion engine: a regression on past insulin must not take part in deciding on insulin.

Measured with ``edgetwin bench estimate`` (the README's "The living twin" quotes the figures).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = [
    "FEATURE_NAMES",
    "LOOKBACK_MIN",
    "WINDOWS_MIN",
    "CorrectionInputs",
    "MedianCorrector",
    "by_window",
    "features",
]

F64 = npt.NDArray[np.float64]

WINDOWS_MIN = ((0, 30), (30, 60), (60, 90), (90, 120), (120, 180), (180, 240))
"""Windows before the issue minute (minutes ago, from, to) for carbs and insulin."""
LOOKBACK_MIN = WINDOWS_MIN[-1][1]
CARB_SCALE_G = 10.0  # carbs enter in units of 10 g, so all features are of similar size
MEAL_WINDOWS = 4  # "a meal was announced" looks at the first four windows (the last 2 hours)

FEATURE_NAMES = (
    "intercept",
    "predicted_change_mg_dl",
    "trend_30_min_mg_dl",
    "last_error_mg_dl",
    *(f"carbs_{a}_{b}_min_10g" for a, b in WINDOWS_MIN),
    *(f"insulin_{a}_{b}_min_u" for a, b in WINDOWS_MIN),
    "glucose_minus_140_mg_dl",
    "below_100_mg_dl",
    "above_180_mg_dl",
    "trend_30_min_x_glucose_minus_140_per_100_mg_dl",
    "predicted_change_120_min_mg_dl",
    "meal_in_last_120_min_x10",
    "predicted_change_x_meal_in_last_120_min_mg_dl",
    "cgm_change_30_min_mg_dl",
    "cgm_change_60_min_mg_dl",
)
N_FEATURES = len(FEATURE_NAMES)
_WINDOW_STARTS = np.array([LOOKBACK_MIN - b for _, b in reversed(WINDOWS_MIN)])


def by_window(per_minute: F64) -> tuple[float, ...]:
    """Sums over WINDOWS_MIN of ``per_minute`` (LOOKBACK_MIN values, the last one the issue
    minute itself), in the order of WINDOWS_MIN."""
    return tuple(np.add.reduceat(per_minute, _WINDOW_STARTS)[::-1].tolist())


@dataclass(frozen=True, slots=True)
class CorrectionInputs:
    """What the twin knew at an issue minute, apart from its own forecast."""

    cgm_mg_dl: float  # latest reading (within the last 15 minutes)
    trend_mg_dl_per_min: float  # least-squares slope of the last 20 minutes' readings
    carbs_g: tuple[float, ...]  # announced carbs per window of WINDOWS_MIN
    insulin_u: tuple[float, ...]  # insulin delivered per window of WINDOWS_MIN
    change_30_min_mg_dl: float = 0.0  # latest reading minus the one 30 (to 34) minutes before; 0: none
    change_60_min_mg_dl: float = 0.0  # the same 60 minutes back


def features(inputs: CorrectionInputs, q50_mg_dl: F64, last_error_mg_dl: F64) -> F64:
    """Feature rows (K, F) for a forecast median at K horizons (the last one the longest)."""
    k = q50_mg_dl.shape[0]
    x = np.empty((k, N_FEATURES))
    x[:, 0] = 1.0
    x[:, 1] = q50_mg_dl - inputs.cgm_mg_dl
    x[:, 2] = 30.0 * inputs.trend_mg_dl_per_min
    x[:, 3] = last_error_mg_dl
    n = len(WINDOWS_MIN)
    x[:, 4 : 4 + n] = np.asarray(inputs.carbs_g) / CARB_SCALE_G
    x[:, 4 + n : 4 + 2 * n] = np.asarray(inputs.insulin_u)
    g = inputs.cgm_mg_dl
    trend = 30.0 * inputs.trend_mg_dl_per_min
    meal = 10.0 if sum(inputs.carbs_g[:MEAL_WINDOWS]) > 0.0 else 0.0
    x[:, 4 + 2 * n : -3] = (
        g - 140.0,
        max(0.0, 100.0 - g),
        max(0.0, g - 180.0),
        trend * (g - 140.0) / 100.0,
        q50_mg_dl[-1] - g,
        meal,
    )
    x[:, -3] = x[:, 1] * (meal > 0.0)
    x[:, -2] = inputs.change_30_min_mg_dl
    x[:, -1] = inputs.change_60_min_mg_dl
    return x


@dataclass
class MedianCorrector:
    """Ridge regressions of forecast errors, one per horizon, learned online."""

    horizons: int
    ridge: float = 30.0
    """Weight of the prior coefficients, in pairs: each feature's penalty is this many pairs of
    the feature's own mean square (at least 1), so carbs in 10 g and glucose in mg/dL are held
    alike; the intercept's is a tenth. In the offline replica (three seeds, profile twins, 30 /
    60 / 120 min) 30 gave 0.601 / 0.633 / 0.726 with the population prior, where a flat 300 in
    the features' own units (the rule until 2026-12-08) gave 0.605 / 0.637 / 0.730, and 0.614 /
    0.641 / 0.736 without it (0.614 / 0.645 / 0.738 with the flat 300); on seeds 4-6, which took
    no part in choosing it, 0.617 against 0.620 at 30 min. 100 scored like 30 with the prior and
    0.621 without it."""
    min_pairs: int = 48
    """Pairs a horizon needs before its own data take part; until then its prior coefficients
    are the correction: the population's for a profile twin, none for a known patient. A day of
    30-minute issues, which is also when the first nightly personalisation has run. Without a
    prior, measured on the cohort bench (three seeds, profile twins): 12 hours 0.627 / 0.660 /
    0.753 at 30 / 60 / 120 min, a day 0.623 / 0.656 / 0.751. With the population prior and the
    per-feature ridge, in the offline replica (30 min, seeds 1-3 and held-out seeds 4-6): half a
    day 0.601 and 0.616, three quarters 0.599 and 0.613, a day 0.599 and 0.612, two days 0.601
    and 0.617, three 0.606 and 0.622 (60 and 120 min agree)."""
    half_life_days: float = 14.0
    """Half-life of a pair's weight (4 or 60 days score within 0.001 of 14 on the bench)."""
    max_abs_mg_dl: float = 40.0
    pairs_per_day: float = 48.0  # 30-minute issues
    ata: F64 = field(default_factory=lambda: np.zeros(0))
    aty: F64 = field(default_factory=lambda: np.zeros(0))
    pairs: F64 = field(default_factory=lambda: np.zeros(0))
    last_error: F64 = field(default_factory=lambda: np.zeros(0))
    last_error_minute: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    prior_coef: F64 | None = None
    """(K, F) coefficients the regressions are shrunk towards (None: no correction)."""

    def __post_init__(self) -> None:
        k, f = self.horizons, N_FEATURES
        if self.ata.size == 0:
            self.ata = np.zeros((k, f, f))
            self.aty = np.zeros((k, f))
            self.pairs = np.zeros(k)
            self.last_error = np.zeros(k)
            self.last_error_minute = np.full(k, -(10**9), dtype=np.int64)
        if self.ata.shape != (k, f, f) or self.aty.shape != (k, f) or self.pairs.shape != (k,):
            raise ValueError("corrector statistics do not match its horizons and features")
        if self.prior_coef is not None:
            self.prior_coef = np.array(self.prior_coef, dtype=np.float64)
            if self.prior_coef.shape != (k, f) or not np.isfinite(self.prior_coef).all():
                raise ValueError(f"prior coefficients must be ({k}, {f}) finite numbers")
        self._coef: F64 | None = None

    @property
    def _forget(self) -> float:
        return 0.5 ** (1.0 / (self.half_life_days * self.pairs_per_day))

    def recent_errors(self, minute: int, max_age_min: int = 30) -> F64:
        """The latest resolved error per horizon, or 0 where none resolved in ``max_age_min``."""
        fresh = minute - self.last_error_minute <= max_age_min
        return np.where(fresh, self.last_error, 0.0)

    def coefficients(self) -> F64:
        """(K, F) ridge coefficients; zero rows where a horizon has too few pairs (cached until
        the next pair: a forecast every few minutes should not solve them again)."""
        if self._coef is None:
            self._coef = self._solve()
        return self._coef

    def _solve(self) -> F64:
        k, f = self.horizons, N_FEATURES
        prior = np.zeros((k, f)) if self.prior_coef is None else self.prior_coef
        out = prior.copy()
        for j in range(k):
            if self.pairs[j] >= self.min_pairs:
                reg = self.ridge * np.maximum(np.diag(self.ata[j]) / self.pairs[j], 1.0)
                reg[0] = 0.1 * self.ridge
                out[j] = np.linalg.solve(self.ata[j] + np.diag(reg), self.aty[j] + reg * prior[j])
        return out

    def correction(self, x: F64) -> F64:
        """Correction (K,) in mg/dL for feature rows ``x`` (K, F), bounded."""
        c = np.einsum("kf,kf->k", x, self.coefficients())
        c = np.where(np.isfinite(c), c, 0.0)
        return np.clip(c, -self.max_abs_mg_dl, self.max_abs_mg_dl)

    def learn(self, j: int, x: F64 | None, error_mg_dl: float, minute: int) -> None:
        """One resolved forecast at horizon ``j``: its error (reading minus median) and the
        features ``x`` (F,) it was issued with (None: the error is noted, nothing is learned)."""
        if not math.isfinite(error_mg_dl):
            return
        self.last_error[j] = error_mg_dl
        self.last_error_minute[j] = minute
        if x is None or not np.isfinite(x).all():
            return
        lam = self._forget
        self._coef = None
        self.ata[j] = lam * self.ata[j] + np.outer(x, x)
        self.aty[j] = lam * self.aty[j] + error_mg_dl * x
        self.pairs[j] = lam * self.pairs[j] + 1.0

    def copy(self) -> MedianCorrector:
        return dataclasses.replace(
            self,
            ata=self.ata.copy(),
            aty=self.aty.copy(),
            pairs=self.pairs.copy(),
            last_error=self.last_error.copy(),
            last_error_minute=self.last_error_minute.copy(),
            prior_coef=None if self.prior_coef is None else self.prior_coef.copy(),
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "ata": self.ata.ravel().tolist(),
            "aty": self.aty.ravel().tolist(),
            "pairs": self.pairs.tolist(),
            "last_error": self.last_error.tolist(),
            "last_error_minute": self.last_error_minute.tolist(),
            "prior_coef": None if self.prior_coef is None else self.prior_coef.ravel().tolist(),
        }

    @classmethod
    def from_dict(cls, horizons: int, d: dict[str, object]) -> MedianCorrector:
        """From :meth:`to_dict`. Statistics saved with another feature set (an older release)
        cannot be reused: the model starts learning again, keeping the latest errors (and no
        prior coefficients, which described the old features)."""
        f = N_FEATURES
        if len(d["aty"]) != horizons * f:  # type: ignore[arg-type]
            fresh = cls(horizons)
            fresh.last_error = np.array(d["last_error"], dtype=np.float64)
            fresh.last_error_minute = np.array(d["last_error_minute"], dtype=np.int64)
            return fresh
        prior = d.get("prior_coef")
        return cls(
            horizons,
            ata=np.array(d["ata"], dtype=np.float64).reshape(horizons, f, f),
            aty=np.array(d["aty"], dtype=np.float64).reshape(horizons, f),
            pairs=np.array(d["pairs"], dtype=np.float64),
            last_error=np.array(d["last_error"], dtype=np.float64),
            last_error_minute=np.array(d["last_error_minute"], dtype=np.int64),
            prior_coef=None if prior is None else np.array(prior, dtype=np.float64).reshape(horizons, f),
        )
