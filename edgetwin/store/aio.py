"""The one place where the event loop meets SQLite.

``AsyncStore`` runs every store call on ONE dedicated worker thread, in the order the coroutines
asked: the loop never blocks on disk, writes keep their order, and the connection is only ever
used from that thread. The gateway holds one ``AsyncStore`` for its whole life::

    store = await AsyncStore.open(path)
    ack = await store.add(reading)            # durable when this returns
    recent = await store.call(lambda s: s.cgm_between(t0, t1))
    await store.aclose()

Everything :class:`~edgetwin.store.store.Store` offers is reachable through :meth:`call`; the
hot paths have their own coroutine for readability. Cancelling an awaiting coroutine does not
cancel a write already handed to the thread: the write completes (durably) and its result is
dropped, as for any acknowledgement lost in transit; the record's identity makes the retry a
reported duplicate.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from edgetwin.store.records import Ack
from edgetwin.store.store import Store

__all__ = ["AsyncStore"]

T = TypeVar("T")


class AsyncStore:
    """Async facade over a :class:`Store`, one worker thread."""

    def __init__(self, store: Store, executor: ThreadPoolExecutor | None = None) -> None:
        self.store = store
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgetwin-store")

    @classmethod
    async def open(cls, path: str | os.PathLike[str], **kwargs: Any) -> AsyncStore:
        """``Store.open`` on the worker thread (the integrity check can take a moment)."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgetwin-store")
        loop = asyncio.get_running_loop()
        try:
            store = await loop.run_in_executor(executor, partial(Store.open, path, **kwargs))
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(store, executor)

    async def call(self, fn: Callable[[Store], T]) -> T:
        """Run ``fn(store)`` on the store thread and return its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, self.store)

    async def add(self, record: object, *, origin: str | None = None) -> Ack:
        return await self.call(lambda s: s.add(record, origin=origin))

    async def add_many(self, records: Iterable[object], *, origin: str | None = None) -> list[Ack]:
        items = list(records)
        return await self.call(lambda s: s.add_many(items, origin=origin))

    async def aclose(self) -> None:
        """Finish queued calls, close the database, stop the thread."""
        try:
            await self.call(lambda s: s.close())
        finally:
            self._executor.shutdown(wait=True)
