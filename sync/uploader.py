"""The outbox uploader: reads the store's sync outbox, uploads batches, acknowledges them.

One call to :meth:`Uploader.sync_once` uploads up to ``max_batches`` batches of at most
``max_items`` records each (bounded back-fill after an outage: later calls continue), then
returns an :class:`UploadReport`. A batch's range is fixed in the store when opened and its
bytes are a pure function of that range, so a retry — after a timeout, a reset, or a gateway
restart — re-sends the same (gateway, sequence) and the cloud stores it once. The cursor moves
only when the cloud acknowledges the batch's sequence number.

The gateway runs it from asyncio through a thread (requests and SQLite both block)::

    uploader = Uploader(store, CloudClient(cred, requests.Session()))
    report = await asyncio.to_thread(uploader.sync_once)   # e.g. every 5 minutes

``Store`` is thread-safe (one lock), so this thread and the gateway's store thread can share it.
Twin checkpoints always travel as their summary; the opaque blob of the newest one goes up at
most every ``blob_interval_h`` hours (default daily: a full-state backup for a replacement
gateway; None never sends blobs). Intermediate twin snapshots are thinned when the backlog exceeds ``max_backlog`` (readings,
treatments, suggestions and decisions never are).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from edgetwin.store import Store
from edgetwin.timeutil import to_epoch_ms
from sync.codec import WireRecord, encode_batch
from sync.errors import RejectedError, TransportError
from sync.transport import CloudClient

__all__ = ["UploadReport", "Uploader"]

_LAST_BLOB = "last_blob_ms"

log = logging.getLogger("edgetwin.sync")


@dataclass(frozen=True)
class UploadReport:
    batches: int = 0
    records: int = 0
    bytes_sent: int = 0
    backlog: int = 0
    thinned: int = 0
    error: str = ""
    """Empty when the outbox was drained (or the per-call bound reached) without a failure."""
    rejected: bool = False
    """The cloud refused a batch (4xx): it stays queued; the gateway should raise an alarm."""


class Uploader:
    def __init__(
        self,
        store: Store,
        client: CloudClient,
        *,
        max_items: int = 2000,
        max_batches: int = 20,
        max_backlog: int = 50_000,
        blob_interval_h: float | None = 24.0,
    ) -> None:
        self._store = store
        self._client = client
        self.max_items = max_items
        self.max_batches = max_batches
        self.max_backlog = max_backlog
        self.blob_interval_ms = None if blob_interval_h is None else int(blob_interval_h * 3_600_000)

    def encoded_batch(self) -> tuple[int, bytes, int, int | None] | None:
        """(batch seq, bytes, records, time of the twin blob it carries or None) of the batch to
        send next, or None when all is synced."""
        batch = self._store.open_batch(self.max_items)
        if batch is None:
            return None
        items = self._store.batch_items(batch)
        records = [WireRecord(i.kind, i.row_id, i.record, i.origin) for i in items]
        blob_ms = self._blob_due(records)
        data = encode_batch(self._client.gateway_id, batch.batch_seq, 0, records,
                            blobs="none" if blob_ms is None else "latest")  # fmt: skip
        return batch.batch_seq, data, len(records), blob_ms

    def _blob_due(self, records: list[WireRecord]) -> int | None:
        """Time of the newest twin blob in ``records`` if it is due for upload, else None."""
        if self.blob_interval_ms is None:
            return None
        newest = max((to_epoch_ms(r.record.time_utc) for r in records
                      if r.kind == "checkpoint" and r.record.blob is not None), default=None)  # fmt: skip
        if newest is None or newest - self._store.sync_value(_LAST_BLOB, -(2**62)) < self.blob_interval_ms:
            return None
        return newest

    def sync_once(self) -> UploadReport:
        thinned = self._store.thin_outbox(max_backlog=self.max_backlog)
        batches = records = sent = 0
        error = ""
        rejected = False
        for _ in range(self.max_batches):
            nxt = self.encoded_batch()
            if nxt is None:
                break
            seq, data, n, blob_ms = nxt
            try:
                answer = self._client.post_batch(data)
            except RejectedError as exc:
                log.error("cloud rejected batch %d: %s", seq, exc)
                error, rejected = str(exc), True
                break
            except TransportError as exc:
                error = str(exc)
                break
            if answer.get("acked") != seq:
                error = f"cloud acknowledged {answer.get('acked')!r} for batch {seq}"
                log.error("%s", error)
                break
            self._store.ack_batch(seq)
            if blob_ms is not None:
                self._store.set_sync_value(_LAST_BLOB, blob_ms)
            batches, records, sent = batches + 1, records + n, sent + len(data)
        backlog = self._store.outbox_backlog()
        return UploadReport(batches, records, sent, backlog, thinned, error, rejected)
