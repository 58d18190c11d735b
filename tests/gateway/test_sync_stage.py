"""The gateway's outbox reaches a real cloud service on loopback; an outage only grows the backlog."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edgetwin.clock import ScaledClock
from edgetwin.gateway import Gateway
from edgetwin.gateway.demo import LocalCloud
from edgetwin.gateway.devices import OpenedDevices
from tests.gateway.helpers import START, CollectingNotifier, ScriptedCgm, make_config
from tests.gateway.trend_twin import TrendTwinFactory

pytest.importorskip("sync.cloud.server", reason="the sync package is part of this build")


@pytest.mark.asyncio
async def test_readings_reach_the_cloud_once_and_an_outage_only_delays_them(tmp_path: Path) -> None:
    cloud = LocalCloud.start(tmp_path / "cloud")
    try:
        clock = ScaledClock(START, 3000.0)
        src = ScriptedCgm(clock)
        sync = {"endpoint": cloud.url, "credentials_file": str(cloud.credential_file), "interval_min": 5}
        cfg = make_config(tmp_path / "gw", sync=sync)
        note = CollectingNotifier()
        gw = Gateway(
            cfg,
            clock=clock,
            devices=OpenedDevices(sources={"cgm": src}),
            notifiers=[note],
            twin_factory=TrendTwinFactory(),
        )
        async with gw:
            await asyncio.sleep(60 * 60 / clock.factor)
            assert gw.state.sync["state"] == "ok"
            cloud.server.stop()  # the cloud goes away for a while
            for _ in range(200):
                await asyncio.sleep(0.05)
                if gw.state.sync["state"] == "offline":
                    break
            assert gw.state.sync["state"] == "offline"
            assert "unreachable" in gw.state.sync["detail"] or "attempts" in gw.state.sync["detail"]
            assert gw.state.sync["backlog"] > 0
            stored_during_outage = len(src.acks)
            from sync.cloud.app import create_app
            from sync.cloud.server import ServerThread

            port = int(cloud.url.rsplit(":", 1)[1])
            cloud.server = ServerThread(create_app(cloud.db), port=port).start()  # back on the same address
            await asyncio.sleep(30 * 60 / clock.factor)
            assert gw.sync is not None
            await gw.sync.once()
            assert gw.state.sync["state"] == "ok"
        assert "sync_rejected" not in note.kinds()  # unreachable is not refused: no alarm, data queued
        assert cloud.count("cgm") == len({r.sequence for r, _ in src.acks}) >= stored_during_outage
    finally:
        cloud.stop()
