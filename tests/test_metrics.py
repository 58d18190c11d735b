import numpy as np
import pytest

from edgetwin.metrics import glucose_metrics


def test_time_in_ranges_and_risk_indices() -> None:
    g = np.array([50.0, 60.0, 100.0, 150.0, 200.0, 300.0, np.nan])
    m = glucose_metrics(g)
    assert m.n == 6
    assert m.tbr_54_pct == pytest.approx(100 / 6)
    assert m.tbr_70_pct == pytest.approx(200 / 6)
    assert m.tir_70_180_pct == pytest.approx(200 / 6)
    assert m.tar_250_pct == pytest.approx(100 / 6)
    # Risk function is ~0 at 112.5 mg/dL, large at 50 (low) and 300 (high).
    flat = glucose_metrics(np.full(10, 112.5))
    assert flat.lbgi < 0.01 and flat.hbgi < 0.01
    assert m.lbgi > 5 and m.hbgi > 5


def test_empty_input_gives_nan_not_crash() -> None:
    assert glucose_metrics([]).n == 0
