"""The filter's CGM-error model agrees with the simulated sensor it stands for."""

from __future__ import annotations

import numpy as np
import pytest

from edgetwin.twin.sensor_model import SensorErrorModel
from edgetwin.virtual.sensor import CgmSensor


def test_bias_moments_match_the_cohort_sensor_noise() -> None:
    model = SensorErrorModel.from_spec("Dexcom")
    noise = []
    for seed in range(6):
        s = CgmSensor("Dexcom", seed=seed)
        noise.append([s.noise_at_sample(k) for k in range(4000)])
    eps = np.array(noise).ravel()
    assert model.mean_mg_dl == pytest.approx(eps.mean(), abs=1.5)
    assert model.sd_mg_dl == pytest.approx(eps.std(), rel=0.12)
    # About 40 minutes of memory: correlation 0.7 at 15 min (5 samples of 3 min).
    a = np.array(noise)
    lag5 = np.mean([np.corrcoef(row[:-5], row[5:])[0, 1] for row in a])
    assert model.decay(15) == pytest.approx(0.7, abs=1e-9)
    assert 0.55 < lag5 < 0.85


def test_bias_variance_returns_to_the_stationary_one() -> None:
    m = SensorErrorModel.from_spec("Dexcom")
    assert m.predict_var(0.0, 0.0) == 0.0
    assert m.predict_var(0.0, 10_000) == pytest.approx(m.sd_mg_dl**2)
    assert m.predict_var(4.0, 15) < m.predict_var(4.0, 60) < m.sd_mg_dl**2
    with pytest.raises(ValueError):
        SensorErrorModel(mean_mg_dl=0, sd_mg_dl=0, corr_per_min=0.9)
