import numpy as np

from edgetwin.model import load_patient
from edgetwin.twin.ensemble import InputPlan, TwinEnsemble, simulate_plans, weighted_quantiles


def test_plans_run_on_every_member_without_changing_the_ensemble() -> None:
    pp = load_patient("adult#001")
    ens = TwinEnsemble.from_patient(pp, n=4)
    ens.x[1:, 3] *= np.array([0.9, 1.1, 1.2])  # different plasma glucose
    before = ens.x.copy()
    basal = np.full(120, pp.basal_u_per_h / 60.0)
    bolus = basal.copy()
    bolus[0] += 3.0
    out = simulate_plans(
        ens, [InputPlan("basal", np.zeros(120), basal), InputPlan("bolus", np.zeros(120), bolus)]
    )
    assert out.shape == (2, 4, 25)
    np.testing.assert_array_equal(ens.x, before)
    assert (out[1, :, -1] < out[0, :, -1] - 8).all()


def test_weighted_quantiles_follow_the_weights() -> None:
    values = np.array([[1.0], [2.0], [3.0], [4.0]])
    even = weighted_quantiles(values, np.full(4, 0.25), (0.5,))
    assert even[0, 0] == 2.5
    heavy = weighted_quantiles(values, np.array([0.01, 0.01, 0.01, 0.97]), (0.1, 0.5))
    assert heavy[1, 0] > 3.9 and heavy[0, 0] > 3.0
