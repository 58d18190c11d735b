"""Nightscout documents built from EdgeTwin records (the shapes Nightscout's UI renders).

* CGM → ``entries`` ``{"type": "sgv", "sgv", "direction", "date", "dateString", "device"}``;
  ``direction`` from the trend (mg/dL/min) with Nightscout's arrows.
* Meter → ``entries`` ``{"type": "mbg", "mbg", ...}``.
* Carbs, boluses, basal deliveries → ``treatments`` (``Carb Correction``, ``Correction Bolus``,
  ``Temp Basal`` with ``absolute`` U/h and ``duration`` min).
* Twin snapshot (+ the suggestion and pump status of the same cycle) → ``devicestatus`` in the
  OpenAPS shape: ``openaps.suggested`` with ``bg``, ``eventualBG``, ``IOB``, ``COB``, ``reason``
  and ``predBGs.IOB`` (5-minute points, interpolated from the twin's 30/60-minute forecast),
  ``openaps.iob``, and ``pump`` (reservoir, battery, status).

v3 identifiers are computed locally as a name-based UUID (v5) of the device, the time and the
event type, so an upload repeated after a lost answer deduplicates on the server.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from edgetwin.messages import (
    CarbEntry,
    CgmReading,
    InsulinDelivery,
    InsulinKind,
    MeterReading,
    PumpStatus,
    Suggestion,
)
from edgetwin.store.records import TwinCheckpoint
from edgetwin.timeutil import to_epoch_ms

__all__ = ["NAMESPACE", "devicestatus", "direction", "entry", "identifier", "iso", "treatment"]

NAMESPACE = uuid.UUID("6f0b2f5e-5d55-4a8a-9a57-2f5b1c1f7e01")
"""Namespace of EdgeTwin's v3 identifiers (fixed forever: changing it would break dedup)."""


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def identifier(device: str, date_ms: int, event_type: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{device}|{date_ms}|{event_type}"))


def direction(trend_mg_dl_per_min: float | None) -> str:
    if trend_mg_dl_per_min is None:
        return "NONE"
    for limit, arrow in ((3, "DoubleUp"), (2, "SingleUp"), (1, "FortyFiveUp"), (-1, "Flat"), (-2, "FortyFiveDown"),
                         (-3, "SingleDown")):  # fmt: skip
        if trend_mg_dl_per_min > limit or (limit == -1 and trend_mg_dl_per_min >= -1):
            return arrow
    return "DoubleDown"


def entry(r: CgmReading | MeterReading, app: str = "edgetwin") -> dict[str, Any] | None:
    """An ``entries`` document, or None for a CGM reading without a value."""
    date = to_epoch_ms(r.time_utc)
    device = f"{app}://{r.device_id}"
    if isinstance(r, MeterReading):
        return {"type": "mbg", "mbg": r.glucose_mg_dl, "date": date, "dateString": iso(r.time_utc),
                "device": device, "identifier": identifier(device, date, "mbg")}  # fmt: skip
    if r.glucose_mg_dl is None:
        return None
    return {
        "type": "sgv",
        "sgv": round(r.glucose_mg_dl),
        "direction": direction(r.trend_mg_dl_per_min),
        "date": date,
        "dateString": iso(r.time_utc),
        "device": device,
        "identifier": identifier(device, date, "sgv"),
    }


def treatment(r: CarbEntry | InsulinDelivery, app: str = "edgetwin") -> dict[str, Any]:
    date = to_epoch_ms(r.time_utc)
    base: dict[str, Any] = {"created_at": iso(r.time_utc), "date": date, "enteredBy": app}
    if isinstance(r, CarbEntry):
        device = f"{app}://{r.source}"
        base.update({"eventType": "Carb Correction", "carbs": r.grams})
    elif r.kind in (InsulinKind.BASAL, InsulinKind.TEMP_BASAL):
        device = f"{app}://{r.device_id}"
        rate = r.units / r.duration_min * 60.0 if r.duration_min else 0.0
        base.update({"eventType": "Temp Basal", "absolute": round(rate, 3), "rate": round(rate, 3),
                     "duration": r.duration_min})  # fmt: skip
    else:
        device = f"{app}://{r.device_id}"
        base.update({"eventType": "Correction Bolus", "insulin": r.units,
                     "isSMB": r.kind is InsulinKind.MICRO_BOLUS})  # fmt: skip
    base["device"] = device
    base["identifier"] = identifier(device, date, base["eventType"])
    return base


def devicestatus(
    snap: TwinCheckpoint,
    suggestion: Suggestion | None = None,
    pump: PumpStatus | None = None,
    gateway: str = "edgetwin",
) -> dict[str, Any]:
    s = snap.summary
    t = iso(snap.time_utc)
    bg = s.get("glucose_mg_dl")
    preds: list[int] = []
    if bg is not None and "pred_30_mg_dl" in s and "pred_60_mg_dl" in s:
        p30, p60 = s["pred_30_mg_dl"], s["pred_60_mg_dl"]
        for k in range(13):
            m = 5 * k
            v = bg + (p30 - bg) * m / 30 if m <= 30 else p30 + (p60 - p30) * (m - 30) / 30
            preds.append(round(v))
    suggested: dict[str, Any] = {"timestamp": t, "bg": None if bg is None else round(bg),
                                 "eventualBG": round(s["pred_60_mg_dl"]) if "pred_60_mg_dl" in s else None,
                                 "IOB": round(s.get("iob_u", 0.0), 2), "COB": round(s.get("cob_g", 0.0))}  # fmt: skip
    if preds:
        suggested["predBGs"] = {"IOB": preds}
    if suggestion is not None:
        suggested["reason"] = suggestion.reason
        if suggestion.rate_u_per_h is not None:
            suggested.update({"rate": suggestion.rate_u_per_h, "duration": suggestion.duration_min,
                              "temp": "absolute"})  # fmt: skip
    doc: dict[str, Any] = {
        "device": f"{gateway}://twin",
        "created_at": t,
        "date": to_epoch_ms(snap.time_utc),
        "openaps": {"suggested": suggested, "iob": {"iob": round(s.get("iob_u", 0.0), 2), "timestamp": t}},
    }
    if pump is not None:
        doc["pump"] = {
            "clock": iso(pump.time_utc),
            "reservoir": pump.reservoir_u,
            "battery": {"percent": pump.battery_pct},
            "status": {"status": "suspended" if pump.suspended else "normal", "bolusing": pump.bolusing,
                       "suspended": pump.suspended, "timestamp": iso(pump.time_utc)},
        }  # fmt: skip
    doc["identifier"] = identifier(doc["device"], doc["date"], "devicestatus")
    return doc
