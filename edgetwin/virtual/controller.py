"""Controllers for closed-loop simulation, and the standard basal-bolus reference.

A controller sees what a real one would: the latest CGM value, the carbohydrate the patient
announced and the insulin delivered since its last call. It answers with a basal rate and a
bolus, which pass through the pump model before they reach the patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Action", "BasalBolusController", "Controller", "Observation"]


@dataclass(frozen=True, slots=True)
class Observation:
    minute: int
    cgm_mg_dl: float | None
    announced_cho_g: float = 0.0
    delivered_insulin_u: float = 0.0


@dataclass(frozen=True, slots=True)
class Action:
    basal_u_per_h: float
    bolus_u: float = 0.0


class Controller(Protocol):
    def act(self, obs: Observation) -> Action: ...


class BasalBolusController:
    """The reference controller of published comparisons (``specs/model.md``).

    Basal always at the patient's steady-state rate; at an announced meal,
    bolus = CHO / CR + (CGM > 150 ? (CGM − 140) / CF : 0).
    """

    def __init__(
        self,
        basal_u_per_h: float,
        carb_ratio_g_per_u: float,
        correction_factor_mg_dl_per_u: float,
        *,
        correction_threshold_mg_dl: float = 150.0,
        correction_target_mg_dl: float = 140.0,
    ) -> None:
        self.basal_u_per_h = basal_u_per_h
        self.cr = carb_ratio_g_per_u
        self.cf = correction_factor_mg_dl_per_u
        self.threshold = correction_threshold_mg_dl
        self.target = correction_target_mg_dl
        self._last_cgm: float | None = None

    def act(self, obs: Observation) -> Action:
        if obs.cgm_mg_dl is not None:
            self._last_cgm = obs.cgm_mg_dl
        bolus = 0.0
        if obs.announced_cho_g > 0:
            bolus = obs.announced_cho_g / self.cr
            cgm = self._last_cgm
            if cgm is not None and cgm > self.threshold:
                bolus += (cgm - self.target) / self.cf
        return Action(basal_u_per_h=self.basal_u_per_h, bolus_u=bolus)
