"""The uncalibrated forecast from members: the central line is their mean, inside the band."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetwin.twin.forecast import cgm_bands
from edgetwin.twin.sensor_model import SensorErrorModel

SENSOR = SensorErrorModel(mean_mg_dl=0.0, sd_mg_dl=8.0, corr_per_min=0.97)
HORIZONS = np.array([30.0, 60.0, 120.0])


def _bands(member_glucose: list[float]) -> np.ndarray:
    g = np.repeat(np.array(member_glucose, dtype=np.float64)[:, None], HORIZONS.size, axis=1)
    return cgm_bands(g, np.zeros(len(member_glucose)), SENSOR.sd_mg_dl**2, HORIZONS, SENSOR)


def test_a_minority_of_members_moves_the_central_line_but_not_the_median() -> None:
    # 56 members stay at 120 mg/dL, 8 ate a snack nobody logged and are heading for 200.
    q = _bands([120.0] * 56 + [200.0] * 8)
    expected_mean = (56 * 120.0 + 8 * 200.0) / 64
    np.testing.assert_allclose(q[1], expected_mean)
    # A median would have stayed near 120: the eight would not count until they were half.
    assert (q[1] > 125.0).all()
    assert (q[0] < q[1]).all() and (q[1] < q[2]).all()


def test_symmetric_members_give_the_same_centre_as_a_median_would() -> None:
    q = _bands([100.0, 110.0, 120.0, 130.0, 140.0])
    np.testing.assert_allclose(q[1], 120.0)
    np.testing.assert_allclose(q[1] - q[0], q[2] - q[1], rtol=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=20.0, max_value=600.0), min_size=1, max_size=64))
def test_the_central_line_never_leaves_the_band(member_glucose: list[float]) -> None:
    q = _bands(member_glucose)
    assert np.isfinite(q).all()
    assert (q[0] <= q[1] + 1e-9).all() and (q[1] <= q[2] + 1e-9).all()
