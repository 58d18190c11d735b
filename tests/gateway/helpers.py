"""Shared pieces of the gateway tests: configurations and injectable device sources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edgetwin.clock import Clock
from edgetwin.gateway.config import GatewayConfig, parse_config
from edgetwin.gateway.ports import ResumePoint
from edgetwin.messages import Alarm, CgmReading
from edgetwin.store import Ack

START = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)

PROFILE = {
    "weight_kg": 70.0,
    "carb_ratio_g_per_u": 10.0,
    "correction_factor_mg_dl_per_u": 40.0,
    "basal": [{"start": "00:00", "u_per_h": 0.8}, {"start": "06:00", "u_per_h": 1.0}],
}
LIMITS = {"max_basal_u_per_h": 3.0, "max_bolus_u": 10.0}


def config_dict(data_dir: Path, **tables: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "gateway": {"data_dir": str(data_dir)},
        "status": {"port": 0},
        "devices": {"cgm": "ble-sim:cgm"},
        "profile": dict(PROFILE),
        "limits": dict(LIMITS),
    }
    for k, v in tables.items():
        doc[k] = {**doc.get(k, {}), **v}
    return doc


def make_config(data_dir: Path, **tables: Any) -> GatewayConfig:
    return parse_config(config_dict(data_dir, **tables), source="test.toml", base_dir=data_dir)


class CollectingNotifier:
    def __init__(self) -> None:
        self.alarms: list[Alarm] = []

    async def notify(self, alarm: Alarm) -> None:
        self.alarms.append(alarm)

    def kinds(self) -> list[str]:
        return [a.kind for a in self.alarms]


class ScriptedCgm:
    """A CGM source that yields readings from a script on the clock, then (optionally) hangs.

    ``every_min``: one reading per this many clock minutes, values from ``values``;
    ``hang_after``: stop yielding (but stay connected) after this many readings in all.
    Records every acknowledgement with the Ack it came with.
    """

    role = "cgm"

    def __init__(
        self,
        clock: Clock,
        *,
        values: list[float] | None = None,
        every_min: float = 5.0,
        hang_after: int | None = None,
        skew: timedelta = timedelta(0),
        name: str = "test:cgm",
    ) -> None:
        self.clock = clock
        self.values = values or [120.0 + (i % 20) for i in range(10_000)]
        self.every_min = every_min
        self.hang_after = hang_after
        self.skew = skew
        self.name = name
        self.device_id = "scripted-cgm"
        self.acks: list[tuple[CgmReading, Ack]] = []
        self.connections = 0
        self.sent = 0
        self.ack_hook: Any = None

    async def records(self, resume: ResumePoint) -> AsyncIterator[object]:
        self.connections += 1
        seq = 0 if resume.last_sequence is None else resume.last_sequence + 1
        while True:
            while self.hang_after is not None and self.sent >= self.hang_after:
                await self.clock.sleep(30.0)  # connected, but the sensor says nothing
            yield CgmReading(
                (self.clock.now_utc() + self.skew).replace(microsecond=0),
                self.values[seq % len(self.values)],
                self.device_id,
                sequence=seq,
            )
            seq += 1
            self.sent += 1
            await self.clock.sleep(self.every_min * 60.0)

    async def acknowledge(self, record: object, ack: Ack) -> None:
        assert isinstance(record, CgmReading)
        if self.ack_hook is not None:
            self.ack_hook(record, ack)
        self.acks.append((record, ack))

    async def aclose(self) -> None:
        return None
