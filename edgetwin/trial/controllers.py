"""The two controllers a trial compares, acting on the same world through the same pump.

* :class:`BasalBolusTrialController`: the published reference (``specs/model.md``): scheduled
  basal always, and at an announced meal a bolus of CHO/CR + (CGM > 150 ? (CGM − 140)/CF : 0).
* :class:`TwinTrialController`: the product in closed-loop mode: an estimator's ensemble, the
  suggestion engine, the safety gate, and the pump. The virtual patient accepts every meal
  bolus and eats every rescue carb the gate lets through; when the gate refuses a meal bolus
  they ask again at the next cycles for up to 15 minutes.
"""

from __future__ import annotations

from collections import Counter, deque
from datetime import datetime, timedelta
from typing import Protocol

from edgetwin.errors import EdgeTwinError
from edgetwin.messages import CgmReading, Suggestion, SuggestionKind
from edgetwin.safety import GateInputs, GateResult, SafetyGate, SafetyLimits, assess_cgm
from edgetwin.suggest import Suggester, SuggestInputs
from edgetwin.therapy import TherapyProfile
from edgetwin.trial.estimator import Estimator
from edgetwin.trial.pump import TrialPump
from edgetwin.virtual.controller import BasalBolusController, Observation

__all__ = ["BasalBolusTrialController", "TrialController", "TwinTrialController"]

_READINGS_KEPT_MIN = 120
MEAL_RETRY_MIN = 15
"""A refused meal bolus is asked for again at the following cycles for this long."""


class TrialController(Protocol):
    """How the trial loop talks to a controller; minutes count from the trial start."""

    interventions: Counter[str]

    def on_cgm(self, minute: int, mg_dl: float) -> None: ...

    def on_meal(self, minute: int, announced_g: float) -> None: ...

    def cycle(self, minute: int) -> float:
        """Decide and command the pump; returns rescue carbs (g) the patient eats now."""
        ...

    def on_delivered(self, minute: int, units: float) -> None: ...


class BasalBolusTrialController:
    """The standard basal-bolus therapy, through the trial pump."""

    def __init__(self, profile: TherapyProfile, pump: TrialPump) -> None:
        self.pump = pump
        self.bb = BasalBolusController(
            profile.basal_schedule[0][1], profile.carb_ratio_g_per_u, profile.correction_factor_mg_dl_per_u
        )
        self.interventions: Counter[str] = Counter()
        self._cgm: float | None = None
        self._announced = 0.0

    def on_cgm(self, minute: int, mg_dl: float) -> None:
        self._cgm = mg_dl

    def on_meal(self, minute: int, announced_g: float) -> None:
        self._announced += announced_g

    def cycle(self, minute: int) -> float:
        action = self.bb.act(Observation(minute=minute, cgm_mg_dl=self._cgm, announced_cho_g=self._announced))
        self._announced = 0.0
        if action.bolus_u > 0:
            self.pump.bolus(minute, action.bolus_u)
        return 0.0

    def on_delivered(self, minute: int, units: float) -> None:
        return None


class TwinTrialController:
    """Estimator + suggester + safety gate in closed-loop mode, acting through the pump."""

    def __init__(
        self,
        estimator: Estimator,
        suggester: Suggester,
        gate: SafetyGate,
        profile: TherapyProfile,
        limits: SafetyLimits,
        pump: TrialPump,
        start_utc: datetime,
        *,
        cgm_device_id: str = "sim-cgm",
        keep_history: bool = False,
    ) -> None:
        self.estimator = estimator
        self.suggester = suggester
        self.gate = gate
        self.profile = profile
        self.limits = limits
        self.pump = pump
        self.start_utc = start_utc
        self.cgm_device_id = cgm_device_id
        self.readings: deque[CgmReading] = deque()
        self.interventions: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.rescue_carbs_g = 0.0
        self.rescue_count = 0
        self._pending_meal_g = 0.0
        self._pending_since = 0
        self._seq = 0
        self.history: list[tuple[int, GateResult]] | None = [] if keep_history else None
        """Every (minute, gate result) when ``keep_history`` (tests and diagnostics)."""

    def on_cgm(self, minute: int, mg_dl: float) -> None:
        t = self.start_utc + timedelta(minutes=minute)
        self.readings.append(CgmReading(t, mg_dl, self.cgm_device_id, sequence=self._seq))
        self._seq += 1
        while self.readings and self.readings[0].time_utc < t - timedelta(minutes=_READINGS_KEPT_MIN):
            self.readings.popleft()
        self.estimator.assimilate_cgm(minute, mg_dl)

    def on_meal(self, minute: int, announced_g: float) -> None:
        if self._pending_meal_g == 0:
            self._pending_since = minute
        self._pending_meal_g += announced_g
        self.estimator.record_carbs(minute, announced_g)

    def suggest(self, minute: int) -> tuple[Suggestion | None, GateInputs]:
        now = self.start_utc + timedelta(minutes=minute)
        status = self.pump.status(minute)
        self.estimator.advance_to(minute)
        inputs = GateInputs(
            now_utc=now,
            profile=self.profile,
            readings=tuple(self.readings),
            deliveries=tuple(self.pump.deliveries),
            pump=status,
            cgm_device_id=self.cgm_device_id,
        )
        suggestion: Suggestion | None
        try:
            suggestion = self.suggester.suggest(
                self.estimator.ensemble(),
                SuggestInputs(
                    now_utc=now,
                    profile=self.profile,
                    limits=self.limits,
                    reservoir_u=status.reservoir_u,
                    meal_carbs_g=self._pending_meal_g,
                    cgm=assess_cgm(inputs.readings, now, self.limits, self.cgm_device_id),
                ),
            )
        except (EdgeTwinError, ValueError, ArithmeticError):
            self.interventions["suggester_error"] += 1
            suggestion = None
        return suggestion, inputs

    def cycle(self, minute: int) -> float:
        suggestion, inputs = self.suggest(minute)
        result = self.gate.review(suggestion, inputs)
        # The patient accepts the meal bolus; when the gate refused it they ask again at the
        # next cycles, for up to MEAL_RETRY_MIN after the announcement.
        if self._pending_meal_g > 0 and (
            (result.suggestion is not None and result.suggestion.kind is SuggestionKind.BOLUS)
            or minute - self._pending_since >= MEAL_RETRY_MIN
        ):
            self._pending_meal_g = 0.0
        if self.history is not None:
            self.history.append((minute, result))
        for d in result.interventions:
            self.interventions[str(d.rule)] += 1
        s = result.suggestion
        if s is None:
            self.kinds["none"] += 1
            return 0.0
        self.kinds[str(s.kind)] += 1
        if s.kind is SuggestionKind.KEEP_BASAL:
            self.pump.cancel_temp(minute)
        if s.rate_u_per_h is not None and s.duration_min and s.kind is not SuggestionKind.KEEP_BASAL:
            self.pump.set_temp(minute, s.rate_u_per_h, s.duration_min)
        if s.kind in (SuggestionKind.BOLUS, SuggestionKind.MICRO_BOLUS):
            self.pump.bolus(minute, s.units or 0.0, automatic=s.kind is SuggestionKind.MICRO_BOLUS)
        if s.kind is SuggestionKind.CARBS and s.carbs_g:
            self.rescue_carbs_g += s.carbs_g
            self.rescue_count += 1
            self.estimator.record_carbs(minute, s.carbs_g)
            return float(s.carbs_g)
        return 0.0

    def on_delivered(self, minute: int, units: float) -> None:
        self.estimator.record_insulin(minute, units)
