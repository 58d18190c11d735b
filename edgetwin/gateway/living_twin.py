"""The living twin (:class:`edgetwin.twin.twin.Twin`) as the gateway's twin stage.

A fresh twin starts from the therapy profile (a prior from the virtual population, then
personalised as readings arrive). With a pump configured it takes the insulin the pump reports
as delivered (basal segments and boluses: ``basal_mode = "delivered"``); without one it assumes
the scheduled basal. Its checkpoints are the twin's own versioned bytes; the gateway wraps them
with the UTC anchor of its minute clock.
"""

from __future__ import annotations

from typing import Any

from edgetwin.therapy import TherapyProfile
from edgetwin.twin.twin import CHECKPOINT_VERSION, Twin

__all__ = ["LivingTwinFactory"]


class LivingTwinFactory:
    format = "twin"
    version = CHECKPOINT_VERSION
    description = "the living twin (particle filter on the UVA/Padova model)"

    def __init__(self, *, delivered_insulin: bool) -> None:
        self.delivered_insulin = delivered_insulin

    def new(self, profile: TherapyProfile, minute_of_day_at_zero: int, seed: int) -> Any:
        return Twin.from_profile(
            profile,
            minute_of_day_at_zero=minute_of_day_at_zero,
            seed=seed,
            basal_mode="delivered" if self.delivered_insulin else "schedule",
        )

    def restore(self, blob: bytes) -> Any:
        return Twin.restore(blob)
