"""How drivers wait: clock time for the device's pace, real time for the transport.

Everything a device does at its own pace (sampling, reconnect backoff, staleness) is measured on
the injected ``edgetwin.clock`` clock, so a bench runs a day in seconds. Waiting for a transport
(a GATT response, a serial ACK, a connection attempt) is bounded in real seconds: the virtual
radio and the pty answer in real time whatever the clock says. ``io_timeout`` converts a budget
given in clock seconds to real seconds, never below a floor the transport needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgetwin.clock import Clock

__all__ = ["Backoff", "io_timeout"]


def io_timeout(clock: Clock, clock_s: float, *, floor_s: float = 1.0) -> float:
    """Real seconds to wait for a transport operation budgeted at ``clock_s`` clock seconds."""
    return max(clock_s / clock.factor, floor_s)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff between reconnect attempts, in clock seconds (no jitter: one gateway
    per device, and benches must be reproducible)."""

    initial_s: float = 2.0
    factor: float = 2.0
    max_s: float = 120.0

    def delay(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (0-based)."""
        return min(self.max_s, self.initial_s * self.factor ** max(0, attempt))
