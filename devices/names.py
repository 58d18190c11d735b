"""Open a device by name: ``ble:ADDRESS[?kind=cgm]``, ``ble-sim:KIND``, ``serial:/dev/ttyUSB0?baud=115200&kind=cgm``,
``serial-sim:KIND``. Each transport is imported only when its name is used.

KIND is ``cgm``, ``pump``, ``heart`` or ``meter`` (serial: ``cgm`` receiver or ``pump`` bridge).
``ble-sim:`` names need a running ``SimBench`` (``sim=``); ``serial-sim:`` names need the path of a
running pty simulator (``sim_paths``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from devices.errors import DeviceNameError
from edgetwin.clock import Clock

__all__ = ["DeviceName", "open_device", "parse_name"]

BLE_KINDS = ("cgm", "pump", "heart", "meter")
SERIAL_KINDS = ("cgm", "pump")


@dataclass(frozen=True, slots=True)
class DeviceName:
    scheme: str
    target: str
    kind: str
    options: dict[str, str] = field(default_factory=dict)


def parse_name(name: str) -> DeviceName:
    scheme, sep, rest = name.partition(":")
    if not sep or not rest:
        raise DeviceNameError(
            f"device name {name!r} is not SCHEME:TARGET (ble:, ble-sim:, serial:, serial-sim:)"
        )
    target, _, query = rest.partition("?")
    try:
        options = {k: v[-1] for k, v in parse_qs(query, strict_parsing=bool(query)).items()}
    except ValueError:
        raise DeviceNameError(f"device name {name!r}: bad options {query!r}") from None
    if scheme in ("ble-sim", "serial-sim"):
        kind = target
        allowed = BLE_KINDS if scheme == "ble-sim" else SERIAL_KINDS
    elif scheme in ("ble", "serial"):
        kind = options.get("kind", "cgm")
        allowed = BLE_KINDS if scheme == "ble" else SERIAL_KINDS
    else:
        raise DeviceNameError(
            f"unknown device scheme {scheme!r} in {name!r}; use ble:, ble-sim:, serial:, serial-sim:"
        )
    if kind not in allowed:
        raise DeviceNameError(f"{name!r}: kind {kind!r} not one of {', '.join(allowed)}")
    if scheme == "serial" and "baud" in options and not options["baud"].isdigit():
        raise DeviceNameError(f"{name!r}: baud must be a number")
    return DeviceName(scheme, target, kind, options)


def open_device(
    name: str, *, clock: Clock, sim: Any = None, sim_paths: dict[str, str] | None = None, **options: Any
) -> Any:
    """The driver for ``name``: ``readings()`` for every kind; pumps also ``status()``/``send()``."""
    n = parse_name(name)
    if n.scheme in ("ble", "ble-sim"):
        from devices.ble.transport import BleakBackend

        if n.scheme == "ble-sim":
            if sim is None:
                raise DeviceNameError(f"{name!r} needs a running SimBench (sim=...)")
            address, backend = sim.address(n.kind), sim.backend
        else:
            address, backend = (n.target or None), BleakBackend()
        if n.kind == "cgm":
            from devices.ble.cgm import BleCgm

            return BleCgm(address, backend=backend, clock=clock, **options)
        if n.kind == "pump":
            from devices.ble.pump import BlePump

            return BlePump(address, backend=backend, clock=clock, **options)
        from devices.ble.body import BleHeartRate, BleMeter

        cls = BleHeartRate if n.kind == "heart" else BleMeter
        return cls(address, backend=backend, clock=clock, **options)
    from devices.serial.drivers import SerialCgm, SerialPump

    if n.scheme == "serial-sim":
        path = (sim_paths or {}).get(n.kind)
        if path is None:
            raise DeviceNameError(f"{name!r} needs the path of a running pty simulator (sim_paths)")
    else:
        path = n.target
    baud = int(n.options.get("baud", "115200"))
    if n.kind == "cgm":
        return SerialCgm(path, baudrate=baud, clock=clock, **options)
    return SerialPump(path, baudrate=baud, clock=clock, **options)
