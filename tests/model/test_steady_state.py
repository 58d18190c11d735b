import numpy as np
import pytest

from edgetwin.errors import ModelError
from edgetwin.model import cohort_names, load_patient, steady_state, with_steady_state
from edgetwin.model.rhs import model_rhs


@pytest.mark.parametrize("name", cohort_names())
def test_shipped_basal_state_is_a_steady_state_and_is_recomputed(name: str) -> None:
    pp = load_patient(name)
    x0 = pp.state0()
    dx = np.empty(13)
    model_rhs(x0, pp.vector(), 0.0, pp.u2ss, 0.0, dx)
    assert np.max(np.abs(dx)) < 1e-8
    np.testing.assert_allclose(steady_state(pp), x0, rtol=1e-8, atol=1e-9)


def test_more_basal_means_lower_steady_glucose() -> None:
    pp = load_patient("adult#003")
    low = steady_state(pp, pp.basal_u_per_h * 1.5)
    high = steady_state(pp, pp.basal_u_per_h * 0.7)
    assert low[3] / pp.Vg < pp.basal_glucose_mg_dl < high[3] / pp.Vg


def test_changed_parameters_get_their_own_steady_state() -> None:
    pp = load_patient("adult#001").replace(Vmx=0.05)
    fixed = with_steady_state(pp)
    dx = np.empty(13)
    model_rhs(fixed.state0(), fixed.vector(), 0.0, fixed.u2ss, 0.0, dx)
    assert np.max(np.abs(dx)) < 1e-8


def test_negative_basal_is_refused() -> None:
    with pytest.raises(ModelError):
        steady_state(load_patient("adult#001"), -1.0)
