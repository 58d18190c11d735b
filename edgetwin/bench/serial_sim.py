"""A serial CGM receiver simulator in a process of its own, for benches and kill tests.

    python -m edgetwin.bench.serial_sim --path P --start ISO --anchor ISO --factor F [--seed S]

Runs a simulated body and a serial CGM receiver (``devices.sim``) on a pty symlinked at ``P`` (as
udev names a USB adapter), on a clock anchored to real time exactly as the gateway's scaled clock
is (``[clock] start_utc``/``anchor_utc``/``factor``), until SIGTERM. The gateway opens it as
``serial:P``: the device lives outside the gateway process, keeps running while the gateway is
killed and restarted, and costs the gateway nothing, like a real receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from datetime import datetime

from devices.sim.serial_devices import SimSerialCgmReceiver
from devices.sim.world import SimWorld
from edgetwin.gateway.config import ClockConfig
from edgetwin.gateway.timekeeping import clock_from_config


async def main(args: argparse.Namespace) -> None:
    clock = clock_from_config(
        ClockConfig(
            "scaled", args.factor, datetime.fromisoformat(args.start), datetime.fromisoformat(args.anchor)
        )
    )
    world = SimWorld(clock, seed=args.seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with SimSerialCgmReceiver(world, path=args.path), world:
        await stop.wait()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="a serial CGM receiver simulator on a pty")
    p.add_argument("--path", required=True)
    p.add_argument("--start", required=True)
    p.add_argument("--anchor", required=True)
    p.add_argument("--factor", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    asyncio.run(main(p.parse_args()))
