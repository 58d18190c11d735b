"""Nightscout v1 and v3 uploads against the local contract fake, with faults."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from edgetwin.messages import CarbEntry, CgmReading
from edgetwin.store import Store
from sync.cloud.server import ServerThread
from sync.nightscout.client import NightscoutClient, NightscoutUploader
from sync.nightscout.documents import direction, identifier
from sync.transport import RetryPolicy
from tests.sync.nightscout_fake import NightscoutFake
from tests.sync.records import DAY0, day_records


@pytest.fixture
def ns() -> Iterator[tuple[NightscoutFake, str]]:
    fake = NightscoutFake()
    server = ServerThread(fake.app).start()
    try:
        yield fake, server.url
    finally:
        server.stop()


def _client(url: str, fake: NightscoutFake, api: str) -> NightscoutClient:
    kw = {"api_secret": "0123456789abcdef"} if api == "v1" else {"access_token": fake.access_token}
    return NightscoutClient(url, requests.Session(), api=api, retry=RetryPolicy(max_attempts=4, read_timeout_s=5),  # type: ignore[arg-type]
                            sleep=lambda s: None, rng=random.Random(0), **kw)  # fmt: skip


@pytest.mark.parametrize("api", ["v1", "v3"])
def test_upload_everything_once_through_faults(
    ns: tuple[NightscoutFake, str], tmp_path: Path, api: str
) -> None:
    fake, url = ns
    with Store.open(tmp_path / "edge.db") as store:
        for r in day_records(hours=8):
            store.add(r)
        store.add_cgm(CgmReading(time_utc=DAY0.replace(hour=23), glucose_mg_dl=140.0, device_id="ns-cgm"),
                      origin="nightscout")  # fmt: skip
        store.add_carbs(CarbEntry(DAY0.replace(hour=22), 20.0, source="careportal"), origin="nightscout")
        uploader = NightscoutUploader(store, _client(url, fake, api), chunk=10)
        fake.fail_next = 2
        fake.lose_next = 1
        report = uploader.sync_once()
        assert report.error == ""
        assert report.skipped_from_nightscout == 2
        # Run again: nothing new is sent; with lost answers the retries deduplicated.
        assert uploader.sync_once().entries == 0
        n_cgm = store.counts()["cgm"] - 1
    sgv = [d for d in fake.docs["entries"] if d["type"] == "sgv"]
    assert len(sgv) == n_cgm == 96
    assert all(d["device"] != "edgetwin://ns-cgm" for d in sgv)
    assert len({d["date"] for d in sgv}) == len(sgv)
    assert {t["eventType"] for t in fake.docs["treatments"]} >= {"Correction Bolus", "Carb Correction"}
    assert all(t.get("enteredBy") == "edgetwin" for t in fake.docs["treatments"])
    status = fake.docs["devicestatus"]
    assert len(status) == 96
    preds = status[-1]["openaps"]["suggested"]["predBGs"]["IOB"]
    assert len(preds) == 13 and all(isinstance(p, int) for p in preds)
    assert "reason" in status[-1]["openaps"]["suggested"]


def test_v3_identifiers_are_local_and_stable() -> None:
    a = identifier("edgetwin://cgm", 1_700_000_000_000, "sgv")
    assert a == identifier("edgetwin://cgm", 1_700_000_000_000, "sgv")
    assert a != identifier("edgetwin://cgm", 1_700_000_300_000, "sgv")
    assert [direction(v) for v in (4, 2.5, 1.5, 0, -1.5, -2.5, -4, None)] == [
        "DoubleUp", "SingleUp", "FortyFiveUp", "Flat", "FortyFiveDown", "SingleDown", "DoubleDown", "NONE"]  # fmt: skip


def test_wrong_secret_is_reported_not_retried(ns: tuple[NightscoutFake, str], tmp_path: Path) -> None:
    fake, url = ns
    bad = NightscoutClient(
        url, requests.Session(), api="v1", api_secret="wrong-secret-123", sleep=lambda s: None
    )
    with Store.open(tmp_path / "edge.db") as store:
        store.add_cgm(CgmReading(time_utc=DAY0, glucose_mg_dl=100.0, device_id="cgm"))
        report = NightscoutUploader(store, bad).sync_once()
        assert "401" in report.error
        assert store.sync_value("ns:cgm") == 0  # progress not advanced
    assert fake.requests == 1
