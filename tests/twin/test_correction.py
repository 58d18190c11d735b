"""The forecast's learned error model: it learns what repeats, stays bounded, survives restarts."""

from __future__ import annotations

import math
from typing import Any, cast

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgetwin.twin.correction import (
    FEATURE_NAMES,
    N_FEATURES,
    WINDOWS_MIN,
    CorrectionInputs,
    MedianCorrector,
    features,
)
from edgetwin.twin.forecast import CALIBRATION_HORIZONS, Calibrator
from edgetwin.twin.history import backtest, feed
from edgetwin.twin.twin import Twin
from edgetwin.virtual.scenario import MealEvent

from .conftest import FAST, Day, simulate_day

K = len(CALIBRATION_HORIZONS)


def rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = np.empty((n, N_FEATURES))
    x[:, 0] = 1.0
    x[:, 1:4] = 20.0 * rng.standard_normal((n, 3))
    x[:, 4:] = rng.exponential(1.0, (n, N_FEATURES - 4))
    return x


def true_error(x: np.ndarray) -> np.ndarray:
    """A patient whose forecasts run 6 mg/dL low, more so after carbs and when a rise is predicted."""
    return 6.0 + 0.4 * x[:, 1] + 3.0 * x[:, FEATURE_NAMES.index("carbs_60_90_min_10g")]


def test_learns_an_error_that_repeats_and_corrects_it() -> None:
    rng = np.random.default_rng(1)
    mc = MedianCorrector(K)
    x = rows(rng, 2000)  # six weeks of 30-minute forecasts
    y = true_error(x) + 5.0 * rng.standard_normal(2000)
    for i in range(2000):
        for j in range(K):
            mc.learn(j, x[i], float(y[i]), minute=30 * i)
    x_new = rows(rng, 50)
    for i in range(50):
        got = mc.correction(np.repeat(x_new[i : i + 1], K, axis=0))
        want = min(max(float(true_error(x_new[i : i + 1])[0]), -mc.max_abs_mg_dl), mc.max_abs_mg_dl)
        assert got == pytest.approx(np.full(K, want), abs=2.5 + 0.1 * abs(want))  # ridge shrinks a little


def test_no_correction_before_enough_pairs_and_never_beyond_the_bound() -> None:
    rng = np.random.default_rng(2)
    mc = MedianCorrector(K)
    x = rows(rng, mc.min_pairs - 1)
    for i in range(x.shape[0]):
        mc.learn(0, x[i], 500.0, minute=i)  # a wildly wrong forecast, again and again
    assert not mc.correction(rows(rng, K)).any(), "too few pairs: no correction at all"
    for i in range(200):
        mc.learn(0, rows(rng, 1)[0], 500.0, minute=i)
    c = mc.correction(rows(rng, K))
    assert c[0] == mc.max_abs_mg_dl
    assert not c[1:].any(), "the other horizons have learned nothing"


def test_non_finite_errors_and_features_teach_nothing() -> None:
    mc = MedianCorrector(K)
    x = np.ones(N_FEATURES)
    mc.learn(0, x, math.nan, minute=0)
    bad = x.copy()
    bad[3] = math.inf
    mc.learn(0, bad, 5.0, minute=30)
    mc.learn(1, None, 7.0, minute=60)  # no features: the error is noted for the next forecast
    assert mc.pairs.sum() == 0 and np.isfinite(mc.ata).all()
    assert mc.recent_errors(60)[1] == 7.0
    assert mc.recent_errors(200)[1] == 0.0, "an error older than 30 minutes is not 'recent'"


def test_old_pairs_fade_so_a_changed_twin_is_relearned() -> None:
    rng = np.random.default_rng(3)
    mc = MedianCorrector(K, half_life_days=2.0)
    x = rows(rng, 4000)
    x[:, 1:] = 0.0  # intercept only
    for i in range(10 * 48):
        mc.learn(0, x[i], 15.0, minute=30 * i)
    assert 11.0 < mc.correction(x[:K])[0] < 15.0  # shrunk towards no correction, not beyond
    for i in range(6 * 48):  # three half-lives of the opposite error
        mc.learn(0, x[i], -15.0, minute=30 * i)
    assert mc.correction(x[:K])[0] < -8.0


def test_calibrator_round_trips_and_old_calibrators_restore() -> None:
    rng = np.random.default_rng(4)
    cal = Calibrator()
    inputs = CorrectionInputs(140.0, 0.8, (10.0, 0, 0, 0, 0, 0), (3.0, 0.5, 0.5, 0.5, 1, 1))
    for i in range(40):
        q = np.sort(120.0 + 30 * rng.standard_normal((3, K)), axis=0)
        cal.issue(30 * i, q, inputs if i % 5 else None)
        cal.resolve(30 * i, 150.0)
    blob = msgpack.packb(cal.to_dict(), use_bin_type=True)
    back = Calibrator.from_dict(msgpack.unpackb(blob, raw=False))
    np.testing.assert_array_equal(back.median.ata, cal.median.ata)
    np.testing.assert_array_equal(back.low, cal.low)
    assert len(back.pending) == len(cal.pending) and back.pending[0][:6] == cal.pending[0][:6]
    q50 = np.full(K, 150.0)
    np.testing.assert_array_equal(back.correction(1200, q50, inputs), cal.correction(1200, q50, inputs))

    old = {
        "low": [1.0] * K,
        "high": [1.0] * K,
        "rate": 0.05,
        "pending": [[30, 0, 90.0, 100.0, 110.0]],
        "resolved": 3,
    }
    restored = Calibrator.from_dict(old)
    assert restored.median.pairs.sum() == 0 and restored.pending[0][5:] == (0.0, None)
    restored.resolve(30, 104.0)  # the old pending forecast still settles
    assert restored.resolved == 4


def test_an_error_model_saved_with_other_features_starts_again_without_failing() -> None:
    """A checkpoint from a release with fewer features: its statistics cannot be reused, so the
    model learns anew; the pending forecasts still settle the tails, and the latest errors stay."""
    cal = Calibrator()
    inputs = CorrectionInputs(150.0, -0.5, (0, 3.0, 0, 0, 0, 0), (0, 0.5, 0.5, 0, 0, 0))
    band = np.repeat([[130.0], [150.0], [170.0]], K, axis=1)  # p10, p50, p90 at every horizon
    for i in range(60):
        cal.issue(30 * i, band, inputs)
        cal.resolve(30 * i + 15, 160.0)
        cal.resolve(30 * i + 30, 160.0)
    assert cal.median.pairs.min() > 24
    d = cal.to_dict()
    m = cast(dict[str, Any], d["median"])
    f_old = N_FEATURES - 3
    m["ata"] = [0.5] * (K * f_old * f_old)
    m["aty"] = [0.5] * (K * f_old)
    d["pending"] = [
        [*p[:6], None if p[6] is None else p[6][:f_old]] for p in cast(list[list[Any]], d["pending"])
    ]
    back = Calibrator.from_dict(msgpack.unpackb(msgpack.packb(d, use_bin_type=True), raw=False))
    assert back.median.pairs.sum() == 0 and not back.median.coefficients().any()
    np.testing.assert_array_equal(back.median.last_error, cal.median.last_error)
    assert back.pending and all(p[6] is None for p in back.pending)
    resolved = back.resolved
    back.resolve(61 * 30, 170.0)  # what was pending settles without a shape error
    assert back.resolved > resolved
    back.issue(62 * 30, band, inputs)
    back.resolve(62 * 30 + 15, 165.0)
    assert back.median.pairs[0] == 1.0, "and it learns again from new forecasts"


def test_the_correction_fades_past_the_last_horizon_and_never_hides_a_low() -> None:
    h = np.arange(5.0, 245.0, 5.0)
    up = np.full(K, 10.0)
    s = Calibrator.shift(h, up, np.full(h.size, 150.0))
    assert s[h == 5.0][0] == pytest.approx(10.0 / 3.0)
    assert s[h == 60.0][0] == pytest.approx(10.0)
    assert s[h == 240.0][0] == pytest.approx(0.0)
    # Where the twin itself forecasts a low, a learned "it usually comes back up" (say, carbs
    # the patient eats but never logs) must not make the forecast say so.
    median = np.linspace(150.0, 50.0, h.size)
    s = Calibrator.shift(h, up, median)
    assert (s[median <= 70.0] == 0.0).all()
    assert (s[median >= 90.0] > 0.0).all()
    down = Calibrator.shift(h, -up, median)
    assert (down[(median <= 70.0) & (h < 240.0)] < 0.0).all(), "a correction downwards always applies"


@given(
    st.lists(st.floats(-40.0, 40.0), min_size=K, max_size=K),
    st.lists(st.floats(20.0, 400.0), min_size=48, max_size=48),
)
def test_no_learned_correction_raises_a_forecast_at_a_low(corr: list[float], median: list[float]) -> None:
    h = np.arange(5.0, 245.0, 5.0)
    m = np.array(median)
    s = Calibrator.shift(h, np.array(corr), m)
    assert (s[m <= 70.0] <= 0.0).all()
    assert (np.abs(s) <= 40.0).all()


def test_recent_cgm_changes_enter_the_features() -> None:
    inputs = CorrectionInputs(150.0, 1.0, (0.0,) * 6, (0.0,) * 6, 30.0, 45.0)
    x = features(inputs, np.full(K, 170.0), np.zeros(K))
    assert (x[:, FEATURE_NAMES.index("cgm_change_30_min_mg_dl")] == 30.0).all()
    assert (x[:, FEATURE_NAMES.index("cgm_change_60_min_mg_dl")] == 45.0).all()
    assert not x[:, FEATURE_NAMES.index("predicted_change_x_meal_in_last_120_min_mg_dl")].any(), "no meal"
    meal = CorrectionInputs(150.0, 1.0, (20.0, 0, 0, 0, 0, 0), (0.0,) * 6)
    x = features(meal, np.full(K, 170.0), np.zeros(K))
    assert (x[:, FEATURE_NAMES.index("predicted_change_x_meal_in_last_120_min_mg_dl")] == 20.0).all()


def test_a_twin_measures_the_changes_from_its_readings() -> None:
    twin = Twin.from_patient("adult#001", config=FAST, initial_glucose_mg_dl=100.0)
    for m in range(0, 125, 5):
        twin.assimilate_cgm(m, 100.0 + 0.5 * m)  # rising 0.5 mg/dL per minute
    got = twin._correction_inputs(122)
    assert got is not None
    assert got.change_30_min_mg_dl == pytest.approx(15.0)
    assert got.change_60_min_mg_dl == pytest.approx(30.0)
    fresh = Twin.from_patient("adult#001", config=FAST, initial_glucose_mg_dl=100.0)
    fresh.assimilate_cgm(0, 100.0)
    got = fresh._correction_inputs(3)
    assert got is not None and got.change_30_min_mg_dl == 0.0 == got.change_60_min_mg_dl, "nothing to compare"


# -- on a twin ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def undercounted() -> Day:
    """adult#001, 3 days, three meals a day, every one counted 40 % low (bolused for 60 %)."""
    meals = []
    for d in range(3):
        for minute, grams in ((7 * 60, 60.0), (12 * 60, 70.0), (18 * 60 + 30, 80.0)):
            meals.append(MealEvent(minute=d * 1440 + minute, eaten_g=grams, announced_g=0.6 * grams))
    return simulate_day("adult#001", meals, 3 * 1440, seed=11)


def test_a_twin_learns_that_its_patient_undercounts_meals(undercounted: Day) -> None:
    day = undercounted
    g0 = float(day.history.cgm_mg_dl[np.isfinite(day.history.cgm_mg_dl)][0])
    twin = Twin.from_patient(day.params, basal_mode="delivered", initial_glucose_mg_dl=g0, config=FAST)
    out = backtest(twin, day.history, 15, (60,), first_issue_min=60)
    first = [r for r in out if r.issued_minute < 10 * 60]
    assert all(r.correction_mg_dl == 0.0 for r in first), "nothing learned yet: no correction"

    meal_minutes = np.flatnonzero(day.history.cho_g > 0)
    after_meals = [
        r
        for r in out
        if r.issued_minute >= 1440 + 7 * 60
        and r.issued_minute + 60 < day.history.minutes
        and any(0 <= r.issued_minute - m <= 120 for m in meal_minutes)
    ]
    truth = day.truth
    corrected = np.array([r.p50_mg_dl - truth[r.issued_minute + 60] for r in after_meals])
    raw = np.array([r.p50_mg_dl - r.correction_mg_dl - truth[r.issued_minute + 60] for r in after_meals])
    assert np.mean(raw) < -5.0, "the twin itself under-forecasts after under-counted meals"
    assert np.sqrt(np.mean(corrected**2)) < 0.9 * np.sqrt(np.mean(raw**2))
    assert np.mean([r.correction_mg_dl for r in after_meals]) > 0.0
    assert twin.diagnostics()["correction_pairs"][0] > 40


def test_without_a_recent_reading_the_forecast_is_not_corrected(undercounted: Day) -> None:
    day = undercounted
    cgm = day.history.cgm_mg_dl
    g0 = float(cgm[np.isfinite(cgm)][0])
    twin = Twin.from_patient(day.params, basal_mode="delivered", initial_glucose_mg_dl=g0, config=FAST)
    end = 2 * 1440 + 8 * 60  # an hour after breakfast on day 3
    feed(twin, day.history, 0, end)
    assert np.abs(twin.forecast(120).correction_mg_dl).max() > 0.5
    twin.advance_to(end + 20)  # the sensor falls silent: inputs are no longer known
    assert not twin.forecast(120).correction_mg_dl.any()


def test_a_short_forecast_is_the_start_of_a_long_one(undercounted: Day) -> None:
    """The error model reads the twin's 120-min prediction: a 30-min forecast must not guess it
    (it did, from its last step, so its correction differed from the 120-min forecast's)."""
    day = undercounted
    cgm = day.history.cgm_mg_dl
    twin = Twin.from_patient(
        day.params, basal_mode="delivered", initial_glucose_mg_dl=float(cgm[np.isfinite(cgm)][0]), config=FAST
    )
    feed(twin, day.history, 0, 2 * 1440 + 8 * 60)
    short, long = twin.forecast(30), twin.forecast(120)
    assert np.abs(long.correction_mg_dl).max() > 0.5, "the correction is active"
    n = short.minutes.size
    assert n == 6 and short.member_glucose_mg_dl.shape[1] == n
    np.testing.assert_array_equal(short.minutes, long.minutes[:n])
    for field in ("p10_mg_dl", "p50_mg_dl", "p90_mg_dl", "correction_mg_dl"):
        np.testing.assert_allclose(getattr(short, field), getattr(long, field)[:n], err_msg=field)


def test_late_data_and_restarts_keep_the_learned_correction_exact(undercounted: Day) -> None:
    day = undercounted
    cgm = day.history.cgm_mg_dl
    g0 = float(cgm[np.isfinite(cgm)][0])

    def new() -> Twin:
        return Twin.from_patient(day.params, basal_mode="delivered", initial_glucose_mg_dl=g0, config=FAST)

    def feed_minutes(twin: Twin, a: int, b: int, skip: frozenset[int] = frozenset()) -> None:
        for m in range(a, b + 1):
            twin.record_insulin(m, float(day.history.insulin_u[m]))
            if day.history.cho_g[m] > 0:
                twin.record_carbs(m, float(day.history.cho_g[m]))
            if math.isfinite(cgm[m]) and m not in skip:
                twin.assimilate_cgm(m, float(cgm[m]))

    end = 1440 + 13 * 60
    in_order = new()
    feed_minutes(in_order, 0, end)
    late = new()
    withheld = frozenset(m for m in range(end - 200, end - 100) if math.isfinite(cgm[m]))
    feed_minutes(late, 0, end, withheld)
    restored = Twin.restore(late.checkpoint())
    for twin in (late, restored):
        for m in sorted(withheld, reverse=True):
            twin.assimilate_cgm(m, float(cgm[m]))
    ref = in_order.forecast(120)
    assert np.abs(ref.correction_mg_dl).max() > 0.5, "the correction is active by now"
    for twin in (late, restored):
        fc = twin.forecast(120)
        np.testing.assert_array_equal(fc.correction_mg_dl, ref.correction_mg_dl)
        np.testing.assert_array_equal(fc.p50_mg_dl, ref.p50_mg_dl)


def test_windows_cover_the_lookback_without_gaps() -> None:
    edges = [w for pair in WINDOWS_MIN for w in pair]
    assert edges[0] == 0 and all(a == b for a, b in zip(edges[1:-1:2], edges[2::2], strict=True))
