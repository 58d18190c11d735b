"""Serial framing (golden, fuzz) and the real pyserial drivers against pty simulators."""

from __future__ import annotations

import asyncio
import contextlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.errors import DeviceUnavailableError
from devices.serial.drivers import SerialCgm, SerialPump
from devices.serial.framing import Frame, FrameKind, Framer
from devices.serial.port import SerialPort
from devices.sim.faults import Fault
from devices.sim.serial_devices import SimSerialCgmReceiver, SimSerialPumpBridge
from devices.sim.world import SimWorld
from devices.timing import Backoff
from edgetwin.clock import ScaledClock
from edgetwin.messages import PumpCommand, PumpCommandKind
from tests.devices.conftest import T0


def test_frame_golden_and_stuffing() -> None:
    frame = Frame(FrameKind.DATA, 5, bytes([0x7E, 0x7D, 0x01]))
    assert bytes(frame).hex() == "7e010503007d5e7d5d01e7247e"
    framer = Framer()
    wire = bytes(frame)
    assert framer.feed_data(b"noise" + wire[:4]) == []
    assert framer.feed_data(wire[4:] + wire) == [frame, frame]
    bad = bytearray(wire)
    bad[-3] ^= 0x01
    assert framer.feed_data(bytes(bad)) == [] and len(framer.take_errors()) == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=8), st.binary(max_size=600))
def test_framer_survives_any_bytes_and_still_finds_good_frames(payloads: list[bytes], junk: bytes) -> None:
    framer = Framer()
    framer.feed_data(junk)
    frames = [Frame(FrameKind.DATA, i, p) for i, p in enumerate(payloads)]
    # A flag closes whatever the junk left open; then every frame arrives intact, byte by byte.
    wire = b"\x7e" + b"".join(bytes(f) for f in frames)
    got = []
    for i in range(len(wire)):
        got += framer.feed_data(wire[i : i + 1])
    assert got == frames


pytestmark = [pytest.mark.timeout(60)]


def cmd(kind: PumpCommandKind, **kw: float) -> PumpCommand:
    return PumpCommand(command_id=f"s-{kind}", kind=kind, created_utc=T0, **kw)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_serial_cgm_streams_survives_unplug_and_corruption() -> None:
    clock = ScaledClock(T0, 7200.0)
    world = SimWorld(clock, meals=[])
    world.faults.add(Fault.DISCONNECT, 200, 260, device="serial-cgm")
    world.faults.add(Fault.BAD_CRC, 300, 330, device="serial-cgm")
    async with SimSerialCgmReceiver(world) as sim, world:
        cgm = SerialCgm(sim.path, clock=clock, io_timeout_s=1.0, backoff=Backoff(initial_s=60, max_s=300))
        got = []

        async def consume() -> None:
            async for r in cgm.readings():
                got.append(r)

        task = asyncio.create_task(consume())
        await asyncio.wait_for(world.wait_minute(480), 30)
        want = {r.seq for r in sim.records if r.time_utc <= world.time_at(460)}
        for _ in range(200):
            if want <= {r.sequence for r in got}:
                break
            await asyncio.sleep(0.02)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    by_seq = {r.sequence: r for r in got}
    assert len(by_seq) == len(got)
    for rec in sim.records:
        if rec.seq in want:
            assert (
                by_seq[rec.seq].glucose_mg_dl == rec.glucose_mg_dl
                and by_seq[rec.seq].time_utc == rec.time_utc
            )
    assert cgm.stats.connections >= 2
    outage = [r for r in got if world.time_at(205) <= r.time_utc < world.time_at(260)]
    assert outage and all(r.backfilled for r in outage)
    assert sim.link is not None


@pytest.mark.asyncio
async def test_serial_pump_bridge_commands_and_history() -> None:
    clock = ScaledClock(T0, 600.0)
    world = SimWorld(clock, meals=[])
    async with SimSerialPumpBridge(world) as sim, world, SerialPump(sim.path, clock=clock) as pump:
        assert (await pump.status()).reservoir_u > 190
        assert (await pump.send(cmd(PumpCommandKind.TEMP_BASAL, rate_u_per_h=0.5, duration_min=30))).confirmed
        world.faults.add(Fault.UNCONFIRMED_COMMANDS, world.minute, device="pump")
        assert not (await pump.send(cmd(PumpCommandKind.CANCEL_TEMP_BASAL))).confirmed
        world.faults.clear(Fault.UNCONFIRMED_COMMANDS)
        assert (await pump.send(cmd(PumpCommandKind.BOLUS, units=1.5))).confirmed
        await world.wait_minute(world.minute + 70)
        deliveries = await pump.deliveries()
        assert sum(d.units for d in deliveries if d.kind == "bolus") == pytest.approx(1.5)
        sim.unplug()
        failed = await pump.send(cmd(PumpCommandKind.SUSPEND))
        assert not failed.confirmed
        sim.replug()
        assert (await pump.send(cmd(PumpCommandKind.SUSPEND))).confirmed
        assert (await pump.status()).suspended


@pytest.mark.asyncio
async def test_a_write_racing_a_close_is_a_lost_port_not_a_stray_exception() -> None:
    """Seen in the week-long HIL soak: a link's ACK was written while a reconnect closed the port;
    pyserial's descriptor was None by then and the TypeError escaped from a background task."""
    master, slave = os.openpty()
    port = SerialPort(os.ttyname(slave))
    try:
        await port.open(lambda data: None)
        ser = port._serial
        assert ser is not None
        fd, ser.fd = ser.fd, None  # what a concurrent close leaves behind
        with pytest.raises(DeviceUnavailableError, match="write failed"):
            await port.write(b"\x00")
        assert port.lost.is_set()
        ser.fd = fd
    finally:
        await port.close()
        os.close(master)
        os.close(slave)
