from datetime import UTC, datetime
from pathlib import Path

import pytest

from edgetwin.errors import ConfigError
from edgetwin.therapy import TherapyProfile, load_profile

GOOD = """
weight_kg = 70
insulin_duration_h = 5
carb_ratio_g_per_u = 10
correction_factor_mg_dl_per_u = 40
target_mg_dl = 110
timezone = "Europe/Berlin"
basal = [ { start = "00:00", u_per_h = 0.8 }, { start = "06:00", u_per_h = 1.2 } ]
"""


def test_profile_file_loads_and_schedules_follow_local_time(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text(GOOD)
    prof = load_profile(f)
    # 05:30 UTC is 06:30 in Berlin in winter.
    assert prof.basal_at(datetime(2026, 1, 10, 5, 30, tzinfo=UTC)) == 1.2
    assert prof.basal_at(datetime(2026, 1, 10, 4, 30, tzinfo=UTC)) == 0.8
    assert prof.daily_basal_u == pytest.approx(0.8 * 6 + 1.2 * 18)
    assert TherapyProfile.from_mapping(prof.to_mapping()) == prof


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ("insulin_duration_h = 2", "insulin_duration_h"),
        ("target_mg_dl = 60", "target_mg_dl"),
        ("correction_factor_mg_dl_per_u = 2", "correction_factor_mg_dl_per_u"),
        ("carb_ratio_g_per_u = 200", "carb_ratio_g_per_u"),
        ('basal = [ { start = "00:00", u_per_h = 0 } ]', "basal[0].u_per_h"),
        ('basal = [ { start = "01:00", u_per_h = 1 } ]', "basal"),
        ('timezone = "Mars/Olympus"', "timezone"),
        ("weight_kg = 'heavy'", "weight_kg"),
        ("colour = 3", "colour"),
    ],
)
def test_insane_profiles_are_refused_naming_the_key(tmp_path: Path, change: str, key: str) -> None:
    lines = [ln for ln in GOOD.strip().splitlines() if not ln.startswith(change.split(" ")[0] + " ")]
    f = tmp_path / "p.toml"
    f.write_text("\n".join([*lines, change]))
    with pytest.raises(ConfigError) as info:
        load_profile(f)
    assert info.value.key == key
    assert str(f) in str(info.value)


def test_broken_toml_is_a_config_error(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text("weight_kg = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_profile(f)
