"""The safety gate: hard limits every insulin suggestion passes, independent of the suggester.

Public API:

* :class:`SafetyLimits` (+ :func:`load_limits`, ``SafetyLimits.from_mapping``): the validated
  ``[limits]`` configuration; a bad one raises :class:`~edgetwin.errors.ConfigError` at start-up.
* :class:`SafetyGate` with ``review(suggestion, GateInputs(...)) -> GateResult``.
* :class:`Decision`, :class:`Rule`, :class:`Outcome`: what the gate did and why.
* :func:`assess_cgm`, :func:`net_iob_u`, :func:`max_safe_basal_u_per_h`: the gate's own checks,
  usable by anyone (the suggester reads them to stay inside the limits in the first place).

This package must never import :mod:`edgetwin.suggest` (a test checks it).
"""

from edgetwin.safety.cgm import CgmAssessment, assess_cgm
from edgetwin.safety.decisions import INTERVENTIONS, Decision, Outcome, Rule
from edgetwin.safety.gate import GateInputs, GateResult, SafetyGate
from edgetwin.safety.insulin import iob_fraction, net_iob_u
from edgetwin.safety.limits import Mode, SafetyLimits, load_limits, max_safe_basal_u_per_h, round_down

__all__ = [
    "INTERVENTIONS",
    "CgmAssessment",
    "Decision",
    "GateInputs",
    "GateResult",
    "Mode",
    "Outcome",
    "Rule",
    "SafetyGate",
    "SafetyLimits",
    "assess_cgm",
    "iob_fraction",
    "load_limits",
    "max_safe_basal_u_per_h",
    "net_iob_u",
    "round_down",
]
