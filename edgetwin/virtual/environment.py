"""Closed-loop simulation: patient, sensor, pump and controller, minute by minute."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edgetwin.model.params import X_GP, X_GS
from edgetwin.virtual.controller import Controller, Observation
from edgetwin.virtual.patient import VirtualPatient
from edgetwin.virtual.pump import VirtualPump
from edgetwin.virtual.scenario import MealEvent
from edgetwin.virtual.sensor import CgmSensor

__all__ = ["ClosedLoopTrace", "run_closed_loop"]


@dataclass(frozen=True)
class ClosedLoopTrace:
    """Per-minute record; row k is the state at minute k, inputs over [k, k+1).

    ``cgm_mg_dl`` is NaN where the sensor took no sample; the input arrays have one row fewer.
    """

    patient: str
    bg_mg_dl: npt.NDArray[np.float64]
    gsub_mg_dl: npt.NDArray[np.float64]
    cgm_mg_dl: npt.NDArray[np.float64]
    cho_g: npt.NDArray[np.float64]
    announced_cho_g: npt.NDArray[np.float64]
    insulin_u: npt.NDArray[np.float64]


def run_closed_loop(
    patient: VirtualPatient,
    meals: list[MealEvent],
    controller: Controller,
    sensor: CgmSensor,
    pump: VirtualPump,
    minutes: int,
    *,
    control_period_min: int | None = None,
) -> ClosedLoopTrace:
    """Run ``minutes`` minutes. The controller acts every ``control_period_min`` (default: the
    sensor's sample period) and when a meal is announced; its basal holds until the next call."""
    period = control_period_min or max(1, int(round(sensor.sample_time_min)))
    cho = np.zeros(minutes)
    announced = np.zeros(minutes)
    for m in meals:
        if 0 <= m.minute < minutes:
            cho[m.minute] += m.eaten_g
            announced[m.minute] += m.announced_g
    bg = np.empty(minutes + 1)
    gsub = np.empty(minutes + 1)
    cgm = np.full(minutes + 1, np.nan)
    insulin = np.zeros(minutes)
    vg = patient.params.Vg
    basal = 0.0
    last_cgm: float | None = None
    delivered_since = 0.0
    announced_since = 0.0
    for k in range(minutes + 1):
        x = patient.state
        bg[k] = x[X_GP] / vg
        gsub[k] = x[X_GS] / vg
        reading = sensor.measure(k, gsub[k])
        if reading is not None:
            cgm[k] = reading
            last_cgm = reading
        if k == minutes:
            break
        announced_since += announced[k]
        bolus = 0.0
        if k % period == 0 or announced[k] > 0:
            action = controller.act(
                Observation(
                    minute=k,
                    cgm_mg_dl=reading if reading is not None else last_cgm,
                    announced_cho_g=announced_since,
                    delivered_insulin_u=delivered_since,
                )
            )
            basal = action.basal_u_per_h
            bolus = action.bolus_u
            announced_since = 0.0
            delivered_since = 0.0
        insulin[k] = pump.minute_insulin_u(basal, bolus)
        delivered_since += insulin[k]
        patient.step(cho[k], insulin[k])
    return ClosedLoopTrace(
        patient=patient.params.name,
        bg_mg_dl=bg,
        gsub_mg_dl=gsub,
        cgm_mg_dl=cgm,
        cho_g=cho,
        announced_cho_g=announced,
        insulin_u=insulin,
    )
