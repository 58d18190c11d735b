"""Opening the configured devices by their name strings.

``sim:cgm`` and ``sim:pump`` are the in-process simulated body (:mod:`edgetwin.gateway.simbody`).
Every other kind (``ble:``, ``ble-sim:``, ``serial:``, ``serial-sim:``) is opened by the
``devices`` package, imported only when such a name is configured, so a bench without Bluetooth
or serial ports still runs.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from edgetwin.clock import Clock
from edgetwin.gateway.config import GatewayConfig
from edgetwin.gateway.errors import DeviceOpenError
from edgetwin.gateway.ports import DeviceSource, PumpControl

if TYPE_CHECKING:
    from edgetwin.gateway.simbody import SimBody

__all__ = ["OpenedDevices", "open_devices"]

log = logging.getLogger("edgetwin.gateway.devices")


@dataclass
class OpenedDevices:
    sources: dict[str, DeviceSource] = field(default_factory=dict)
    pump_control: PumpControl | None = None
    sim_body: SimBody | None = None


def _sim_start(cfg: GatewayConfig, clock: Clock) -> datetime:
    """The simulated body's start: kept in the data directory so a restart finds the same body."""
    path = cfg.data_dir / "sim-body.json"
    want = {"patient": cfg.sim.patient, "seed": cfg.sim.seed, "sensor": cfg.sim.sensor}
    if path.exists():
        try:
            doc = json.loads(path.read_text("utf-8"))
            if all(doc.get(k) == v for k, v in want.items()):
                return datetime.fromisoformat(doc["start_utc"])
            log.warning(
                "sim body settings changed: starting a new simulated body", extra={"event": "sim_new"}
            )
        except (ValueError, KeyError, TypeError):
            log.warning("sim-body.json unreadable: starting a new simulated body", extra={"event": "sim_new"})
        (cfg.data_dir / "sim-body.jsonl").unlink(missing_ok=True)
    start = clock.now_utc().replace(second=0, microsecond=0)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**want, "start_utc": start.isoformat()}), "utf-8")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return start


def open_devices(cfg: GatewayConfig, clock: Clock) -> OpenedDevices:
    out = OpenedDevices()
    for role, name in cfg.devices.items():
        kind = name.split(":", 1)[0]
        if kind == "sim":
            from edgetwin.gateway.simbody import SimBody, SimCgmSource, SimPumpSource

            if out.sim_body is None:
                out.sim_body = SimBody(
                    clock,
                    _sim_start(cfg, clock),
                    patient=cfg.sim.patient,
                    seed=cfg.sim.seed,
                    sensor=cfg.sim.sensor,
                    journal=cfg.data_dir / "sim-body.jsonl",
                )
            if role == "cgm":
                out.sources[role] = SimCgmSource(out.sim_body, name)
            elif role == "pump":
                pump = SimPumpSource(out.sim_body, name)
                out.sources[role] = pump
                out.pump_control = pump
            else:
                raise DeviceOpenError(name, f"the simulated body has no {role} device (sim:cgm, sim:pump)")
        else:
            out.sources[role] = _open_external(name, role, clock, cfg.data_dir)
    return out


def _open_external(name: str, role: str, clock: Clock, data_dir: Path) -> DeviceSource:
    try:
        import devices  # noqa: F401
    except ImportError:
        raise DeviceOpenError(
            name, "BLE and serial drivers (the devices package) are not installed in this build"
        ) from None
    raise DeviceOpenError(name, "the devices package in this build cannot open devices by name yet")
