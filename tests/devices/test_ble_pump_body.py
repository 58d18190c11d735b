"""The real BLE pump, heart-rate and meter drivers against their simulators."""

from __future__ import annotations

import asyncio

import pytest

from devices.ble.body import BleHeartRate, BleMeter
from devices.ble.pump import BlePump
from devices.sim.bench import SimBench
from devices.sim.faults import Fault
from edgetwin.clock import ScaledClock
from edgetwin.messages import InsulinKind, PumpCommand, PumpCommandKind
from tests.devices.conftest import T0

pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio]


def cmd(kind: PumpCommandKind, **kw: float) -> PumpCommand:
    return PumpCommand(command_id=f"c-{kind}", kind=kind, created_utc=T0, **kw)  # type: ignore[arg-type]


async def test_pump_commands_are_confirmed_by_read_back_and_unconfirmed_reported() -> None:
    clock = ScaledClock(T0, 600.0)
    async with (
        SimBench(clock, kinds=("pump",), meals=[]) as bench,
        BlePump(bench.address("pump"), backend=bench.backend, clock=clock, io_timeout_s=2.0) as pump,
    ):
        status = await pump.status()
        assert status.reservoir_u > 190 and not status.suspended and status.temp_basal_u_per_h is None
        r = await pump.send(cmd(PumpCommandKind.TEMP_BASAL, rate_u_per_h=0.42, duration_min=30))
        assert r.confirmed, r.detail
        assert bench.world.pump.temp_basal is not None and bench.world.pump.temp_basal[0] == pytest.approx(
            0.4
        )
        assert (await pump.status()).temp_basal_u_per_h == pytest.approx(0.4)
        r = await pump.send(cmd(PumpCommandKind.BOLUS, units=1.0))
        assert r.confirmed, r.detail
        await bench.world.wait_minute(bench.world.minute + 2)
        r = await pump.send(cmd(PumpCommandKind.CANCEL_TEMP_BASAL))
        assert r.confirmed and bench.world.pump.temp_basal is None
        r = await pump.send(cmd(PumpCommandKind.SUSPEND))
        assert r.confirmed and (await pump.status()).suspended
        refused = await pump.send(cmd(PumpCommandKind.BOLUS, units=1.0))  # no bolus while suspended
        assert not refused.confirmed and "PROCEDURE_NOT_APPLICABLE" in refused.detail
        assert (await pump.send(cmd(PumpCommandKind.RESUME))).confirmed

        bench.world.faults.add(Fault.UNCONFIRMED_COMMANDS, bench.world.minute, device="pump")
        before = bench.world.pump.delivered_bolus_total_u
        lied = await pump.send(cmd(PumpCommandKind.BOLUS, units=2.0))
        assert not lied.confirmed and "read-back" in lied.detail
        tbr = await pump.send(cmd(PumpCommandKind.TEMP_BASAL, rate_u_per_h=2.0, duration_min=60))
        assert not tbr.confirmed
        await asyncio.sleep(0.5)
        assert bench.world.pump.delivered_bolus_total_u == pytest.approx(before)
        bench.world.faults.clear(Fault.UNCONFIRMED_COMMANDS)

        await bench.world.wait_minute(bench.world.minute + 3)
        deliveries = await pump.deliveries()
        kinds = {d.kind for d in deliveries}
        assert InsulinKind.BOLUS in kinds and (InsulinKind.BASAL in kinds or InsulinKind.TEMP_BASAL in kinds)
        boluses = [d for d in deliveries if d.kind is InsulinKind.BOLUS]
        assert sum(d.units for d in boluses) == pytest.approx(1.0)
        assert await pump.deliveries(pump.last_sequence) == []


async def test_pump_occlusion_and_empty_reservoir_show_in_status() -> None:
    clock = ScaledClock(T0, 600.0)
    async with (
        SimBench(clock, kinds=("pump",), meals=[]) as bench,
        BlePump(bench.address("pump"), backend=bench.backend, clock=clock, io_timeout_s=2.0) as pump,
    ):
        now = bench.world.minute
        bench.world.faults.add(Fault.PUMP_OCCLUSION, now + 1, now + 30, device="pump")
        await bench.world.wait_minute(now + 2)
        assert (await pump.status()).occluded
        bench.world.faults.add(Fault.EMPTY_RESERVOIR, now + 3, device="pump")
        await bench.world.wait_minute(now + 4)
        status = await pump.status()
        assert status.reservoir_u == 0.0
        assert not (await pump.send(cmd(PumpCommandKind.BOLUS, units=1.0))).confirmed


async def test_pump_unreachable_command_is_not_confirmed() -> None:
    clock = ScaledClock(T0, 600.0)
    async with SimBench(clock, kinds=("pump",), meals=[]) as bench:
        bench.world.faults.add(Fault.DISCONNECT, 0, device="pump")
        await bench.world.wait_minute(1)
        pump = BlePump(
            bench.address("pump"), backend=bench.backend, clock=clock, io_timeout_s=0.3, connect_attempts=1
        )
        result = await pump.send(cmd(PumpCommandKind.BOLUS, units=1.0))
        assert not result.confirmed and "unreachable" in result.detail
        await pump.close()


async def test_heart_rate_and_meter() -> None:
    clock = ScaledClock(T0, 3600.0)
    async with SimBench(clock, kinds=("heart", "meter")) as bench:
        hr = BleHeartRate(bench.address("heart"), backend=bench.backend, clock=clock, io_timeout_s=2.0)
        got = []
        gen = hr.readings()
        async for reading in gen:
            got.append(reading)
            if len(got) == 5:
                break
        await gen.aclose()
        assert all(40 < r.heart_rate_bpm < 120 and r.sensor_contact and r.rr_intervals_s for r in got)
        for _ in range(3):
            bench.world.meter.take()
        meter = BleMeter(bench.address("meter"), backend=bench.backend, clock=clock, io_timeout_s=2.0)
        first = await meter.fetch()
        assert [r.sequence for r in first] == [1, 2, 3]
        for r, rec in zip(first, bench.world.meter.records, strict=True):
            assert r.glucose_mg_dl == pytest.approx(rec.glucose_mg_dl or 0)
        bench.world.meter.take()
        assert [r.sequence for r in await meter.fetch()] == [4]
