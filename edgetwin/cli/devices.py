"""``edgetwin devices``: decode captured packets, scan for devices, read live readings.

* ``edgetwin devices decode KIND HEX`` prints the decoded record as JSON; bad input prints one
  error line and exits 2. KIND: cgm-measurement, cgm-feature, cgm-status, session-start-time,
  session-run-time, racp, cgm-control-point, glucose-measurement, heart-rate, ids-status,
  ids-annunciation, ids-status-reader, ids-command, ids-command-data, ids-history, ids-racp.
* ``edgetwin devices scan [--sim]`` lists advertising devices (``--sim``: the simulated ones).
* ``edgetwin devices read NAME [--minutes M] [--speed X]`` prints live readings, one JSON object a
  line, e.g. ``edgetwin devices read ble-sim:cgm --minutes 60 --speed 600``.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["DECODERS", "register"]

DECODERS = (
    "cgm-measurement",
    "cgm-feature",
    "cgm-status",
    "session-start-time",
    "session-run-time",
    "racp",
    "cgm-control-point",
    "glucose-measurement",
    "heart-rate",
    "ids-status",
    "ids-annunciation",
    "ids-status-reader",
    "ids-command",
    "ids-command-data",
    "ids-history",
    "ids-racp",
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "devices",
        help="decode device packets, scan, read live readings",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dsub = p.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    d = dsub.add_parser("decode", help="decode a captured characteristic value (hex) to JSON")
    d.add_argument("kind", choices=DECODERS, metavar="KIND", help=", ".join(DECODERS))
    d.add_argument("hex", help="the bytes, in hex (spaces and colons allowed)")
    d.set_defaults(handler=run_decode)
    s = dsub.add_parser("scan", help="list advertising health devices")
    s.add_argument("--sim", action="store_true", help="scan the simulated devices instead of the radio")
    s.add_argument("--seconds", type=float, default=5.0, help="how long to scan")
    s.set_defaults(handler=run_scan)
    r = dsub.add_parser(
        "read",
        help="print live readings of a device as JSON lines",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    r.add_argument(
        "name",
        help="ble:ADDR[?kind=cgm|pump|heart|meter], ble-sim:KIND, serial:PATH?baud=N&kind=cgm|pump, "
        "serial-sim:cgm|pump",
    )
    r.add_argument("--minutes", type=float, default=60.0, help="how long to read (clock minutes)")
    r.add_argument(
        "--speed", type=float, default=1.0, help="clock speed-up for simulators (600: 10 h per minute)"
    )
    r.add_argument("--patient", default="adult#001", help="virtual patient of the simulators")
    r.set_defaults(handler=run_read)


def _jsonable(obj: Any) -> Any:
    import dataclasses
    import enum
    import math
    from datetime import datetime

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {"record": type(obj).__name__}
        out.update({f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)})
        return out
    if isinstance(obj, enum.Flag):
        return [m.name for m in type(obj) if m.value and m in obj]
    if isinstance(obj, enum.Enum):
        return obj.name if not isinstance(obj, str) else obj.value
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, (list, tuple, frozenset, set)):
        items = [_jsonable(x) for x in obj]
        return sorted(items) if isinstance(obj, (set, frozenset)) else items
    return obj


def run_decode(args: argparse.Namespace) -> int:
    import json

    from devices.codecs import cgms, glucose, heart_rate, ids, racp
    from edgetwin.cli import UsageError

    text = args.hex.replace(" ", "").replace(":", "")
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"{args.hex!r} is not hex") from None
    table: dict[str, Any] = {
        "cgm-measurement": cgms.decode_measurements,
        "cgm-feature": cgms.CgmFeature.from_bytes,
        "cgm-status": cgms.CgmStatusRecord.from_bytes,
        "session-start-time": cgms.SessionStartTime.from_bytes,
        "session-run-time": cgms.SessionRunTime.from_bytes,
        "racp": racp.Racp.from_bytes,
        "cgm-control-point": cgms.CgmControlPoint.from_bytes,
        "glucose-measurement": glucose.GlucoseMeasurement.from_bytes,
        "heart-rate": heart_rate.HeartRateMeasurement.from_bytes,
        "ids-status": ids.IddStatus.from_bytes,
        "ids-annunciation": ids.IddAnnunciation.from_bytes,
        "ids-status-reader": ids.decode_status_reader,
        "ids-command": ids.decode_command,
        "ids-command-data": ids.decode_command_data,
        "ids-history": ids.HistoryEvent.from_bytes,
        "ids-racp": lambda b: racp.Racp.from_bytes(b, profile=racp.RacpProfile.IDS, e2e=True),
    }
    record = table[args.kind](data)  # DecodeError is an EdgeTwinError: one line, exit 2
    print(json.dumps(_jsonable(record), sort_keys=True))
    return 0


def run_scan(args: argparse.Namespace) -> int:
    import asyncio

    async def scan() -> list[tuple[str, str, list[str]]]:
        from bleak import BleakScanner

        from devices.ble.transport import BleakBackend

        if args.sim:
            from datetime import UTC, datetime

            from devices.sim.bench import SimBench
            from edgetwin.clock import ScaledClock

            async with SimBench(ScaledClock(datetime.now(UTC), 1.0), run_world=False) as bench:
                return await _discover(BleakScanner, bench.backend, min(args.seconds, 1.0))
        return await _discover(BleakScanner, BleakBackend(), args.seconds)

    try:
        found = asyncio.run(scan())
    except Exception as exc:  # no adapter, no permission: say so in one line
        from edgetwin.cli import UsageError

        raise UsageError(f"scan failed: {type(exc).__name__}: {exc}") from None
    for address, name, services in found:
        print(f"{address}  {name or '-':<28} {' '.join(services)}")
    if not found:
        print("no devices found")
    return 0


async def _discover(scanner: Any, backend: Any, seconds: float) -> list[tuple[str, str, list[str]]]:
    kwargs = {"backend": backend.scanner} if backend.scanner is not None else {}
    found = await scanner.discover(timeout=seconds, return_adv=True, **kwargs)
    return sorted((addr, ad.local_name or "", ad.service_uuids) for addr, (_, ad) in found.items())


def run_read(args: argparse.Namespace) -> int:
    import asyncio
    import json
    from datetime import UTC, datetime

    from devices.names import parse_name
    from edgetwin.cli import UsageError
    from edgetwin.clock import RealClock, ScaledClock

    name = parse_name(args.name)
    if args.speed <= 0 or args.minutes <= 0:
        raise UsageError("--speed and --minutes must be > 0")
    simulated = name.scheme.endswith("-sim")
    clock: Any = (
        ScaledClock(datetime.now(UTC).replace(second=0, microsecond=0), args.speed)
        if simulated
        else RealClock()
    )

    async def read() -> None:
        from contextlib import AsyncExitStack

        from devices.names import open_device

        async with AsyncExitStack() as stack:
            sim: Any = None
            paths: dict[str, str] = {}
            if name.scheme == "ble-sim":
                from devices.sim.bench import SimBench

                sim = await stack.enter_async_context(
                    SimBench(clock, kinds=(name.kind,), patient=args.patient)
                )
            elif name.scheme == "serial-sim":
                from devices.sim.serial_devices import SimSerialCgmReceiver, SimSerialPumpBridge
                from devices.sim.world import SimWorld

                world = await stack.enter_async_context(SimWorld(clock, patient=args.patient))
                cls = SimSerialCgmReceiver if name.kind == "cgm" else SimSerialPumpBridge
                tty = await stack.enter_async_context(cls(world))
                paths[name.kind] = tty.path
            device = open_device(args.name, clock=clock, sim=sim, sim_paths=paths)
            if hasattr(device, "close"):
                stack.push_async_callback(device.close)
            end = clock.monotonic() + args.minutes * 60.0
            gen = device.readings()
            stack.push_async_callback(gen.aclose)
            while clock.monotonic() < end:
                try:
                    reading = await asyncio.wait_for(
                        gen.__anext__(), max(0.05, (end - clock.monotonic()) / clock.factor)
                    )
                except TimeoutError:
                    break
                print(json.dumps(_jsonable(reading), sort_keys=True), flush=True)

    asyncio.run(read())
    return 0
