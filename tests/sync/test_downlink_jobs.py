"""Re-personalisation jobs → signed parameter updates → verified adoption and rollback on the edge."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import msgpack
import pytest
import requests

from edgetwin.errors import ConfigError
from edgetwin.model.cohort import load_patient
from edgetwin.model.params import PARAM_NAMES
from edgetwin.runner import LocalRunner, make_runner
from edgetwin.store import Store
from sync.cloud.jobs import load_identify, repersonalise
from sync.downlink import ParamsKeeper, ParamUpdate, decode_update, encode_update, pull_and_adopt
from sync.errors import PayloadError, SyncError, UpdateRejectedError
from sync.transport import CloudClient
from sync.uploader import Uploader
from tests.sync.conftest import Cloud
from tests.sync.identify_example import crashes, nonsense, scale_sensitivity
from tests.sync.records import day_records


def _cohort_params() -> dict[str, float]:
    pp = load_patient("adult#002")
    return {n: float(getattr(pp, n)) for n in PARAM_NAMES}


def _upload_day(cloud: Cloud, patient: str, tmp: Path) -> CloudClient:
    cred = cloud.add_gateway(patient)
    client = CloudClient(cred, requests.Session())
    with Store.open(tmp / f"{patient}.db") as store:
        for r in day_records(hours=26):
            store.add(r)
        uploader = Uploader(store, client, max_items=1000, max_batches=50)
        assert uploader.sync_once().backlog == 0
    return client


def test_job_publishes_signed_update_that_the_gateway_adopts_and_can_roll_back(
    cloud: Cloud, tmp_path: Path
) -> None:
    client = _upload_day(cloud, "patient-J", tmp_path)
    _upload_day(cloud, "patient-K", tmp_path)
    runner = LocalRunner(2)
    try:
        outcomes = repersonalise(cloud.db, scale_sensitivity, runner, now_ms=int(time.time() * 1000),
                                 window_days=365 * 10, min_readings=288)  # fmt: skip
    finally:
        runner.close()
    assert sorted((o.patient_id, o.status) for o in outcomes) == [
        ("patient-J", "published"),
        ("patient-K", "published"),
    ]
    keeper = ParamsKeeper(tmp_path / "params")
    cred = client.credential
    adopted = pull_and_adopt(client, keeper, cred)
    assert adopted is not None and keeper.current_version == 1
    assert pull_and_adopt(client, keeper, cred) is None  # nothing newer
    # A second round publishes v2; the gateway adopts it, then rolls back to v1 and does not re-adopt v2.
    cloud.db.add_param_update("patient-J", _cohort_params(), "manual", int(time.time() * 1000))
    assert pull_and_adopt(client, keeper, cred) is not None and keeper.current_version == 2
    back = keeper.rollback()
    assert back is not None and keeper.current_version == 1
    assert pull_and_adopt(client, keeper, cred) is None
    assert [j[1] for j in cloud.db.jobs("patient-J")] == ["published"]


def test_bad_results_are_recorded_never_published(cloud: Cloud, tmp_path: Path) -> None:
    _upload_day(cloud, "patient-L", tmp_path)
    runner = make_runner("local:1")
    try:
        for fn, status in ((nonsense, "rejected"), (crashes, "failed")):
            [o] = repersonalise(cloud.db, fn, runner, now_ms=int(time.time() * 1000), window_days=3650,
                                patients=["patient-L"])  # fmt: skip
            assert o.status == status, o
    finally:
        runner.close()
    assert cloud.db.latest_param_update("patient-L") is None
    assert "BW=900" in cloud.db.jobs("patient-L")[0][2]


def test_too_little_data_is_skipped(cloud: Cloud) -> None:
    cloud.add_gateway("patient-empty")
    [o] = repersonalise(cloud.db, scale_sensitivity, LocalRunner(1, processes=False), now_ms=0,
                        patients=["patient-empty"])  # fmt: skip
    assert o.status == "skipped"


def test_updates_are_verified_and_bounded(tmp_path: Path) -> None:
    key = b"k" * 32
    good = ParamUpdate("p1", 3, 0, _cohort_params(), "test")
    data = encode_update(good, key)
    assert decode_update(data, key) == good
    with pytest.raises(UpdateRejectedError, match="signature"):
        decode_update(data, b"x" * 32)
    env = msgpack.unpackb(data)
    env["u"] = env["u"].replace(b"test", b"TEST")
    with pytest.raises(UpdateRejectedError, match="signature"):
        decode_update(msgpack.packb(env), key)
    with pytest.raises(PayloadError):
        decode_update(b"\x00garbage", key)
    keeper = ParamsKeeper(tmp_path)
    with pytest.raises(UpdateRejectedError, match="patient"):
        keeper.adopt(good, patient_id="p2")
    bad = ParamUpdate("p1", 4, 0, {**_cohort_params(), "kabs": 50.0}, "")
    with pytest.raises(UpdateRejectedError, match="kabs"):
        keeper.adopt(bad, patient_id="p1")
    partial = ParamUpdate("p1", 4, 0, {"BW": 70.0}, "")
    with pytest.raises(UpdateRejectedError, match="missing"):
        keeper.adopt(partial, patient_id="p1")
    assert keeper.current() is None and keeper.current_version == 0
    keeper.adopt(good, patient_id="p1")
    with pytest.raises(UpdateRejectedError, match="not newer"):
        keeper.adopt(good, patient_id="p1")
    assert keeper.rollback() is None and keeper.current() is None


def test_runner_and_identify_configuration() -> None:
    assert load_identify("tests.sync.identify_example:scale_sensitivity") is scale_sensitivity
    for bad in ("nope", "tests.sync.identify_example:missing", "no.such.module:fn"):
        with pytest.raises(SyncError):
            load_identify(bad)
    with pytest.raises(ConfigError, match="unknown job runner"):
        make_runner("mainframe")
    if importlib.util.find_spec("dask") is None:  # optional: without it the error says what to install
        with pytest.raises(ConfigError, match="dask"):
            make_runner("dask://127.0.0.1:8786")
