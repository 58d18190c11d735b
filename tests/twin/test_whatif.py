"""Scenario grammar and plans."""

from __future__ import annotations

import numpy as np
import pytest

from edgetwin.errors import InputDataError
from edgetwin.twin.forecast import PlannedInputs
from edgetwin.twin.whatif import Bolus, Meal, Scenario, SkipBolus, TempBasal, parse_scenario


def test_scenarios_parse_from_the_command_line_grammar() -> None:
    s = parse_scenario("late bolus=meal:60, bolus:6@20, temp:0:30@5, skip-bolus@0")
    assert s.name == "late bolus"
    assert s.interventions == (Meal(60.0, 0), Bolus(6.0, 20), TempBasal(0.0, 30, 5), SkipBolus(0))
    assert parse_scenario("x=skip-bolus").interventions == (SkipBolus(None),)


@pytest.mark.parametrize(
    "spec",
    [
        "nobody",
        "=bolus:1",
        "x=bolus",
        "x=bolus:abc",
        "x=bolus:500",
        "x=temp:1",
        "x=temp:50:30",
        "x=meal:0",
        "x=dance:1",
        "x=bolus:1@-5",
        "x=bolus:nan",
    ],
)
def test_bad_scenarios_are_refused_with_a_reason(spec: str) -> None:
    with pytest.raises(InputDataError):
        parse_scenario(spec)


def test_plans_add_and_remove_what_the_scenario_says() -> None:
    base = PlannedInputs(boluses=((0, 5.0), (30, 1.0)), meals=((0, 50.0),))
    assert Scenario("s", (SkipBolus(30),)).plan(base).boluses == ((0, 5.0),)
    assert Scenario("s", (SkipBolus(),)).plan(base).boluses == ()
    plan = Scenario("s", (TempBasal(0.0, 10, 5), Bolus(2.0, 1))).plan(base)
    cho = np.zeros(40)
    ins = np.full(40, 1.2 / 60)
    plan.apply(cho, ins, np.full(40, 1.2))
    assert (
        cho[0] == 50.0 and ins[0] == pytest.approx(1.2 / 60 + 5.0) and ins[1] == pytest.approx(1.2 / 60 + 2.0)
    )
    assert (
        (ins[5:15] == 0.0).all()
        and ins[15] == pytest.approx(1.2 / 60)
        and ins[30] == pytest.approx(1.2 / 60 + 1.0)
    )
    with pytest.raises(InputDataError):
        PlannedInputs(boluses=((0, -1.0),))
