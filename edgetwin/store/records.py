"""Records the store adds to the shared messages: acknowledgements, safety-gate decisions, twin
checkpoints, history entries and sync-outbox batches. Frozen and slotted like the messages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from edgetwin.messages import Alarm
from edgetwin.timeutil import ensure_utc

__all__ = [
    "Ack",
    "GateDecision",
    "GateFinding",
    "GateOutcome",
    "HistoryEntry",
    "OutboxBatch",
    "OutboxItem",
    "StoredAlarm",
    "TwinCheckpoint",
]

FindingValue = float | int | str | bool | None


@dataclass(frozen=True, slots=True)
class Ack:
    """The store's acknowledgement: the record is durable on disk when this exists.

    ``duplicate`` is True when the record was already stored (same identity); then ``row_id``
    names the stored row and nothing new was written. ``conflicting`` marks a duplicate whose
    value differs from the stored one (the stored one is kept; worth a log line).
    """

    table: str
    row_id: int
    duplicate: bool = False
    conflicting: bool = False


class GateOutcome(StrEnum):
    ACCEPTED = "accepted"
    CLAMPED = "clamped"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class GateFinding:
    """One rule of the safety gate that fired: ``action`` is ``refuse``, ``clamp`` or ``note``;
    ``values`` holds the numbers it compared (named with units, e.g. ``{"iob_u": 4.2,
    "max_iob_u": 3.0}``)."""

    rule: str
    action: str
    message: str
    values: Mapping[str, FindingValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.rule:
            raise ValueError("GateFinding.rule must not be empty")
        if self.action not in ("refuse", "clamp", "note"):
            raise ValueError(f"GateFinding.action must be refuse, clamp or note, got {self.action!r}")
        for key, value in self.values.items():
            if not isinstance(key, str):
                raise ValueError(f"GateFinding.values keys must be str, got {key!r}")
            if value is not None and not isinstance(value, (float, int, str, bool)):
                raise ValueError(f"GateFinding.values[{key!r}] must be a number, text or bool")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"GateFinding.values[{key!r}] is not finite")
        object.__setattr__(self, "values", dict(self.values))


@dataclass(frozen=True, slots=True)
class GateDecision:
    """What the safety gate did with a stored suggestion (``suggestion_id`` from its Ack).

    ``result_suggestion_id`` names the stored suggestion that went out after clamping (None when
    refused, or the same as ``suggestion_id`` when accepted unchanged).
    """

    time_utc: datetime
    suggestion_id: int | None
    outcome: GateOutcome
    findings: tuple[GateFinding, ...] = ()
    result_suggestion_id: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "time_utc", ensure_utc(self.time_utc, "GateDecision.time_utc"))
        object.__setattr__(self, "outcome", GateOutcome(self.outcome))
        object.__setattr__(self, "findings", tuple(self.findings))
        if self.outcome is not GateOutcome.ACCEPTED and not self.findings:
            raise ValueError(f"a {self.outcome.value} decision must name the rules that fired")


@dataclass(frozen=True, slots=True)
class TwinCheckpoint:
    """A versioned, opaque snapshot of the twin plus a few summary numbers.

    ``blob`` is whatever the twin writes (its ``format`` and ``version`` tell the twin how to read
    it back); the store and sync never look inside. ``summary`` holds named numbers with units in
    the names (``glucose_mg_dl``, ``iob_u``, ``pred_60_mg_dl`` ...), synced at a documented precision.
    ``blob`` may be None on a checkpoint read back after its bytes were pruned.
    """

    time_utc: datetime
    format: str
    version: int
    blob: bytes | None
    summary: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "time_utc", ensure_utc(self.time_utc, "TwinCheckpoint.time_utc"))
        if not self.format:
            raise ValueError("TwinCheckpoint.format must not be empty")
        if self.version < 0:
            raise ValueError("TwinCheckpoint.version must be >= 0")
        for key, value in self.summary.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"TwinCheckpoint.summary[{key!r}] must be a finite number")
        object.__setattr__(self, "summary", {str(k): float(v) for k, v in self.summary.items()})
        if self.blob is not None:
            object.__setattr__(self, "blob", bytes(self.blob))


@dataclass(frozen=True, slots=True)
class StoredAlarm:
    alarm_id: int
    alarm: Alarm
    acknowledged_utc: datetime | None = None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One event of the patient's history, for ``edgetwin history``: ``kind`` is the table name
    (``cgm``, ``meter``, ``insulin``, ``carbs``, ``suggestion``, ``decision``, ``alarm``, ...)."""

    time_utc: datetime
    kind: str
    row_id: int
    record: Any


@dataclass(frozen=True, slots=True)
class OutboxBatch:
    """A contiguous run of outbox items ``(first_seq, last_seq]`` sent as sync batch ``batch_seq``.

    Once opened, a batch's range never changes, so a retry after a crash re-sends the same items
    under the same sequence number (the cloud de-duplicates by (gateway, batch_seq)).
    """

    batch_seq: int
    first_seq: int
    last_seq: int
    created_utc: datetime


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One outbox entry: ``kind`` names the table, ``record`` is the message (or decision,
    checkpoint); ``origin`` is where a reading or treatment came from (empty for other kinds)."""

    seq: int
    kind: str
    row_id: int
    record: Any
    origin: str = ""
