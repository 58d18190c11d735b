"""The gateway's twin as of now, read from its store: the last checkpoint plus what came after.

Used by the gateway itself at start-up and by ``edgetwin whatif --config`` (a patient's "what if
I bolus 3 U now?" on the twin the gateway is running, without disturbing it: the store is opened
read-only and the gateway keeps its own copy).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgpack

from edgetwin.errors import InputDataError
from edgetwin.gateway.ports import TwinFactory, TwinPort
from edgetwin.gateway.timekeeping import MinuteMap
from edgetwin.messages import CarbEntry, CgmReading, InsulinDelivery
from edgetwin.store import Store, TwinCheckpoint
from edgetwin.therapy import TherapyProfile
from edgetwin.timeutil import from_epoch_ms

__all__ = [
    "CHECKPOINT_PREFIX",
    "FRESH_START_WINDOW",
    "REPLAY_WINDOW",
    "TwinSnapshot",
    "feed_record",
    "load_twin",
]

log = logging.getLogger("edgetwin.gateway")

CHECKPOINT_PREFIX = "gateway/"
REPLAY_WINDOW = timedelta(hours=12)
"""Records this far before the checkpoint are replayed too (late, back-filled ones); the twin
ignores what it has already seen (by event id, or minutes it has passed)."""
FRESH_START_WINDOW = timedelta(hours=24)
"""Without a usable checkpoint, a new twin learns from this much stored history."""


@dataclass
class TwinSnapshot:
    twin: TwinPort
    minutes: MinuteMap
    checkpoint: TwinCheckpoint | None
    """The checkpoint it was restored from (None: rebuilt from stored readings)."""
    replayed: int
    """Stored records fed to it after the checkpoint (or from scratch)."""


def feed_record(twin: TwinPort, mm: MinuteMap, record: object, event_id: str) -> None:
    """One stored record into the twin (raises ``InputDataError`` when the twin rejects it)."""
    if isinstance(record, CgmReading):
        twin.assimilate_cgm(mm.minute(record.time_utc), record.glucose_mg_dl, usable=record.usable)
    elif isinstance(record, InsulinDelivery):
        twin.record_insulin(
            mm.minute(record.time_utc),
            record.units,
            duration_min=int(round(record.duration_min)),
            event_id=event_id,
        )
    elif isinstance(record, CarbEntry):
        twin.record_carbs(mm.minute(record.time_utc), record.grams, event_id=event_id)


def load_twin(
    store: Store,
    factory: TwinFactory,
    profile: TherapyProfile,
    now: datetime,
    on_rejected: Callable[[object, InputDataError], None] | None = None,
) -> TwinSnapshot:
    """Restore the last checkpoint of ``factory``'s format (or start a twin from ``profile`` when
    there is none or it cannot be used, logged) and replay the stored readings since."""
    fmt = CHECKPOINT_PREFIX + factory.format
    cp = store.last_checkpoint(format=fmt)
    twin: TwinPort | None = None
    mm: MinuteMap | None = None
    replay_from = now - FRESH_START_WINDOW
    if cp is not None and cp.blob is not None:
        try:
            env = msgpack.unpackb(cp.blob, raw=False, strict_map_key=True)
            if cp.version != factory.version:
                raise InputDataError(f"checkpoint version {cp.version} (this twin: {factory.version})")
            mm = MinuteMap(from_epoch_ms(int(env["anchor_ms"])))
            twin = factory.restore(bytes(env["twin"]))
            replay_from = cp.time_utc - REPLAY_WINDOW
        except (InputDataError, ValueError, KeyError, TypeError, msgpack.exceptions.UnpackException) as exc:
            log.error(
                "the twin checkpoint of %s cannot be restored (%s): rebuilding from stored readings",
                cp.time_utc.isoformat(),
                exc,
                extra={"event": "checkpoint_unusable"},
            )
            twin, mm, cp = None, None, None
    entries = store.history(replay_from, now + timedelta(days=1), kinds=("cgm", "insulin", "carbs"))
    if twin is None or mm is None:
        mm = MinuteMap(entries[0].time_utc if entries else now)
        twin = factory.new(profile, profile.local_minute_of_day(mm.anchor_utc), 0)
    for e in entries:
        try:
            feed_record(twin, mm, e.record, f"{e.kind}:{e.row_id}")
        except InputDataError as exc:
            if on_rejected is not None:
                on_rejected(e.record, exc)
    return TwinSnapshot(twin, mm, cp, len(entries))
