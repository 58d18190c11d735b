"""Alarms the patient must notice: raised, repeated until resolved, never silenced.

:class:`AlarmCenter` keeps the active alarms by kind. ``raise_alarm`` sounds a new one at once
(stored durably, logged at error level, handed to every notifier) and, while the condition
lasts, the watchdog calls it again and it sounds again every ``repeat_min`` — there is no
"mute": an alarm ends only when its condition does (``resolve``), which is announced too.

Notifiers: :class:`LogNotifier` (always), :class:`CommandNotifier` (``[notify] command``: a
program run with the alarm text as its last argument, e.g. a script that pushes to a phone).
The status page shows the active alarms and flashes while one is urgent.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from edgetwin.clock import Clock
from edgetwin.gateway.ports import Notifier
from edgetwin.messages import Alarm

__all__ = ["ActiveAlarm", "AlarmCenter", "CommandNotifier", "LogNotifier"]

log = logging.getLogger("edgetwin.gateway.alarm")

_LEVEL = {"info": logging.INFO, "warning": logging.WARNING, "urgent": logging.ERROR}


@dataclass
class ActiveAlarm:
    kind: str
    message: str
    severity: str
    since_utc: datetime
    last_sounded_mono: float
    sounded: int = 1

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "message": self.message,
            "severity": self.severity,
            "since_utc": self.since_utc.isoformat(),
            "sounded": self.sounded,
        }


class LogNotifier:
    async def notify(self, alarm: Alarm) -> None:
        log.log(
            _LEVEL[alarm.severity],
            "ALARM %s: %s",
            alarm.kind,
            alarm.message,
            extra={"event": "alarm", "kind": alarm.kind, "severity": alarm.severity},
        )


class CommandNotifier:
    """Runs ``command ... "<severity>: <message>"``; a failing program is logged, never fatal."""

    def __init__(self, command: str, timeout_s: float = 10.0) -> None:
        self.argv = shlex.split(command)
        self.timeout_s = timeout_s

    async def notify(self, alarm: Alarm) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv,
                f"{alarm.severity}: {alarm.message}",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await asyncio.wait_for(proc.wait(), self.timeout_s)
        except (OSError, TimeoutError) as exc:
            log.error("notify command failed: %s", exc, extra={"event": "notify_failed"})


class AlarmCenter:
    """Active alarms; ``store_alarm`` persists each sounding (the store's Ack before notifying)."""

    def __init__(
        self,
        clock: Clock,
        notifiers: list[Notifier],
        store_alarm: Callable[[Alarm], Awaitable[object]],
        repeat_min: float = 5.0,
    ) -> None:
        self.clock = clock
        self.notifiers = notifiers
        self._store_alarm = store_alarm
        self.repeat_s = repeat_min * 60.0
        self.active: dict[str, ActiveAlarm] = {}
        self.sounded_total = 0

    async def _sound(self, alarm: Alarm) -> None:
        self.sounded_total += 1
        try:
            await self._store_alarm(alarm)
        except Exception as exc:  # a full or failing store must not stop the alarm reaching the patient
            log.error("could not store alarm %s: %s", alarm.kind, exc, extra={"event": "alarm_store_failed"})
        for n in self.notifiers:
            try:
                await n.notify(alarm)
            except Exception:
                log.exception("a notifier failed", extra={"event": "notify_failed"})

    async def raise_alarm(self, kind: str, message: str, severity: str = "urgent") -> bool:
        """Sound ``kind`` if it is new, its severity changed, or it is due to repeat; True when it sounded."""
        now_mono = self.clock.monotonic()
        a = self.active.get(kind)
        if a is not None and now_mono - a.last_sounded_mono < self.repeat_s and severity == a.severity:
            a.message = message  # the page shows the current text; the sound repeats on schedule
            return False
        if a is None:
            a = ActiveAlarm(kind, message, severity, self.clock.now_utc(), now_mono, 1)
            self.active[kind] = a
        else:
            a.message, a.severity = message, severity
            a.last_sounded_mono = now_mono
            a.sounded += 1
        await self._sound(Alarm(self.clock.now_utc(), kind, message, severity))
        return True

    async def resolve(self, kind: str, message: str) -> bool:
        """End an active alarm (announced at info level); False when it was not active."""
        if self.active.pop(kind, None) is None:
            return False
        await self._sound(Alarm(self.clock.now_utc(), f"{kind}_resolved", message, "info"))
        return True

    def snapshot(self) -> list[dict[str, object]]:
        order = {"urgent": 0, "warning": 1, "info": 2}
        return [a.as_dict() for a in sorted(self.active.values(), key=lambda a: order[a.severity])]
