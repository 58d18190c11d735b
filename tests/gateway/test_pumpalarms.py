"""Alarms from the pump's own status: occlusion, empty and low reservoir."""

from __future__ import annotations

from datetime import timedelta

import pytest

from edgetwin.clock import ManualClock
from edgetwin.gateway.alarms import AlarmCenter
from edgetwin.gateway.config import WatchdogConfig
from edgetwin.gateway.pumpalarms import check_pump_status
from edgetwin.messages import Alarm, PumpStatus
from tests.gateway.helpers import START, CollectingNotifier

WD = WatchdogConfig(reservoir_low_u=10.0)


def status(minutes: float = 0.0, reservoir_u: float = 150.0, occluded: bool = False) -> PumpStatus:
    return PumpStatus(
        START + timedelta(minutes=minutes), "pump", reservoir_u, False, False, 1.0, occluded=occluded
    )


async def center() -> tuple[AlarmCenter, list[Alarm]]:
    stored: list[Alarm] = []

    async def store(a: Alarm) -> None:
        stored.append(a)

    return AlarmCenter(ManualClock(START), [CollectingNotifier()], store), stored


@pytest.mark.asyncio
async def test_occlusion_sounds_urgently_and_resolves_when_cleared() -> None:
    alarms, stored = await center()
    await check_pump_status(alarms, status(occluded=True), WD, START)
    assert [(a.kind, a.severity) for a in stored] == [("pump_occlusion", "urgent")]
    assert "not going in" in stored[0].message
    await check_pump_status(alarms, status(occluded=False), WD, START)
    assert stored[-1].kind == "pump_occlusion_resolved" and "pump_occlusion" not in alarms.active


@pytest.mark.asyncio
async def test_reservoir_low_is_a_warning_and_empty_is_urgent() -> None:
    alarms, stored = await center()
    await check_pump_status(alarms, status(reservoir_u=60.0), WD, START)
    assert stored == []
    await check_pump_status(alarms, status(reservoir_u=8.0), WD, START)
    assert [(a.kind, a.severity) for a in stored] == [("pump_reservoir_low", "warning")]
    await check_pump_status(alarms, status(reservoir_u=0.0), WD, START)
    assert ("pump_reservoir_empty", "urgent") in [(a.kind, a.severity) for a in stored]
    await check_pump_status(alarms, status(reservoir_u=200.0), WD, START)
    assert not alarms.active
    assert {"pump_reservoir_empty_resolved", "pump_reservoir_low_resolved"} <= {a.kind for a in stored}


@pytest.mark.asyncio
async def test_an_old_back_filled_status_never_alarms() -> None:
    alarms, stored = await center()
    await check_pump_status(alarms, status(minutes=-60, occluded=True, reservoir_u=0.0), WD, START)
    assert stored == [] and not alarms.active
