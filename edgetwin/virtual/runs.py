"""Whole simulation runs, open loop (given inputs) or with a controller (a meal plan)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edgetwin.model.cohort import SensorSpec, load_therapy
from edgetwin.model.params import X_GP, X_GS, PatientParams
from edgetwin.virtual.controller import BasalBolusController
from edgetwin.virtual.environment import ClosedLoopTrace, run_closed_loop
from edgetwin.virtual.patient import VirtualPatient
from edgetwin.virtual.pump import VirtualPump
from edgetwin.virtual.scenario import fixed_meals
from edgetwin.virtual.sensor import CgmSensor

__all__ = ["SimulationRun", "simulate_inputs", "simulate_plan"]

SimulationRun = ClosedLoopTrace


def simulate_inputs(
    params: PatientParams,
    cho_g: npt.NDArray[np.float64],
    insulin_u: npt.NDArray[np.float64],
    sensor: SensorSpec | None = None,
    cgm_seed: int | None = None,
) -> SimulationRun:
    """Open loop: the given per-minute inputs from the basal steady state."""
    patient = VirtualPatient(params)
    states = patient.run(cho_g, insulin_u)
    gsub = states[:, X_GS] / params.Vg
    cgm = np.full(gsub.shape, np.nan)
    if cgm_seed is not None:
        cgm = CgmSensor(sensor or "Dexcom", seed=cgm_seed).trace(gsub)
    return ClosedLoopTrace(
        patient=params.name,
        bg_mg_dl=states[:, X_GP] / params.Vg,
        gsub_mg_dl=gsub,
        cgm_mg_dl=cgm,
        cho_g=np.asarray(cho_g, dtype=np.float64),
        announced_cho_g=np.asarray(cho_g, dtype=np.float64),
        insulin_u=np.asarray(insulin_u, dtype=np.float64),
    )


def simulate_plan(
    params: PatientParams,
    meals: list[tuple[int, float]],
    minutes: int,
    controller: str = "basal-bolus",
    sensor: SensorSpec | None = None,
    cgm_seed: int | None = None,
) -> SimulationRun:
    """Meals at (minute, grams), insulin from ``controller`` ('basal-bolus' or 'basal').

    Without ``cgm_seed`` the controller sees noise-free subcutaneous glucose and the returned
    CGM column is empty.
    """
    therapy = load_therapy(params.name)
    bb = BasalBolusController(
        params.basal_u_per_h, therapy.carb_ratio_g_per_u, therapy.correction_factor_mg_dl_per_u
    )
    events = fixed_meals(meals)
    if controller == "basal":
        events = [type(e)(minute=e.minute, eaten_g=e.eaten_g, announced_g=0.0) for e in events]
    noisy = cgm_seed is not None
    cgm_sensor = CgmSensor(sensor or "Dexcom", seed=cgm_seed or 0, noiseless=not noisy)
    trace = run_closed_loop(VirtualPatient(params), events, bb, cgm_sensor, VirtualPump(), minutes)
    if not noisy:
        trace = ClosedLoopTrace(**{**trace.__dict__, "cgm_mg_dl": np.full(trace.cgm_mg_dl.shape, np.nan)})
    return trace
