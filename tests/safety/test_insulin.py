"""Insulin on board: the exponential curve, checked against numerical integration of its
activity, and net IOB from pump deliveries."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from edgetwin.messages import InsulinDelivery, InsulinKind
from edgetwin.safety import iob_fraction, net_iob_u
from edgetwin.safety.insulin import insulin_activity
from tests.safety.builders import NOW, basal_history, profile


@pytest.mark.parametrize(("td", "tp"), [(300.0, 75.0), (360.0, 55.0), (480.0, 120.0)])
def test_iob_curve_is_one_minus_the_integrated_activity(td: float, tp: float) -> None:
    t = np.linspace(0.0, td, 20001)
    act = insulin_activity(t, td, tp)
    integrated = np.concatenate([[0.0], np.cumsum((act[1:] + act[:-1]) / 2 * np.diff(t))])
    np.testing.assert_allclose(iob_fraction(t, td, tp), 1.0 - integrated, atol=1e-6)
    assert t[np.argmax(act)] == pytest.approx(tp, abs=0.1)
    assert iob_fraction(0.0, td, tp) == pytest.approx(1.0)
    assert iob_fraction(td, td, tp) == 0.0
    assert iob_fraction(-10.0, td, tp) == pytest.approx(1.0)
    assert np.all(np.diff(iob_fraction(t, td, tp)) <= 1e-12)


def test_curve_needs_a_duration_beyond_twice_the_peak() -> None:
    with pytest.raises(ValueError):
        iob_fraction(10.0, 120.0, 75.0)


def test_scheduled_basal_alone_leaves_no_net_iob() -> None:
    prof = profile(basal=1.0)
    assert abs(net_iob_u(basal_history(1.0, 8.0), prof, NOW, 75.0)) < 0.02


def test_a_bolus_counts_fully_then_decays_and_a_suspension_goes_negative() -> None:
    prof = profile(basal=1.0)
    hist = basal_history(1.0, 8.0)
    bolus_now = [*hist, InsulinDelivery(NOW, 2.0, InsulinKind.BOLUS, "pump")]
    assert net_iob_u(bolus_now, prof, NOW, 75.0) == pytest.approx(2.0, abs=0.02)
    two_h_ago = [*hist, InsulinDelivery(NOW - timedelta(hours=2), 2.0, InsulinKind.BOLUS, "pump")]
    assert 0.6 < net_iob_u(two_h_ago, prof, NOW, 75.0) < 1.4
    # The last hour suspended: less insulin on board than the schedule would leave.
    suspended = [d for d in hist if d.time_utc < NOW - timedelta(hours=1)]
    assert net_iob_u(suspended, prof, NOW, 75.0) < -0.3


def test_future_dated_deliveries_count_as_fully_on_board() -> None:
    prof = profile(basal=1.0)
    hist = [
        *basal_history(1.0, 8.0),
        InsulinDelivery(NOW + timedelta(hours=3), 1.5, InsulinKind.BOLUS, "pump"),
    ]
    assert net_iob_u(hist, prof, NOW, 75.0) == pytest.approx(1.5, abs=0.02)


def test_short_profile_durations_are_raised_to_five_hours() -> None:
    hist = [
        *basal_history(1.0, 8.0),
        InsulinDelivery(NOW - timedelta(hours=3.5), 3.0, InsulinKind.BOLUS, "pump"),
    ]
    short = net_iob_u(hist, profile(insulin_duration_h=3.0), NOW, 75.0)
    five = net_iob_u(hist, profile(insulin_duration_h=5.0), NOW, 75.0)
    assert short == pytest.approx(five) and short > 0.1
