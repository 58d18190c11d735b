"""The decision stage's configuration: the ``[limits]`` table as this build checks it."""

from __future__ import annotations

from edgetwin.gateway.config import GatewayConfig

__all__ = ["check_limits"]


def check_limits(cfg: GatewayConfig) -> str:
    """A one-line summary of the limits (validated by the configuration loader)."""
    lim = cfg.limits
    text = f"max basal {lim.max_basal_u_per_h:g} U/h, max bolus {lim.max_bolus_u:g} U"
    s = lim.safety
    if s is not None:
        text += (
            f", max IOB {s.effective_max_iob_u:g} U, suspend below {s.suspend_threshold_mg_dl:g} mg/dL, "
            f"temp basals <= {s.max_temp_basal_min:g} min"
        )
    else:
        text += " (this build has no safety gate: no suggestions)"
    return text
