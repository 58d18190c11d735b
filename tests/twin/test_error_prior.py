"""The population's forecast-error model: shipped matching the code, left-one-out for cohort
patients, the start and the anchor of a profile twin's own error model."""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

from edgetwin.bench.error_prior import main as fit_main
from edgetwin.errors import ModelError
from edgetwin.model import cohort_names
from edgetwin.twin import error_prior
from edgetwin.twin.correction import FEATURE_NAMES, N_FEATURES, MedianCorrector
from edgetwin.twin.error_prior import ALL_PATIENTS, check_table, population_error_coefficients
from edgetwin.twin.forecast import CALIBRATION_HORIZONS
from edgetwin.twin.history import feed
from edgetwin.twin.identify import IdentifyConfig, identify
from edgetwin.twin.prior import profile_prior
from edgetwin.twin.twin import BasalSchedule, Twin

from .conftest import FAST, Day
from .test_prior import cohort_profile

K = len(CALIBRATION_HORIZONS)
BENCH_SEEDS = {1, 2, 3}


def shipped() -> dict[str, Any]:
    return json.loads(resources.files("edgetwin.data").joinpath(error_prior.DATA_FILE).read_text("utf-8"))


def test_the_shipped_model_matches_the_code_and_was_not_fitted_on_the_bench_scenarios() -> None:
    table = shipped()
    sets = check_table(table, CALIBRATION_HORIZONS)  # the features and horizons are the code's
    assert set(sets) == {ALL_PATIENTS, *cohort_names()}, "a fit without each cohort patient"
    assert not BENCH_SEEDS & set(table["seeds"]), "bench estimate's scenarios are held out"
    assert min(table["pairs_per_horizon"]) > 10_000
    assert 0.0 < table["ridge"] < 100.0


def test_a_twin_for_a_cohort_patient_uses_the_fit_without_that_patient() -> None:
    every = population_error_coefficients()
    assert every is not None and every.shape == (K, N_FEATURES)
    left_out = population_error_coefficients(("child#003",))
    assert left_out is not None and not np.array_equal(left_out, every)
    np.testing.assert_array_equal(left_out, check_table(shipped(), CALIBRATION_HORIZONS)["child#003"])
    np.testing.assert_array_equal(population_error_coefficients(("somebody else",)), every)
    assert population_error_coefficients(("child#003", "adult#001")) is None, "no such fit: none"
    prior = profile_prior(cohort_profile("child#003"), exclude=("child#003",))
    np.testing.assert_array_equal(prior.error_model_coef, left_out)


def _table() -> dict[str, Any]:
    return {
        "horizons_min": list(CALIBRATION_HORIZONS),
        "feature_names": list(FEATURE_NAMES),
        "coefficients": {ALL_PATIENTS: np.zeros((K, N_FEATURES)).tolist()},
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.update(feature_names=list(FEATURE_NAMES[:-1])), "features"),
        (lambda t: t.update(horizons_min=[30, 60]), "horizons"),
        (lambda t: t["coefficients"].update(x=[[0.0] * N_FEATURES]), "'x' must be"),
        (lambda t: t["coefficients"][ALL_PATIENTS][0].__setitem__(0, float("nan")), "finite"),
        (lambda t: t.update(coefficients={}), "no 'all'"),
    ],
)
def test_a_stale_or_broken_file_is_refused_by_name(change: Any, message: str) -> None:
    check_table(_table(), CALIBRATION_HORIZONS)
    table = _table()
    change(table)
    with pytest.raises(ModelError, match=message):
        check_table(table, CALIBRATION_HORIZONS)


def test_without_a_usable_file_profile_twins_start_without_a_prior(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(error_prior, "DATA_FILE", "no_such_file.json")
    error_prior._shipped.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="edgetwin.twin.error_prior"):
            assert population_error_coefficients() is None
            prior = profile_prior(cohort_profile("adult#002"), exclude=("adult#002",), mixed_guts=False)
        assert prior.error_model_coef is None
        assert "no population forecast-error model" in caplog.text
    finally:
        error_prior._shipped.cache_clear()


# -- the per-patient model anchored to it ------------------------------------------------------


def rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = np.empty((n, N_FEATURES))
    x[:, 0] = 1.0
    x[:, 1:] = 10.0 * rng.standard_normal((n, N_FEATURES - 1))
    return x


def test_the_prior_is_the_correction_until_the_patients_own_pairs_take_over() -> None:
    rng = np.random.default_rng(5)
    prior = np.zeros((K, N_FEATURES))
    prior[:, 0] = 8.0  # the population's forecasts run 8 mg/dL low
    mc = MedianCorrector(K, prior_coef=prior)
    x = rows(rng, 3000)
    assert mc.correction(x[:K]) == pytest.approx(np.full(K, 8.0)), "before any pair"
    i = 0
    while mc.pairs[0] < mc.min_pairs:  # this patient's run 8 mg/dL high instead
        assert mc.correction(x[:K])[0] == pytest.approx(8.0), "too few of its own pairs yet"
        mc.learn(0, x[i], -8.0, minute=30 * i)
        i += 1
    between = mc.correction(x[:K])[0]
    assert -8.0 < between < 8.0, "its own pairs and the prior both count"
    for k in range(i, 3000):
        mc.learn(0, x[k], -8.0, minute=30 * k)
    assert mc.correction(x[:K])[0] == pytest.approx(-8.0, abs=1.0), "enough data outweigh the prior"
    assert mc.correction(x[:K])[1:] == pytest.approx(np.full(K - 1, 8.0)), "other horizons learned nothing"


def test_the_prior_survives_copies_and_checkpoints_and_old_checkpoints_have_none() -> None:
    prior = np.arange(K * N_FEATURES, dtype=np.float64).reshape(K, N_FEATURES) / 100.0
    mc = MedianCorrector(K, prior_coef=prior)
    back = MedianCorrector.from_dict(K, msgpack.unpackb(msgpack.packb(mc.to_dict()), raw=False))
    for other in (back, mc.copy()):
        assert other.prior_coef is not None
        np.testing.assert_array_equal(other.prior_coef, prior)
        np.testing.assert_array_equal(other.coefficients(), mc.coefficients())
    old = mc.to_dict()
    del old["prior_coef"]
    restored = MedianCorrector.from_dict(K, old)
    assert restored.prior_coef is None
    with pytest.raises(ValueError, match="prior coefficients"):
        MedianCorrector(K, prior_coef=np.zeros((K, 3)))


# -- on twins ----------------------------------------------------------------------------------


def test_a_profile_twin_corrects_from_its_first_forecast_and_a_known_twin_does_not(day: Day) -> None:
    cgm = day.history.cgm_mg_dl
    g0 = float(cgm[np.isfinite(cgm)][0])
    prior = profile_prior(cohort_profile("adult#001"), exclude=("adult#001",))
    profile_twin = Twin(
        prior,
        BasalSchedule.constant(round(day.params.basal_u_per_h, 2)),
        basal_mode="delivered",
        config=FAST,
        initial_glucose_mg_dl=g0,
    )
    known = Twin.from_patient(day.params, basal_mode="delivered", config=FAST, initial_glucose_mg_dl=g0)
    end = 8 * 60  # an hour after breakfast, on the first morning
    for twin in (profile_twin, known):
        feed(twin, day.history, 0, end)
    assert np.abs(profile_twin.forecast(120).correction_mg_dl).max() > 0.5
    assert not known.forecast(120).correction_mg_dl.any(), "a known twin learns its own first"
    assert profile_twin.diagnostics()["correction_prior"] == "population"
    assert known.diagnostics()["correction_prior"] == "none"
    restored = Twin.restore(profile_twin.checkpoint())
    np.testing.assert_array_equal(restored.forecast(120).p50_mg_dl, profile_twin.forecast(120).p50_mg_dl)
    # A twin started from a personalised prior (`edgetwin forecast --profile` on a long history)
    # keeps the population's error model as its start.
    res = identify(prior, day.history, config=IdentifyConfig(screen_budget=64, generations=1))
    assert res.posterior.error_model_coef is not None
    np.testing.assert_array_equal(res.posterior.error_model_coef, prior.error_model_coef)


def test_the_fit_writes_a_file_twins_can_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "prior.json"
    assert fit_main(["--patients", "2", "--days", "1", "--seeds", "11", "--out", str(out)]) == 0
    table = json.loads(out.read_text("utf-8"))
    sets = check_table(table, CALIBRATION_HORIZONS)
    assert set(sets) == {ALL_PATIENTS, *table["patients"]} and len(table["patients"]) == 2
    assert table["seeds"] == [11] and min(table["pairs_per_horizon"]) > 40
    assert not np.array_equal(sets[ALL_PATIENTS], sets[table["patients"][0]])
    assert "wrote" in capsys.readouterr().out
