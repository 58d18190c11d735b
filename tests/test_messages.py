from datetime import UTC, datetime

import pytest

from edgetwin.messages import CgmReading, CgmStatus, PumpCommand, PumpCommandKind

T = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def test_reading_validates_ranges_and_time_zone() -> None:
    r = CgmReading(T, 120.0, "cgm1", sequence=5)
    assert r.usable
    with pytest.raises(ValueError, match="glucose_mg_dl"):
        CgmReading(T, 5000.0, "cgm1")
    with pytest.raises(ValueError, match="naive"):
        CgmReading(datetime(2026, 1, 1), 100.0, "cgm1")
    with pytest.raises(ValueError, match="glucose_mg_dl"):
        CgmReading(T, float("nan"), "cgm1")


def test_error_readings_are_kept_but_not_usable() -> None:
    assert not CgmReading(T, None, "cgm1", status=frozenset({CgmStatus.SENSOR_MALFUNCTION})).usable
    assert not CgmReading(T, 100.0, "cgm1", status=frozenset({"warmup"})).usable


def test_commands_need_their_operands() -> None:
    with pytest.raises(ValueError):
        PumpCommand("c1", PumpCommandKind.TEMP_BASAL, T, rate_u_per_h=1.0)
    assert PumpCommand("c2", "bolus", T, units=1.0).kind is PumpCommandKind.BOLUS
