"""Fault switches for the simulated devices, scheduled in world minutes.

Each fault is a window ``[start_minute, end_minute)`` (``end_minute=None``: until cleared),
optionally limited to one device (``"cgm"``, ``"pump"``, ``"heart"``, ``"meter"``, or a serial
simulator's name) and optionally random (``probability`` per minute, decided by a seeded hash so
the same question always gets the same answer).

What each fault exercises is listed on ``Fault``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Fault", "FaultSchedule", "FaultWindow"]


class Fault(StrEnum):
    DROP_NOTIFICATIONS = "drop_notifications"
    """Live notifications are lost on the air (records stay stored): gap detection + RACP back-fill."""
    BAD_CRC = "bad_crc"
    """Live records go out with a corrupted E2E-CRC (serial: a corrupted frame CRC): the collector
    must reject them (CrcError), never use the value, and recover the record (back-fill / NAK)."""
    DISCONNECT = "disconnect"
    """The device drops the link and stops advertising (serial: the port vanishes, as an unplug):
    reconnect with backoff, then back-fill what was recorded meanwhile."""
    SENSOR_WARMUP = "sensor_warmup"
    """A new sensor session starts at the window start: offsets restart at 0, records carry no
    value during warm-up; the collector must re-anchor the session start time."""
    SENSOR_ERROR = "sensor_error"
    """Sensor malfunction: records without a value and the malfunction annunciation."""
    COMPRESSION_LOW = "compression_low"
    """Pressure on the sensor: falsely low readings (no annunciation) — downstream must doubt them."""
    PUMP_OCCLUSION = "pump_occlusion"
    """Delivery stops and the pump raises an occlusion annunciation."""
    EMPTY_RESERVOIR = "empty_reservoir"
    """The reservoir runs dry at the window start: no delivery, reservoir-empty annunciation."""
    UNCONFIRMED_COMMANDS = "unconfirmed_commands"
    """The pump answers "success" but never applies commands: the read-back must catch it and the
    driver report ``CommandResult(confirmed=False)``."""


@dataclass(frozen=True, slots=True)
class FaultWindow:
    fault: Fault
    start_minute: int
    end_minute: int | None = None
    device: str | None = None
    probability: float = 1.0

    def covers(self, minute: int, device: str | None) -> bool:
        if self.device is not None and device is not None and self.device != device:
            return False
        return self.start_minute <= minute and (self.end_minute is None or minute < self.end_minute)


class FaultSchedule:
    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._windows: list[FaultWindow] = []

    @property
    def windows(self) -> tuple[FaultWindow, ...]:
        return tuple(self._windows)

    def add(
        self,
        fault: Fault | str,
        start_minute: int,
        end_minute: int | None = None,
        *,
        device: str | None = None,
        probability: float = 1.0,
    ) -> FaultWindow:
        if end_minute is not None and end_minute <= start_minute:
            raise ValueError(f"fault window [{start_minute}, {end_minute}) is empty")
        if not 0.0 < probability <= 1.0:
            raise ValueError("probability must be in (0, 1]")
        window = FaultWindow(Fault(fault), start_minute, end_minute, device, probability)
        self._windows.append(window)
        return window

    def clear(self, fault: Fault | str | None = None) -> None:
        self._windows = [w for w in self._windows if fault is not None and w.fault != Fault(fault)]

    def active(self, fault: Fault, minute: int, device: str | None = None) -> bool:
        for w in self._windows:
            if w.fault == fault and w.covers(minute, device):
                if w.probability >= 1.0:
                    return True
                rng = random.Random(f"{self.seed}:{fault}:{minute}:{device}:{w.start_minute}")
                if rng.random() < w.probability:
                    return True
        return False

    def starts(self, fault: Fault, minute: int, device: str | None = None) -> bool:
        """True when a window of ``fault`` begins exactly at ``minute``."""
        return any(
            w.fault == fault and w.start_minute == minute and w.covers(minute, device) for w in self._windows
        )
