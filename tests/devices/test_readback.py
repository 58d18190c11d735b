"""Read-back confirmation of a temp basal: the rate and a fresh remaining duration."""

from __future__ import annotations

from devices.readback import temp_basal_took


def test_a_fresh_temp_basal_at_the_asked_rate_is_confirmed() -> None:
    assert temp_basal_took(1.0, 30, 1.0, 30, elapsed_min=0.2)
    assert temp_basal_took(1.0, 30, 0.95, 29, elapsed_min=0.5)  # rounded down one increment


def test_an_earlier_temp_basal_at_the_same_rate_is_not_a_confirmation() -> None:
    # the pump said "success" but kept the temp basal set 5 min ago: 25 min left, not 30
    assert not temp_basal_took(1.0, 30, 1.0, 25, elapsed_min=0.2)


def test_a_slow_read_back_allows_for_the_minutes_it_took() -> None:
    assert temp_basal_took(1.0, 30, 1.0, 26, elapsed_min=3.5)
    assert not temp_basal_took(1.0, 30, 1.0, 26, elapsed_min=1.0)


def test_wrong_or_missing_rate_is_not_confirmed() -> None:
    assert not temp_basal_took(1.0, 30, None, None, elapsed_min=0.0)
    assert not temp_basal_took(1.0, 30, 1.2, 30, elapsed_min=0.0)  # more than asked
    assert not temp_basal_took(1.0, 30, 0.5, 30, elapsed_min=0.0)
    assert not temp_basal_took(1.0, 30, float("nan"), 30, elapsed_min=0.0)


def test_a_pump_without_remaining_minutes_is_judged_on_the_rate() -> None:
    assert temp_basal_took(1.0, 30, 1.0, None, elapsed_min=0.0)
