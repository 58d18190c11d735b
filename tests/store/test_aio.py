"""The asyncio choke point: one worker thread, calls in order, the loop never blocks."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from edgetwin.store import AsyncStore, StoreCorruptError
from tests.store.helpers import at, cgm


@pytest.mark.asyncio
async def test_calls_run_in_order_on_one_thread(tmp_path: Path) -> None:
    store = await AsyncStore.open(tmp_path / "edge.db")
    threads: set[str] = set()

    async def add(i: int) -> bool:
        ack = await store.add(cgm(i))
        threads.add(await store.call(lambda s: threading.current_thread().name))
        return ack.duplicate

    results = await asyncio.gather(*(add(i % 30) for i in range(60)))
    assert results.count(False) == 30 and results.count(True) == 30
    assert len(threads) == 1 and threads != {threading.current_thread().name}
    acks = await store.add_many([cgm(40), cgm(41)])
    assert [a.duplicate for a in acks] == [False, False]
    assert len(await store.call(lambda s: s.cgm_between(at(0), at(500)))) == 32
    await store.aclose()


@pytest.mark.asyncio
async def test_open_errors_reach_the_caller(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(StoreCorruptError):
        await AsyncStore.open(bad)
