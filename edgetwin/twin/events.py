"""The twin's memory of recent inputs and readings, in its own minute clock.

Kept for a bounded window so late data can be replayed (:class:`~edgetwin.twin.twin.Twin`).
Insulin is modelled the way pumps report it, in one of two modes:

* ``"schedule"`` (default): the basal rate in force is the scheduled basal unless
  :meth:`EventLog.record_basal` set another rate (optionally for a duration, like a temp basal);
  :meth:`EventLog.record_insulin` adds discrete deliveries (boluses, extended boluses).
* ``"delivered"``: every unit delivered is reported with :meth:`EventLog.record_insulin`,
  basal included (as ``edgetwin simulate`` files and pump histories list it); the scheduled
  basal is assumed only after the last reported minute.

Event ids make re-sent events harmless: an id seen before is a duplicate.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["BasalMode", "EventLog"]

F64 = npt.NDArray[np.float64]
ScheduleFn = Callable[[npt.NDArray[np.int64]], F64]

MAX_DELIVERY_MIN = 24 * 60


@dataclass(frozen=True, slots=True)
class _Basal:
    minute: int
    rate_u_per_h: float | None  # None: back to the schedule
    until: int | None  # exclusive end minute of a temporary rate


class BasalMode:
    SCHEDULE = "schedule"
    DELIVERED = "delivered"
    ALL = ("schedule", "delivered")


class EventLog:
    """Readings, carbohydrate entries, insulin deliveries and basal changes by minute."""

    def __init__(self, scheduled_u_per_h: ScheduleFn, mode: str = BasalMode.SCHEDULE) -> None:
        if mode not in BasalMode.ALL:
            raise ValueError(f"basal mode must be one of {BasalMode.ALL}, got {mode!r}")
        self.scheduled_u_per_h = scheduled_u_per_h
        self.mode = mode
        self.readings: dict[int, float] = {}
        self.reading_minutes: list[int] = []
        self.carbs: dict[int, float] = {}
        self.carb_minutes: list[int] = []
        self.instant: dict[int, float] = {}  # deliveries at once (boluses, per-minute reports)
        self.deliveries: list[tuple[int, float, int]] = []  # spread over minutes: (start, U, min)
        self.basal: list[_Basal] = []  # sorted by minute
        self.reported_through = -1  # last minute covered by a delivery ("delivered" mode)
        self.ids: dict[str, int] = {}

    # -- recording ----------------------------------------------------------------------------

    def seen(self, event_id: str | None) -> bool:
        return event_id is not None and event_id in self.ids

    def _remember(self, event_id: str | None, minute: int) -> None:
        if event_id is not None:
            self.ids[event_id] = minute

    def add_reading(self, minute: int, value: float) -> None:
        self.readings[minute] = value
        bisect.insort(self.reading_minutes, minute)

    def add_carbs(self, minute: int, grams: float, event_id: str | None = None) -> None:
        if minute not in self.carbs:
            bisect.insort(self.carb_minutes, minute)
            self.carbs[minute] = 0.0
        self.carbs[minute] += grams
        self._remember(event_id, minute)

    def add_delivery(self, minute: int, units: float, duration_min: int, event_id: str | None = None) -> None:
        if duration_min <= 0:
            self.instant[minute] = self.instant.get(minute, 0.0) + units
        else:
            bisect.insort(self.deliveries, (minute, units, duration_min))
        self.reported_through = max(self.reported_through, minute + max(duration_min, 1) - 1)
        self._remember(event_id, minute)

    def add_basal(
        self, minute: int, rate_u_per_h: float | None, duration_min: int | None, event_id: str | None = None
    ) -> None:
        until = None if duration_min is None else minute + duration_min
        entry = _Basal(minute, rate_u_per_h, until)
        keys = [b.minute for b in self.basal]
        i = bisect.bisect_right(keys, minute)
        if i > 0 and self.basal[i - 1].minute == minute:
            self.basal[i - 1] = entry  # a later report for the same minute wins
        else:
            self.basal.insert(i, entry)
        self._remember(event_id, minute)

    # -- queries ------------------------------------------------------------------------------

    def next_after(self, minutes: list[int], after: int) -> int | None:
        i = bisect.bisect_right(minutes, after)
        return minutes[i] if i < len(minutes) else None

    def basal_u_per_h(self, a: int, b: int, *, planned_only: bool = False) -> F64:
        """Basal rate (U/h) in force at each minute of [a, b)."""
        minutes = np.arange(a, b, dtype=np.int64)
        rates = np.asarray(self.scheduled_u_per_h(minutes), dtype=np.float64).copy()
        if planned_only or self.mode == BasalMode.DELIVERED:
            if self.mode == BasalMode.DELIVERED and not planned_only:
                rates[minutes <= self.reported_through] = 0.0
            return rates
        keys = [e.minute for e in self.basal]
        i = max(bisect.bisect_right(keys, a) - 1, 0)
        for j in range(i, len(self.basal)):
            e = self.basal[j]
            if e.minute >= b:
                break
            end = self.basal[j + 1].minute if j + 1 < len(self.basal) else b
            if e.until is not None:
                end = min(end, e.until)
            lo = max(e.minute, a) - a
            hi = min(end, b) - a
            if hi > lo and e.rate_u_per_h is not None:
                rates[lo:hi] = e.rate_u_per_h
        return rates

    def insulin_u(self, a: int, b: int) -> F64:
        """Insulin delivered in each minute of [a, b) (U): basal in force plus deliveries."""
        out = self.basal_u_per_h(a, b) / 60.0
        instant = self.instant
        if len(instant) < b - a:
            for m, units in instant.items():
                if a <= m < b:
                    out[m - a] += units
        else:
            for m in range(a, b):
                units = instant.get(m, 0.0)
                if units:
                    out[m - a] += units
        lo = bisect.bisect_left(self.deliveries, (a - MAX_DELIVERY_MIN, -math.inf, 0))
        for start, units, dur in self.deliveries[lo:]:
            if start >= b:
                break
            s = max(start, a)
            e = min(start + dur, b)
            if e > s:
                out[s - a : e - a] += units / dur
        return out

    # -- window -------------------------------------------------------------------------------

    def trim(self, before: int) -> None:
        """Forget what can no longer matter to a replay starting at minute ``before``."""
        for m in [m for m in self.reading_minutes if m < before]:
            del self.readings[m]
        self.reading_minutes = [m for m in self.reading_minutes if m >= before]
        for m in [m for m in self.carb_minutes if m < before]:
            del self.carbs[m]
        self.carb_minutes = [m for m in self.carb_minutes if m >= before]
        self.instant = {m: u for m, u in self.instant.items() if m >= before}
        self.deliveries = [d for d in self.deliveries if d[0] + d[2] > before]
        keep_from = 0
        for i, e in enumerate(self.basal):
            if e.minute <= before:
                keep_from = i
        self.basal = self.basal[keep_from:]
        horizon = before - MAX_DELIVERY_MIN
        self.ids = {k: m for k, m in self.ids.items() if m >= horizon}

    # -- serialisation ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "readings": [[m, self.readings[m]] for m in self.reading_minutes],
            "carbs": [[m, self.carbs[m]] for m in self.carb_minutes],
            "instant": [[m, u] for m, u in sorted(self.instant.items())],
            "deliveries": [list(d) for d in self.deliveries],
            "basal": [[e.minute, e.rate_u_per_h, e.until] for e in self.basal],
            "reported_through": self.reported_through,
            "ids": [[k, m] for k, m in self.ids.items()],
        }

    @classmethod
    def from_dict(cls, d: dict[str, object], scheduled_u_per_h: ScheduleFn) -> EventLog:
        log = cls(scheduled_u_per_h, str(d["mode"]))
        for m, v in d["readings"]:  # type: ignore[attr-defined]
            log.readings[int(m)] = float(v)
            log.reading_minutes.append(int(m))
        for m, g in d["carbs"]:  # type: ignore[attr-defined]
            log.carbs[int(m)] = float(g)
            log.carb_minutes.append(int(m))
        log.instant = {int(m): float(u) for m, u in d["instant"]}  # type: ignore[attr-defined]
        log.deliveries = [(int(s), float(u), int(du)) for s, u, du in d["deliveries"]]  # type: ignore[attr-defined]
        log.basal = [
            _Basal(int(m), None if r is None else float(r), None if u is None else int(u))
            for m, r, u in d["basal"]  # type: ignore[attr-defined]
        ]
        log.reported_through = int(d["reported_through"])  # type: ignore[call-overload]
        log.ids = {str(k): int(m) for k, m in d["ids"]}  # type: ignore[attr-defined]
        return log
