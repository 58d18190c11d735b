"""CGM data checks: each condition of specs/safety.md is recognised, clean data pass."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from edgetwin.messages import CgmReading, CgmStatus
from edgetwin.safety import Rule, assess_cgm
from tests.safety.builders import NOW, limits, readings


def rules(a: object) -> set[Rule]:
    return {f.rule for f in a.findings}  # type: ignore[attr-defined]


def test_clean_rising_data_pass_with_trend_and_forecast() -> None:
    a = assess_cgm(readings([100.0 + 2.0 * i for i in range(13)]), NOW, limits(), "cgm")
    assert rules(a) == set()
    assert not a.fallback and a.automatic_bolus_allowed
    assert a.glucose_mg_dl == 124.0
    assert a.trend_mg_dl_per_min == pytest.approx(0.4)
    assert a.forecast_mg_dl == pytest.approx(124.0 + 0.4 * 30)


def test_virtual_cgm_noise_is_not_called_noisy() -> None:
    from edgetwin.virtual.sensor import CgmSensor

    sensor = CgmSensor("Dexcom", seed=3)
    t = np.arange(0, 24 * 60, 3)
    values = [sensor.measure(int(m), 140.0 + 40.0 * np.sin(m / 180.0)) for m in t]
    flagged = 0
    for end in range(20, len(t), 10):
        window = [
            CgmReading(NOW - timedelta(minutes=3 * (end - i)), v, "cgm") for i, v in enumerate(values[:end])
        ]
        a = assess_cgm(window[-25:], NOW, limits(), "cgm")
        flagged += a.noisy
    assert flagged == 0


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (readings(newest_age_min=13.0), Rule.STALE_DATA),
        ([], Rule.NO_DATA),
        (readings(device="other"), Rule.NO_DATA),
        (readings([*[150.0] * 12, 39.0]), Rule.IMPLAUSIBLE_DATA),
        (readings(newest_age_min=-6.0), Rule.FUTURE_DATA),
        (readings([150.0] * 12), Rule.FLAT_DATA),
        (readings([150.0 + (25.0 if i % 2 else -25.0) for i in range(10)]), Rule.VERY_NOISY_DATA),
    ],
)
def test_bad_data_force_a_fallback(data: list[CgmReading], rule: Rule) -> None:
    a = assess_cgm(data, NOW, limits(), "cgm")
    assert rule in rules(a)
    assert a.fallback and not a.automatic_bolus_allowed


def test_sensor_status_and_missing_values_force_a_fallback() -> None:
    data = readings()
    warm = CgmReading(NOW, 150.0, "cgm", status=frozenset({CgmStatus.WARMUP}))
    assert Rule.SENSOR_STATUS in rules(assess_cgm([*data[:-1], warm], NOW, limits(), "cgm"))
    calib = CgmReading(NOW, 150.0, "cgm", status=frozenset({CgmStatus.CALIBRATION_REQUIRED}))
    assert assess_cgm([*data[:-1], calib], NOW, limits(), "cgm").fallback
    none = CgmReading(NOW, None, "cgm", status=frozenset({CgmStatus.INVALID_VALUE}))
    assert assess_cgm([*data[:-1], none], NOW, limits(), "cgm").fallback


def test_moderate_noise_raises_targets_and_stops_automatic_boluses() -> None:
    data = readings([150.0 + (10.0 if i % 2 else -10.0) for i in range(10)])
    a = assess_cgm(data, NOW, limits(), "cgm")
    assert Rule.NOISY_DATA in rules(a)
    assert not a.fallback and not a.automatic_bolus_allowed
    assert a.target_mg_dl(110.0, limits()) == pytest.approx(143.0)
    assert a.target_mg_dl(180.0, limits()) == 200.0


def test_a_jump_disables_automatic_boluses_and_resets_the_trend() -> None:
    data = readings([120.0] * 6 + [160.0, 161.0, 162.0, 163.0])
    a = assess_cgm(data, NOW, limits(), "cgm")
    assert Rule.JUMP in rules(a)
    assert not a.fallback and not a.automatic_bolus_allowed
    assert a.trend_mg_dl_per_min == pytest.approx(0.2)


def test_other_devices_are_ignored_and_reported() -> None:
    mine = readings()
    theirs = [CgmReading(r.time_utc + timedelta(seconds=30), 60.0, "old-sensor") for r in mine]
    a = assess_cgm(mine + theirs, NOW, limits(), "cgm")
    assert a.glucose_mg_dl == mine[-1].glucose_mg_dl
    assert Rule.OTHER_DEVICE in rules(a) and not a.fallback


def test_out_of_order_and_duplicate_readings_are_handled() -> None:
    data = readings()
    shuffled = [data[5], *data[::-1], data[0]]
    a = assess_cgm(shuffled, NOW, limits(), "cgm")
    assert a.glucose_mg_dl == data[-1].glucose_mg_dl and not a.fallback


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (250.0, 295.0),  # +45 mg/dL but only 18 %: the absolute rule
        (60.0, 73.0),  # +13 mg/dL but 22 %: the relative rule
        (200.0, 150.0),  # downward
    ],
)
def test_jumps_by_either_rule(before: float, after: float) -> None:
    data = readings([before] * 6 + [after + 0.5 * i for i in range(4)])
    assert Rule.JUMP in rules(assess_cgm(data, NOW, limits(), "cgm"))


def test_physiological_change_is_not_a_jump() -> None:
    data = readings([150.0 + 9.0 * i for i in range(10)])  # 1.8 mg/dL/min: fast, but smooth
    assert Rule.JUMP not in rules(assess_cgm(data, NOW, limits(), "cgm"))
