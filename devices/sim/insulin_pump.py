"""The physical insulin pump of the simulated world: what it delivers into the virtual patient.

Basal at the scheduled rate (default: the patient's steady-state basal) or a temporary rate,
boluses at ``bolus_rate_u_per_min``, all rounded to the pump's increments (``edgetwin.virtual.pump``),
drawn from the reservoir. Suspension (therapy state stop/pause), occlusion and an empty reservoir
stop delivery. Every delivery and state change goes into the history (IDS-modelled events) that the
simulated BLE pump and the serial pump bridge expose. ``UNCONFIRMED_COMMANDS`` makes the pump answer
"success" without applying a command.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from devices.codecs.ids import (
    ActiveBasalRate,
    ActiveBolus,
    AnnunciationStatus,
    AnnunciationType,
    HistoryEvent,
    HistoryEventType,
    IddAnnunciation,
    IddStatus,
    IdsResponseCode,
    OperationalState,
    TherapyControlState,
)
from devices.sim.faults import Fault
from edgetwin.virtual.pump import VirtualPump

if TYPE_CHECKING:
    from devices.sim.world import SimWorld

__all__ = ["SimInsulinPump"]

BASAL_LOG_PERIOD_MIN = 60
IOB_DURATION_MIN = 240


class SimInsulinPump:
    NAME = "pump"

    def __init__(
        self,
        world: SimWorld,
        spec: str = "Insulet",
        *,
        reservoir_u: float = 200.0,
        basal_u_per_h: float | None = None,
        bolus_rate_u_per_min: float = 1.5,
    ) -> None:
        self.world = world
        self.model = VirtualPump(spec)
        self.reservoir_u = reservoir_u
        self.scheduled_basal_u_per_h = self.model.basal_rate(
            world.patient.params.basal_u_per_h if basal_u_per_h is None else basal_u_per_h
        )
        self.bolus_rate_u_per_min = bolus_rate_u_per_min
        self.therapy_state = TherapyControlState.RUN
        self.temp_basal: tuple[float, int] | None = None  # (rate U/h, end world minute)
        self.bolus_id = 0
        self.bolus_programmed_u = 0.0
        self.bolus_delivered_u = 0.0
        self.history: list[HistoryEvent] = []
        self.delivered_bolus_total_u = 0.0
        self.delivered_basal_total_u = 0.0
        self._recent_boluses: list[tuple[int, float]] = []  # (minute, units) for IOB
        self._segment: tuple[int, float, bool, float] | None = None  # (start, rate, temp, units)
        self._annunciation_id = 0
        self.annunciation = IddAnnunciation()

    # --- state the GATT/serial front ends read ----------------------------------------------

    @property
    def occluded(self) -> bool:
        return self.world.faults.active(Fault.PUMP_OCCLUSION, self.world.minute, self.NAME)

    @property
    def bolusing(self) -> bool:
        return self.bolus_delivered_u < self.bolus_programmed_u - 1e-9

    def status(self, *, e2e_counter: int | None = None) -> IddStatus:
        return IddStatus(
            self.therapy_state, OperationalState.READY, round(self.reservoir_u, 1), True, e2e_counter
        )

    def active_basal(self, *, e2e_counter: int | None = None) -> ActiveBasalRate:
        if self.temp_basal is None:
            return ActiveBasalRate(self.scheduled_basal_u_per_h, e2e_counter=e2e_counter)
        rate, end = self.temp_basal
        return ActiveBasalRate(self.scheduled_basal_u_per_h, rate, end - self.world.minute, e2e_counter)

    def active_bolus(self, *, e2e_counter: int | None = None) -> ActiveBolus:
        if not self.bolusing:
            return ActiveBolus(0, e2e_counter=e2e_counter)
        return ActiveBolus(
            self.bolus_id, self.bolus_programmed_u, round(self.bolus_delivered_u, 2), e2e_counter
        )

    def insulin_on_board_u(self) -> float:
        now = self.world.minute
        return round(sum(u * max(0.0, 1 - (now - m) / IOB_DURATION_MIN) for m, u in self._recent_boluses), 2)

    # --- commands (what a control point write does) -------------------------------------------

    def _unconfirmed(self) -> bool:
        return self.world.faults.active(Fault.UNCONFIRMED_COMMANDS, self.world.minute, self.NAME)

    def set_therapy_state(self, state: TherapyControlState) -> IdsResponseCode:
        if state is TherapyControlState.UNDETERMINED:
            return IdsResponseCode.INVALID_OPERAND
        if self._unconfirmed():
            return IdsResponseCode.SUCCESS
        if state is not self.therapy_state:
            self._close_segment()
            self._log(HistoryEventType.THERAPY_STATE_CHANGED, state_from=self.therapy_state, state_to=state)
            self.therapy_state = state
            if state is not TherapyControlState.RUN and self.bolusing:
                self._finish_bolus()  # a suspension stops a bolus; what went in is logged
        return IdsResponseCode.SUCCESS

    def set_temp_basal(self, rate_u_per_h: float, duration_min: int) -> IdsResponseCode:
        s = self.model.spec
        if not (0 <= rate_u_per_h <= s.max_basal_u_per_h and 15 <= duration_min <= 24 * 60):
            return IdsResponseCode.PARAMETER_OUT_OF_RANGE
        if self.therapy_state is not TherapyControlState.RUN:
            return IdsResponseCode.PROCEDURE_NOT_APPLICABLE
        if self._unconfirmed():
            return IdsResponseCode.SUCCESS
        self._close_segment()
        rate = self.model.basal_rate(rate_u_per_h)
        self.temp_basal = (rate, self.world.minute + duration_min)
        self._log(HistoryEventType.TEMP_BASAL_STARTED, rate_u_per_h=rate, duration_min=duration_min)
        return IdsResponseCode.SUCCESS

    def cancel_temp_basal(self) -> IdsResponseCode:
        if self.temp_basal is None:
            return IdsResponseCode.PROCEDURE_NOT_APPLICABLE
        if self._unconfirmed():
            return IdsResponseCode.SUCCESS
        self._end_temp_basal()
        return IdsResponseCode.SUCCESS

    def set_bolus(self, units: float) -> tuple[IdsResponseCode, int, float]:
        """(response, bolus id, accepted units)."""
        s = self.model.spec
        if not 0 < units <= s.max_bolus_u:
            return IdsResponseCode.PARAMETER_OUT_OF_RANGE, 0, 0.0
        if self.therapy_state is not TherapyControlState.RUN or self.bolusing or self.occluded:
            return IdsResponseCode.PROCEDURE_NOT_APPLICABLE, 0, 0.0
        if units > self.reservoir_u:
            return IdsResponseCode.PARAMETER_OUT_OF_RANGE, 0, 0.0
        accepted = self.model.bolus(units)
        if self._unconfirmed():
            return IdsResponseCode.SUCCESS, (self.bolus_id + 1) & 0xFFFF or 1, accepted
        self.bolus_id = (self.bolus_id + 1) & 0xFFFF or 1
        self.bolus_programmed_u = accepted
        self.bolus_delivered_u = 0.0
        return IdsResponseCode.SUCCESS, self.bolus_id, accepted

    def cancel_bolus(self, bolus_id: int) -> IdsResponseCode:
        if not self.bolusing or bolus_id != self.bolus_id:
            return IdsResponseCode.PROCEDURE_NOT_APPLICABLE
        if self._unconfirmed():
            return IdsResponseCode.SUCCESS
        self._finish_bolus()
        return IdsResponseCode.SUCCESS

    def refill(self, units: float) -> None:
        self.reservoir_u = units
        self._set_annunciation(None)

    # --- physics, called by the world each minute ---------------------------------------------

    def minute_insulin_u(self, minute: int) -> float:
        """Insulin delivered during ``minute`` (U), taken from the reservoir and logged."""
        faults = self.world.faults
        if faults.starts(Fault.EMPTY_RESERVOIR, minute, self.NAME):
            self.reservoir_u = 0.0
        if self.temp_basal is not None and minute >= self.temp_basal[1]:
            self._end_temp_basal()
        if self.reservoir_u <= 0.0:
            self._set_annunciation(AnnunciationType.RESERVOIR_EMPTY)
        elif self.occluded:
            self._set_annunciation(AnnunciationType.OCCLUSION_DETECTED)
        elif self.annunciation.type is AnnunciationType.OCCLUSION_DETECTED:
            self._set_annunciation(None)
        running = self.therapy_state is TherapyControlState.RUN and self.reservoir_u > 0 and not self.occluded
        if not running:
            self._close_segment()
            return 0.0
        rate = self.temp_basal[0] if self.temp_basal is not None else self.scheduled_basal_u_per_h
        basal = min(rate / 60.0, self.reservoir_u)
        bolus = 0.0
        if self.bolusing:
            bolus = min(
                self.bolus_rate_u_per_min,
                self.bolus_programmed_u - self.bolus_delivered_u,
                self.reservoir_u - basal,
            )
            self.bolus_delivered_u += bolus
            self.delivered_bolus_total_u += bolus
            if not self.bolusing:
                self._finish_bolus()
        self.reservoir_u = max(0.0, self.reservoir_u - basal - bolus)
        self.delivered_basal_total_u += basal
        self._accumulate(minute, rate, self.temp_basal is not None, basal)
        return basal + bolus

    def _accumulate(self, minute: int, rate: float, temp: bool, units: float) -> None:
        seg = self._segment
        if seg is not None and (seg[1] != rate or seg[2] != temp or minute - seg[0] >= BASAL_LOG_PERIOD_MIN):
            self._close_segment()
            seg = None
        if seg is None:
            self._segment = (minute, rate, temp, units)
        else:
            self._segment = (seg[0], rate, temp, seg[3] + units)

    def _close_segment(self) -> None:
        seg = self._segment
        self._segment = None
        if seg is None:
            return
        start, rate, temp, units = seg
        duration = self.world.minute - start + 1 if self.world.minute >= start else 1
        self._log(
            HistoryEventType.BASAL_DELIVERED,
            time=self.world.time_at(start),
            units=round(units, 3),
            rate_u_per_h=rate,
            duration_min=min(duration, BASAL_LOG_PERIOD_MIN),
            temp=temp,
        )

    def _end_temp_basal(self) -> None:
        self._close_segment()
        self.temp_basal = None
        self._log(HistoryEventType.TEMP_BASAL_ENDED)

    def _finish_bolus(self) -> None:
        delivered = round(self.bolus_delivered_u, 2)
        self.bolus_programmed_u = self.bolus_delivered_u
        if delivered > 0:
            self._recent_boluses = [
                (m, u) for m, u in self._recent_boluses if self.world.minute - m < IOB_DURATION_MIN
            ]
            self._recent_boluses.append((self.world.minute, delivered))
            self._log(HistoryEventType.BOLUS_DELIVERED, units=delivered, bolus_id=self.bolus_id)

    def _set_annunciation(self, kind: AnnunciationType | None) -> None:
        if kind is self.annunciation.type:
            return
        if kind is None:
            self.annunciation = IddAnnunciation()
            return
        self._annunciation_id += 1
        self.annunciation = IddAnnunciation(self._annunciation_id, kind, AnnunciationStatus.PENDING)
        self._log(HistoryEventType.ANNUNCIATION, annunciation=kind)

    def _log(self, kind: HistoryEventType, *, time: datetime | None = None, **fields: Any) -> None:
        event = HistoryEvent(
            kind, len(self.history) + 1, time or self.world.time_at(self.world.minute), **fields
        )
        self.history.append(event)
