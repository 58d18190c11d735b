"""The event log: insulin as pumps report it, in both basal modes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetwin.twin.events import EventLog


def flat(rate: float):  # type: ignore[no-untyped-def]
    return lambda minutes: np.full(np.asarray(minutes).shape, rate)


def test_schedule_mode_basal_changes_temp_basals_and_boluses() -> None:
    log = EventLog(flat(1.2))
    log.add_basal(10, 0.0, 20)  # temp basal 0 for 20 min
    log.add_basal(50, 3.0, None)  # a new rate until further notice
    log.add_basal(70, None, None)  # back to the schedule
    log.add_delivery(5, 2.0, 0)
    log.add_delivery(60, 1.0, 10)  # extended bolus over 10 min
    ins = log.insulin_u(0, 90)
    assert ins[0] == 1.2 / 60 and ins[5] == 1.2 / 60 + 2.0
    assert (ins[10:30] == 0.0).all() and ins[30] == 1.2 / 60
    np.testing.assert_allclose(ins[50:60], 3.0 / 60)
    np.testing.assert_allclose(ins[60:70], 3.0 / 60 + 0.1)
    np.testing.assert_allclose(ins[70:], 1.2 / 60)
    # A window that starts inside the temp basal sees it too.
    np.testing.assert_allclose(log.insulin_u(15, 20), 0.0)


def test_delivered_mode_assumes_the_schedule_only_after_the_last_report() -> None:
    log = EventLog(flat(0.6), mode="delivered")
    for m in range(30):
        log.add_delivery(m, 0.01, 0)
    ins = log.insulin_u(0, 60)
    np.testing.assert_allclose(ins[:30], 0.01)
    np.testing.assert_allclose(ins[30:], 0.6 / 60)
    np.testing.assert_allclose(log.basal_u_per_h(0, 60, planned_only=True), 0.6)


def test_trim_and_round_trip_keep_what_a_replay_needs() -> None:
    log = EventLog(flat(1.0))
    log.add_reading(5, 120.0)
    log.add_reading(50, 130.0)
    log.add_carbs(40, 30.0, "c1")
    log.add_delivery(20, 6.0, 60, "b1")  # still running at minute 45
    log.add_delivery(10, 1.0, 0)
    log.add_basal(0, 0.5, None)
    log.trim(45)
    assert log.reading_minutes == [50] and log.carb_minutes == []
    assert log.deliveries == [(20, 6.0, 60)] and log.instant == {}
    assert [b.minute for b in log.basal] == [0]  # the rate in force at the window start survives
    copy = EventLog.from_dict(log.to_dict(), flat(1.0))
    np.testing.assert_array_equal(copy.insulin_u(40, 100), log.insulin_u(40, 100))
    assert copy.seen("b1") and not copy.seen("zzz")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 300), st.floats(0.0, 10.0), st.integers(0, 90)),
        max_size=12,
    )
)
def test_every_delivered_unit_lands_in_exactly_one_minute(deliveries: list[tuple[int, float, int]]) -> None:
    log = EventLog(flat(0.0))
    for m, u, d in deliveries:
        log.add_delivery(m, u, d)
    whole = log.insulin_u(0, 400)
    split = np.concatenate([log.insulin_u(a, a + 37) for a in range(0, 400, 37)])[:400]
    np.testing.assert_allclose(whole.sum(), sum(u for _, u, _ in deliveries), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(split, whole, atol=1e-12)
