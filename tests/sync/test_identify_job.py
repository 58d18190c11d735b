"""The cloud's default re-personalisation: the twin's batch identification on stored history."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from edgetwin.cli import main
from edgetwin.messages import CarbEntry, CgmReading, InsulinDelivery
from edgetwin.model.cohort import load_patient
from edgetwin.model.params import PARAM_NAMES
from edgetwin.runner import LocalRunner
from edgetwin.store import Store
from sync.cloud.db import CloudDB
from sync.cloud.identify import seed_params, twin_identify
from sync.cloud.jobs import repersonalise
from sync.demo import patient_day
from sync.transport import CloudClient
from sync.uploader import Uploader
from tests.sync.conftest import Cloud

START = datetime(2026, 3, 1, tzinfo=UTC)


def _upload_days(cloud: Cloud, patient: str, tmp: Path, days: int) -> None:
    client = CloudClient(cloud.add_gateway(patient), requests.Session())
    with Store.open(tmp / f"{patient}.db") as store:
        for d in range(days):
            day = patient_day(START + timedelta(days=d), patient="adult#001", seed=d, blob_size=64)
            store.add_many([r for r in day if isinstance(r, (CgmReading, InsulinDelivery, CarbEntry))])
        uploader = Uploader(store, client, max_items=2000, max_batches=100)
        assert uploader.sync_once().backlog == 0


@pytest.mark.slow
def test_wrong_sensitivity_moves_toward_the_truth(cloud: Cloud, tmp_path: Path) -> None:
    """Seeded with 40 % too little insulin sensitivity, one round on a week of the true
    patient's data publishes parameters closer to the truth (the prior is deliberately wide but
    the likelihood tempered, so a week is what it takes, as the twin's benchmark measures)."""
    _upload_days(cloud, "patient-T", tmp_path, days=7)
    truth = load_patient("adult#001")
    seed = seed_params(virtual="adult#001")
    seed["Vmx"] *= 0.6
    seed["kp3"] *= 0.6
    cloud.db.add_param_update("patient-T", seed, "seed: test", 0)
    now = int((START + timedelta(days=7)).timestamp() * 1000)
    [outcome] = repersonalise(cloud.db, twin_identify, LocalRunner(1, processes=False), now_ms=now,
                              window_days=8, patients=["patient-T"])  # fmt: skip
    assert outcome.status == "published", outcome
    published = cloud.db.latest_param_update("patient-T")
    assert published is not None and published.version == 2
    assert set(published.params) == set(PARAM_NAMES)
    err_seed = abs(seed["Vmx"] - truth.Vmx) / truth.Vmx
    err_pub = abs(published.params["Vmx"] - truth.Vmx) / truth.Vmx
    assert err_pub < err_seed - 0.1, (err_seed, err_pub)


def test_unseeded_patient_fails_with_the_remedy(cloud: Cloud, tmp_path: Path) -> None:
    _upload_days(cloud, "patient-U", tmp_path, days=1)
    [outcome] = repersonalise(cloud.db, twin_identify, LocalRunner(1, processes=False),
                              now_ms=int(time.time() * 1000), window_days=3650, patients=["patient-U"])  # fmt: skip
    assert outcome.status == "failed" and "edgetwin cloud seed" in outcome.detail


def test_seed_command_publishes_from_a_virtual_patient_or_a_profile(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    assert main(["cloud", "seed", "--database-url", url, "--patient", "p1", "--virtual", "child#002"]) == 0
    profile = tmp_path / "p.toml"
    profile.write_text(
        "weight_kg = 70\ncarb_ratio_g_per_u = 10\ncorrection_factor_mg_dl_per_u = 40\nbasal = 0.9\n"
    )
    assert main(["cloud", "seed", "--database-url", url, "--patient", "p2", "--profile", str(profile)]) == 0
    db = CloudDB(url)
    try:
        first = db.latest_param_update("p1")
        second = db.latest_param_update("p2")
    finally:
        db.close()
    assert first is not None and first.params["BW"] == load_patient("child#002").BW
    assert second is not None and second.params["BW"] == pytest.approx(70.0)
