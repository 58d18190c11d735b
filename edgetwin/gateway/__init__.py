"""The gateway runtime: the asyncio daemon that joins devices, the local store, the twin, the
suggestion engine and safety gate, the patient's outputs and the sync outbox.

* :mod:`edgetwin.gateway.config` — the TOML configuration, validated at start-up.
* :mod:`edgetwin.gateway.runtime` — :class:`Gateway`, the pipeline and its tasks.
* :mod:`edgetwin.gateway.ports` — the narrow interfaces of its stages (device source, pump
  control, twin, notifier).
* :mod:`edgetwin.gateway.devices` — devices opened by name through ``devices`` (real BLE and
  serial drivers; ``ble-sim:``/``serial-sim:`` simulators on the virtual radio and a pty).
* :mod:`edgetwin.gateway.watchdog`, :mod:`edgetwin.gateway.alarms` — stalls and alarms.
* :mod:`edgetwin.gateway.timekeeping` — clocks, wall-clock jumps, device clock skew.
* :mod:`edgetwin.gateway.status` — the status page and JSON endpoint on 127.0.0.1.
* :mod:`edgetwin.gateway.demo` — ``edgetwin demo``: a simulated day through the real gateway.
* Errors: :mod:`edgetwin.gateway.errors`.
"""

from edgetwin.gateway.config import GatewayConfig, load_config, parse_config
from edgetwin.gateway.errors import DeviceOpenError, GatewayError, GatewayLockedError, StartupError
from edgetwin.gateway.runtime import Gateway

__all__ = [
    "DeviceOpenError",
    "Gateway",
    "GatewayConfig",
    "GatewayError",
    "GatewayLockedError",
    "StartupError",
    "load_config",
    "parse_config",
]
