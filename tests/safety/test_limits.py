"""The [limits] configuration: validated at start-up, errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgetwin.errors import ConfigError
from edgetwin.safety import Mode, SafetyLimits, load_limits, max_safe_basal_u_per_h
from tests.safety.builders import NOW, profile

GOOD = """
[limits]
mode = "closed-loop"
max_basal_u_per_h = 3.0
max_bolus_u = 8
max_iob_u = 6.5
suspend_threshold_mg_dl = 75
"""


def test_limits_file_loads_and_round_trips(tmp_path: Path) -> None:
    f = tmp_path / "gateway.toml"
    f.write_text(GOOD)
    lim = load_limits(f)
    assert lim.mode is Mode.CLOSED_LOOP and lim.closed_loop
    assert lim.max_bolus_u == 8.0 and lim.effective_max_iob_u == 6.5
    assert lim.suspend_threshold_mg_dl == 75.0
    assert lim.stale_after_min == 12.0 and lim.max_temp_basal_min == 30.0
    assert SafetyLimits.from_mapping(lim.to_mapping()) == lim


def test_open_loop_is_the_default_and_max_iob_defaults_to_twice_max_bolus() -> None:
    lim = SafetyLimits.from_mapping({"max_basal_u_per_h": 2, "max_bolus_u": 5})
    assert lim.mode is Mode.OPEN_LOOP
    assert lim.effective_max_iob_u == 10.0


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"max_bolus_u": 5}, "max_basal_u_per_h"),
        ({"max_basal_u_per_h": 2}, "max_bolus_u"),
        ({"max_basal_u_per_h": 2, "max_bolus_u": 5, "max_bolus": 3}, "max_bolus"),
        ({"max_basal_u_per_h": 2, "max_bolus_u": 5, "mode": "autopilot"}, "mode"),
        ({"max_basal_u_per_h": 2, "max_bolus_u": 5, "mode": "closed-loop"}, "max_iob_u"),
        ({"max_basal_u_per_h": 2, "max_bolus_u": 5, "stale_after_min": 20}, "stale_after_min"),
        ({"max_basal_u_per_h": 2, "max_bolus_u": 5, "max_temp_basal_min": 60}, "max_temp_basal_min"),
        (
            {"max_basal_u_per_h": 2, "max_bolus_u": 5, "micro_bolus_need_fraction": 0.8},
            "micro_bolus_need_fraction",
        ),
        (
            {"max_basal_u_per_h": 2, "max_bolus_u": 5, "micro_bolus_interval_min": 1},
            "micro_bolus_interval_min",
        ),
        ({"max_basal_u_per_h": 2, "max_bolus_u": 5, "reservoir_tolerance_u": 0.5}, "reservoir_tolerance_u"),
        ({"max_basal_u_per_h": 2, "max_bolus_u": 5, "suggestion_max_age_s": 120}, "suggestion_max_age_s"),
        ({"max_basal_u_per_h": 2, "max_bolus_u": True}, "max_bolus_u"),
        ({"max_basal_u_per_h": "2", "max_bolus_u": 5}, "max_basal_u_per_h"),
        ({"max_basal_u_per_h": float("nan"), "max_bolus_u": 5}, "max_basal_u_per_h"),
        (
            {"max_basal_u_per_h": 2, "max_bolus_u": 5, "rescue_carbs_g": 40, "max_rescue_carbs_g": 20},
            "rescue_carbs_g",
        ),
    ],
)
def test_bad_limits_are_refused_naming_the_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        SafetyLimits.from_mapping(table, source="gateway.toml")
    assert err.value.key == key
    assert str(err.value).startswith("gateway.toml: ")


def test_unreadable_or_broken_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_limits(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[limits\nmax_bolus_u = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_limits(bad)


def test_max_safe_basal_is_the_smallest_of_the_three_terms_rounded_down() -> None:
    # Schedule 0.5 U/h at night, 1.2 U/h from 06:00: at noon 4 × 1.2 = 4.8, 3 × 1.2 = 3.6.
    prof = profile(basal_schedule=((0, 0.5), (360, 1.2)))
    assert max_safe_basal_u_per_h(prof, NOW, SafetyLimits(max_basal_u_per_h=5.0, max_bolus_u=5)) == 3.6
    assert max_safe_basal_u_per_h(prof, NOW, SafetyLimits(max_basal_u_per_h=2.33, max_bolus_u=5)) == 2.3
    # At 03:00 the current rate (0.5) limits: 4 × 0.5 = 2.0.
    night = NOW.replace(hour=3)
    assert max_safe_basal_u_per_h(prof, night, SafetyLimits(max_basal_u_per_h=5.0, max_bolus_u=5)) == 2.0
