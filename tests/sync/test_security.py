"""Credentials, signatures, replay, isolation, and hostile payloads against the real cloud."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import msgpack
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgetwin.messages import CgmReading
from sync.auth import Credential, NonceCache, sign_request
from sync.codec import WireRecord, encode_batch
from sync.errors import CredentialError, RejectedError
from sync.transport import CloudClient
from tests.sync.conftest import Cloud
from tests.sync.records import DAY0


def _batch(gw: str, seq: int = 1) -> bytes:
    r = CgmReading(time_utc=DAY0, glucose_mg_dl=110.0, device_id="cgm", sequence=0)
    return encode_batch(gw, seq, 0, [WireRecord("cgm", 1, r, "device")])


def _post(cloud: Cloud, cred: Credential | None, body: bytes, *, path: str = "/v1/batches",
          method: str = "POST", skew_ms: int = 0) -> requests.Response:  # fmt: skip
    headers = (
        {}
        if cred is None
        else sign_request(cred, method, path, body, now_ms=int(time.time() * 1000) + skew_ms)
    )
    return requests.request(method, cloud.url + path, data=body, headers=headers, timeout=10)


def _total(cloud: Cloud, patient: str) -> int:
    return sum(
        cloud.db.count(patient, k) for k in ("cgm", "meter", "insulin", "carbs", "suggestion", "checkpoint")
    )


def test_missing_wrong_and_unknown_credentials_get_401(cloud: Cloud) -> None:
    cred = cloud.add_gateway("p1")
    body = _batch(cred.gateway_id)
    assert _post(cloud, None, body).status_code == 401
    wrong = Credential(cred.gateway_id, cred.patient_id, b"k" * 32)
    assert _post(cloud, wrong, body).status_code == 401
    stranger = Credential("gw-unknown", "p1", b"k" * 32)
    assert _post(cloud, stranger, body).status_code == 401
    resp = _post(cloud, cred, body, skew_ms=3_600_000)
    assert resp.status_code == 401 and "X-EdgeTwin-Server-Time" in resp.headers
    assert _total(cloud, "p1") == 0
    assert _post(cloud, cred, body).status_code == 200


def test_a_replayed_request_is_rejected(cloud: Cloud) -> None:
    cred = cloud.add_gateway("p1")
    body = _batch(cred.gateway_id)
    headers = sign_request(cred, "POST", "/v1/batches", body, now_ms=int(time.time() * 1000))
    first = requests.post(cloud.url + "/v1/batches", data=body, headers=headers, timeout=10)
    again = requests.post(cloud.url + "/v1/batches", data=body, headers=headers, timeout=10)
    assert first.status_code == 200 and again.status_code == 401
    assert "replay" in again.json()["error"]
    # A tampered body under a valid signature fails the signature.
    headers = sign_request(cred, "POST", "/v1/batches", body, now_ms=int(time.time() * 1000))
    assert requests.post(cloud.url + "/v1/batches", data=_batch(cred.gateway_id, 2), headers=headers,
                         timeout=10).status_code == 401  # fmt: skip


def test_a_gateway_cannot_touch_another_patient(cloud: Cloud) -> None:
    a = cloud.add_gateway("patient-A")
    b = cloud.add_gateway("patient-B")
    assert _post(cloud, b, _batch(b.gateway_id)).status_code == 200
    # Writing: a batch claiming to be B's gateway, signed by A.
    assert _post(cloud, a, _batch(b.gateway_id)).status_code == 403
    # Reading B's history or parameters with A's credential.
    for path in ("/v1/patients/patient-B/history?kind=cgm", "/v1/patients/patient-B/params"):
        assert _post(cloud, a, b"", path=path, method="GET").status_code == 403
    client = CloudClient(a, requests.Session())
    with pytest.raises(RejectedError) as info:
        client.history("cgm", 0, 2**62, patient_id="patient-B")
    assert info.value.status == 403
    assert client.history("cgm", 0, 2**62) == []
    assert cloud.db.count("patient-B", "cgm") == 1 and cloud.db.count("patient-A", "cgm") == 0


def test_the_client_corrects_for_a_skewed_gateway_clock(cloud: Cloud) -> None:
    cred = cloud.add_gateway("p1")
    client = CloudClient(cred, requests.Session(), now_ms=lambda: int(time.time() * 1000) - 2 * 3_600_000)
    assert client.post_batch(_batch(cred.gateway_id))["acked"] == 1
    assert abs(client.skew_ms - 2 * 3_600_000) < 60_000


def test_plain_http_is_refused_off_loopback() -> None:
    cred = Credential.issue("gw", "p", "http://cloud.example.org")
    with pytest.raises(Exception, match="refusing plain HTTP"):
        CloudClient(cred, requests.Session())
    CloudClient(cred, requests.Session(), base_url="https://cloud.example.org")


_malformed = st.one_of(
    st.binary(max_size=600),
    st.builds(
        lambda d: msgpack.packb(d, use_bin_type=True),
        st.dictionaries(
            st.sampled_from(["v", "gw", "sq", "ts", "z", "b", "x"]),
            st.one_of(st.integers(-5, 5), st.text(max_size=5), st.binary(max_size=40), st.none()),
            max_size=6,
        ),
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_malformed)
def test_fuzzed_signed_payloads_get_4xx_and_store_nothing(cloud: Cloud, body: bytes) -> None:
    cred = _fuzz_cred(cloud)
    resp = _post(cloud, cred, body)
    assert 400 <= resp.status_code < 500, resp.text
    assert _total(cloud, "fuzz") == 0


def _fuzz_cred(cloud: Cloud, _cache: dict[str, Credential] = {}) -> Credential:  # noqa: B006
    if cloud.url not in _cache:
        _cache[cloud.url] = cloud.add_gateway("fuzz")
    return _cache[cloud.url]


def test_truncated_and_oversized_payloads(cloud: Cloud) -> None:
    cred = cloud.add_gateway("p9")
    good = _batch(cred.gateway_id)
    for cut in (1, len(good) // 2, len(good) - 1):
        assert _post(cloud, cred, good[:cut]).status_code == 400
    assert _post(cloud, cred, b"\x00" * (5 * 1024 * 1024)).status_code == 413
    assert _total(cloud, "p9") == 0
    assert requests.get(cloud.url + "/health", timeout=5).json()["status"] == "ok"


def test_credential_file_is_owner_only_and_key_never_shown(tmp_path: Path) -> None:
    cred = Credential.issue("gw-1", "p-1", "https://cloud.example.org")
    path = cred.save(tmp_path / "gateway.cred")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Credential.load(path) == cred
    assert cred.key.hex() not in repr(cred) and "key" not in repr(cred)
    os.chmod(path, 0o644)
    with pytest.raises(CredentialError, match="chmod 600"):
        Credential.load(path)
    os.chmod(path, 0o600)
    path.write_text("{not json")
    with pytest.raises(CredentialError, match="malformed") as info:
        Credential.load(path)
    assert cred.key.hex() not in str(info.value)


def test_nonce_cache_forgets_only_after_the_window() -> None:
    cache = NonceCache(window_s=10)
    assert cache.check_and_add("gw", "n1", now_s=0)
    assert not cache.check_and_add("gw", "n1", now_s=15)
    assert cache.check_and_add("gw", "n1", now_s=25)  # past 2x window: the timestamp check rejects it anyway
