"""The trial's insulin pump: the virtual pump's delivery physics plus the state a real pump
reports (temp basal timer, reservoir, delivery history), as the gateway would see it.

Temp basals run for their duration and then the scheduled basal resumes by itself; boluses are
delivered within the minute they are commanded. Deliveries are reported as
:class:`~edgetwin.messages.InsulinDelivery` records: one per bolus, and basal segments closed at
every status request (as a pump history read-out would give them).
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

from edgetwin.messages import InsulinDelivery, InsulinKind, PumpStatus
from edgetwin.model.cohort import PumpSpec
from edgetwin.virtual.pump import VirtualPump

__all__ = ["TrialPump"]

_HISTORY_MIN = 8 * 60
_REFILL_BELOW_U = 20.0


class TrialPump:
    """A pump at ``scheduled_u_per_h`` whose minute 0 is ``start_utc``."""

    def __init__(
        self,
        spec: PumpSpec | str,
        scheduled_u_per_h: float,
        start_utc: datetime,
        *,
        device_id: str = "sim-pump",
        reservoir_u: float = 300.0,
    ) -> None:
        self.physics = VirtualPump(spec)
        self.scheduled_u_per_h = scheduled_u_per_h
        self.start_utc = start_utc
        self.device_id = device_id
        self.capacity_u = reservoir_u
        self.reservoir_u = reservoir_u
        self.temp_u_per_h: float | None = None
        self.temp_end_min = 0
        self._bolus_u = 0.0
        self._bolus_kind = InsulinKind.BOLUS
        self.deliveries: deque[InsulinDelivery] = deque()
        self._seg_start: int | None = None
        self._seg_units = 0.0
        self._seg_kind = InsulinKind.BASAL
        self.total_u = 0.0

    def time(self, minute: int) -> datetime:
        return self.start_utc + timedelta(minutes=minute)

    # -- commands ------------------------------------------------------------------------------

    def set_temp(self, minute: int, rate_u_per_h: float, duration_min: float) -> None:
        self.temp_u_per_h = self.physics.basal_rate(rate_u_per_h) if rate_u_per_h > 0 else 0.0
        self.temp_end_min = minute + int(round(duration_min))

    def cancel_temp(self, minute: int) -> None:
        self.temp_u_per_h = None
        self.temp_end_min = minute

    def bolus(self, minute: int, units: float, *, automatic: bool = False) -> float:
        """Queue a bolus for this minute; returns what the pump will deliver (U)."""
        given = self.physics.bolus(units) if units > 0 else 0.0
        self._bolus_u += given
        self._bolus_kind = InsulinKind.MICRO_BOLUS if automatic else InsulinKind.BOLUS
        return given

    # -- delivery ------------------------------------------------------------------------------

    def _temp_active(self, minute: int) -> bool:
        return self.temp_u_per_h is not None and minute < self.temp_end_min

    def deliver(self, minute: int) -> float:
        """Insulin delivered during ``minute`` (U): the running basal plus any queued bolus."""
        active = self._temp_active(minute)
        rate = self.temp_u_per_h if active and self.temp_u_per_h is not None else self.scheduled_u_per_h
        basal_u = self.physics.basal_rate(rate) / 60.0 if rate > 0 else 0.0
        kind = InsulinKind.TEMP_BASAL if active else InsulinKind.BASAL
        if self._seg_start is None:
            self._seg_start, self._seg_kind = minute, kind
        elif kind is not self._seg_kind:
            self._close_segment(minute)
            self._seg_start, self._seg_kind = minute, kind
        self._seg_units += basal_u
        bolus = self._bolus_u
        if bolus > 0:
            self.deliveries.append(
                InsulinDelivery(self.time(minute), bolus, self._bolus_kind, self.device_id)
            )
        self._bolus_u = 0.0
        total = basal_u + bolus
        self.reservoir_u = max(0.0, self.reservoir_u - total)
        if self.reservoir_u < _REFILL_BELOW_U:
            self.reservoir_u = self.capacity_u
        self.total_u += total
        return total

    def _close_segment(self, minute: int) -> None:
        if self._seg_start is not None and minute > self._seg_start:
            self.deliveries.append(
                InsulinDelivery(
                    self.time(self._seg_start),
                    min(self._seg_units, 100.0),
                    self._seg_kind,
                    self.device_id,
                    duration_min=float(minute - self._seg_start),
                )
            )
        self._seg_start = None
        self._seg_units = 0.0

    def status(self, minute: int) -> PumpStatus:
        """What the pump reports at ``minute`` (history is brought up to date first)."""
        self._close_segment(minute)
        cutoff = self.time(minute - _HISTORY_MIN)
        while self.deliveries and self.deliveries[0].time_utc < cutoff:
            self.deliveries.popleft()
        active = self._temp_active(minute)
        return PumpStatus(
            time_utc=self.time(minute),
            device_id=self.device_id,
            reservoir_u=round(self.reservoir_u, 3),
            suspended=False,
            bolusing=False,
            basal_rate_u_per_h=self.scheduled_u_per_h,
            temp_basal_u_per_h=self.temp_u_per_h if active else None,
            temp_basal_remaining_min=float(self.temp_end_min - minute) if active else 0.0,
        )
