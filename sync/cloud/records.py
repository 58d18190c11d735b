"""Records as the cloud keeps them: an identity for exactly-once storage and a JSON document.

Identity (unique per patient and kind): readings and treatments by what they are — device and
time (``cgm``, ``meter``, ``heart_rate``, ``pump_status``), device, time and kind (``insulin``),
source and time (``carbs``), command id (``pump_command``), command id and time
(``command_result``) — so a replaced gateway re-sending history stores nothing twice; events
(suggestions, decisions, alarms, checkpoints) by the gateway and its row id.
"""

from __future__ import annotations

import base64
import dataclasses
from datetime import datetime
from enum import Enum
from typing import Any

from edgetwin.timeutil import to_epoch_ms
from sync.codec import WireRecord

__all__ = ["identity", "record_document", "record_time_ms"]


def _plain(v: Any) -> Any:
    if v is None or type(v) in (int, float, str, bool):
        return v
    if isinstance(v, datetime):
        return to_epoch_ms(v)
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, (frozenset, set)):
        return sorted(_plain(x) for x in v)
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v


def record_document(w: WireRecord) -> dict[str, Any]:
    """The record as a JSON-ready dict (times in UTC ms), without a checkpoint's blob."""
    doc = _plain(w.record)
    doc.pop("blob", None)
    if w.origin:
        doc["origin"] = w.origin
    return doc


def record_time_ms(w: WireRecord) -> int:
    r = w.record
    return to_epoch_ms(getattr(r, "time_utc", None) or r.created_utc)


def identity(w: WireRecord, gateway_id: str) -> str:
    r = w.record
    t = record_time_ms(w)
    if w.kind in ("cgm", "meter", "heart_rate", "pump_status"):
        return f"{r.device_id}|{t}"
    if w.kind == "insulin":
        return f"{r.device_id}|{t}|{r.kind.value}"
    if w.kind == "carbs":
        return f"{r.source}|{t}"
    if w.kind == "pump_command":
        return str(r.command_id)
    if w.kind == "command_result":
        return f"{r.command_id}|{t}"
    return f"{gateway_id}|{w.edge_id}"
