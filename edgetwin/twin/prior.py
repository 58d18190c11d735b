"""Where a twin starts: a known patient, or a therapy profile and the virtual population.

A twin's particles share a small table of *donor* parameter vectors and differ in three learned
log-multipliers ``theta`` (:data:`THETA_NAMES`):

* ``insulin_sensitivity``: scales insulin action on glucose use (``Vmx``) and on liver glucose
  production (``kp3``). ``kp1`` moves with it so the basal steady state stays put: sensitivity
  changes the response to insulin above or below basal, not the fasting level.
* ``meal_absorption``: scales the gut's rate constants (``kmax``, ``kmin``, ``kabs``) together,
  i.e. a meal absorbs that many times faster.
* ``egp``: scales basal endogenous glucose production (via ``kp1``), which sets fasting glucose
  under a given basal rate.

A fourth column, ``glucose_flux`` (mg/kg/min, added to ``kp1``), is not a parameter but a
slowly wandering disturbance the filter estimates: glucose appearing or disappearing for reasons
the donor's physiology does not explain. Carried into a forecast it bends the trend the way the
recent data did (the "offset-free" disturbance model of model-predictive control).

From a therapy profile alone (:func:`profile_prior`), every cohort patient becomes a donor made
consistent with the profile: body weight, basal rate (``u2ss`` and ``Ib``, ``kp1`` re-solved so
the donor keeps its basal glucose) and insulin sensitivity scaled so the donor's model correction
factor relates to the profile's as the donor's own did to its clinician's (the cohort's
correction factors are not the model's: children's differ by 2-4x). Donors are weighted by their
likeness to the profile (weight, basal per kg, correction factor, carb ratio, age). Then every
donor's body is paired with every donor's gut (:func:`mix_guts`), so the filter can find the meal
response the patient has rather than the one that came with the best body.

The profile's insulin duration is validated but does not reshape insulin kinetics: the duration
set in a pump is a dosing heuristic (typically 3-5 h), not a measurement; the population's
kinetics are kept and the filter learns the response from data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edgetwin.errors import ConfigError, ModelError
from edgetwin.model.cohort import cohort_names, load_patient, load_therapy
from edgetwin.model.params import (
    N_PARAMS,
    P_B,
    P_BW,
    P_D,
    P_IB,
    P_KABS,
    P_KMAX,
    P_KMIN,
    P_KP1,
    P_KP2,
    P_KP3,
    P_U2SS,
    P_VMX,
    PARAM_BOUNDS,
    PARAM_NAMES,
    X_GP,
    PatientParams,
)
from edgetwin.therapy import TherapyProfile
from edgetwin.twin.error_prior import population_error_coefficients
from edgetwin.twin.indices import insulin_sensitivity_mg_dl_per_u, steady_states
from edgetwin.twin.timeofday import N_DAYPARTS

__all__ = [
    "N_LEARNED",
    "THETA_NAMES",
    "Donors",
    "ParticlePrior",
    "compose_params",
    "mix_guts",
    "patient_prior",
    "profile_prior",
]

F64 = npt.NDArray[np.float64]

THETA_NAMES = ("insulin_sensitivity", "meal_absorption", "egp", "glucose_flux")
N_THETA = len(THETA_NAMES)
N_LEARNED = 3  # the first three are parameters; glucose_flux is a disturbance state
TH_SI, TH_ABS, TH_EGP, TH_FLUX = range(N_THETA)
THETA_LOW = np.array([-1.2, -1.5, -0.5, -1.5])
THETA_HIGH = np.array([1.2, 1.5, 0.5, 1.5])

_SIMILARITY_BANDWIDTH = 0.4  # natural-log units per feature
_MIN_DONOR_WEIGHT = 0.02  # relative to the best donor


@dataclass(frozen=True)
class Donors:
    """Base parameter vectors (D, 32) and the basal quantities the multipliers act on."""

    names: tuple[str, ...]
    vectors: F64
    basal_gp: F64  # plasma glucose mass at the basal steady state (mg/kg)
    egp_basal: F64  # endogenous glucose production at basal (mg/kg/min)
    kp3_ib: F64  # insulin suppression of EGP at basal, kp3 * Ib (mg/kg/min)

    @classmethod
    def from_vectors(cls, names: tuple[str, ...], vectors: F64) -> Donors:
        v = np.ascontiguousarray(vectors, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != N_PARAMS or v.shape[0] != len(names):
            raise ModelError(f"donor table must be ({len(names)}, {N_PARAMS})")
        x, ok = steady_states(v)
        if not ok.all():
            bad = [n for n, good in zip(names, ok, strict=True) if not good]
            raise ModelError(f"no basal steady state for donor(s) {', '.join(bad)}")
        gp = x[:, X_GP]
        kp3_ib = v[:, P_KP3] * v[:, P_IB]
        egp = v[:, P_KP1] - v[:, P_KP2] * gp - kp3_ib
        return cls(names, v, gp, egp, kp3_ib)

    @property
    def size(self) -> int:
        return len(self.names)


def compose_params(
    donors: Donors,
    donor_idx: npt.NDArray[np.int64],
    theta: F64,
    out: F64 | None = None,
    si_log: float = 0.0,
) -> F64:
    """Parameter rows (N, 32) for particles with donors ``donor_idx`` and multipliers ``theta``;
    ``si_log`` is added to every row's ``insulin_sensitivity`` (the part of the day's pattern)."""
    p = np.take(donors.vectors, donor_idx, axis=0, out=out)
    s_i = np.exp(theta[:, TH_SI] + si_log)
    s_a = np.exp(theta[:, TH_ABS])
    s_e = np.exp(theta[:, TH_EGP])
    p[:, P_VMX] *= s_i
    p[:, P_KP3] *= s_i
    p[:, P_KP1] += (
        (s_i - 1.0) * donors.kp3_ib[donor_idx] + (s_e - 1.0) * donors.egp_basal[donor_idx] + theta[:, TH_FLUX]
    )
    p[:, P_KABS] *= s_a
    p[:, P_KMAX] *= s_a
    p[:, P_KMIN] *= s_a
    return p


@dataclass(frozen=True)
class ParticlePrior:
    """Donors with weights, and per donor a Gaussian on ``theta`` (log-multipliers).

    ``theta_mean`` and ``theta_sd`` are (D, 3), or (3,) shared by all donors (stored as (D, 3)).
    """

    donors: Donors
    donor_weights: F64
    theta_mean: F64
    theta_sd: F64
    description: str
    flux_walk_mg_kg_min_per_sqrt_min: float = 0.04
    """How fast the unexplained glucose flux may wander: small for a known patient, larger for
    a population prior whose structure is only approximately the patient's."""
    mixed_from: ParticlePrior | None = field(default=None, repr=False, compare=False)
    """The prior this one was built from by :func:`mix_guts` (a checkpoint stores that instead)."""
    si_by_part: F64 = field(default_factory=lambda: np.zeros(N_DAYPARTS))
    """Insulin sensitivity by part of the local day (:mod:`edgetwin.twin.daypart`): log-multipliers
    of every particle's ``insulin_sensitivity`` in parts 00-06, 06-12, 12-18 and 18-24 h; zeros
    (the default) where the data do not support a pattern."""
    error_model_coef: F64 | None = field(default=None, repr=False, compare=False)
    """Where the forecast's error model starts for a twin built from this prior: (K, F)
    coefficients of :class:`~edgetwin.twin.correction.MedianCorrector` (the population's, from
    :mod:`edgetwin.twin.error_prior`, for a profile prior); None: "no correction". Priors made
    from this one (personalisation, mixed guts) keep it."""

    def __post_init__(self) -> None:
        d = self.donors.size
        w = np.asarray(self.donor_weights, dtype=np.float64)
        if w.shape != (d,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ModelError(f"donor weights must be {d} non-negative numbers, not all zero")
        for name in ("theta_mean", "theta_sd"):
            a = np.asarray(getattr(self, name), dtype=np.float64)
            a = np.broadcast_to(a, (d, N_THETA)).copy() if a.shape in ((N_THETA,), (1, N_THETA)) else a
            if a.shape != (d, N_THETA) or not np.isfinite(a).all():
                raise ModelError(f"{name} must be ({N_THETA},) or ({d}, {N_THETA}) finite numbers")
            object.__setattr__(self, name, a)
        if (self.theta_sd < 0).any():
            raise ModelError("theta_sd must be >= 0")
        parts = np.asarray(self.si_by_part, dtype=np.float64)
        if parts.shape != (N_DAYPARTS,) or not np.isfinite(parts).all() or (np.abs(parts) > 1.0).any():
            raise ModelError(f"si_by_part must be {N_DAYPARTS} log-multipliers within [-1, 1]")
        object.__setattr__(self, "si_by_part", parts.copy())
        object.__setattr__(self, "donor_weights", w / w.sum())

    def sample(self, n: int, rng: np.random.Generator) -> tuple[npt.NDArray[np.int64], F64]:
        """Donor indices (stratified by weight) and multipliers for ``n`` particles."""
        cum = np.cumsum(self.donor_weights)
        u = (np.arange(n) + rng.random()) / n
        idx = np.minimum(np.searchsorted(cum, u, side="right"), self.donors.size - 1).astype(np.int64)
        theta = self.theta_mean[idx] + self.theta_sd[idx] * rng.standard_normal((n, N_THETA))
        theta = np.clip(theta, THETA_LOW, THETA_HIGH)
        return idx, theta


GUT_PARAMS = (P_KMAX, P_KMIN, P_KABS, P_B, P_D)
"""The gut: gastric emptying (kmax, kmin and the curve's b, d) and intestinal absorption (kabs)."""


def mix_guts(prior: ParticlePrior) -> ParticlePrior:
    """Every donor's body with every donor's gut (D x D donors; ``body+gut:other``).

    A meal's glucose curve is a shape (how fast the stomach empties, how that slows, how fast the
    gut absorbs), and the donor whose body fits a patient best seldom has the best gut too; one
    learned speed multiplier cannot bend one shape into another. Knowing the true gut parameters
    took the profile-only twin's 30-min error from 0.69 to 0.61 x persistence on the 30 cohort
    patients (the insulin absorption rates only to 0.66), and mixing the donors' guts, uniformly
    weighted, recovers part of that from data alone (``edgetwin bench estimate``). Gut parameters
    do not move the basal steady state, so a hybrid keeps its body's fasting glucose.
    """
    d = prior.donors.size
    cols = list(GUT_PARAMS)
    base = prior.donors.vectors
    vectors = np.repeat(base, d, axis=0)
    vectors[:, cols] = np.tile(base[:, cols], (d, 1))
    names = prior.donors.names
    hybrid = tuple(a if a == b else f"{a}+gut:{b}" for a in names for b in names)
    return ParticlePrior(
        donors=Donors.from_vectors(hybrid, vectors),
        donor_weights=np.repeat(prior.donor_weights, d) / d,
        theta_mean=np.repeat(prior.theta_mean, d, axis=0),
        theta_sd=np.repeat(prior.theta_sd, d, axis=0),
        description=f"{prior.description}, guts mixed ({d * d} body x gut donors)",
        flux_walk_mg_kg_min_per_sqrt_min=prior.flux_walk_mg_kg_min_per_sqrt_min,
        mixed_from=prior,
        si_by_part=prior.si_by_part,
        error_model_coef=prior.error_model_coef,
    )


def patient_prior(
    params: PatientParams,
    *,
    theta_sd: tuple[float, float, float, float] = (0.05, 0.05, 0.02, 0.02),
) -> ParticlePrior:
    """A known patient: one donor, multipliers near 1 (small spread so the filter can adapt)."""
    donors = Donors.from_vectors((params.name,), params.vector()[None, :])
    return ParticlePrior(
        donors=donors,
        donor_weights=np.ones(1),
        theta_mean=np.zeros(N_THETA),
        theta_sd=np.array(theta_sd, dtype=np.float64),
        description=f"known patient {params.name}",
        flux_walk_mg_kg_min_per_sqrt_min=0.004,
    )


def _features(
    weight_kg: float,
    basal_u_per_h: float,
    isf: float,
    carb_ratio: float,
    age_years: float | None,
) -> list[float | None]:
    return [
        math.log(weight_kg),
        math.log(basal_u_per_h / weight_kg),
        math.log(isf),
        math.log(carb_ratio),
        math.log(age_years) if age_years is not None and age_years > 0 else None,
    ]


def _consistent_donor(pp: PatientParams, profile: TherapyProfile) -> F64 | None:
    """``pp`` moved to the profile's weight, basal and correction factor; None if it cannot be."""
    therapy = load_therapy(pp.name)
    v = pp.vector()
    x0 = pp.state0()
    gpb = x0[X_GP]
    egp_b = v[P_KP1] - v[P_KP2] * gpb - v[P_KP3] * v[P_IB]
    model_isf_own = float(insulin_sensitivity_mg_dl_per_u(v[None, :])[0])
    ratio = model_isf_own / therapy.correction_factor_mg_dl_per_u
    target_isf = profile.correction_factor_mg_dl_per_u * ratio

    w = v.copy()
    basal_u_per_h = profile.daily_basal_u / 24.0
    w[P_BW] = profile.weight_kg
    w[P_U2SS] = basal_u_per_h / 60.0 * 6000.0 / profile.weight_kg
    w[P_IB] = v[P_IB] * w[P_U2SS] / v[P_U2SS]  # plasma insulin is linear in the basal rate

    def settle(p: F64) -> None:
        p[P_KP1] = egp_b + p[P_KP2] * gpb + p[P_KP3] * p[P_IB]

    settle(w)
    for _ in range(3):
        isf = float(insulin_sensitivity_mg_dl_per_u(w[None, :])[0])
        if not math.isfinite(isf) or isf <= 0:
            return None
        s = min(max(target_isf / isf, 0.5), 2.0)
        if abs(s - 1.0) < 0.01:
            break
        w[P_VMX] *= s
        w[P_KP3] *= s
        settle(w)
    for i, name in enumerate(PARAM_NAMES):
        lo, hi = PARAM_BOUNDS[name]
        if not lo <= w[i] <= hi:
            return None
    return w


def profile_prior(
    profile: TherapyProfile,
    *,
    exclude: tuple[str, ...] = (),
    theta_sd: tuple[float, float, float, float] = (0.2, 0.3, 0.05, 0.02),
    mixed_guts: bool = True,
) -> ParticlePrior:
    """A prior twin from a therapy profile and the 30-patient virtual population.

    ``exclude`` leaves cohort patients out of the donor pool (a benchmark that starts a profile
    twin for a cohort patient must not let that patient donate its own parameters);
    ``mixed_guts`` pairs every donor's body with every donor's gut (:func:`mix_guts`). The
    forecast's error model starts from the population's (:mod:`edgetwin.twin.error_prior`),
    fitted without the excluded patients too.
    """
    target = _features(
        profile.weight_kg,
        profile.daily_basal_u / 24.0,
        profile.correction_factor_mg_dl_per_u,
        profile.carb_ratio_g_per_u,
        profile.age_years,
    )
    names: list[str] = []
    vectors: list[F64] = []
    logw: list[float] = []
    for name in cohort_names():
        if name in exclude:
            continue
        pp = load_patient(name)
        th = load_therapy(name)
        feats = _features(
            pp.BW,
            pp.basal_u_per_h,
            th.correction_factor_mg_dl_per_u,
            th.carb_ratio_g_per_u,
            th.age_years,
        )
        d2 = 0.0
        for a, b in zip(target, feats, strict=True):
            if a is not None and b is not None:
                d2 += ((a - b) / _SIMILARITY_BANDWIDTH) ** 2
        v = _consistent_donor(pp, profile)
        if v is None:
            continue
        names.append(name)
        vectors.append(v)
        logw.append(-0.5 * d2)
    if not names:
        raise ConfigError("profile", "no virtual-population donor can be made consistent with it")
    lw = np.array(logw)
    w = np.exp(lw - lw.max())
    keep = w >= _MIN_DONOR_WEIGHT
    donors = Donors.from_vectors(
        tuple(n for n, k in zip(names, keep, strict=True) if k), np.stack(vectors)[keep]
    )
    prior = ParticlePrior(
        donors=donors,
        donor_weights=w[keep] / w[keep].sum(),
        theta_mean=np.zeros(N_THETA),
        theta_sd=np.array(theta_sd, dtype=np.float64),
        description=f"therapy profile ({donors.size} population donors)",
        error_model_coef=population_error_coefficients(exclude),
    )
    return mix_guts(prior) if mixed_guts and donors.size > 1 else prior
