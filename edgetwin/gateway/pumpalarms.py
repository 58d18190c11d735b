"""Alarms from what the pump says about itself: an occlusion, an empty or low reservoir.

The pump's own status is the patient's only sign that insulin has stopped going in, and a
suggestion engine cannot fix it: the gateway sounds it at once (urgent for an occlusion or an
empty reservoir, a warning for a low one) and ends it when a later status shows it cleared.
Statuses older than ``LIVE_MAX_AGE`` (a back-filled history) are stored but never alarm.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from edgetwin.gateway.alarms import AlarmCenter
from edgetwin.gateway.config import WatchdogConfig
from edgetwin.messages import PumpStatus

__all__ = ["EMPTY_RESERVOIR_U", "LIVE_MAX_AGE", "check_pump_status"]

EMPTY_RESERVOIR_U = 0.5
"""At or below this many units a reservoir cannot deliver the next half hour of most basals."""
LIVE_MAX_AGE = timedelta(minutes=15)


async def check_pump_status(
    alarms: AlarmCenter, status: PumpStatus, wd: WatchdogConfig, now: datetime
) -> None:
    """Raise or resolve ``pump_occlusion``, ``pump_reservoir_empty`` and ``pump_reservoir_low``."""
    if now - status.time_utc > LIVE_MAX_AGE:
        return
    if status.occluded:
        await alarms.raise_alarm(
            "pump_occlusion",
            "The pump reports an occlusion: insulin is not going in. Change the infusion set, "
            "check your glucose and follow your plan for missed insulin.",
            "urgent",
        )
    elif "pump_occlusion" in alarms.active:
        await alarms.resolve("pump_occlusion", "The pump no longer reports an occlusion.")
    if status.reservoir_u <= EMPTY_RESERVOIR_U:
        await alarms.raise_alarm(
            "pump_reservoir_empty",
            f"The pump's reservoir is empty ({status.reservoir_u:.1f} U): insulin is not going in. "
            "Refill it now and check your glucose.",
            "urgent",
        )
    elif "pump_reservoir_empty" in alarms.active:
        await alarms.resolve("pump_reservoir_empty", f"The reservoir holds {status.reservoir_u:.0f} U again.")
    if EMPTY_RESERVOIR_U < status.reservoir_u < wd.reservoir_low_u:
        await alarms.raise_alarm(
            "pump_reservoir_low",
            f"The pump's reservoir is low ({status.reservoir_u:.1f} U left). Plan a refill soon.",
            "warning",
        )
    elif "pump_reservoir_low" in alarms.active and status.reservoir_u >= wd.reservoir_low_u:
        await alarms.resolve("pump_reservoir_low", f"The reservoir holds {status.reservoir_u:.0f} U again.")
