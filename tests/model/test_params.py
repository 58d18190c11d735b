import numpy as np
import pytest

from edgetwin.errors import UnknownPatientError
from edgetwin.model import PARAM_NAMES, PatientParams, cohort_names, load_patient


def test_cohort_has_thirty_patients_in_three_groups() -> None:
    names = cohort_names()
    assert len(names) == 30
    assert {n.split("#")[0] for n in names} == {"adult", "adolescent", "child"}
    assert len(cohort_names("child")) == 10


def test_vector_round_trip_keeps_every_parameter() -> None:
    pp = load_patient("child#004")
    back = PatientParams.from_vector(pp.name, pp.vector(), pp.x0)
    assert back == pp
    assert pp.vector()[PARAM_NAMES.index("kabs")] == pp.kabs


def test_unknown_patient_names_the_known_ones() -> None:
    with pytest.raises(UnknownPatientError, match="adult#001"):
        load_patient("adult#011")


def test_non_finite_parameter_is_refused() -> None:
    v = load_patient("adult#001").vector()
    v[3] = np.nan
    with pytest.raises(ValueError, match="kmin"):
        PatientParams.from_vector("x", v)


def test_cohort_is_within_physiological_bounds() -> None:
    for n in cohort_names():
        assert load_patient(n).out_of_bounds() == []
