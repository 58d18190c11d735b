"""Storing and reading back every record type; identities and duplicates; transactions."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetwin.messages import (
    Alarm,
    CarbEntry,
    CgmReading,
    CgmStatus,
    CommandResult,
    HeartRateReading,
    InsulinDelivery,
    InsulinKind,
    MeterReading,
    PumpCommand,
    PumpCommandKind,
    PumpStatus,
    Suggestion,
    SuggestionKind,
)
from edgetwin.store import (
    GateDecision,
    GateFinding,
    GateOutcome,
    Store,
    StoreClosedError,
    StoreError,
    TwinCheckpoint,
)
from tests.store.helpers import T0, at, cgm


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "edge.db")
    yield s  # type: ignore[misc]
    s.close()


def test_every_record_type_round_trips(store: Store) -> None:
    reading = CgmReading(
        time_utc=at(0), glucose_mg_dl=123.0, device_id="cgm-1", sequence=0, trend_mg_dl_per_min=-1.5,
        quality_pct=90.0, status=frozenset({CgmStatus.BATTERY_LOW}), backfilled=True,
    )  # fmt: skip
    records: list[object] = [
        reading,
        MeterReading(time_utc=at(1), glucose_mg_dl=118.0, device_id="meter", sequence=7),
        HeartRateReading(time_utc=at(2), heart_rate_bpm=72, device_id="hr", rr_intervals_s=(0.8, 0.85),
                         energy_expended_kj=12, sensor_contact=True),
        InsulinDelivery(time_utc=at(3), units=4.25, kind=InsulinKind.BOLUS, device_id="pump", sequence=11),
        InsulinDelivery(time_utc=at(3), units=0.1, kind=InsulinKind.BASAL, device_id="pump", duration_min=5),
        CarbEntry(time_utc=at(3), grams=45.0),
        PumpStatus(time_utc=at(4), device_id="pump", reservoir_u=150.5, suspended=False, bolusing=True,
                   basal_rate_u_per_h=0.8, temp_basal_u_per_h=1.2, temp_basal_remaining_min=20.0,
                   battery_pct=80.0, insulin_on_board_u=2.5),
    ]  # fmt: skip
    acks = [store.add(r) for r in records]
    assert [a.duplicate for a in acks] == [False] * len(records)
    assert store.cgm_between(at(0), at(1)) == [reading]
    assert store.meter_between(at(0), at(5)) == [records[1]]
    assert store.heart_rate_between(at(0), at(5)) == [records[2]]
    assert store.insulin_between(at(0), at(5)) == [records[3], records[4]]
    assert store.carbs_between(at(0), at(5)) == [records[5]]
    assert store.treatments_between(at(0), at(5)) == [records[3], records[4], records[5]]
    assert store.latest_pump_status() == records[6]


def test_commands_results_suggestions_decisions_alarms(store: Store) -> None:
    cmd = PumpCommand("c-1", PumpCommandKind.TEMP_BASAL, at(0), rate_u_per_h=1.5, duration_min=30)
    store.add_pump_command(cmd)
    assert store.unconfirmed_commands(at(-60)) == [cmd]
    result = CommandResult("c-1", at(0.1), confirmed=True, detail="read back")
    store.add_command_result(result)
    assert store.command("c-1") == (cmd, [result])
    assert store.unconfirmed_commands(at(-60)) == []
    assert store.command("nope") is None

    s = Suggestion(at(5), at(20), SuggestionKind.BOLUS, "meal announced, 45 g", units=6.0, reservoir_u=150.0)
    sid = store.add_suggestion(s).row_id
    clamped = Suggestion(
        at(5), at(20), SuggestionKind.BOLUS, "clamped by max IOB", units=3.0, reservoir_u=150.0
    )
    cid = store.add_suggestion(clamped).row_id
    finding = GateFinding("max_iob", "clamp", "IOB would exceed the limit",
                          {"iob_u": 2.0, "max_iob_u": 5.0, "requested_u": 6.0, "allowed_u": 3.0})  # fmt: skip
    decision = GateDecision(at(5), sid, GateOutcome.CLAMPED, (finding,), result_suggestion_id=cid)
    store.add_decision(decision)
    assert store.suggestions_between(at(0), at(10)) == [(sid, s), (cid, clamped)]
    [(_, got)] = store.decisions_between(at(0), at(10))
    assert got == decision
    assert got.findings[0].values["max_iob_u"] == 5.0

    alarm_id = store.add_alarm(Alarm(at(6), "no_data", "No CGM data for 20 minutes", "urgent")).row_id
    assert [a.alarm_id for a in store.alarms(at(0), at(10), unacknowledged_only=True)] == [alarm_id]
    assert store.acknowledge_alarm(alarm_id, at(7)) is True
    assert store.acknowledge_alarm(alarm_id, at(8)) is False
    assert store.alarms(at(0), at(10), unacknowledged_only=True) == []
    assert store.alarms(at(0), at(10))[0].acknowledged_utc == at(7)


def test_a_refusal_must_name_its_rules() -> None:
    with pytest.raises(ValueError, match="must name the rules"):
        GateDecision(at(0), 1, GateOutcome.REFUSED, ())


def test_duplicate_readings_are_reported_not_stored(store: Store) -> None:
    first = store.add_cgm(cgm(1))
    again = store.add_cgm(cgm(1))
    assert again.duplicate and again.row_id == first.row_id and not again.conflicting
    # The same device sequence re-timed by a back-fill (a few seconds off) is the same reading.
    retimed = CgmReading(time_utc=at(5) + timedelta(seconds=4), glucose_mg_dl=cgm(1).glucose_mg_dl,
                         device_id="cgm-1", sequence=5, backfilled=True)  # fmt: skip
    assert store.add_cgm(retimed).duplicate
    # Same time, different value: still one reading, flagged as conflicting.
    clash = store.add_cgm(cgm(1, glucose=250.0))
    assert clash.duplicate and clash.conflicting
    # A new sensor session restarts sequences: same number days later is a new reading.
    later = CgmReading(time_utc=at(5) + timedelta(days=10), glucose_mg_dl=99.0, device_id="cgm-1", sequence=5)
    assert not store.add_cgm(later).duplicate
    # Another device at the same time is a different reading.
    assert not store.add_cgm(cgm(1, device="cgm-2")).duplicate
    assert store.counts()["cgm"] == 3
    assert [r.glucose_mg_dl for r in store.cgm_between(at(5), at(6))] == [
        cgm(1).glucose_mg_dl,
        cgm(1).glucose_mg_dl,
    ]


def test_treatment_identities(store: Store) -> None:
    bolus = InsulinDelivery(time_utc=at(0), units=3.0, kind=InsulinKind.BOLUS, device_id="pump", sequence=4)
    assert not store.add_insulin(bolus).duplicate
    assert store.add_insulin(bolus).duplicate
    assert store.add_carbs(CarbEntry(at(0), 30.0)).duplicate is False
    assert store.add_carbs(CarbEntry(at(0), 30.0)).duplicate is True
    assert store.add_carbs(CarbEntry(at(0), 30.0, source="nightscout")).duplicate is False
    cmd = PumpCommand("c-9", PumpCommandKind.SUSPEND, at(0))
    assert not store.add_pump_command(cmd).duplicate
    assert store.add_pump_command(cmd).duplicate


def test_add_many_is_all_or_nothing(store: Store) -> None:
    orphan = CommandResult("never-sent", at(1), confirmed=True)  # its command was never stored
    with pytest.raises(StoreError):
        store.add_many([cgm(0), cgm(1), orphan])
    assert store.counts()["cgm"] == 0
    acks = store.add_many([cgm(0), cgm(1), cgm(1)])
    assert [a.duplicate for a in acks] == [False, False, True]


def test_latest_reading_by_time_and_usable(store: Store) -> None:
    assert store.latest_cgm() is None
    store.add_cgm(cgm(3))
    store.add_cgm(cgm(1))  # arrives late (back-fill): not the latest
    warm = CgmReading(
        time_utc=at(20), glucose_mg_dl=None, device_id="cgm-1", status=frozenset({CgmStatus.WARMUP})
    )
    store.add_cgm(warm)
    assert store.latest_cgm() == warm
    assert store.latest_cgm(usable=True) == cgm(3)
    assert store.latest_cgm(device_id="other") is None


def test_history_is_time_ordered_across_kinds(store: Store) -> None:
    store.add_carbs(CarbEntry(at(10), 40.0))
    store.add_cgm(cgm(1))
    store.add_alarm(Alarm(at(7), "low_predicted", "Low predicted in 30 min"))
    store.add_cgm(cgm(3))
    entries = store.history(at(0), at(60))
    assert [(e.kind, e.time_utc) for e in entries] == [
        ("cgm", at(5)),
        ("alarm", at(7)),
        ("carbs", at(10)),
        ("cgm", at(15)),
    ]
    assert [e.kind for e in store.history(at(0), at(60), kinds=["carbs"])] == ["carbs"]
    with pytest.raises(ValueError, match="unknown history kind"):
        store.history(at(0), at(1), kinds=["nope"])


def test_checkpoints_keep_the_newest_bytes(store: Store) -> None:
    assert store.last_checkpoint() is None
    for i in range(5):
        store.save_checkpoint(
            TwinCheckpoint(at(5 * i), "twin-ensemble", 2, bytes([i]) * 100, {"glucose_mg_dl": 100.0 + i}),
            keep_blobs=2,
        )
    last = store.last_checkpoint()
    assert last is not None and last.blob == bytes([4]) * 100 and last.summary == {"glucose_mg_dl": 104.0}
    assert store.last_checkpoint(format="other") is None
    kept = [e.record.blob is not None for e in store.history(at(0), at(60), kinds=["checkpoint"])]
    assert kept == [False, False, False, True, True]


def test_closed_and_readonly_stores_refuse_writes(tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    writer = Store.open(path)
    writer.add_cgm(cgm(0))
    reader = Store.open(path, readonly=True)
    writer.add_cgm(cgm(1))  # WAL: the reader sees commits made while it is open
    assert len(reader.cgm_between(at(0), at(60))) == 2
    with pytest.raises(StoreError, match="read-only"):
        reader.add_cgm(cgm(2))
    reader.close()
    writer.close()
    with pytest.raises(StoreClosedError):
        writer.add_cgm(cgm(2))
    with pytest.raises(StoreError, match="no database file"):
        Store.open(tmp_path / "missing.db", readonly=True)


glucose = st.one_of(st.none(), st.floats(0, 1000, allow_nan=False).map(lambda v: round(v, 1)))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.sampled_from(["a", "b"]), glucose), max_size=60))
def test_stored_readings_are_exactly_the_distinct_ones(tmp_path_factory: pytest.TempPathFactory,
                                                       stream: list[tuple[int, str, float | None]]) -> None:  # fmt: skip
    path = tmp_path_factory.mktemp("prop") / "edge.db"
    with Store.open(path) as store:
        first: dict[tuple[str, int], CgmReading] = {}
        for i, device, value in stream:
            r = CgmReading(time_utc=at(5 * i), glucose_mg_dl=value, device_id=device, sequence=5 * i)
            ack = store.add_cgm(r)
            assert ack.duplicate == ((device, i) in first)
            first.setdefault((device, i), r)
        stored = store.cgm_between(T0, at(5 * 41))
    expected = sorted(first.values(), key=lambda r: (r.time_utc, r.device_id))
    assert sorted(stored, key=lambda r: (r.time_utc, r.device_id)) == expected
