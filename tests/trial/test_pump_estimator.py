"""The trial's pump (temp basals end by themselves, history as a pump reports it) and the
oracle estimator (true state, announced food only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from edgetwin.messages import InsulinKind
from edgetwin.model.cohort import load_patient
from edgetwin.model.kernels import AUX_PLANNED_G
from edgetwin.trial.estimator import Estimator, OracleEstimator
from edgetwin.trial.pump import TrialPump
from edgetwin.virtual.patient import VirtualPatient

START = datetime(2026, 1, 5, tzinfo=UTC)


def test_temp_basal_runs_its_duration_then_the_schedule_resumes() -> None:
    pump = TrialPump("Insulet", 1.2, START)
    pump.set_temp(0, 3.0, 30)
    delivered = [pump.deliver(m) for m in range(45)]
    assert delivered[0] == pytest.approx(3.0 / 60) and delivered[29] == pytest.approx(3.0 / 60)
    assert delivered[30] == pytest.approx(1.2 / 60)
    status = pump.status(45)
    assert status.temp_basal_u_per_h is None
    kinds = [d.kind for d in pump.deliveries]
    assert kinds == [InsulinKind.TEMP_BASAL, InsulinKind.BASAL]
    assert sum(d.units for d in pump.deliveries) == pytest.approx(sum(delivered))
    assert status.reservoir_u == pytest.approx(300 - sum(delivered), abs=1e-3)


def test_bolus_is_rounded_down_to_the_pump_step_and_reported() -> None:
    pump = TrialPump("Insulet", 1.0, START)
    assert pump.bolus(5, 1.237, automatic=True) == pytest.approx(1.2)
    total = pump.deliver(5)
    assert total == pytest.approx(1.2 + 1.0 / 60)
    micro = [d for d in pump.deliveries if d.kind is InsulinKind.MICRO_BOLUS]
    assert len(micro) == 1 and micro[0].time_utc == START + timedelta(minutes=5)
    pump.set_temp(6, 2.0, 30)
    assert pump.status(10).temp_basal_u_per_h == 2.0
    pump.cancel_temp(10)
    assert pump.status(10).temp_basal_u_per_h is None


def test_oracle_reads_the_true_state_and_only_announced_food() -> None:
    pp = load_patient("adult#002")
    patient = VirtualPatient(pp)
    oracle = OracleEstimator(patient)
    assert isinstance(oracle, Estimator)
    patient.run(np.zeros(30), np.full(30, pp.basal_u_per_h / 60))
    oracle.record_carbs(30, 50.0)
    ens = oracle.ensemble()
    assert ens.minute == 30 and ens.size == 1
    np.testing.assert_array_equal(ens.x[0], patient.state)
    assert ens.aux[0, AUX_PLANNED_G] == 50.0
    # The patient eats 70 g (20 g more than announced): after 4 min the oracle knows what is in
    # the stomach but still expects only the announced rest.
    cho = np.zeros(4)
    cho[0] = 70.0
    patient.run(cho, np.full(4, pp.basal_u_per_h / 60))
    ens = oracle.ensemble()
    np.testing.assert_array_equal(ens.x[0], patient.state)
    assert ens.aux[0, AUX_PLANNED_G] == pytest.approx(50.0 - 4 * 5.0)
