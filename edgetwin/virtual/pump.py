"""An insulin pump's delivery physics: increments, limits, basal and bolus per minute.

Deliberate departure from the public cohort code (``specs/model.md``): that code rounds in
pmol, so its 0.05 increment never bites. Real pumps round to 0.05 U for boluses and 0.05 U/h for
basal rates, and cap a bolus (U) and a basal rate (U/h); this model does that.
"""

from __future__ import annotations

import math

from edgetwin.model.cohort import PumpSpec, load_pump

__all__ = ["VirtualPump", "round_to_increment"]


def round_to_increment(value: float, increment: float) -> float:
    """Round down to the pump's increment (a pump never delivers more than asked)."""
    if increment <= 0:
        return value
    return math.floor(value / increment + 1e-9) * increment


class VirtualPump:
    """Turns commanded basal rates (U/h) and boluses (U) into insulin per minute (U)."""

    def __init__(self, spec: PumpSpec | str = "Insulet") -> None:
        self.spec = load_pump(spec) if isinstance(spec, str) else spec

    def basal_rate(self, rate_u_per_h: float) -> float:
        """The rate the pump will actually run (U/h)."""
        s = self.spec
        rate = min(max(rate_u_per_h, s.min_basal_u_per_h), s.max_basal_u_per_h)
        return round_to_increment(rate, s.inc_basal_u_per_h)

    def bolus(self, units: float) -> float:
        """The bolus the pump will actually deliver (U)."""
        s = self.spec
        u = min(max(units, s.min_bolus_u), s.max_bolus_u)
        return round_to_increment(u, s.inc_bolus_u)

    def minute_insulin_u(self, rate_u_per_h: float, bolus_u: float = 0.0) -> float:
        """Insulin delivered in one minute at this basal rate plus an (immediate) bolus."""
        return self.basal_rate(rate_u_per_h) / 60.0 + self.bolus(bolus_u)
