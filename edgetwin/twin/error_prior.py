"""The population's forecast-error model: where a profile twin's median correction starts.

A twin that starts from a therapy profile forecasts with donors' physiology, and its errors
repeat in ways that are much alike from patient to patient (a donor's meal peaks earlier or later
than a real one, the snacks nobody logs push glucose up). The per-patient error model
(:class:`~edgetwin.twin.correction.MedianCorrector`) needs a day of the patient's own forecasts
before it can learn them; until then, and as the prior its regressions are shrunk towards, it
uses the error model of profile twins on the virtual population: coefficients per
calibration horizon and feature, fitted by ``python -m edgetwin.bench.error_prior`` on cohort
scenarios that the benchmark does not use, and shipped as ``edgetwin/data/forecast_error_prior.json``.

The file holds the fit on every cohort patient (used for real patients) and, for each cohort
patient, the fit without that patient (used when a twin is built for a cohort patient with that
patient left out of the population, as ``edgetwin bench estimate`` and the trial do), so no
benchmark figure benefits from the patient's own errors.

A known-patient twin has no such prior: its errors are smaller and of another kind.
"""

from __future__ import annotations

import functools
import json
import logging
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

from edgetwin.errors import ModelError
from edgetwin.twin.correction import FEATURE_NAMES

__all__ = ["ALL_PATIENTS", "DATA_FILE", "check_table", "population_error_coefficients"]

F64 = npt.NDArray[np.float64]
_log = logging.getLogger(__name__)

DATA_FILE = "forecast_error_prior.json"
ALL_PATIENTS = "all"
"""The key of the fit on every cohort patient."""


def check_table(table: dict[str, Any], horizons_min: tuple[int, ...]) -> dict[str, F64]:
    """The coefficient sets of a parsed prior file, validated against the code's features and
    ``horizons_min``; ModelError naming what does not match (the file must then be re-fitted)."""
    if tuple(table.get("feature_names", ())) != FEATURE_NAMES:
        raise ModelError("forecast error prior: its features are not the error model's; re-fit it")
    if tuple(table.get("horizons_min", ())) != tuple(horizons_min):
        raise ModelError("forecast error prior: its horizons are not the calibration horizons; re-fit it")
    sets: dict[str, F64] = {}
    shape = (len(horizons_min), len(FEATURE_NAMES))
    for key, rows in dict(table.get("coefficients", {})).items():
        a = np.array(rows, dtype=np.float64)
        if a.shape != shape or not np.isfinite(a).all():
            raise ModelError(f"forecast error prior: coefficients {key!r} must be {shape} finite numbers")
        sets[str(key)] = a
    if ALL_PATIENTS not in sets:
        raise ModelError(f"forecast error prior: no {ALL_PATIENTS!r} coefficients")
    return sets


@functools.cache
def _shipped() -> dict[str, F64]:
    """The shipped coefficient sets; none (logged) if the file is missing or does not match the
    code, which a test rules out for a release and which must not stop a twin from starting
    (nor ``python -m edgetwin.bench.error_prior`` from re-fitting it)."""
    from edgetwin.twin.forecast import CALIBRATION_HORIZONS

    try:
        text = resources.files("edgetwin.data").joinpath(DATA_FILE).read_text("utf-8")
        return check_table(json.loads(text), CALIBRATION_HORIZONS)
    except (OSError, ValueError, TypeError, AttributeError, ModelError) as exc:
        _log.warning("no population forecast-error model (%s): profile twins learn theirs from scratch", exc)
        return {}


def population_error_coefficients(exclude: tuple[str, ...] = ()) -> F64 | None:
    """(K, F) coefficients of the population's error model, fitted without the ``exclude``d
    cohort patients: the fit on all of them when none of them is excluded, the leave-one-out fit
    when one is; None when more than one is (no fit leaves out that set: the twin then learns
    its error model from its own forecasts alone). Names outside the cohort change nothing."""
    sets = _shipped()
    if not sets:
        return None
    left_out = {name for name in exclude if name in sets and name != ALL_PATIENTS}
    if len(left_out) > 1:
        return None
    return sets[left_out.pop() if left_out else ALL_PATIENTS].copy()
