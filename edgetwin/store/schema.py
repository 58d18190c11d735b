"""The store's schema and its migrations.

The schema version lives in SQLite's ``PRAGMA user_version``; ``application_id`` marks the file
as an EdgeTwin store. :data:`MIGRATIONS` is the ordered list of steps: step ``k`` (1-based)
takes a database at version ``k - 1`` to version ``k`` and runs inside one transaction together
with the ``user_version`` update, so a crash mid-migration leaves the previous version intact.
Never edit a released step; append a new one.

History:

1. readings (CGM, meter, heart rate), treatments (insulin, carbs), pump status, pump commands and
   their results, suggestions, safety-gate decisions, alarms, twin checkpoints.
2. the sync outbox (every stored record in arrival order), sync batches and sync state; rows that
   already existed are queued so nothing stored before the upgrade is left unsynced.
3. ``origin`` on readings and treatments (``device``, ``patient``, ``nightscout``, ...), so a
   record that came from a remote service is never sent back to it.

Times are integer UTC milliseconds (``*_ms``); units are in the column names.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION", "migrate"]

APPLICATION_ID = 0x45545731  # "ETW1"

_V1 = """
CREATE TABLE cgm (
    id INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    sequence INTEGER,
    glucose_mg_dl REAL,
    trend_mg_dl_per_min REAL,
    quality_pct REAL,
    status TEXT NOT NULL DEFAULT '',
    backfilled INTEGER NOT NULL DEFAULT 0,
    received_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX cgm_device_time ON cgm(device_id, time_ms);
CREATE INDEX cgm_device_sequence ON cgm(device_id, sequence) WHERE sequence IS NOT NULL;
CREATE INDEX cgm_time ON cgm(time_ms);

CREATE TABLE meter (
    id INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    sequence INTEGER,
    glucose_mg_dl REAL NOT NULL,
    received_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX meter_device_time ON meter(device_id, time_ms);
CREATE INDEX meter_time ON meter(time_ms);

CREATE TABLE heart_rate (
    id INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    heart_rate_bpm INTEGER NOT NULL,
    rr_intervals_s TEXT NOT NULL DEFAULT '',
    energy_expended_kj INTEGER,
    sensor_contact INTEGER,
    received_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX heart_rate_device_time ON heart_rate(device_id, time_ms);
CREATE INDEX heart_rate_time ON heart_rate(time_ms);

CREATE TABLE insulin (
    id INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    units REAL NOT NULL,
    duration_min REAL NOT NULL DEFAULT 0,
    sequence INTEGER,
    received_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX insulin_identity ON insulin(device_id, time_ms, kind);
CREATE INDEX insulin_device_sequence ON insulin(device_id, sequence) WHERE sequence IS NOT NULL;
CREATE INDEX insulin_time ON insulin(time_ms);

CREATE TABLE carbs (
    id INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    grams REAL NOT NULL,
    source TEXT NOT NULL,
    received_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX carbs_identity ON carbs(source, time_ms);
CREATE INDEX carbs_time ON carbs(time_ms);

CREATE TABLE pump_status (
    id INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    reservoir_u REAL NOT NULL,
    suspended INTEGER NOT NULL,
    bolusing INTEGER NOT NULL,
    basal_rate_u_per_h REAL NOT NULL,
    temp_basal_u_per_h REAL,
    temp_basal_remaining_min REAL NOT NULL DEFAULT 0,
    battery_pct REAL,
    occluded INTEGER NOT NULL DEFAULT 0,
    insulin_on_board_u REAL,
    received_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX pump_status_device_time ON pump_status(device_id, time_ms);
CREATE INDEX pump_status_time ON pump_status(time_ms);

CREATE TABLE pump_command (
    id INTEGER PRIMARY KEY,
    command_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    rate_u_per_h REAL,
    duration_min REAL,
    units REAL
);
CREATE INDEX pump_command_time ON pump_command(created_ms);

CREATE TABLE command_result (
    id INTEGER PRIMARY KEY,
    command_id TEXT NOT NULL REFERENCES pump_command(command_id),
    time_ms INTEGER NOT NULL,
    confirmed INTEGER NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX command_result_identity ON command_result(command_id, time_ms);
CREATE INDEX command_result_time ON command_result(time_ms);

CREATE TABLE suggestion (
    id INTEGER PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    rate_u_per_h REAL,
    duration_min REAL,
    units REAL,
    carbs_g REAL,
    reservoir_u REAL
);
CREATE INDEX suggestion_time ON suggestion(created_ms);

CREATE TABLE decision (
    id INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    suggestion_id INTEGER REFERENCES suggestion(id),
    outcome TEXT NOT NULL,
    findings TEXT NOT NULL,
    result_suggestion_id INTEGER REFERENCES suggestion(id)
);
CREATE INDEX decision_time ON decision(time_ms);

CREATE TABLE alarm (
    id INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    severity TEXT NOT NULL,
    acknowledged_ms INTEGER
);
CREATE INDEX alarm_time ON alarm(time_ms);

CREATE TABLE checkpoint (
    id INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    format TEXT NOT NULL,
    version INTEGER NOT NULL,
    blob BLOB,
    summary TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX checkpoint_time ON checkpoint(time_ms);
"""

# Tables whose rows are queued for sync, with the column holding each row's time.
_SYNCED_V2 = (
    ("cgm", "time_ms"),
    ("meter", "time_ms"),
    ("heart_rate", "time_ms"),
    ("insulin", "time_ms"),
    ("carbs", "time_ms"),
    ("pump_status", "time_ms"),
    ("pump_command", "created_ms"),
    ("command_result", "time_ms"),
    ("suggestion", "created_ms"),
    ("decision", "time_ms"),
    ("alarm", "time_ms"),
    ("checkpoint", "time_ms"),
)

_V2 = """
CREATE TABLE sync_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    row_id INTEGER NOT NULL,
    time_ms INTEGER NOT NULL
);
CREATE INDEX sync_outbox_kind ON sync_outbox(kind, seq);

CREATE TABLE sync_batch (
    batch_seq INTEGER PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    acked_ms INTEGER
);

CREATE TABLE sync_state (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO sync_state(key, value) VALUES ('cursor', 0);
"""


def _v2(conn: sqlite3.Connection) -> None:
    _script(conn, _V2)
    # Queue what was stored before the outbox existed, oldest first.
    union = " UNION ALL ".join(
        f"SELECT '{table}' AS kind, id AS row_id, {time_col} AS time_ms FROM {table}"
        for table, time_col in _SYNCED_V2
    )
    conn.execute(
        f"INSERT INTO sync_outbox(kind, row_id, time_ms) SELECT kind, row_id, time_ms FROM ({union}) "
        "ORDER BY time_ms, kind, row_id"
    )


_V3 = """
ALTER TABLE cgm ADD COLUMN origin TEXT NOT NULL DEFAULT 'device';
ALTER TABLE meter ADD COLUMN origin TEXT NOT NULL DEFAULT 'device';
ALTER TABLE insulin ADD COLUMN origin TEXT NOT NULL DEFAULT 'device';
ALTER TABLE carbs ADD COLUMN origin TEXT NOT NULL DEFAULT 'patient';
"""


def _script(conn: sqlite3.Connection, sql: str) -> None:
    """Run ``sql`` statement by statement inside the caller's transaction.

    (``executescript`` would COMMIT first, breaking the one-transaction-per-step rule.)
    """
    for statement in sql.split(";"):
        if statement.strip():
            conn.execute(statement)


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    lambda conn: _script(conn, _V1),
    _v2,
    lambda conn: _script(conn, _V3),
)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, *, target: int = SCHEMA_VERSION) -> tuple[int, int]:
    """Bring the database on ``conn`` (autocommit mode) to ``target``; returns (from, to).

    Each step commits with its ``user_version``. The caller has checked the version is not newer
    than :data:`SCHEMA_VERSION`.
    """
    start = conn.execute("PRAGMA user_version").fetchone()[0]
    version = start
    while version < target:
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[version](conn)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            if version == 0:
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may already have rolled back (disk full, I/O error)
                conn.execute("ROLLBACK")
            raise
        version += 1
    return start, version
