"""The cloud's database: SQLite (embedded default) or PostgreSQL (production), one schema.

``DATABASE_URL`` picks it: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or
``postgresql://user:password@host:5432/dbname`` (needs the ``psycopg`` package).

Writes go through ONE writer thread with group commit: ingest requests queue their batch, the
writer applies up to :data:`GROUP_COMMIT_MAX` of them in one durable transaction
(``synchronous=FULL`` on SQLite; a normal commit on PostgreSQL), then answers each. A batch is
acknowledged only after its commit, and batches still cost one fsync per group, not per request.
Reads use a connection per calling thread.

Per-patient isolation is enforced here as well as in the HTTP layer: every query takes the
patient id, and a gateway's batch is stored under its registered patient only.
"""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sync.cloud.records import identity, record_document, record_time_ms
from sync.codec import SyncBatch
from sync.errors import SyncError

__all__ = ["CloudDB", "GatewayInfo", "IngestResult", "ParamVersion", "open_database"]

GROUP_COMMIT_MAX = 128

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gateway (
    gateway_id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL,
    key_b64 TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS batch (
    gateway_id TEXT NOT NULL,
    batch_seq BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    n_new INTEGER NOT NULL,
    n_duplicate INTEGER NOT NULL,
    PRIMARY KEY (gateway_id, batch_seq)
);
CREATE TABLE IF NOT EXISTS record (
    patient_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    identity TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    gateway_id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (patient_id, kind, identity)
);
CREATE INDEX IF NOT EXISTS record_time ON record(patient_id, kind, time_ms);
CREATE TABLE IF NOT EXISTS twin_blob (
    patient_id TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    format TEXT NOT NULL,
    version INTEGER NOT NULL,
    blob_b64 TEXT NOT NULL,
    PRIMARY KEY (patient_id, time_ms, format)
);
CREATE TABLE IF NOT EXISTS param_update (
    patient_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_ms BIGINT NOT NULL,
    params TEXT NOT NULL,
    basis TEXT NOT NULL,
    PRIMARY KEY (patient_id, version)
);
CREATE TABLE IF NOT EXISTS job_run (
    job_id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    finished_ms BIGINT,
    status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
)
"""


@dataclass(frozen=True)
class GatewayInfo:
    gateway_id: str
    patient_id: str
    key: bytes
    revoked: bool


@dataclass(frozen=True)
class IngestResult:
    batch_seq: int
    duplicate_batch: bool
    new: int
    duplicate_records: int


@dataclass(frozen=True)
class ParamVersion:
    patient_id: str
    version: int
    created_ms: int
    params: dict[str, float]
    basis: str


class _Dialect:
    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.url = url
        self.kind = "postgresql" if parsed.scheme in ("postgres", "postgresql") else parsed.scheme
        if self.kind not in ("sqlite", "postgresql"):
            raise SyncError(
                f"DATABASE_URL scheme {parsed.scheme!r} not supported (sqlite:// or postgresql://)"
            )
        if self.kind == "sqlite":
            raw = url[len("sqlite://") :]
            if not raw.startswith("/") or raw == "/":
                raise SyncError(
                    "a SQLite DATABASE_URL looks like sqlite:///relative.db or sqlite:////abs/path.db"
                )
            self.sqlite_path = Path(raw[1:])

    def connect(self) -> Any:
        if self.kind == "sqlite":
            conn = sqlite3.connect(
                self.sqlite_path, isolation_level=None, check_same_thread=False, timeout=30
            )
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            return conn
        try:
            import psycopg
        except ImportError as exc:
            raise SyncError("PostgreSQL needs the psycopg package (pip install 'psycopg[binary]')") from exc
        return psycopg.connect(self.url, autocommit=True)

    def sql(self, statement: str) -> str:
        return statement if self.kind == "sqlite" else statement.replace("?", "%s")


class CloudDB:
    """Cloud storage with a group-commit writer thread."""

    def __init__(self, url: str) -> None:
        self._d = _Dialect(url)
        self.kind = self._d.kind
        self._local = threading.local()
        self._all_conns: list[Any] = []
        self._conns_lock = threading.Lock()
        with self._tx(self._conn()) as c:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    c.execute(stmt)
        self._queue: queue.Queue[tuple[Callable[[Any], Any], Future[Any]] | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="edgetwin-cloud-writer", daemon=True)
        self._writer.start()

    # --- connections ---------------------------------------------------------------------

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._d.connect()
            self._local.conn = conn
            with self._conns_lock:
                self._all_conns.append(conn)
        return conn

    @contextlib.contextmanager
    def _tx(self, conn: Any) -> Iterator[Any]:
        cur = conn.cursor()
        cur.execute("BEGIN")
        try:
            yield _Cursor(cur, self._d)
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    def close(self) -> None:
        self._queue.put(None)
        self._writer.join(timeout=10)
        with self._conns_lock:
            for c in self._all_conns:
                with contextlib.suppress(Exception):
                    c.close()
            self._all_conns.clear()

    # --- the writer ----------------------------------------------------------------------

    def _write_loop(self) -> None:
        conn = self._d.connect()
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                group = [first]
                while len(group) < GROUP_COMMIT_MAX:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._queue.put(None)
                        break
                    group.append(nxt)
                self._apply(conn, group)
        finally:
            conn.close()

    def _apply(self, conn: Any, group: list[tuple[Callable[[Any], Any], Future[Any]]]) -> None:
        """One transaction for the whole group; if any write in it fails, the group is rolled
        back and each write retried alone, so one bad request never fails the others."""
        try:
            with self._tx(conn) as c:
                values = [fn(c) for fn, _ in group]
        except Exception:
            if len(group) == 1:
                self._apply_alone(conn, group[0])
            else:
                for item in group:
                    self._apply_alone(conn, item)
            return
        for (_, fut), value in zip(group, values, strict=True):
            fut.set_result(value)

    def _apply_alone(self, conn: Any, item: tuple[Callable[[Any], Any], Future[Any]]) -> None:
        fn, fut = item
        try:
            with self._tx(conn) as c:
                value = fn(c)
        except SyncError as exc:
            fut.set_exception(exc)
        except Exception as exc:  # the write or its commit failed: not acknowledged
            fut.set_exception(SyncError(f"database write failed: {exc}"))
        else:
            fut.set_result(value)

    def submit(self, fn: Callable[[Any], Any]) -> Future[Any]:
        """Queue a write; the future resolves after the group holding it has committed."""
        fut: Future[Any] = Future()
        self._queue.put((fn, fut))
        return fut

    def write(self, fn: Callable[[Any], Any], timeout: float = 60.0) -> Any:
        return self.submit(fn).result(timeout)

    # --- gateways ------------------------------------------------------------------------

    def add_gateway(self, gateway_id: str, patient_id: str, key: bytes) -> None:
        def fn(c: _Cursor) -> None:
            if c.one("SELECT gateway_id FROM gateway WHERE gateway_id = ?", (gateway_id,)):
                raise SyncError(f"gateway {gateway_id!r} already exists")
            c.execute(
                "INSERT INTO gateway(gateway_id, patient_id, key_b64, created_ms) VALUES (?,?,?,?)",
                (gateway_id, patient_id, base64.b64encode(key).decode(), int(time.time() * 1000)),
            )

        self.write(fn)

    def gateway(self, gateway_id: str) -> GatewayInfo | None:
        row = self._read_one(
            "SELECT gateway_id, patient_id, key_b64, revoked FROM gateway WHERE gateway_id = ?", (gateway_id,)
        )
        if row is None:
            return None
        return GatewayInfo(row[0], row[1], base64.b64decode(row[2]), bool(row[3]))

    # --- ingest --------------------------------------------------------------------------

    def ingest_fn(self, batch: SyncBatch, patient_id: str, now_ms: int) -> Callable[[Any], IngestResult]:
        """The write that stores ``batch`` for ``patient_id`` exactly once (run by the writer)."""

        def fn(c: _Cursor) -> IngestResult:
            if c.one(
                "SELECT 1 FROM batch WHERE gateway_id = ? AND batch_seq = ?",
                (batch.gateway_id, batch.batch_seq),
            ):
                return IngestResult(batch.batch_seq, True, 0, 0)
            new = 0
            for w in batch.records:
                n = c.execute_count(
                    "INSERT INTO record(patient_id, kind, identity, time_ms, gateway_id, doc) VALUES (?,?,?,?,?,?) "
                    "ON CONFLICT DO NOTHING",
                    (patient_id, w.kind, identity(w, batch.gateway_id), record_time_ms(w), batch.gateway_id,
                     json.dumps(record_document(w), separators=(",", ":"), allow_nan=False)),
                )  # fmt: skip
                new += n
                if w.kind == "checkpoint" and w.record.blob is not None:
                    c.execute(
                        "INSERT INTO twin_blob(patient_id, time_ms, format, version, blob_b64) VALUES (?,?,?,?,?) "
                        "ON CONFLICT DO NOTHING",
                        (patient_id, record_time_ms(w), w.record.format, w.record.version,
                         base64.b64encode(w.record.blob).decode()),
                    )  # fmt: skip
            c.execute(
                "INSERT INTO batch(gateway_id, batch_seq, received_ms, n_new, n_duplicate) VALUES (?,?,?,?,?)",
                (batch.gateway_id, batch.batch_seq, now_ms, new, len(batch.records) - new),
            )
            return IngestResult(batch.batch_seq, False, new, len(batch.records) - new)

        return fn

    # --- reads ---------------------------------------------------------------------------

    def _read_one(self, sql: str, args: Sequence[Any]) -> Any:
        rows = self._read(sql, args)
        return rows[0] if rows else None

    def _read(self, sql: str, args: Sequence[Any]) -> list[Any]:
        cur = self._conn().cursor()
        cur.execute(self._d.sql(sql), tuple(args))
        rows = cur.fetchall()
        cur.close()
        return list(rows)

    def history(
        self, patient_id: str, kind: str, start_ms: int, end_ms: int, limit: int = 10_000
    ) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT doc FROM record WHERE patient_id = ? AND kind = ? AND time_ms >= ? AND time_ms < ? "
            "ORDER BY time_ms, identity LIMIT ?",
            (patient_id, kind, start_ms, end_ms, limit),
        )
        return [json.loads(r[0]) for r in rows]

    def count(self, patient_id: str, kind: str) -> int:
        return int(
            self._read_one(
                "SELECT count(*) FROM record WHERE patient_id = ? AND kind = ?", (patient_id, kind)
            )[0]
        )

    def patients(self) -> list[str]:
        return [r[0] for r in self._read("SELECT DISTINCT patient_id FROM gateway ORDER BY patient_id", ())]

    def latest_blob(self, patient_id: str) -> tuple[int, str, int, bytes] | None:
        row = self._read_one(
            "SELECT time_ms, format, version, blob_b64 FROM twin_blob WHERE patient_id = ? ORDER BY time_ms DESC LIMIT 1",
            (patient_id,),
        )
        return None if row is None else (int(row[0]), row[1], int(row[2]), base64.b64decode(row[3]))

    # --- parameter updates and jobs ------------------------------------------------------

    def add_param_update(self, patient_id: str, params: dict[str, float], basis: str, now_ms: int) -> int:
        def fn(c: _Cursor) -> int:
            row = c.one("SELECT max(version) FROM param_update WHERE patient_id = ?", (patient_id,))
            version = 1 if row is None or row[0] is None else int(row[0]) + 1
            c.execute(
                "INSERT INTO param_update(patient_id, version, created_ms, params, basis) VALUES (?,?,?,?,?)",
                (patient_id, version, now_ms, json.dumps(params, sort_keys=True, allow_nan=False), basis),
            )
            return version

        return int(self.write(fn))

    def latest_param_update(self, patient_id: str) -> ParamVersion | None:
        row = self._read_one(
            "SELECT version, created_ms, params, basis FROM param_update WHERE patient_id = ? "
            "ORDER BY version DESC LIMIT 1",
            (patient_id,),
        )
        if row is None:
            return None
        return ParamVersion(patient_id, int(row[0]), int(row[1]), json.loads(row[2]), row[3])

    def record_job(self, job_id: str, patient_id: str, started_ms: int, finished_ms: int | None, status: str,
                   detail: str = "") -> None:  # fmt: skip
        self.write(
            lambda c: c.execute(
                "INSERT INTO job_run(job_id, patient_id, started_ms, finished_ms, status, detail) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT (job_id) DO UPDATE SET finished_ms = excluded.finished_ms, status = excluded.status, "
                "detail = excluded.detail",
                (job_id, patient_id, started_ms, finished_ms, status, detail),
            )
        )

    def jobs(self, patient_id: str) -> list[tuple[str, str, str]]:
        return [
            (r[0], r[1], r[2])
            for r in self._read(
                "SELECT job_id, status, detail FROM job_run WHERE patient_id = ? ORDER BY started_ms",
                (patient_id,),
            )
        ]

    def last_data_ms(self, patient_id: str) -> int | None:
        row = self._read_one(
            "SELECT max(time_ms) FROM record WHERE patient_id = ? AND kind = 'cgm'", (patient_id,)
        )
        return None if row is None or row[0] is None else int(row[0])


class _Cursor:
    """A cursor speaking ``?`` placeholders on either database."""

    def __init__(self, cur: Any, d: _Dialect) -> None:
        self._cur = cur
        self._d = d

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        self._cur.execute(self._d.sql(sql), tuple(args))

    def execute_count(self, sql: str, args: Sequence[Any] = ()) -> int:
        self._cur.execute(self._d.sql(sql), tuple(args))
        return int(self._cur.rowcount)

    def one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        self._cur.execute(self._d.sql(sql), tuple(args))
        return self._cur.fetchone()


def open_database(url: str) -> CloudDB:
    return CloudDB(url)
