"""Read-back confirmation of pump commands, shared by the BLE and serial pump drivers.

A pump's "success" answer is not proof: a command is confirmed only when the pump's state read
back afterwards shows it. For a temp basal the rate alone cannot tell a new temp basal from an
earlier one at the same rate that is still running (the gateway re-issues the same rate every
few minutes), so the remaining duration must also show a fresh start.
"""

from __future__ import annotations

import math

__all__ = ["RATE_TOLERANCE_U_PER_H", "temp_basal_took"]

RATE_TOLERANCE_U_PER_H = 0.05
"""The pump may round a rate down to its 0.05 U/h increment."""
DURATION_SLACK_MIN = 1.0
"""The pump counts remaining minutes in whole minutes (rounded either way)."""


def temp_basal_took(
    asked_u_per_h: float,
    asked_min: float,
    read_u_per_h: float | None,
    read_remaining_min: float | None,
    elapsed_min: float,
) -> bool:
    """Whether a read-back (rate in U/h, remaining minutes) shows the temp basal just asked for:
    the rate at most one increment below the asked one, and at least the asked duration less the
    ``elapsed_min`` (clock minutes from sending the command to the read-back) still to run."""
    if read_u_per_h is None or not math.isfinite(read_u_per_h):
        return False
    if not 0 <= asked_u_per_h - read_u_per_h <= RATE_TOLERANCE_U_PER_H + 1e-9:
        return False
    if read_remaining_min is None:
        return True  # a pump that does not report it: the rate is all there is
    return read_remaining_min >= asked_min - max(0.0, elapsed_min) - DURATION_SLACK_MIN
