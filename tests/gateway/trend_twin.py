"""A cheap twin for the tests of the gateway's own mechanics (store-first acknowledgement,
restarts, alarms, the status page): it follows the CGM and forecasts by damped linear trend with
a widening band, fast and predictable, where the living twin would make an accelerated clock
lag. It satisfies :class:`~edgetwin.gateway.ports.TwinPort` like ``edgetwin.twin.Twin``, and is
injected through ``Gateway(twin_factory=TrendTwinFactory())``. It has no physiology.

Forecast: slope from a least-squares fit over the last ``FIT_WINDOW_MIN`` of readings, damped
with time constant ``DAMPING_MIN``; the band's standard deviation grows linearly with the
horizon (``BAND_SD0 + BAND_SD_PER_MIN × h``), roughly the error growth of trend extrapolation on
CGM data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgpack
import numpy as np
import numpy.typing as npt

from edgetwin.errors import InputDataError
from edgetwin.messages import GLUCOSE_MAX_MG_DL
from edgetwin.therapy import TherapyProfile

__all__ = ["TrendForecast", "TrendTwin", "TrendTwinFactory"]

FIT_WINDOW_MIN = 30
DAMPING_MIN = 30.0
BAND_SD0 = 8.0
BAND_SD_PER_MIN = 0.35
KEEP_MIN = 12 * 60
Z90 = 1.2816
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class TrendForecast:
    issued_minute: int
    minutes: npt.NDArray[np.int64]
    p10_mg_dl: npt.NDArray[np.float64]
    p50_mg_dl: npt.NDArray[np.float64]
    p90_mg_dl: npt.NDArray[np.float64]


class TrendTwin:
    """See the module docstring."""

    def __init__(self, now: int = 0) -> None:
        self._now = int(now)
        self.readings: dict[int, float] = {}
        self.insulin: dict[str, tuple[int, float, int]] = {}
        self.carbs: dict[str, tuple[int, float]] = {}

    @property
    def minute(self) -> int:
        return self._now

    def record_insulin(
        self, minute: int, units: float, *, duration_min: int = 0, event_id: str | None = None
    ) -> str:
        key = event_id or f"insulin@{minute}"
        if key in self.insulin:
            return "duplicate"
        self.insulin[key] = (int(minute), float(units), int(duration_min))
        return "recorded"

    def record_carbs(self, minute: int, grams: float, *, event_id: str | None = None) -> str:
        key = event_id or f"carbs@{minute}"
        if key in self.carbs:
            return "duplicate"
        self.carbs[key] = (int(minute), float(grams))
        return "recorded"

    def assimilate_cgm(self, minute: int, mg_dl: float | None, *, usable: bool = True) -> str:
        if not usable or mg_dl is None or not math.isfinite(mg_dl) or not 0 < mg_dl <= GLUCOSE_MAX_MG_DL:
            return "unusable"
        m = int(minute)
        if m < self._now - KEEP_MIN:
            return "too_old"
        old = self.readings.get(m)
        if old is not None:
            return "duplicate" if abs(old - mg_dl) < 0.5 else "conflict"
        self.readings[m] = float(mg_dl)
        self._now = max(self._now, m)
        self._trim()
        return "assimilated"

    def advance_to(self, minute: int) -> None:
        self._now = max(self._now, int(minute))
        self._trim()

    def _trim(self) -> None:
        floor = self._now - KEEP_MIN
        for m in [m for m in self.readings if m < floor]:
            del self.readings[m]
        self.insulin = {k: v for k, v in self.insulin.items() if v[0] >= floor}
        self.carbs = {k: v for k, v in self.carbs.items() if v[0] >= floor}

    def forecast(self, horizon_min: int = 120) -> TrendForecast:
        recent = sorted((m, v) for m, v in self.readings.items() if m <= self._now)
        if not recent:
            raise InputDataError("no glucose reading yet: nothing to forecast from")
        last_m, last_v = recent[-1]
        window = [(m, v) for m, v in recent if m >= last_m - FIT_WINDOW_MIN]
        slope = 0.0
        if len(window) >= 2:
            t = np.array([m for m, _ in window], dtype=np.float64)
            g = np.array([v for _, v in window], dtype=np.float64)
            t -= t.mean()
            denom = float((t * t).sum())
            slope = float((t * (g - g.mean())).sum() / denom) if denom > 0 else 0.0
        steps = max(1, -(-int(horizon_min) // 5))
        minutes = self._now + 5 * np.arange(1, steps + 1, dtype=np.int64)
        h = (minutes - last_m).astype(np.float64)
        p50 = last_v + slope * DAMPING_MIN * (1.0 - np.exp(-h / DAMPING_MIN))
        sd = BAND_SD0 + BAND_SD_PER_MIN * h
        lo, hi = 39.0, 400.0
        return TrendForecast(
            issued_minute=self._now,
            minutes=minutes,
            p10_mg_dl=np.clip(p50 - Z90 * sd, lo, hi),
            p50_mg_dl=np.clip(p50, lo, hi),
            p90_mg_dl=np.clip(p50 + Z90 * sd, lo, hi),
        )

    def checkpoint(self) -> bytes:
        doc = {
            "version": CHECKPOINT_VERSION,
            "now": self._now,
            "readings": [[m, v] for m, v in sorted(self.readings.items())],
            "insulin": [[k, *v] for k, v in self.insulin.items()],
            "carbs": [[k, *v] for k, v in self.carbs.items()],
        }
        return msgpack.packb(doc, use_bin_type=True)

    @classmethod
    def restore(cls, data: bytes) -> TrendTwin:
        try:
            doc = msgpack.unpackb(data, raw=False, strict_map_key=True, max_bin_len=16 * 2**20)
            if not isinstance(doc, dict) or doc.get("version") != CHECKPOINT_VERSION:
                raise ValueError(
                    f"unsupported version {doc.get('version') if isinstance(doc, dict) else None!r}"
                )
            twin = cls(int(doc["now"]))
            twin.readings = {int(m): float(v) for m, v in doc["readings"]}
            twin.insulin = {str(k): (int(m), float(u), int(d)) for k, m, u, d in doc["insulin"]}
            twin.carbs = {str(k): (int(m), float(g)) for k, m, g in doc["carbs"]}
        except (ValueError, TypeError, KeyError, msgpack.exceptions.UnpackException) as exc:
            raise InputDataError(f"trend-twin checkpoint is not readable: {exc}") from None
        return twin


class TrendTwinFactory:
    format = "trend"
    version = CHECKPOINT_VERSION
    description = "CGM trend extrapolation (test twin)"

    def new(self, profile: TherapyProfile, minute_of_day_at_zero: int, seed: int) -> TrendTwin:
        return TrendTwin()

    def restore(self, blob: bytes) -> TrendTwin:
        return TrendTwin.restore(blob)
