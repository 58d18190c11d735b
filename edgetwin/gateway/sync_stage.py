"""The sync stage: the store's outbox to the cloud twin, parameter updates back down.

Every ``[sync] interval_min`` (clock time) the stage runs :class:`sync.uploader.Uploader` in a
worker thread (``requests`` and SQLite block; the ``Store`` is thread-safe), then asks the cloud
for newer twin parameters (:func:`sync.downlink.pull_and_adopt`: verified, bound-checked, kept
in ``DATA_DIR/params`` with one step of rollback). Nothing here can lose data: the outbox
cursor moves only on the cloud's acknowledgement, and an unreachable cloud only grows the
backlog shown on the status page. A batch the cloud *refuses* (4xx: a revoked or wrong
credential) sounds a warning alarm until the next batch goes through.

Request timestamps use real time (the cloud checks them against its own clock), never the
gateway's bench clock.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from edgetwin.gateway.config import SyncConfig

if TYPE_CHECKING:
    from edgetwin.gateway.runtime import Gateway

__all__ = ["SyncStage"]

log = logging.getLogger("edgetwin.gateway.sync")


class SyncStage:
    def __init__(self, gw: Gateway, cfg: SyncConfig) -> None:
        import requests

        from sync.auth import Credential
        from sync.downlink import ParamsKeeper
        from sync.transport import CloudClient, RetryPolicy
        from sync.uploader import Uploader

        assert gw.store is not None
        self.gw = gw
        self.cfg = cfg
        self.credential = Credential.load(cfg.credentials_file)
        self.session = requests.Session()
        # Few quick retries inside a round: the next round (interval_min later) is the real retry.
        retry = RetryPolicy(
            max_attempts=3, base_s=0.5, cap_s=30.0, connect_timeout_s=5.0, read_timeout_s=30.0
        )
        self.client = CloudClient(self.credential, self.session, base_url=cfg.endpoint, retry=retry)
        self.uploader = Uploader(gw.store.store, self.client)
        self.keeper = ParamsKeeper(gw.cfg.data_dir / "params")
        self.batches = 0
        self.records = 0
        self.rounds = 0
        self.state: dict[str, Any] = {
            "state": "starting",
            "endpoint": cfg.endpoint,
            "gateway_id": self.credential.gateway_id,
            "params_version": self.keeper.current_version,
        }

    async def run(self) -> None:
        try:
            while True:
                await self.once()
                await self.gw.clock.sleep(self.cfg.interval_min * 60.0)
        finally:
            self.session.close()

    async def once(self) -> None:
        """One round: upload what waits, then look for parameter updates."""
        from sync.downlink import pull_and_adopt
        from sync.errors import SyncError

        gw = self.gw
        self.rounds += 1
        now = gw.clock.now_utc().isoformat()
        try:
            report = await asyncio.to_thread(self.uploader.sync_once)
        except Exception as exc:  # the store or the codec failed: keep the gateway running, say so
            log.exception("sync round failed", extra={"event": "sync_failed"})
            self._set("failing", f"{type(exc).__name__}: {exc}", now)
            return
        self.batches += report.batches
        self.records += report.records
        self.state.update(
            backlog=report.backlog,
            uploaded_batches=self.batches,
            uploaded_records=self.records,
            last_attempt_utc=now,
        )
        if report.rejected:
            self._set("rejected", report.error, now)
            await gw.alarms.raise_alarm(
                "sync_rejected",
                f"The cloud refuses this gateway's data ({report.error}). Data stays on the gateway; "
                "check its credential.",
                "warning",
            )
            return
        if report.error:
            self._set("offline", report.error, now)
            log.warning("cloud unreachable: %s", report.error, extra={"event": "sync_offline"})
            return
        self._set("ok", "", now)
        self.state["last_ok_utc"] = now
        await gw.alarms.resolve("sync_rejected", "The cloud accepts this gateway's data again.")
        try:
            params = await asyncio.to_thread(pull_and_adopt, self.client, self.keeper, self.credential)
        except SyncError as exc:
            log.error("parameter update refused: %s", exc, extra={"event": "params_refused"})
            self.state["params_detail"] = str(exc)
            return
        if params is not None:
            self.state["params_version"] = self.keeper.current_version
            log.info(
                "kept the cloud's re-personalised parameters v%d in DATA_DIR/params "
                "(verified; the twin itself re-personalises nightly on the gateway)",
                self.keeper.current_version,
                extra={"event": "params_adopted", "version": self.keeper.current_version},
            )

    def _set(self, state: str, detail: str, now: str) -> None:
        self.state["state"] = state
        self.state["detail"] = detail
        self.gw.state.sync = self.state
