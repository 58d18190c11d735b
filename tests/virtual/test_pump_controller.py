import pytest

from edgetwin.virtual.controller import BasalBolusController, Observation
from edgetwin.virtual.pump import VirtualPump


def test_pump_rounds_down_to_increments_and_caps() -> None:
    pump = VirtualPump("Insulet")
    assert pump.bolus(3.27) == pytest.approx(3.25)
    assert pump.bolus(100.0) == pytest.approx(30.0)
    assert pump.bolus(-1.0) == 0.0
    assert pump.basal_rate(1.267) == pytest.approx(1.25)
    assert pump.basal_rate(99.0) == pytest.approx(30.0)
    assert pump.minute_insulin_u(1.2, 2.0) == pytest.approx(1.2 / 60 + 2.0)


def test_basal_bolus_reference_formula() -> None:
    c = BasalBolusController(1.2, carb_ratio_g_per_u=10.0, correction_factor_mg_dl_per_u=40.0)
    assert c.act(Observation(0, 120.0)).bolus_u == 0.0
    assert c.act(Observation(5, 120.0, announced_cho_g=60.0)).bolus_u == pytest.approx(6.0)
    # Above 150 mg/dL a correction to 140 is added.
    assert c.act(Observation(10, 220.0, announced_cho_g=60.0)).bolus_u == pytest.approx(6.0 + 80.0 / 40.0)
    assert c.act(Observation(15, None)).basal_u_per_h == 1.2
