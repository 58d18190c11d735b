"""Golden vectors from specs/ble.md, round trips, and fuzzing of every decoder."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.codecs import cgms, glucose, heart_rate, ids, racp
from devices.codecs.crc import crc16_mcrf4xx
from devices.codecs.sfloat import decode_sfloat, encode_sfloat
from devices.errors import CrcError, DecodeError, EncodeError

H = bytes.fromhex


def test_crc_check_value() -> None:
    assert crc16_mcrf4xx(b"123456789") == 0x6F91


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (0x0078, 120.0),
        (0xF07B, 12.3),
        (0xFFFF, -0.1),
        (0xB078, 0.0012),
        (0x07FE, math.inf),
        (0x0802, -math.inf),
    ],
)
def test_sfloat_golden(raw: int, value: float) -> None:
    assert decode_sfloat(raw) == pytest.approx(value)
    assert decode_sfloat(encode_sfloat(value)) == pytest.approx(value)


@pytest.mark.parametrize("raw", [0x07FF, 0x0800, 0x0801])
def test_sfloat_specials_decode_to_nan(raw: int) -> None:
    assert math.isnan(decode_sfloat(raw))


@given(st.integers(-2045, 2045), st.integers(-8, 7))
def test_sfloat_round_trips_every_representable_value(mantissa: int, exponent: int) -> None:
    value = mantissa * 10.0**exponent
    assert decode_sfloat(encode_sfloat(value)) == pytest.approx(value, rel=1e-9, abs=1e-12)


def test_sfloat_rejects_values_too_large() -> None:
    with pytest.raises(EncodeError):
        encode_sfloat(3e10)


def test_cgm_measurement_golden_vectors() -> None:
    (m,) = cgms.decode_measurements(H("08017000A005F4FF"))
    assert (m.glucose_mg_dl, m.time_offset_min, m.trend_mg_dl_per_min, m.e2e) == (112.0, 1440, -1.2, False)
    (p,) = cgms.decode_measurements(H("0A017000A005F4FF1B8F"))
    assert p.e2e and p.glucose_mg_dl == 112.0 and p.trend_mg_dl_per_min == -1.2
    assert bytes(p) == H("0A017000A005F4FF1B8F") and bytes(m) == H("08017000A005F4FF")
    two = cgms.decode_measurements(H("06000C10050006000C100600"))
    assert [(r.glucose_mg_dl, r.time_offset_min) for r in two] == [(120.0, 5), (120.0, 6)]


def test_cgm_measurement_bad_crc_and_missing_crc() -> None:
    with pytest.raises(CrcError) as exc:
        cgms.decode_measurements(H("0A017000A005F4FF1B8E"))
    assert exc.value.expected == 0x8F1B and exc.value.actual == 0x8E1B
    with pytest.raises(CrcError):
        cgms.decode_measurements(H("08017000A005F4FF"), require_crc=True)
    # A bad record in the second place: the error names its offset in the notification.
    with pytest.raises(CrcError) as exc2:
        cgms.decode_measurements(H("06000C1005000A017000A005F4FF1B8E"))
    assert exc2.value.offset == 6 + 8


def test_cgm_measurement_all_optional_fields_round_trip() -> None:
    m = cgms.CgmMeasurement(
        250.0,
        77,
        cgms.CgmAnnunciation.DEVICE_BATTERY_LOW
        | cgms.CgmAnnunciation.CALIBRATION_RECOMMENDED
        | cgms.CgmAnnunciation.ABOVE_HYPER,
        trend_mg_dl_per_min=2.5,
        quality_pct=95.0,
        e2e=True,
    )
    data = bytes(m)
    assert data[0] == len(data) == 6 + 3 + 2 + 2 + 2
    assert cgms.CgmMeasurement.from_bytes(data) == m


def test_cgm_feature_status_session_golden() -> None:
    f = cgms.CgmFeature.from_bytes(H("009000591C45"))
    assert f.e2e and f.features & cgms.CgmFeatureBits.TREND and (f.sample_type, f.sample_location) == (9, 5)
    assert bytes(f) == H("009000591C45")
    with pytest.raises(CrcError):
        cgms.CgmFeature.from_bytes(H("009000591C46"))
    plain = cgms.CgmFeature(cgms.CgmFeatureBits.TREND)
    assert bytes(plain)[-2:] == b"\xff\xff" and cgms.CgmFeature.from_bytes(bytes(plain)) == plain
    st_ = cgms.CgmStatusRecord(300, cgms.CgmAnnunciation.SENSOR_MALFUNCTION, e2e=True)
    assert cgms.CgmStatusRecord.from_bytes(bytes(st_)) == st_ and len(bytes(st_)) == 7
    sst = cgms.SessionStartTime(datetime(2026, 3, 1, 8, 30, 0), time_zone_quarter_hours=4, dst_code=4)
    assert sst.to_utc() == datetime(2026, 3, 1, 6, 30, tzinfo=UTC)
    assert cgms.SessionStartTime.from_bytes(bytes(sst)) == sst
    utc = cgms.SessionStartTime.from_utc(datetime(2026, 3, 1, 6, 30, 12, tzinfo=UTC), e2e=True)
    assert cgms.SessionStartTime.from_bytes(bytes(utc)).to_utc() == datetime(
        2026, 3, 1, 6, 30, 12, tzinfo=UTC
    )
    with pytest.raises(DecodeError):  # month 13
        cgms.SessionStartTime.from_bytes(H("EA070D0100000000 00".replace(" ", "")))
    assert cgms.SessionRunTime.from_bytes(bytes(cgms.SessionRunTime(336, e2e=True))).hours == 336


def test_cgm_control_point_messages() -> None:
    for msg in (
        cgms.CgmControlPoint(cgms.CgmOpcode.SET_COMMUNICATION_INTERVAL, 5),
        cgms.CgmControlPoint(cgms.CgmOpcode.SET_HYPO_ALERT, 70.0, e2e=True),
        cgms.CgmControlPoint(cgms.CgmOpcode.START_SESSION, e2e=True),
        cgms.CgmControlPoint(
            cgms.CgmOpcode.SET_CALIBRATION_VALUE,
            calibration=cgms.CalibrationRecord(110.0, 60, record_number=3),
        ),
        cgms.CgmControlPoint.response(cgms.CgmOpcode.START_SESSION, cgms.CgmResponseCode.SUCCESS),
    ):
        assert cgms.CgmControlPoint.from_bytes(bytes(msg)) == msg
    assert bytes(cgms.CgmControlPoint.response(26, cgms.CgmResponseCode.SUCCESS)) == H("1C1A01")
    with pytest.raises(DecodeError):
        cgms.CgmControlPoint.from_bytes(H("63"))


def test_racp_golden_and_profiles() -> None:
    req = racp.Racp.report(racp.RacpOperator.GREATER_OR_EQUAL, 15)
    assert bytes(req) == H("0103010F00") and racp.Racp.from_bytes(H("0103010F00")) == req
    resp = racp.Racp.from_bytes(H("06000101"))
    assert (resp.opcode, resp.request_opcode, resp.response_code) == (racp.RacpOpcode.RESPONSE_CODE, 1, 1)
    rng = racp.Racp.report(
        racp.RacpOperator.WITHIN_RANGE, 5, 70000, profile=racp.RacpProfile.IDS, e2e_counter=9
    )
    assert racp.Racp.from_bytes(bytes(rng), profile=racp.RacpProfile.IDS, e2e=True) == rng
    assert (
        racp.Racp.from_bytes(
            bytes(racp.Racp(racp.RacpOpcode.NUMBER_OF_RECORDS_RESPONSE, number_of_records=42))
        ).number_of_records
        == 42
    )
    for bad in ("0100", "0104010A000500", "0107", "0603", "01030207"):
        with pytest.raises(DecodeError):
            racp.Racp.from_bytes(H(bad))


def test_glucose_measurement_units() -> None:
    base = datetime(2026, 5, 4, 7, 15, 0)
    kg = glucose.GlucoseMeasurement(12, base, 5, 0.0012, "kg/L", 0x11)
    assert kg.glucose_mg_dl == pytest.approx(120.0)
    back = glucose.GlucoseMeasurement.from_bytes(bytes(kg))
    assert back.glucose_mg_dl == pytest.approx(120.0) and back.time == datetime(2026, 5, 4, 7, 20)
    mol = glucose.GlucoseMeasurement(13, base, None, 0.00666, "mol/L", 0x11, sensor_status=0)
    assert glucose.GlucoseMeasurement.from_bytes(bytes(mol)).glucose_mg_dl == pytest.approx(120.0, abs=0.1)


def test_heart_rate_golden() -> None:
    m = heart_rate.HeartRateMeasurement.from_bytes(H("16483303"))
    assert (
        m.heart_rate_bpm == 72
        and m.sensor_contact is True
        and m.rr_intervals_s == (pytest.approx(0.8, abs=1e-3),)
    )
    assert bytes(m) == H("16483303")
    big = heart_rate.HeartRateMeasurement(310, None, 1234, (0.5, 0.75))
    assert heart_rate.HeartRateMeasurement.from_bytes(bytes(big)) == big
    with pytest.raises(DecodeError):
        heart_rate.HeartRateMeasurement.from_bytes(H("104833"))  # half an RR interval


def test_ids_records_round_trip_and_hamming_guard() -> None:
    s = ids.IddStatus(ids.TherapyControlState.RUN, ids.OperationalState.READY, 180.5, True, 7)
    data = bytes(s)
    assert ids.IddStatus.from_bytes(data, require_e2e=True) == s
    plain = bytes(ids.IddStatus(ids.TherapyControlState.STOP, ids.OperationalState.READY, 10.0))
    flipped = bytes([plain[0] ^ 0x01]) + plain[1:]  # one bit off "stop" is no known state
    with pytest.raises(DecodeError):
        ids.IddStatus.from_bytes(flipped)
    with pytest.raises(CrcError):
        ids.IddStatus.from_bytes(plain, require_e2e=True)
    msgs: list[object] = [
        ids.SetTherapyControlState(ids.TherapyControlState.PAUSE, 1),
        ids.SetTempBasal(1.25, 30, 2),
        ids.CancelTempBasal(3),
        ids.SetBolus(2.55, 4),
        ids.CancelBolus(9, 5),
        ids.IdsResponse(
            ids.IdsOpcode.CMD_RESPONSE_CODE, ids.IdsOpcode.SET_BOLUS, ids.IdsResponseCode.SUCCESS, 6
        ),
    ]
    for msg in msgs:
        assert ids.decode_command(bytes(msg), require_e2e=True) == msg  # type: ignore[call-overload]
    for msg in (
        ids.ActiveBasalRate(0.9, 1.2, 20),
        ids.ActiveBasalRate(0.85),
        ids.ActiveBolus(3, 4.0, 1.5),
        ids.TotalDailyInsulin(20.5, 19.8),
        ids.DeliveredInsulin(1234.56, 999.99),
        ids.InsulinOnBoard(2.4, 180),
        ids.StatusReaderRequest(ids.IdsOpcode.GET_ACTIVE_BASAL_RATE),
    ):
        assert ids.decode_status_reader(bytes(msg)) == msg  # type: ignore[call-overload]
    sb = ids.SetBolusResponse(7, 2.5, 8)
    assert ids.decode_command_data(bytes(sb)) == sb
    ann = ids.IddAnnunciation(5, ids.AnnunciationType.OCCLUSION_DETECTED, ids.AnnunciationStatus.PENDING, 1)
    assert ids.IddAnnunciation.from_bytes(bytes(ann)) == ann
    assert ids.IddAnnunciation.from_bytes(bytes(ids.IddAnnunciation())).type is None
    t = datetime(2026, 1, 1, 12, tzinfo=UTC)
    for ev in (
        ids.HistoryEvent(ids.HistoryEventType.BOLUS_DELIVERED, 1, t, units=3.0, bolus_id=2),
        ids.HistoryEvent(
            ids.HistoryEventType.BASAL_DELIVERED,
            2,
            t,
            units=0.5,
            rate_u_per_h=1.0,
            duration_min=30,
            temp=True,
            e2e_counter=3,
        ),
        ids.HistoryEvent(ids.HistoryEventType.TEMP_BASAL_STARTED, 3, t, rate_u_per_h=0.0, duration_min=60),
        ids.HistoryEvent(ids.HistoryEventType.TEMP_BASAL_ENDED, 4, t),
        ids.HistoryEvent(
            ids.HistoryEventType.THERAPY_STATE_CHANGED,
            5,
            t,
            state_from=ids.TherapyControlState.RUN,
            state_to=ids.TherapyControlState.STOP,
        ),
        ids.HistoryEvent(
            ids.HistoryEventType.ANNUNCIATION, 6, t, annunciation=ids.AnnunciationType.RESERVOIR_EMPTY
        ),
    ):
        assert ids.HistoryEvent.from_bytes(bytes(ev)) == ev


# --- fuzzing: every decoder, every input: a value or a DecodeError, nothing else ------------

DECODERS: dict[str, Callable[[bytes], object]] = {
    "cgm-measurement": cgms.decode_measurements,
    "cgm-measurement-e2e": lambda b: cgms.decode_measurements(b, require_crc=True),
    "cgm-feature": cgms.CgmFeature.from_bytes,
    "cgm-status": cgms.CgmStatusRecord.from_bytes,
    "session-start-time": cgms.SessionStartTime.from_bytes,
    "session-run-time": cgms.SessionRunTime.from_bytes,
    "cgm-control-point": cgms.CgmControlPoint.from_bytes,
    "racp": racp.Racp.from_bytes,
    "racp-ids": lambda b: racp.Racp.from_bytes(b, profile=racp.RacpProfile.IDS, e2e=True),
    "glucose": glucose.GlucoseMeasurement.from_bytes,
    "heart-rate": heart_rate.HeartRateMeasurement.from_bytes,
    "ids-status": ids.IddStatus.from_bytes,
    "ids-annunciation": ids.IddAnnunciation.from_bytes,
    "ids-status-reader": ids.decode_status_reader,
    "ids-command": ids.decode_command,
    "ids-command-data": ids.decode_command_data,
    "ids-history": ids.HistoryEvent.from_bytes,
}


@pytest.mark.parametrize("name", sorted(DECODERS))
@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=64))
def test_random_bytes_give_a_value_or_a_decode_error(name: str, data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        DECODERS[name](data)


# Valid E2E-protected encodings, decoded as a collector that knows E2E is on (fixed-layout
# records cut by exactly their CRC would otherwise look unprotected): any truncation, extension
# or bit flip must be caught.
PROTECTED: list[tuple[bytes, Callable[[bytes], object]]] = [
    (
        bytes(cgms.CgmMeasurement(143.0, 900, cgms.CgmAnnunciation.BELOW_HYPO, -0.6, 90.0, e2e=True)),
        lambda b: cgms.decode_measurements(b, require_crc=True),
    ),
    (
        bytes(cgms.CgmStatusRecord(12, cgms.CgmAnnunciation(0), e2e=True)),
        lambda b: cgms.CgmStatusRecord.from_bytes(b, require_crc=True),
    ),
    (
        bytes(cgms.SessionStartTime.from_utc(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), e2e=True)),
        lambda b: cgms.SessionStartTime.from_bytes(b, require_crc=True),
    ),
    (
        bytes(ids.IddStatus(ids.TherapyControlState.RUN, ids.OperationalState.READY, 200.0, True, 1)),
        lambda b: ids.IddStatus.from_bytes(b, require_e2e=True),
    ),
    (bytes(ids.SetBolus(4.0, 2)), lambda b: ids.decode_command(b, require_e2e=True)),
    (bytes(ids.SetTempBasal(0.5, 30, 3)), lambda b: ids.decode_command(b, require_e2e=True)),
    (
        bytes(
            ids.HistoryEvent(
                ids.HistoryEventType.BOLUS_DELIVERED,
                9,
                datetime(2026, 1, 1, tzinfo=UTC),
                units=1.0,
                bolus_id=1,
                e2e_counter=4,
            )
        ),
        lambda b: ids.HistoryEvent.from_bytes(b, require_e2e=True),
    ),
]


@pytest.mark.parametrize(("data", "decode"), PROTECTED)
@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=0), extra=st.binary(min_size=1, max_size=8), bit=st.integers(min_value=0))
def test_protected_records_reject_truncated_oversized_and_flipped(
    data: bytes, decode: Callable[[bytes], object], cut: int, extra: bytes, bit: int
) -> None:
    original = decode(data)
    with pytest.raises(DecodeError):
        decode(data[: cut % len(data)])
    with pytest.raises(DecodeError):
        decode(data + extra)
    pos = bit % (8 * len(data))
    flipped = bytearray(data)
    flipped[pos // 8] ^= 1 << (pos % 8)
    try:
        got = decode(bytes(flipped))
    except DecodeError:
        return
    # CRC-16 catches every single-bit error; anything that decodes must be the original value.
    assert got == original
