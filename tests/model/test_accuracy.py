"""The compiled integrator against a tight, independent SciPy solve of the same equations."""

import numpy as np
import pytest

from edgetwin.model import cohort_names, load_patient, load_therapy
from edgetwin.model.reference import reference_simulate
from edgetwin.virtual.patient import VirtualPatient

pytest.importorskip("scipy")


def meal_day(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Three meals and a snack with boluses, a late correction bolus, basal throughout."""
    pp = load_patient(name)
    cr = load_therapy(name).carb_ratio_g_per_u
    cho = np.zeros(1440)
    ins = np.full(1440, pp.basal_u_per_h / 60.0)
    for minute, grams in ((420, 45.0), (720, 70.0), (900, 10.0), (1080, 80.0)):
        cho[minute] = grams
        ins[minute] += grams / cr
    ins[1260] += 1.0
    return cho, ins


@pytest.mark.slow
@pytest.mark.parametrize("name", cohort_names())
def test_matches_tight_reference_within_0_05_mg_dl(name: str) -> None:
    pp = load_patient(name)
    cho, ins = meal_day(name)
    ref = reference_simulate(pp, cho, ins, rtol=1e-10, atol=1e-10)
    states = VirtualPatient(pp).run(cho, ins)
    err_gsub = np.max(np.abs(states[:, 12] - ref[:, 12])) / pp.Vg
    err_bg = np.max(np.abs(states[:, 3] - ref[:, 3])) / pp.Vg
    assert err_gsub < 0.05, f"{name}: subcutaneous glucose off by {err_gsub:.4f} mg/dL"
    assert err_bg < 0.05, f"{name}: plasma glucose off by {err_bg:.4f} mg/dL"
    # The day must actually move glucose, or the comparison proves nothing.
    assert np.ptp(ref[:, 3] / pp.Vg) > 30.0
