"""The batch format: lossless round trips, documented precision, bounded and strict decoding."""

from __future__ import annotations

import contextlib
import zlib
from datetime import UTC, datetime, timedelta

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgetwin.messages import CgmReading, CgmStatus, HeartRateReading
from edgetwin.store import TwinCheckpoint
from edgetwin.store.rows import table_for
from sync.codec import (
    MAX_WIRE_BYTES,
    SCHEMA_VERSION,
    WireRecord,
    decode_batch,
    encode_batch,
    summary_step,
)
from sync.errors import PayloadError, PayloadTooLargeError
from tests.sync.records import DAY0, day_records


def wire(records: list[object]) -> list[WireRecord]:
    return [WireRecord(table_for(r).name, i + 1, r, "device") for i, r in enumerate(records)]


def test_a_day_round_trips_with_readings_lossless() -> None:
    recs = wire(day_records())
    batch = decode_batch(encode_batch("gw-1", 7, 1_000, recs))
    assert (batch.gateway_id, batch.batch_seq, batch.sent_ms) == ("gw-1", 7, 1_000)
    by_kind = {}
    for r in batch.records:
        by_kind.setdefault(r.kind, []).append(r)
    for kind in ("cgm", "pump_status", "suggestion", "decision", "carbs", "insulin", "alarm"):
        sent = [r for r in recs if r.kind == kind]
        assert [(r.edge_id, r.record) for r in by_kind[kind]] == [(r.edge_id, r.record) for r in sent], kind
    sent_snaps = [r.record for r in recs if r.kind == "checkpoint"]
    got_snaps = [r.record for r in by_kind["checkpoint"]]
    assert [s.time_utc for s in got_snaps] == [s.time_utc for s in sent_snaps]
    # Summaries at the documented precision; only the newest snapshot carries its blob.
    for sent, got in zip(sent_snaps, got_snaps, strict=True):
        for key, value in sent.summary.items():
            assert abs(got.summary[key] - value) <= summary_step(key) / 2 + 1e-9
    assert [s.blob is not None for s in got_snaps] == [False] * (len(got_snaps) - 1) + [True]
    assert got_snaps[-1].blob == sent_snaps[-1].blob


def test_precision_steps_follow_units() -> None:
    assert summary_step("pred_60_mg_dl") == 1.0
    assert summary_step("trend_mg_dl_per_min") == 0.1
    assert summary_step("iob_u") == 0.01
    assert summary_step("cob_g") == 1.0
    assert summary_step("sensitivity_ratio") == 1e-3


finite = st.floats(0, 1000, allow_nan=False, allow_infinity=False)
readings = st.lists(
    st.builds(
        CgmReading,
        time_utc=st.integers(0, 10**7).map(lambda s: DAY0 + timedelta(milliseconds=s * 997)),
        glucose_mg_dl=st.one_of(st.none(), finite),
        device_id=st.sampled_from(["a", "b", "ü-sensor"]),
        sequence=st.one_of(st.none(), st.integers(0, 2**31)),
        trend_mg_dl_per_min=st.one_of(st.none(), st.floats(-100, 100, allow_nan=False)),
        status=st.frozensets(st.sampled_from(list(CgmStatus)), max_size=3),
        backfilled=st.booleans(),
    ),
    max_size=50,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(readings)
def test_any_readings_round_trip_exactly(rs: list[CgmReading]) -> None:
    got = decode_batch(encode_batch("gw", 1, 0, wire(rs))).records
    assert [r.record for r in got] == rs


def test_heart_rate_optional_fields_round_trip() -> None:
    hr = [HeartRateReading(DAY0, 61, "hr", (0.98, 1.01), 5, True), HeartRateReading(DAY0, 62, "hr")]
    assert [r.record for r in decode_batch(encode_batch("gw", 1, 0, wire(hr))).records] == hr


def _envelope(**over: object) -> bytes:
    env = {"v": SCHEMA_VERSION, "gw": "gw", "sq": 1, "ts": 0, "z": 0, "b": msgpack.packb({})}
    env.update(over)
    return msgpack.packb({k: v for k, v in env.items() if v is not ...}, use_bin_type=True)


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        (_envelope(v=2), "envelope.v"),
        (_envelope(v=...), "envelope.v"),
        (_envelope(extra=1), "envelope"),
        (_envelope(gw=""), "envelope.gw"),
        (_envelope(sq=0), "envelope.sq"),
        (_envelope(b=msgpack.packb({"cgm": {"n": 1, "c": {"zz": []}}})), "cgm.c"),
        (_envelope(b=msgpack.packb({"spaceship": {"n": 0}})), "body"),
        (_envelope(b=msgpack.packb({"cgm": {"n": 2, "c": {"t": [1]}}})), "cgm.t"),
        (
            _envelope(
                b=msgpack.packb({"cgm": {"n": 1, "c": {"t": [1], "id": {"d": [1]}, "g": {"d": [5000]}}}})
            ),
            "cgm",
        ),
        (_envelope(z=1, b=b"not zlib"), "envelope.b"),
        (_envelope(z=1, b=zlib.compress(msgpack.packb({}))[:-3]), "envelope.b"),
        (b"\x93\x01\x02", "envelope"),
        (b"\xc1", "envelope"),
    ],
)
def test_malformed_batches_raise_a_typed_error_naming_where(payload: bytes, where: str) -> None:
    with pytest.raises(PayloadError) as info:
        decode_batch(payload)
    assert info.value.where.startswith(where)


def test_oversized_and_bombs_are_refused() -> None:
    with pytest.raises(PayloadTooLargeError):
        decode_batch(b"\x00" * (MAX_WIRE_BYTES + 1))
    bomb = zlib.compress(b"\x00" * (40 * 1024 * 1024), 9)
    with pytest.raises(PayloadTooLargeError):
        decode_batch(_envelope(z=1, b=bomb))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_escape_as_anything_but_payload_errors(data: bytes) -> None:
    with contextlib.suppress(PayloadError):
        decode_batch(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_real_batches_decode_or_raise_payload_error(data: st.DataObject) -> None:
    good = bytearray(encode_batch("gw", 3, 0, wire(day_records(hours=1)), compress=data.draw(st.booleans())))
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(good) - 1))
        good[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(good)))
    with contextlib.suppress(PayloadError):
        decode_batch(bytes(good[:cut]))


def test_snapshot_without_blob_still_carries_its_summary() -> None:
    cp = TwinCheckpoint(datetime(2024, 1, 1, tzinfo=UTC), "twin", 3, b"abc", {"glucose_mg_dl": 101.23})
    [got] = decode_batch(encode_batch("gw", 1, 0, wire([cp]), blobs="none")).records
    assert got.record.blob is None and got.record.summary == {"glucose_mg_dl": 101.0}
