"""The gateway's durable local store (SQLite, WAL, ``synchronous=FULL``).

* :class:`Store`: blocking API; ``add``/``add_*`` return an :class:`Ack` only once the record is
  on disk; queries for time ranges, the latest reading, history and the last twin checkpoint; the
  sync outbox (``open_batch`` / ``batch_items`` / ``ack_batch``).
* :class:`AsyncStore`: the same from asyncio, through one worker thread (the single choke point).
* Errors: :mod:`edgetwin.store.errors` (``StoreError`` and its subclasses).
* Schema and migrations: :mod:`edgetwin.store.schema`; row identities: :mod:`edgetwin.store.rows`.
"""

from edgetwin.store.aio import AsyncStore
from edgetwin.store.errors import (
    StoreBusyError,
    StoreClosedError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreIOError,
    StoreSchemaError,
)
from edgetwin.store.records import (
    Ack,
    GateDecision,
    GateFinding,
    GateOutcome,
    HistoryEntry,
    OutboxBatch,
    OutboxItem,
    StoredAlarm,
    TwinCheckpoint,
)
from edgetwin.store.schema import SCHEMA_VERSION
from edgetwin.store.store import Store

__all__ = [
    "SCHEMA_VERSION",
    "Ack",
    "AsyncStore",
    "GateDecision",
    "GateFinding",
    "GateOutcome",
    "HistoryEntry",
    "OutboxBatch",
    "OutboxItem",
    "Store",
    "StoreBusyError",
    "StoreClosedError",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreIOError",
    "StoreSchemaError",
    "StoredAlarm",
    "TwinCheckpoint",
]
