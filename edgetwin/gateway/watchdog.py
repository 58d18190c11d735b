"""The watchdog: restarts stalled device tasks, sounds the no-data and pump alarms, watches the
wall clock, and pings systemd's watchdog while the loop is healthy.

Every ``CHECK_S`` seconds of clock time:

* a device task that produced nothing for ``device_stall_min`` (monotonic) is cancelled and
  started again (its driver reconnects and back-fills from the store's resume point) — never
  sooner than ``Gateway.min_stall_real_s`` real seconds, so that on an accelerated clock a
  connection still inside its own (real-time) I/O timeout is not cut short;
* no fresh glucose reading for ``no_data_alarm_min`` → urgent ``no_glucose_data`` alarm, sounded
  again every ``alarm_repeat_min`` until a fresh reading arrives (then "resolved");
* with a pump, no pump status for ``pump_silent_alarm_min`` → urgent ``pump_unreachable``;
* a wall-clock jump → a warning alarm telling the patient to check the time;
* ``WATCHDOG=1`` to systemd.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from edgetwin.gateway import systemd
from edgetwin.gateway.runtime import WATCHED_ROLES

if TYPE_CHECKING:
    from edgetwin.gateway.runtime import Gateway

__all__ = ["CHECK_S", "Watchdog"]

log = logging.getLogger("edgetwin.gateway.watchdog")

CHECK_S = 30.0
JUMP_NOTICE_S = 10 * 60.0
"""A wall-clock jump stays on the status page (and repeats) this long after the last one."""


class Watchdog:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.checks = 0
        self._last_jump_mono: float | None = None

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # the watchdog itself must never die
                log.exception("watchdog check failed", extra={"event": "watchdog_error"})
            await self.gw.clock.sleep(CHECK_S)

    async def check(self) -> None:
        gw = self.gw
        wd = gw.cfg.watchdog
        clock = gw.clock
        self.checks += 1
        now_mono = clock.monotonic()
        for role, h in list(gw.health.items()):
            if role not in WATCHED_ROLES:
                continue
            last = h.last_record_mono if h.last_record_mono is not None else gw._started_mono
            silent = now_mono - last
            limit = max(wd.device_stall_min * 60.0, gw.min_stall_real_s * clock.factor)
            if silent >= limit:
                await gw.restart_device(role, f"no record for {silent / 60:.0f} min")
        quiet_s = gw.seconds_since_fresh_glucose()
        no_data_s = wd.no_data_alarm_min * 60.0
        if gw.never_had_fresh_glucose():  # the sensor's first connection takes real seconds
            no_data_s = max(no_data_s, gw.min_stall_real_s * clock.factor)
        if quiet_s >= no_data_s:
            latest = gw.state.latest
            since = "" if latest is None else f" (last reading {latest.time_utc:%H:%M} UTC)"
            await gw.alarms.raise_alarm(
                "no_glucose_data",
                f"No glucose data for {quiet_s / 60:.0f} min{since}. Check the sensor and "
                "measure with a meter. Suggestions are stopped until data return.",
                "urgent",
            )
        elif "no_glucose_data" in gw.alarms.active:
            await gw.alarms.resolve("no_glucose_data", "Glucose data are arriving again.")
        pump_s = gw.seconds_since_pump()
        if pump_s is not None:
            if pump_s >= wd.pump_silent_alarm_min * 60.0:
                await gw.alarms.raise_alarm(
                    "pump_unreachable",
                    f"No contact with the insulin pump for {pump_s / 60:.0f} min. Its temporary basal "
                    "ends by itself; check the pump.",
                    "urgent",
                )
            elif "pump_unreachable" in gw.alarms.active:
                await gw.alarms.resolve("pump_unreachable", "The pump is reachable again.")
        jumps = gw.clock.pop_jumps()
        jump = jumps[-1] if jumps else None
        if (
            jump is None
            and self._last_jump_mono is not None
            and now_mono - self._last_jump_mono > JUMP_NOTICE_S
        ):
            self._last_jump_mono = None
            await gw.alarms.resolve("wall_clock_jump", "The gateway's clock has been steady since.")
        if jump is not None:
            self._last_jump_mono = now_mono
            gw.state.clock_jumps += len(jumps)
            await gw.alarms.raise_alarm(
                "wall_clock_jump",
                f"The gateway's clock jumped by {jump.jump_s / 60:+.0f} min. Check its time setting. "
                "EdgeTwin keeps counting time on its own until a device confirms the new time; "
                "readings keep their device times.",
                "warning",
            )
        interval = systemd.watchdog_interval_s()
        if interval is not None:
            systemd.notify("WATCHDOG=1")
