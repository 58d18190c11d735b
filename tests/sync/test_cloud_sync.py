"""Edge store → uploader → real cloud on loopback: exactly once through faults and outages."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import requests

from edgetwin.clock import ManualClock
from edgetwin.messages import CgmReading
from edgetwin.store import Store
from sync.transport import CloudClient, RetryPolicy
from sync.uploader import Uploader
from tests.sync.conftest import Cloud, FaultAdapter, session_with
from tests.sync.records import DAY0, day_records


def _fill(store: Store, records: list[object]) -> None:
    for r in records:
        store.add(r)


def _drain(uploader: Uploader, rounds: int = 200) -> None:
    for _ in range(rounds):
        report = uploader.sync_once()
        if report.backlog == 0 and not report.error:
            return
    raise AssertionError(f"outbox not drained: {report}")


def _cloud_cgm(cloud: Cloud, client: CloudClient) -> list[dict[str, object]]:
    return client.history("cgm", 0, 2**62)


def test_a_day_arrives_complete_and_queryable(cloud: Cloud, tmp_path: Path) -> None:
    cred = cloud.add_gateway("patient-A")
    client = CloudClient(cred, requests.Session())
    with Store.open(tmp_path / "edge.db") as store:
        records = day_records(hours=6)
        _fill(store, records)
        counts = store.counts()
        uploader = Uploader(store, client, max_items=300)
        _drain(uploader)
        assert store.outbox_backlog() == 0
    for kind in ("cgm", "suggestion", "decision", "checkpoint", "carbs", "insulin", "pump_status", "alarm"):
        assert cloud.db.count("patient-A", kind) == counts[kind], kind
    got = _cloud_cgm(cloud, client)
    sent = [r for r in records if isinstance(r, CgmReading)]
    assert [g["glucose_mg_dl"] for g in got] == [r.glucose_mg_dl for r in sent]
    assert cloud.db.latest_blob("patient-A") is not None


def test_every_reading_exactly_once_through_network_faults(cloud: Cloud, tmp_path: Path) -> None:
    cred = cloud.add_gateway("patient-B")
    rng = random.Random(7)
    faults = ["ok", "500", "503", "timeout_after", "reset", "duplicate", "replay_later"]
    adapter = FaultAdapter(plan=[rng.choice(faults) for _ in range(400)])
    delays: list[float] = []
    client = CloudClient(cred, session_with(adapter), retry=RetryPolicy(max_attempts=4), sleep=delays.append,
                         rng=random.Random(1))  # fmt: skip
    with Store.open(tmp_path / "edge.db") as store:
        records = day_records(seed=3, hours=8)
        uploader = Uploader(store, client, max_items=40, max_batches=5)
        for i in range(0, len(records), 50):  # readings keep arriving while uploads fail and retry
            _fill(store, records[i : i + 50])
            uploader.sync_once()
        _drain(uploader)
        stored = store.cgm_between(DAY0, DAY0 + timedelta(days=2))
    got = _cloud_cgm(cloud, client)
    assert len(got) == len(stored) == 96
    assert sorted(g["time_utc"] for g in got) == sorted(int(r.time_utc.timestamp() * 1000) for r in stored)
    assert {"500", "timeout_after", "reset", "duplicate", "replay_later"} <= set(adapter.faults_seen)
    assert delays and all(d >= 0 for d in delays)


def test_hours_of_outage_then_bounded_backfill(cloud: Cloud, tmp_path: Path) -> None:
    """Six simulated hours with the cloud down; the gateway's clock also runs hours ahead of the
    cloud's (simulated time), which the skew correction absorbs."""
    cred = cloud.add_gateway("patient-C")
    sim = ManualClock(DAY0)
    outage_end = DAY0 + timedelta(hours=6)
    adapter = FaultAdapter(down=lambda: sim.now_utc() < outage_end)
    client = CloudClient(cred, session_with(adapter), retry=RetryPolicy(max_attempts=3), sleep=sim.advance,
                         now_ms=lambda: int(sim.now_utc().timestamp() * 1000))  # fmt: skip
    with Store.open(tmp_path / "edge.db", clock=sim) as store:
        uploader = Uploader(store, client, max_items=25, max_batches=2)
        errors = 0
        for k in range(12 * 8):  # eight hours, a reading and an upload attempt every 5 minutes
            store.add_cgm(
                CgmReading(
                    time_utc=sim.now_utc(), glucose_mg_dl=100.0 + k % 50, device_id="cgm", sequence=5 * k
                )
            )
            report = uploader.sync_once()
            errors += bool(report.error)
            assert report.batches <= 2  # back-fill is bounded per call
            sim.advance(300)
        assert errors >= 60
        _drain(uploader)
    got = _cloud_cgm(cloud, client)
    assert len(got) == 96 and len({g["time_utc"] for g in got}) == 96
    assert client.skew_ms != 0
