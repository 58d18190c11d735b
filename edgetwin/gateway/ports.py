"""The narrow interfaces between the gateway runtime and its stages.

Each stage of the pipeline is one small object behind one of these protocols, so a real driver,
the living twin or the safety gate plugs in without the runtime changing, and tests inject
their own (a transport, not a monkeypatch):

* :class:`DeviceSource`: a device's records as an async iterator. ``records(resume)`` hides
  connect, subscribe, reconnect and back-fill; ``resume`` says what the store already holds so
  a restarted gateway asks the device for what came after. The runtime calls
  :meth:`DeviceSource.acknowledge` only once the store's :class:`~edgetwin.store.Ack` exists.
* :class:`PumpControl`: sends one gated :class:`~edgetwin.messages.PumpCommand` and returns the
  pump's :class:`~edgetwin.messages.CommandResult` (``confirmed`` only when read back).
* :class:`TwinPort` / :class:`TwinFactory`: the twin as the runtime uses it (the living twin's
  ``Twin`` satisfies it), created fresh or restored from a checkpoint's bytes.
* :class:`Notifier`: tells the patient (an alarm, a suggestion to confirm).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from edgetwin.messages import Alarm, CommandResult, PumpCommand
from edgetwin.store import Ack
from edgetwin.therapy import TherapyProfile

__all__ = [
    "DeviceSource",
    "ForecastBand",
    "Notifier",
    "PumpControl",
    "ResumePoint",
    "TwinFactory",
    "TwinPort",
]


@dataclass(frozen=True)
class ResumePoint:
    """What the store already holds from a device: its newest record's time and sequence."""

    last_time_utc: datetime | None = None
    last_sequence: int | None = None


class DeviceSource(Protocol):
    """One device. ``role`` is ``cgm``, ``pump`` or ``heart_rate``; ``name`` its name string."""

    name: str
    role: str
    device_id: str

    def records(self, resume: ResumePoint) -> AsyncIterator[object]:
        """Typed records (readings, deliveries, pump status, carbs), back-fill first."""
        ...

    async def acknowledge(self, record: object, ack: Ack) -> None:
        """The record is durable in the store; the device may forget it."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class PumpControl(Protocol):
    async def send(self, command: PumpCommand) -> CommandResult: ...


class ForecastBand(Protocol):
    """10/50/90 % CGM quantiles at twin ``minutes`` (the living twin's ``Forecast``)."""

    @property
    def issued_minute(self) -> int: ...

    @property
    def minutes(self) -> Any: ...

    @property
    def p10_mg_dl(self) -> Any: ...

    @property
    def p50_mg_dl(self) -> Any: ...

    @property
    def p90_mg_dl(self) -> Any: ...


class TwinPort(Protocol):
    """The twin as the runtime drives it (twin minutes; mg/dL, U, g)."""

    @property
    def minute(self) -> int: ...

    def record_insulin(
        self, minute: int, units: float, *, duration_min: int = 0, event_id: str | None = None
    ) -> object: ...

    def record_carbs(self, minute: int, grams: float, *, event_id: str | None = None) -> object: ...

    def assimilate_cgm(self, minute: int, mg_dl: float | None, *, usable: bool = True) -> object: ...

    def advance_to(self, minute: int) -> None: ...

    def forecast(self, horizon_min: int = 120) -> ForecastBand: ...

    def checkpoint(self) -> bytes: ...


class TwinFactory(Protocol):
    """Builds and restores twins; ``format``/``version`` label its checkpoints in the store."""

    format: str
    version: int
    description: str

    def new(self, profile: TherapyProfile, minute_of_day_at_zero: int, seed: int) -> TwinPort: ...

    def restore(self, blob: bytes) -> TwinPort: ...


class Notifier(Protocol):
    async def notify(self, alarm: Alarm) -> None: ...
