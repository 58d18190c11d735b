"""The sync outbox: batches fixed once opened, cursor moves only on acknowledgement, thinning."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgetwin.messages import CarbEntry
from edgetwin.store import Store, StoreError, TwinCheckpoint
from tests.store.helpers import at, cgm


def test_cursor_advances_only_on_ack_and_batches_survive_restart(tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    with Store.open(path) as store:
        assert store.open_batch(10) is None
        for i in range(25):
            store.add_cgm(cgm(i))
        store.add_carbs(CarbEntry(at(3), 20.0))
        batch = store.open_batch(10)
        assert batch is not None and batch.batch_seq == 1
        items = store.batch_items(batch)
        assert [i.kind for i in items] == ["cgm"] * 10
        assert [i.record for i in items] == [cgm(i) for i in range(10)]
        store.add_cgm(cgm(99))  # arrives while the batch is in flight
        assert store.sync_cursor() == 0
    # Crash before the acknowledgement: the same batch, same items, comes back.
    with Store.open(path) as store:
        again = store.open_batch(50)
        assert again == batch
        assert store.batch_items(again) == items
        assert store.outbox_backlog() == 27
        assert store.ack_batch(1) == batch.last_seq
        assert store.ack_batch(1) == batch.last_seq  # a repeated ack is harmless
        assert store.outbox_backlog() == 17
        nxt = store.open_batch(50)
        assert nxt is not None and nxt.batch_seq == 2
        kinds = [i.kind for i in store.batch_items(nxt)]
        assert kinds == ["cgm"] * 15 + ["carbs", "cgm"]
        store.ack_batch(2)
        assert store.outbox_backlog() == 0 and store.open_batch(5) is None
        with pytest.raises(StoreError, match="no sync batch 7"):
            store.ack_batch(7)
        assert store.counts()["cgm"] == 26  # acknowledged records stay in the store


def test_duplicates_are_not_queued_twice(tmp_path: Path) -> None:
    with Store.open(tmp_path / "edge.db") as store:
        store.add_cgm(cgm(1))
        store.add_cgm(cgm(1))
        assert store.outbox_backlog() == 1


def test_thinning_drops_only_intermediate_snapshots(tmp_path: Path) -> None:
    with Store.open(tmp_path / "edge.db") as store:
        for i in range(36):  # three hours at 5 min
            store.add_cgm(cgm(i))
            store.save_checkpoint(TwinCheckpoint(at(5 * i), "twin", 1, b"x", {"glucose_mg_dl": 100.0 + i}))
        assert store.thin_outbox(max_backlog=1000) == 0
        dropped = store.thin_outbox(max_backlog=10, keep_every_min=60)
        assert dropped == 36 - 4  # one per hour (3) and the newest
        batch = store.open_batch(1000)
        assert batch is not None
        items = store.batch_items(batch)
        assert sum(i.kind == "cgm" for i in items) == 36
        snaps = [i.record.time_utc for i in items if i.kind == "checkpoint"]
        assert snaps == [at(0), at(60), at(120), at(175)]
