"""Simulated patient days shared by the twin tests (closed loop, fixed seeds)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from edgetwin.model import load_patient, load_therapy
from edgetwin.model.params import PatientParams
from edgetwin.twin.filter import FilterConfig
from edgetwin.twin.history import History
from edgetwin.virtual.controller import BasalBolusController
from edgetwin.virtual.environment import ClosedLoopTrace, run_closed_loop
from edgetwin.virtual.patient import VirtualPatient
from edgetwin.virtual.pump import VirtualPump
from edgetwin.virtual.scenario import MealEvent
from edgetwin.virtual.sensor import CgmSensor

FAST = FilterConfig(particles=128)


@dataclass(frozen=True)
class Day:
    params: PatientParams
    trace: ClosedLoopTrace
    history: History

    @property
    def truth(self) -> np.ndarray:
        return self.trace.gsub_mg_dl


def simulate_day(
    name: str, meals: list[MealEvent], minutes: int, seed: int, *, noiseless: bool = False
) -> Day:
    pp = load_patient(name)
    th = load_therapy(name)
    ctrl = BasalBolusController(pp.basal_u_per_h, th.carb_ratio_g_per_u, th.correction_factor_mg_dl_per_u)
    sensor = CgmSensor("Dexcom", seed=seed, noiseless=noiseless)
    trace = run_closed_loop(VirtualPatient(pp), meals, ctrl, sensor, VirtualPump(), minutes)
    hist = History(trace.cgm_mg_dl[:-1].copy(), trace.announced_cho_g.copy(), trace.insulin_u.copy())
    return Day(pp, trace, hist)


@pytest.fixture(scope="session")
def day() -> Day:
    """adult#001, 16 h: announced breakfast and lunch (one counted 30 % low), Dexcom noise."""
    meals = [
        MealEvent(minute=7 * 60, eaten_g=50.0, announced_g=50.0),
        MealEvent(minute=12 * 60, eaten_g=70.0, announced_g=50.0),
    ]
    return simulate_day("adult#001", meals, 16 * 60, seed=3)


@pytest.fixture(scope="session")
def snack_day() -> Day:
    """adult#001, 8 h, an unannounced 60 g meal at 04:00 and nothing announced."""
    meals = [MealEvent(minute=4 * 60, eaten_g=60.0, announced_g=0.0)]
    return simulate_day("adult#001", meals, 8 * 60, seed=5)
