import numpy as np
import pytest

from edgetwin.errors import InputDataError
from edgetwin.model import load_patient, new_aux, run_ensemble
from edgetwin.virtual.patient import VirtualPatient


def _inputs(pp):  # type: ignore[no-untyped-def]
    cho = np.zeros(600)
    ins = np.full(600, pp.basal_u_per_h / 60.0)
    cho[30] = 60.0
    ins[30] += 6.0
    return cho, ins


def test_each_member_matches_a_single_run() -> None:
    names = ["adult#001", "adolescent#005", "child#007"]
    pps = [load_patient(n) for n in names]
    cho, ins = _inputs(pps[0])
    params = np.stack([p.vector() for p in pps])
    x = np.stack([p.state0() for p in pps])
    out = run_ensemble(params, x, new_aux(3), cho, ins, stride=5, want_bg=True)
    assert out.gsub_mg_dl.shape == (3, 121)
    for i, pp in enumerate(pps):
        states = VirtualPatient(pp, rtol=1e-6).run(cho, ins)
        np.testing.assert_allclose(out.gsub_mg_dl[i], states[::5, 12] / pp.Vg, atol=0.01)
        np.testing.assert_allclose(out.bg_mg_dl[i], states[::5, 3] / pp.Vg, atol=0.01)
        np.testing.assert_allclose(x[i], states[-1], rtol=1e-4)


def test_per_member_inputs_differ_and_continuing_equals_one_long_run() -> None:
    pp = load_patient("adult#002")
    cho, ins = _inputs(pp)
    more = ins.copy()
    more[30] += 3.0
    x = np.tile(pp.state0(), (2, 1))
    aux = new_aux(2)
    first = run_ensemble(
        pp.vector(), x, aux, np.stack([cho[:300], cho[:300]]), np.stack([ins[:300], more[:300]])
    )
    assert first.gsub_mg_dl[1, -1] < first.gsub_mg_dl[0, -1] - 5.0  # more insulin, lower glucose
    second = run_ensemble(
        pp.vector(), x, aux, np.stack([cho[300:], cho[300:]]), np.stack([ins[300:], more[300:]])
    )
    whole = VirtualPatient(pp).run(cho, ins)
    assert abs(second.gsub_mg_dl[0, -1] - whole[-1, 12] / pp.Vg) < 0.05


def test_shape_errors_are_typed() -> None:
    pp = load_patient("adult#001")
    x = np.tile(pp.state0(), (2, 1))
    with pytest.raises(InputDataError):
        run_ensemble(pp.vector(), x, new_aux(3), np.zeros(10), np.zeros(10))
    with pytest.raises(InputDataError):
        run_ensemble(pp.vector(), x, new_aux(2), np.zeros(10), np.zeros(9))
    with pytest.raises(InputDataError):
        run_ensemble(pp.vector(), x, new_aux(2), -np.ones(10), np.zeros(10))
