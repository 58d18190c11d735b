"""One virtual patient through a trial: the world minute by minute, one controller in charge.

The world: the patient model, the cohort's random meal days with carb-counting errors, missed
boluses and unannounced snacks (:class:`~edgetwin.virtual.scenario.RandomScenario`), a noisy CGM
(:class:`~edgetwin.virtual.sensor.CgmSensor`) and the pump (:class:`TrialPump`). Each controller
sees what a real one would: CGM values, announced carbs and its own pump. Scenario and noise
seeds depend only on the trial seed and the patient, so both controllers face exactly the same
days and the same sensor errors.

Glucose metrics are computed on the true subcutaneous glucose every minute (what a noise-free
CGM would read), as ``edgetwin simulate`` reports.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from edgetwin.errors import UnknownPatientError
from edgetwin.metrics import glucose_metrics
from edgetwin.model.cohort import cohort_names, load_patient, load_therapy
from edgetwin.model.params import X_GS
from edgetwin.safety import Mode, SafetyGate, SafetyLimits
from edgetwin.suggest import Suggester, SuggesterConfig
from edgetwin.therapy import TherapyProfile
from edgetwin.trial.controllers import BasalBolusTrialController, TrialController, TwinTrialController
from edgetwin.trial.estimator import Estimator, LivingTwinEstimator, OracleEstimator
from edgetwin.trial.pump import TrialPump
from edgetwin.virtual.patient import VirtualPatient
from edgetwin.virtual.scenario import RandomScenario
from edgetwin.virtual.sensor import CgmSensor

__all__ = [
    "CONTROLLERS",
    "ESTIMATORS",
    "TRIAL_START_UTC",
    "PatientJob",
    "PatientOutcome",
    "TrialSettings",
    "run_patient",
    "trial_limits",
    "trial_profile",
]

TRIAL_START_UTC = datetime(2026, 1, 5, tzinfo=UTC)
"""Minute 0 of every trial: a midnight (meal times count from midnight)."""

CONTROLLERS = ("twin", "basal-bolus")
ESTIMATORS = ("twin", "oracle")
"""Estimators the twin controller can run on: ``twin`` the living twin (the product), ``oracle``
the true state (an upper bound)."""

PLOT_STEP_MIN = 5


@dataclass(frozen=True)
class TrialSettings:
    """The world every patient faces (defaults: the issue's trial conditions)."""

    days: int = 14
    seed: int = 1
    carb_error: float = 0.3
    p_missed_bolus: float = 0.05
    p_unannounced_snack: float = 0.3
    sensor: str = "Dexcom"
    pump: str = "Insulet"

    def __post_init__(self) -> None:
        if not 1 <= self.days <= 365:
            raise ValueError("days must be in [1, 365]")
        if not 0.0 <= self.carb_error < 1.0:
            raise ValueError("carb_error must be in [0, 1)")
        for name in ("p_missed_bolus", "p_unannounced_snack"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability")


@dataclass(frozen=True)
class PatientJob:
    patient: str
    controller: str
    settings: TrialSettings
    estimator: str = "twin"
    suggester: SuggesterConfig | None = None
    """Engine settings for the twin controller (None: the defaults)."""


@dataclass
class PatientOutcome:
    """What one patient's trial produced (picklable, JSON-ready via :meth:`summary`)."""

    patient: str
    group: str
    controller: str
    estimator: str | None
    metrics: dict[str, float]
    total_insulin_u: float
    carbs_eaten_g: float
    carbs_announced_g: float
    rescue_carbs_g: float
    rescue_events: int
    interventions: dict[str, int]
    actions: dict[str, int]
    seconds: float
    gsub_mg_dl: list[float] = field(repr=False, default_factory=list)
    """True subcutaneous glucose every ``PLOT_STEP_MIN`` minutes (for plots)."""
    insulin_u: list[float] = field(repr=False, default_factory=list)
    """Insulin per ``PLOT_STEP_MIN`` minutes."""
    meals: list[tuple[int, float, float]] = field(repr=False, default_factory=list)
    """(minute, eaten g, announced g) including rescue carbs (announced = eaten)."""

    def summary(self, days: int) -> dict[str, object]:
        out: dict[str, object] = {"patient": self.patient, "group": self.group}
        out.update({k: _num(v) for k, v in self.metrics.items()})
        out["total_insulin_u"] = round(self.total_insulin_u, 2)
        out["insulin_u_per_day"] = round(self.total_insulin_u / days, 2)
        out["carbs_eaten_g"] = round(self.carbs_eaten_g, 1)
        out["carbs_announced_g"] = round(self.carbs_announced_g, 1)
        out["rescue_carbs_g"] = round(self.rescue_carbs_g, 1)
        out["rescue_events"] = self.rescue_events
        out["gate_interventions"] = dict(sorted(self.interventions.items()))
        out["actions"] = dict(sorted(self.actions.items()))
        out["seconds"] = round(self.seconds, 1)
        return out


def _num(v: float) -> float | None:
    return None if not math.isfinite(v) else round(float(v), 3)


def trial_profile(name: str) -> TherapyProfile:
    """The virtual patient's therapy settings: steady-state basal, Quest.csv CR and CF."""
    pp = load_patient(name)
    th = load_therapy(name)
    return TherapyProfile(
        weight_kg=pp.BW,
        basal_schedule=((0, pp.basal_u_per_h),),
        carb_ratio_g_per_u=th.carb_ratio_g_per_u,
        correction_factor_mg_dl_per_u=th.correction_factor_mg_dl_per_u,
        insulin_duration_h=5.0,
        target_mg_dl=110.0,
        age_years=th.age_years,
        total_daily_insulin_u=th.total_daily_insulin_u,
    )


def trial_limits(profile: TherapyProfile, pump_max_bolus_u: float = 30.0) -> SafetyLimits:
    """Closed-loop limits a clinician would set for this patient: pump max basal 4 × basal, max
    bolus covering 120 g of carbohydrate, max net IOB one max bolus."""
    basal = profile.max_scheduled_basal_u_per_h
    max_bolus = min(pump_max_bolus_u, math.ceil(2.0 * 120.0 / profile.carb_ratio_g_per_u) / 2.0)
    return SafetyLimits(
        mode=Mode.CLOSED_LOOP,
        max_basal_u_per_h=min(35.0, math.ceil(4.0 * basal * 20.0) / 20.0),
        max_bolus_u=max_bolus,
        max_iob_u=max_bolus,
    )


def _seeds(seed: int, patient: str) -> tuple[int, int]:
    index = cohort_names().index(patient)
    a, b = np.random.SeedSequence([seed, index]).generate_state(2)
    return int(a), int(b)


def make_estimator(
    kind: str, patient: VirtualPatient, profile: TherapyProfile, minutes: int, seed: int
) -> Estimator:
    """The twin controller's estimator: ``twin`` (the living twin) or ``oracle`` (true state)."""
    if kind == "oracle":
        return OracleEstimator(patient)
    if kind == "twin":
        return LivingTwinEstimator(patient.params.name, profile, minutes, seed=seed)
    raise UnknownPatientError(f"unknown estimator {kind!r}; known: {', '.join(ESTIMATORS)}")


def run_patient(
    job: PatientJob, *, on_controller: Callable[[TrialController], None] | None = None
) -> PatientOutcome:
    """Run one patient for ``job.settings.days`` days under ``job.controller``.

    ``on_controller`` is called with the controller before the run (tests use it to keep the
    gate's decisions)."""
    t0 = time.perf_counter()
    st = job.settings
    name = job.patient
    params = load_patient(name)
    profile = trial_profile(name)
    scenario_seed, cgm_seed = _seeds(st.seed, name)
    meals = RandomScenario(
        seed=scenario_seed,
        carb_error=st.carb_error,
        p_missed_bolus=st.p_missed_bolus,
        p_unannounced_snack=st.p_unannounced_snack,
    ).meals(st.days)
    minutes = st.days * 1440
    cho = np.zeros(minutes)
    announced = np.zeros(minutes)
    for m in meals:
        if 0 <= m.minute < minutes:
            cho[m.minute] += m.eaten_g
            announced[m.minute] += m.announced_g
    patient = VirtualPatient(params)
    sensor = CgmSensor(st.sensor, seed=cgm_seed)
    pump = TrialPump(st.pump, profile.basal_schedule[0][1], TRIAL_START_UTC)
    controller: TrialController
    twin: TwinTrialController | None = None
    if job.controller == "basal-bolus":
        controller = BasalBolusTrialController(profile, pump)
    elif job.controller == "twin":
        limits = trial_limits(profile, pump.physics.spec.max_bolus_u)
        twin = TwinTrialController(
            make_estimator(job.estimator, patient, profile, minutes, cgm_seed % (2**31)),
            Suggester(job.suggester),
            SafetyGate(limits),
            profile,
            limits,
            pump,
            TRIAL_START_UTC,
        )
        controller = twin
    else:
        raise UnknownPatientError(f"unknown controller {job.controller!r}; known: {', '.join(CONTROLLERS)}")

    if on_controller is not None:
        on_controller(controller)
    period = max(1, int(round(sensor.sample_time_min)))
    gsub = np.empty(minutes + 1)
    insulin = np.zeros(minutes)
    extra_meals: list[tuple[int, float, float]] = []
    vg = params.Vg
    for k in range(minutes + 1):
        gsub[k] = patient.state[X_GS] / vg
        reading = sensor.measure(k, gsub[k])
        if reading is not None:
            controller.on_cgm(k, reading)
        if k == minutes:
            break
        if announced[k] > 0:
            controller.on_meal(k, float(announced[k]))
        rescue = 0.0
        if k % period == 0 or announced[k] > 0:
            rescue = controller.cycle(k)
            if rescue > 0:
                extra_meals.append((k, rescue, rescue))
        insulin[k] = pump.deliver(k)
        controller.on_delivered(k, float(insulin[k]))
        patient.step(float(cho[k] + rescue), float(insulin[k]))

    metrics = glucose_metrics(gsub).as_dict()
    meal_list = [(m.minute, m.eaten_g, m.announced_g) for m in meals if m.minute < minutes]
    return PatientOutcome(
        patient=name,
        group=name.split("#")[0],
        controller=job.controller,
        estimator=job.estimator if job.controller == "twin" else None,
        metrics=metrics,
        total_insulin_u=float(insulin.sum()),
        carbs_eaten_g=float(cho.sum() + sum(g for _, g, _ in extra_meals)),
        carbs_announced_g=float(announced.sum()),
        rescue_carbs_g=twin.rescue_carbs_g if twin else 0.0,
        rescue_events=twin.rescue_count if twin else 0,
        interventions=dict(controller.interventions),
        actions=dict(twin.kinds) if twin else {},
        seconds=time.perf_counter() - t0,
        gsub_mg_dl=[round(float(v), 1) for v in gsub[::PLOT_STEP_MIN]],
        insulin_u=[round(float(v), 4) for v in insulin.reshape(-1, PLOT_STEP_MIN).sum(axis=1)],
        meals=sorted(meal_list + extra_meals),
    )
