"""The gateway's local store: SQLite in WAL mode, durable before acknowledged.

Every ``add*`` call runs in its own ``BEGIN IMMEDIATE`` transaction with ``synchronous=FULL``:
when it returns an :class:`~edgetwin.store.records.Ack`, the record and its sync-outbox entry
are on disk and survive a power cut or SIGKILL. A record that is already stored (same identity,
see :mod:`edgetwin.store.rows`) is not stored twice: the Ack says ``duplicate=True``.

Opening checks the file before trusting it: the SQLite header and size (a truncated or empty
file), ``application_id`` (another program's database), ``PRAGMA quick_check``, and the schema
version (migrated forward step by step; a newer version is refused). A damaged file raises
:class:`~edgetwin.store.errors.StoreCorruptError` and is left exactly as it was. A new store is
built beside its final path and renamed into place, so an empty file at the path is never ours.

Threads: a ``Store`` may be called from any thread (one lock serialises the connection), but
the calls block on disk I/O. Async code uses :class:`edgetwin.store.aio.AsyncStore`, which runs
every call on one dedicated thread: the single choke point between the event loop and SQLite.
Other processes (``edgetwin history``, ``edgetwin status``) open the same file read-only; WAL
lets them read while the gateway writes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from edgetwin.clock import Clock, RealClock
from edgetwin.messages import (
    Alarm,
    CarbEntry,
    CgmReading,
    CommandResult,
    HeartRateReading,
    InsulinDelivery,
    MeterReading,
    PumpCommand,
    PumpStatus,
    Suggestion,
)
from edgetwin.store import rows
from edgetwin.store.errors import (
    StoreClosedError,
    StoreCorruptError,
    StoreError,
    StoreSchemaError,
    translate,
)
from edgetwin.store.fileformat import check_header, fsync_dir
from edgetwin.store.records import (
    Ack,
    GateDecision,
    HistoryEntry,
    OutboxBatch,
    OutboxItem,
    StoredAlarm,
    TwinCheckpoint,
)
from edgetwin.store.schema import APPLICATION_ID, SCHEMA_VERSION, migrate
from edgetwin.timeutil import from_epoch_ms, to_epoch_ms

__all__ = ["Integrity", "Store"]

T = TypeVar("T")
Integrity = Literal["quick", "full", "none"]

DEFAULT_KEEP_CHECKPOINT_BLOBS = 24
"""Twin checkpoints whose bytes are kept; older ones keep their summary only."""

HISTORY_KINDS = (
    "cgm",
    "meter",
    "insulin",
    "carbs",
    "pump_command",
    "command_result",
    "suggestion",
    "decision",
    "alarm",
)


class Store:
    """The local store. Open with :meth:`open`; close with :meth:`close` or a ``with`` block."""

    def __init__(self, conn: sqlite3.Connection, path: Path, clock: Clock, readonly: bool) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.path = path
        self.readonly = readonly
        self._clock = clock
        self._lock = threading.RLock()

    # --- opening -----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        readonly: bool = False,
        integrity: Integrity = "quick",
        clock: Clock | None = None,
        busy_timeout_s: float = 5.0,
        max_size_bytes: int | None = None,
    ) -> Store:
        """Open (or, with ``create``, build) the store at ``path``.

        ``integrity`` picks the check run at open (``quick`` is O(size) but cheap; ``full`` also
        checks indexes against tables). ``max_size_bytes`` caps the database file (SQLite's
        ``max_page_count``): past it, writes raise ``StoreFullError`` as a full disk would.
        """
        p = Path(path)
        clock = clock or RealClock()
        if not p.exists():
            if readonly or not create:
                raise StoreError("no database file here", path=p)
            cls._create(p)
        else:
            check_header(p)
        try:
            conn = cls._connect(p, readonly, busy_timeout_s)
        except sqlite3.Error as exc:
            raise translate(exc, p, "opening the database") from exc
        try:
            cls._prepare(conn, p, readonly, integrity, max_size_bytes)
        except BaseException:
            conn.close()
            raise
        return cls(conn, p, clock, readonly)

    @staticmethod
    def _connect(p: Path, readonly: bool, busy_timeout_s: float) -> sqlite3.Connection:
        if readonly:
            uri = f"file:{p.as_posix()}?mode=ro"
            conn = sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s
            )
        else:
            conn = sqlite3.connect(p, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
        conn.row_factory = sqlite3.Row
        return conn

    @classmethod
    def _create(cls, p: Path) -> None:
        """Build an empty, fully migrated store beside ``p`` and rename it into place."""
        tmp = p.with_name(p.name + ".creating")
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                migrate(conn)
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, p)
            fsync_dir(p.parent)
        except (sqlite3.Error, OSError) as exc:
            for partial in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
                with contextlib.suppress(OSError):
                    partial.unlink(missing_ok=True)  # ours, never renamed into place: no data in it
            if isinstance(exc, sqlite3.Error):
                raise translate(exc, p, "creating the database") from exc
            raise StoreError(f"creating the database: {exc}", path=p) from exc

    @staticmethod
    def _prepare(
        conn: sqlite3.Connection, p: Path, readonly: bool, integrity: Integrity, max_size_bytes: int | None
    ) -> None:
        try:
            if not readonly:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"could not switch to WAL journal mode (got {mode})", path=p)
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            n_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if app_id != APPLICATION_ID and (app_id != 0 or version != 0 or n_tables):
                raise StoreCorruptError(
                    f"not an EdgeTwin store (application_id {app_id:#x}, {n_tables} schema objects)", path=p
                )
            if integrity != "none":
                pragma = "quick_check" if integrity == "quick" else "integrity_check"
                problems = [r[0] for r in conn.execute(f"PRAGMA {pragma}(20)").fetchall()]
                if problems != ["ok"]:
                    raise StoreCorruptError(f"{pragma} failed: {'; '.join(problems[:5])}", path=p)
            if version > SCHEMA_VERSION:
                raise StoreSchemaError(
                    f"schema version {version} is newer than this EdgeTwin knows ({SCHEMA_VERSION}); "
                    "upgrade EdgeTwin, do not downgrade the data",
                    path=p,
                    found=version,
                    known=SCHEMA_VERSION,
                )
            if version < SCHEMA_VERSION:
                if readonly:
                    raise StoreSchemaError(
                        f"schema version {version} needs migrating to {SCHEMA_VERSION}; open it read-write once",
                        path=p,
                        found=version,
                        known=SCHEMA_VERSION,
                    )
                migrate(conn)
            if max_size_bytes is not None:
                page_size = conn.execute("PRAGMA page_size").fetchone()[0]
                conn.execute(f"PRAGMA max_page_count = {max(1, int(max_size_bytes) // page_size)}")
        except sqlite3.Error as exc:
            raise translate(exc, p, "opening the database") from exc

    # --- plumbing ----------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    @property
    def closed(self) -> bool:
        return self._conn is None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreClosedError("the store is closed", path=self.path)
        return self._conn

    def _write(self, doing: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one durable transaction; a failure rolls back everything it did."""
        with self._lock:
            conn = self._c()
            if self.readonly:
                raise StoreError(f"{doing}: the store is open read-only", path=self.path)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise translate(exc, self.path, doing) from exc
            return result

    def _read(self, doing: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            conn = self._c()
            try:
                return fn(conn)
            except sqlite3.Error as exc:
                raise translate(exc, self.path, doing) from exc

    def _now_ms(self) -> int:
        return to_epoch_ms(self._clock.now_utc())

    def _insert(
        self,
        conn: sqlite3.Connection,
        record: object,
        origin: str | None,
        keep_blobs: int = DEFAULT_KEEP_CHECKPOINT_BLOBS,
    ) -> Ack:
        table = rows.table_for(record)
        if table.find_duplicate is not None:
            found = table.find_duplicate(conn, record)
            if found is not None:
                return Ack(table.name, found[0], duplicate=True, conflicting=found[1])
        default_origin = "patient" if table.name == "carbs" else "device"
        sql, params = table.insert(record, origin or default_origin, self._now_ms())
        row_id = conn.execute(sql, params).lastrowid
        assert row_id is not None
        time_ms = to_epoch_ms(getattr(record, "time_utc", None) or record.created_utc)  # type: ignore[attr-defined]
        conn.execute(
            "INSERT INTO sync_outbox(kind, row_id, time_ms) VALUES (?, ?, ?)", (table.name, row_id, time_ms)
        )
        if table.name == "checkpoint":
            conn.execute(
                "UPDATE checkpoint SET blob = NULL WHERE blob IS NOT NULL AND id NOT IN "
                "(SELECT id FROM checkpoint WHERE blob IS NOT NULL ORDER BY id DESC LIMIT ?)",
                (keep_blobs,),
            )
        return Ack(table.name, row_id)

    # --- writes ------------------------------------------------------------------------

    def add(self, record: object, *, origin: str | None = None) -> Ack:
        """Store any record the store keeps (reading, treatment, pump status/command/result,
        suggestion, gate decision, alarm, checkpoint) durably; the Ack is the acknowledgement.

        ``origin`` says where a reading or treatment came from (``device`` by default,
        ``patient`` for carbs; ``nightscout`` for data pulled from Nightscout, never sent back).
        """
        table = rows.table_for(record)
        return self._write(f"storing a {table.name} record", lambda conn: self._insert(conn, record, origin))

    def add_many(self, records: Iterable[object], *, origin: str | None = None) -> list[Ack]:
        """Store many records in ONE transaction (a back-fill): all are durable, or none."""
        items = list(records)
        for r in items:
            rows.table_for(r)
        return self._write(
            f"storing {len(items)} records", lambda conn: [self._insert(conn, r, origin) for r in items]
        )

    def add_cgm(self, reading: CgmReading, *, origin: str | None = None) -> Ack:
        return self.add(reading, origin=origin)

    def add_meter(self, reading: MeterReading, *, origin: str | None = None) -> Ack:
        return self.add(reading, origin=origin)

    def add_heart_rate(self, reading: HeartRateReading) -> Ack:
        return self.add(reading)

    def add_insulin(self, delivery: InsulinDelivery, *, origin: str | None = None) -> Ack:
        return self.add(delivery, origin=origin)

    def add_carbs(self, entry: CarbEntry, *, origin: str | None = None) -> Ack:
        return self.add(entry, origin=origin)

    def add_pump_status(self, status: PumpStatus) -> Ack:
        return self.add(status)

    def add_pump_command(self, command: PumpCommand) -> Ack:
        return self.add(command)

    def add_command_result(self, result: CommandResult) -> Ack:
        """Store the pump's answer; its command must have been stored first."""
        return self.add(result)

    def add_suggestion(self, suggestion: Suggestion) -> Ack:
        """Store a suggestion; ``Ack.row_id`` is its id for :class:`GateDecision`."""
        return self.add(suggestion)

    def add_decision(self, decision: GateDecision) -> Ack:
        return self.add(decision)

    def add_alarm(self, alarm: Alarm) -> Ack:
        return self.add(alarm)

    def acknowledge_alarm(self, alarm_id: int, when: datetime) -> bool:
        """Mark an alarm seen by the patient; False if it was already acknowledged or unknown."""
        t = to_epoch_ms(when)
        return self._write(
            "acknowledging an alarm",
            lambda conn: (
                conn.execute(
                    "UPDATE alarm SET acknowledged_ms = ? WHERE id = ? AND acknowledged_ms IS NULL",
                    (t, alarm_id),
                ).rowcount
                == 1
            ),
        )

    def save_checkpoint(
        self, checkpoint: TwinCheckpoint, *, keep_blobs: int = DEFAULT_KEEP_CHECKPOINT_BLOBS
    ) -> Ack:
        """Store a twin checkpoint; bytes of all but the newest ``keep_blobs`` are dropped
        (their summaries stay, for history and sync)."""
        if checkpoint.blob is None:
            raise ValueError("a checkpoint to save needs its bytes")
        if keep_blobs < 1:
            raise ValueError("keep_blobs must be >= 1")

        return self._write(
            "saving a twin checkpoint", lambda conn: self._insert(conn, checkpoint, None, keep_blobs)
        )

    # --- queries -----------------------------------------------------------------------

    def _between(
        self, table: str, start: datetime, end: datetime, where: str = "", params: Sequence[Any] = ()
    ) -> list[Any]:
        t = rows.TABLES[table]
        sql = (
            f"SELECT * FROM {table} WHERE {t.time_column} >= ? AND {t.time_column} < ?"
            f"{' AND ' + where if where else ''} ORDER BY {t.time_column}, id"
        )
        args = (to_epoch_ms(start), to_epoch_ms(end), *params)
        return self._read(f"reading {table}", lambda c: [t.from_row(r) for r in c.execute(sql, args)])

    def cgm_between(
        self, start: datetime, end: datetime, *, device_id: str | None = None
    ) -> list[CgmReading]:
        """CGM readings with ``start <= time < end``, oldest first (optionally one device's)."""
        if device_id is None:
            return self._between("cgm", start, end)
        return self._between("cgm", start, end, "device_id = ?", (device_id,))

    def latest_cgm(self, *, device_id: str | None = None, usable: bool = False) -> CgmReading | None:
        """The newest CGM reading (by its time), or with ``usable`` the newest assimilable one."""
        where = "WHERE device_id = ?" if device_id is not None else ""
        args: tuple[Any, ...] = (device_id,) if device_id is not None else ()
        sql = f"SELECT * FROM cgm {where} ORDER BY time_ms DESC, id DESC"

        def q(conn: sqlite3.Connection) -> CgmReading | None:
            for row in conn.execute(sql, args):
                reading = rows.TABLES["cgm"].from_row(row)
                if not usable or reading.usable:
                    return reading
            return None

        return self._read("reading the latest CGM value", q)

    def meter_between(self, start: datetime, end: datetime) -> list[MeterReading]:
        return self._between("meter", start, end)

    def heart_rate_between(self, start: datetime, end: datetime) -> list[HeartRateReading]:
        return self._between("heart_rate", start, end)

    def insulin_between(self, start: datetime, end: datetime) -> list[InsulinDelivery]:
        return self._between("insulin", start, end)

    def carbs_between(self, start: datetime, end: datetime) -> list[CarbEntry]:
        return self._between("carbs", start, end)

    def treatments_between(self, start: datetime, end: datetime) -> list[InsulinDelivery | CarbEntry]:
        """Insulin deliveries and announced carbs with ``start <= time < end``, by time."""
        both: list[InsulinDelivery | CarbEntry] = [
            *self.insulin_between(start, end),
            *self.carbs_between(start, end),
        ]
        return sorted(both, key=lambda r: r.time_utc)

    def pump_status_between(self, start: datetime, end: datetime) -> list[PumpStatus]:
        return self._between("pump_status", start, end)

    def latest_pump_status(self) -> PumpStatus | None:
        return self._read(
            "reading the latest pump status",
            lambda c: next(
                (
                    rows.TABLES["pump_status"].from_row(r)
                    for r in c.execute("SELECT * FROM pump_status ORDER BY time_ms DESC, id DESC LIMIT 1")
                ),
                None,
            ),
        )

    def command(self, command_id: str) -> tuple[PumpCommand, list[CommandResult]] | None:
        """A stored pump command and the pump's answers to it, oldest first."""

        def q(conn: sqlite3.Connection) -> tuple[PumpCommand, list[CommandResult]] | None:
            row = conn.execute("SELECT * FROM pump_command WHERE command_id = ?", (command_id,)).fetchone()
            if row is None:
                return None
            results = conn.execute(
                "SELECT * FROM command_result WHERE command_id = ? ORDER BY time_ms, id", (command_id,)
            )
            return rows.TABLES["pump_command"].from_row(row), [
                rows.TABLES["command_result"].from_row(r) for r in results
            ]

        return self._read("reading a pump command", q)

    def unconfirmed_commands(self, since: datetime) -> list[PumpCommand]:
        """Commands created since ``since`` that the pump never confirmed (treat as not running)."""
        sql = (
            "SELECT * FROM pump_command c WHERE created_ms >= ? AND NOT EXISTS "
            "(SELECT 1 FROM command_result r WHERE r.command_id = c.command_id AND r.confirmed = 1) "
            "ORDER BY created_ms, id"
        )
        t = to_epoch_ms(since)
        return self._read(
            "reading unconfirmed commands",
            lambda c: [rows.TABLES["pump_command"].from_row(r) for r in c.execute(sql, (t,))],
        )

    def suggestions_between(self, start: datetime, end: datetime) -> list[tuple[int, Suggestion]]:
        """``(suggestion id, suggestion)`` created in the range, oldest first."""
        return self._with_ids("suggestion", start, end)

    def decisions_between(self, start: datetime, end: datetime) -> list[tuple[int, GateDecision]]:
        return self._with_ids("decision", start, end)

    def _with_ids(self, table: str, start: datetime, end: datetime) -> list[tuple[int, Any]]:
        t = rows.TABLES[table]
        sql = f"SELECT * FROM {table} WHERE {t.time_column} >= ? AND {t.time_column} < ? ORDER BY {t.time_column}, id"
        args = (to_epoch_ms(start), to_epoch_ms(end))
        return self._read(
            f"reading {table}", lambda c: [(r["id"], t.from_row(r)) for r in c.execute(sql, args)]
        )

    def alarms(
        self, start: datetime, end: datetime, *, unacknowledged_only: bool = False
    ) -> list[StoredAlarm]:
        sql = "SELECT * FROM alarm WHERE time_ms >= ? AND time_ms < ?"
        if unacknowledged_only:
            sql += " AND acknowledged_ms IS NULL"
        sql += " ORDER BY time_ms, id"
        args = (to_epoch_ms(start), to_epoch_ms(end))
        conv = rows.TABLES["alarm"].from_row

        def one(r: sqlite3.Row) -> StoredAlarm:
            ack = r["acknowledged_ms"]
            return StoredAlarm(r["id"], conv(r), None if ack is None else from_epoch_ms(ack))

        return self._read("reading alarms", lambda c: [one(r) for r in c.execute(sql, args)])

    def last_checkpoint(self, *, format: str | None = None) -> TwinCheckpoint | None:
        """The newest twin checkpoint that still has its bytes (optionally of one ``format``)."""
        sql = "SELECT * FROM checkpoint WHERE blob IS NOT NULL"
        args: tuple[Any, ...] = ()
        if format is not None:
            sql += " AND format = ?"
            args = (format,)
        sql += " ORDER BY time_ms DESC, id DESC LIMIT 1"
        return self._read(
            "reading the last checkpoint",
            lambda c: next((rows.TABLES["checkpoint"].from_row(r) for r in c.execute(sql, args)), None),
        )

    def history(
        self, start: datetime, end: datetime, *, kinds: Iterable[str] = HISTORY_KINDS
    ) -> list[HistoryEntry]:
        """Everything that happened with ``start <= time < end``, oldest first, for
        ``edgetwin history``. ``kinds`` picks tables (default: readings, treatments, commands,
        suggestions, decisions, alarms; add ``heart_rate``, ``pump_status``, ``checkpoint``)."""
        wanted = list(kinds)
        for k in wanted:
            if k not in rows.TABLES:
                raise ValueError(f"unknown history kind {k!r}; known: {', '.join(rows.TABLES)}")
        args = (to_epoch_ms(start), to_epoch_ms(end))

        def q(conn: sqlite3.Connection) -> list[HistoryEntry]:
            out: list[tuple[int, int, HistoryEntry]] = []
            for order, kind in enumerate(wanted):
                t = rows.TABLES[kind]
                sql = f"SELECT * FROM {kind} WHERE {t.time_column} >= ? AND {t.time_column} < ?"
                for r in conn.execute(sql, args):
                    ms = r[t.time_column]
                    out.append((ms, order, HistoryEntry(from_epoch_ms(ms), kind, r["id"], t.from_row(r))))
            out.sort(key=lambda e: (e[0], e[1], e[2].row_id))
            return [e[2] for e in out]

        return self._read("reading history", q)

    def counts(self) -> dict[str, int]:
        """Rows per table (for status pages and tests)."""
        return self._read(
            "counting rows",
            lambda c: {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in rows.TABLES},
        )

    @property
    def schema_version(self) -> int:
        return self._read(
            "reading the schema version", lambda c: int(c.execute("PRAGMA user_version").fetchone()[0])
        )

    def records_after(self, kind: str, after_row_id: int, limit: int = 500) -> list[OutboxItem]:
        """Rows of table ``kind`` with id > ``after_row_id``, oldest first, as outbox items
        (``seq`` 0): a cursor by row id for secondary destinations (e.g. Nightscout) that keep
        their own progress. Back-filled records get new, higher ids, so none is skipped."""
        if kind not in rows.TABLES:
            raise ValueError(f"unknown kind {kind!r}")
        t = rows.TABLES[kind]
        has_origin = kind in ("cgm", "meter", "insulin", "carbs")
        sql = f"SELECT * FROM {kind} WHERE id > ? ORDER BY id LIMIT ?"
        return self._read(
            f"reading {kind}",
            lambda c: [
                OutboxItem(0, kind, r["id"], t.from_row(r), r["origin"] if has_origin else "")
                for r in c.execute(sql, (after_row_id, limit))
            ],
        )

    # --- sync outbox -------------------------------------------------------------------

    def _cursor(self, conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT value FROM sync_state WHERE key = 'cursor'").fetchone()[0])

    def sync_cursor(self) -> int:
        """The outbox sequence number up to which everything was acknowledged by the cloud."""
        return self._read("reading the sync cursor", self._cursor)

    def sync_value(self, key: str, default: int = 0) -> int:
        """An integer the sync side keeps with the outbox (e.g. when a twin blob was last sent)."""

        def q(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT value FROM sync_state WHERE key = ?", (key,)).fetchone()
            return default if row is None else int(row[0])

        return self._read("reading sync state", q)

    def set_sync_value(self, key: str, value: int) -> None:
        if key == "cursor":
            raise ValueError("the cursor moves only through ack_batch")
        self._write(
            "writing sync state",
            lambda c: c.execute(
                "INSERT INTO sync_state(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, int(value)),
            ),
        )

    def outbox_backlog(self) -> int:
        """Outbox items not yet acknowledged (including those in an open batch)."""
        return self._read(
            "counting the outbox",
            lambda c: c.execute(
                "SELECT count(*) FROM sync_outbox WHERE seq > ?", (self._cursor(c),)
            ).fetchone()[0],
        )

    def pending_batch(self) -> OutboxBatch | None:
        """The batch opened but not yet acknowledged (re-send it unchanged), if any."""
        return self._read("reading the pending batch", self._pending)

    @staticmethod
    def _pending(conn: sqlite3.Connection) -> OutboxBatch | None:
        r = conn.execute(
            "SELECT * FROM sync_batch WHERE acked_ms IS NULL ORDER BY batch_seq LIMIT 1"
        ).fetchone()
        if r is None:
            return None
        return OutboxBatch(r["batch_seq"], r["first_seq"], r["last_seq"], from_epoch_ms(r["created_ms"]))

    def open_batch(self, max_items: int) -> OutboxBatch | None:
        """The pending batch if there is one; else a new batch of the next ``max_items`` outbox
        items (None when the outbox is empty). The batch's range is fixed once written."""
        if max_items < 1:
            raise ValueError("max_items must be >= 1")

        def tx(conn: sqlite3.Connection) -> OutboxBatch | None:
            pending = self._pending(conn)
            if pending is not None:
                return pending
            cursor = self._cursor(conn)
            row = conn.execute(
                "SELECT max(seq) FROM (SELECT seq FROM sync_outbox WHERE seq > ? ORDER BY seq LIMIT ?)",
                (cursor, max_items),
            ).fetchone()
            if row[0] is None:
                return None
            last = int(row[0])
            prev = conn.execute("SELECT max(batch_seq) FROM sync_batch").fetchone()[0]
            batch_seq = 1 if prev is None else int(prev) + 1
            now = self._now_ms()
            conn.execute(
                "INSERT INTO sync_batch(batch_seq, first_seq, last_seq, created_ms) VALUES (?,?,?,?)",
                (batch_seq, cursor, last, now),
            )
            return OutboxBatch(batch_seq, cursor, last, from_epoch_ms(now))

        return self._write("opening a sync batch", tx)

    def batch_items(self, batch: OutboxBatch) -> list[OutboxItem]:
        """The records of ``batch`` in outbox order."""

        def q(conn: sqlite3.Connection) -> list[OutboxItem]:
            entries = conn.execute(
                "SELECT seq, kind, row_id FROM sync_outbox WHERE seq > ? AND seq <= ? ORDER BY seq",
                (batch.first_seq, batch.last_seq),
            ).fetchall()
            by_kind: dict[str, list[int]] = {}
            for e in entries:
                by_kind.setdefault(e["kind"], []).append(e["row_id"])
            loaded: dict[tuple[str, int], Any] = {}
            for kind, ids in by_kind.items():
                t = rows.TABLES[kind]
                for chunk in _chunks(ids, 500):
                    marks = ",".join("?" * len(chunk))
                    for r in conn.execute(f"SELECT * FROM {kind} WHERE id IN ({marks})", chunk):
                        loaded[(kind, r["id"])] = t.from_row(r)
            origins = self._origins(conn, by_kind)
            return [
                OutboxItem(
                    e["seq"],
                    e["kind"],
                    e["row_id"],
                    loaded[(e["kind"], e["row_id"])],
                    origins.get((e["kind"], e["row_id"]), ""),
                )
                for e in entries
            ]

        return self._read("reading a sync batch", q)

    @staticmethod
    def _origins(conn: sqlite3.Connection, by_kind: dict[str, list[int]]) -> dict[tuple[str, int], str]:
        out: dict[tuple[str, int], str] = {}
        for kind in ("cgm", "meter", "insulin", "carbs"):
            for chunk in _chunks(by_kind.get(kind, []), 500):
                marks = ",".join("?" * len(chunk))
                for r in conn.execute(f"SELECT id, origin FROM {kind} WHERE id IN ({marks})", chunk):
                    out[(kind, r[0])] = r[1]
        return out

    def ack_batch(self, batch_seq: int) -> int:
        """Record that the cloud acknowledged batch ``batch_seq``: the cursor moves past it and
        its outbox entries are dropped (the records stay). Returns the new cursor. Acking an
        already-acknowledged batch is a no-op; acking an unknown one raises StoreError."""

        def tx(conn: sqlite3.Connection) -> int:
            r = conn.execute(
                "SELECT last_seq, acked_ms FROM sync_batch WHERE batch_seq = ?", (batch_seq,)
            ).fetchone()
            if r is None:
                raise StoreError(f"no sync batch {batch_seq} to acknowledge", path=self.path)
            if r["acked_ms"] is not None:
                return self._cursor(conn)
            last = int(r["last_seq"])
            conn.execute(
                "UPDATE sync_batch SET acked_ms = ? WHERE batch_seq = ?", (self._now_ms(), batch_seq)
            )
            conn.execute("UPDATE sync_state SET value = ? WHERE key = 'cursor'", (last,))
            conn.execute("DELETE FROM sync_outbox WHERE seq <= ?", (last,))
            conn.execute("DELETE FROM sync_batch WHERE batch_seq < ? AND acked_ms IS NOT NULL", (batch_seq,))
            return last

        return self._write("acknowledging a sync batch", tx)

    def thin_outbox(self, *, max_backlog: int, keep_every_min: float = 60.0) -> int:
        """Bound the backlog by thinning twin snapshots not yet in a batch: when more than
        ``max_backlog`` items wait, keep one checkpoint per ``keep_every_min`` and the newest;
        drop the rest from the outbox (the checkpoints stay in the store). Readings, treatments,
        suggestions and decisions are never thinned. Returns how many entries were dropped."""
        bucket_ms = max(1, int(keep_every_min * 60_000))

        def tx(conn: sqlite3.Connection) -> int:
            cursor = self._cursor(conn)
            pending = self._pending(conn)
            floor = max(cursor, pending.last_seq if pending else cursor)
            backlog = conn.execute("SELECT count(*) FROM sync_outbox WHERE seq > ?", (cursor,)).fetchone()[0]
            if backlog <= max_backlog:
                return 0
            snaps = conn.execute(
                "SELECT seq, time_ms FROM sync_outbox WHERE kind = 'checkpoint' AND seq > ? ORDER BY seq",
                (floor,),
            ).fetchall()
            seen: set[int] = set()
            drop: list[int] = []
            for i, s in enumerate(snaps):
                bucket = s["time_ms"] // bucket_ms
                if bucket in seen and i != len(snaps) - 1:
                    drop.append(s["seq"])
                seen.add(bucket)
            for chunk in _chunks(drop, 500):
                conn.execute(f"DELETE FROM sync_outbox WHERE seq IN ({','.join('?' * len(chunk))})", chunk)
            return len(drop)

        return self._write("thinning the sync outbox", tx)


def _chunks(items: Sequence[T], n: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
