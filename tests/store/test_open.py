"""Opening checks: damaged, truncated, foreign or newer files are reported and left untouched."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from edgetwin.store import SCHEMA_VERSION, Store, StoreCorruptError, StoreSchemaError
from tests.store.helpers import at, cgm


def _filled(path: Path, n: int = 400) -> Path:
    with Store.open(path) as store:
        store.add_many([cgm(i) for i in range(n)])
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_new_store_is_wal_full_sync_and_current(tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert not (tmp_path / "edge.db.creating").exists()


def test_empty_file_is_reported_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    path.touch()
    with pytest.raises(StoreCorruptError, match="empty"):
        Store.open(path)
    assert path.stat().st_size == 0


@pytest.mark.parametrize("keep", [0.5, 0.9, 50 / 4096])
def test_truncated_file_is_reported_not_replaced(tmp_path: Path, keep: float) -> None:
    path = _filled(tmp_path / "edge.db")
    data = path.read_bytes()
    path.write_bytes(data[: max(60, int(len(data) * keep))])
    before = _digest(path)
    with pytest.raises(StoreCorruptError, match="truncated"):
        Store.open(path)
    assert _digest(path) == before


def test_truncated_at_a_page_boundary_is_reported(tmp_path: Path) -> None:
    path = _filled(tmp_path / "edge.db")
    data = path.read_bytes()
    path.write_bytes(data[: 4096 * (len(data) // 4096 // 2)])
    with pytest.raises(StoreCorruptError, match="truncated"):
        Store.open(path)


def test_damaged_page_fails_the_integrity_check(tmp_path: Path) -> None:
    path = _filled(tmp_path / "edge.db")
    data = bytearray(path.read_bytes())
    page = 4096
    for p in range(2, len(data) // page):  # scribble over the b-tree pages, keep the header page
        data[p * page : p * page + 64] = b"\xa5" * 64
    path.write_bytes(bytes(data))
    before = _digest(path)
    with pytest.raises(StoreCorruptError):
        Store.open(path)
    assert _digest(path) == before


def test_not_a_database_and_another_programs_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreCorruptError, match="not an SQLite database"):
        Store.open(junk)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE contacts (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreCorruptError, match="not an EdgeTwin store"):
        Store.open(other)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = _filled(tmp_path / "edge.db", 3)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreSchemaError) as info:
        Store.open(path)
    assert info.value.found == SCHEMA_VERSION + 1 and info.value.known == SCHEMA_VERSION


def test_reopen_after_unclean_close_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    store = Store.open(path)
    store.add_many([cgm(i) for i in range(10)])
    # Simulate a crash: copy the database and its WAL as they are while the writer is open.
    crashed = tmp_path / "crashed.db"
    crashed.write_bytes(path.read_bytes())
    wal = path.with_name(path.name + "-wal")
    crashed.with_name(crashed.name + "-wal").write_bytes(wal.read_bytes())
    store.close()
    with Store.open(crashed, integrity="full") as again:
        assert len(again.cgm_between(at(0), at(60))) == 10
