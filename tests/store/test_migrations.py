"""Schema migrations: from an empty file and from every older version, data kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edgetwin.store import SCHEMA_VERSION, Store
from edgetwin.store.schema import MIGRATIONS, migrate
from tests.store.helpers import at, cgm


def _old_store(path: Path, version: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    assert migrate(conn, target=version) == (0, version)
    # Data as the code of that version wrote it (v1 had no origin column).
    conn.execute(
        "INSERT INTO cgm(time_ms, device_id, sequence, glucose_mg_dl, status, received_ms) "
        "VALUES (1709272800000, 'cgm-1', 0, 111.0, '', 1709272800500)"
    )
    conn.execute(
        "INSERT INTO carbs(time_ms, grams, source, received_ms) VALUES (1709273100000, 30.0, 'patient', 0)"
    )
    if version >= 2:  # from v2 on, the code queued every stored row for sync
        conn.execute("INSERT INTO sync_outbox(kind, row_id, time_ms) VALUES ('cgm', 1, 1709272800000)")
        conn.execute("INSERT INTO sync_outbox(kind, row_id, time_ms) VALUES ('carbs', 1, 1709273100000)")
    conn.close()


def test_there_is_more_than_one_version_to_test() -> None:
    assert SCHEMA_VERSION == len(MIGRATIONS) >= 3


def test_empty_file_migrates_to_current(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()  # a valid, empty SQLite file (0 bytes is refused as truncated)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 0")
    conn.execute("CREATE TABLE t(x)")
    conn.execute("DROP TABLE t")  # forces a header on disk without leaving schema objects
    conn.commit()
    conn.close()
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert not store.add_cgm(cgm(0)).duplicate


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_older_versions_migrate_keeping_data(tmp_path: Path, version: int) -> None:
    path = tmp_path / f"v{version}.db"
    _old_store(path, version)
    with Store.open(path, integrity="full") as store:
        assert store.schema_version == SCHEMA_VERSION
        [reading] = store.cgm_between(at(0), at(1))
        assert reading.glucose_mg_dl == 111.0 and reading.sequence == 0
        assert store.carbs_between(at(0), at(10))[0].grams == 30.0
        # Rows that existed before the outbox are queued for sync, oldest first.
        batch = store.open_batch(10)
        assert batch is not None
        assert [i.kind for i in store.batch_items(batch)] == ["cgm", "carbs"]
        assert [i.origin for i in store.batch_items(batch)] == ["device", "patient"]


def test_a_failed_step_leaves_the_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    _old_store(path, 1)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE sync_outbox(x)")  # makes step 2 fail half-way
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sync_batch'").fetchone()[0] == 0
    conn.close()
