"""The decision stage's configuration: the ``[limits]`` table as this build checks it."""

from __future__ import annotations

from edgetwin.gateway.config import GatewayConfig

__all__ = ["check_limits"]


def check_limits(cfg: GatewayConfig) -> str:
    """A one-line summary of the limits (validated by the configuration loader)."""
    lim = cfg.limits
    return f"max basal {lim.max_basal_u_per_h:g} U/h, max bolus {lim.max_bolus_u:g} U"
