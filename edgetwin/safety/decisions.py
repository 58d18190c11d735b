"""What the safety gate decided, rule by rule: typed records a patient, a log and a trial can read.

Every refusal, fallback, clamp, suspension or addition the gate makes is one :class:`Decision`
naming its :class:`Rule`, what happened (:class:`Outcome`), a plain-language message and the
values involved (with units in their names).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["INTERVENTIONS", "Decision", "Outcome", "Rule"]


class Rule(StrEnum):
    """The gate's rules (``specs/safety.md``); the value is the name logs and reports use."""

    INVALID_INPUT = "invalid_input"
    PROFILE = "profile"
    INSULIN_DURATION = "insulin_duration"
    NO_SUGGESTION = "no_suggestion"
    MALFORMED_SUGGESTION = "malformed_suggestion"
    SUGGESTION_STALE = "suggestion_stale"
    SUGGESTION_EXPIRED = "suggestion_expired"
    MODE = "mode"
    NO_DATA = "no_data"
    STALE_DATA = "stale_data"
    FUTURE_DATA = "future_data"
    IMPLAUSIBLE_DATA = "implausible_data"
    SENSOR_STATUS = "sensor_status"
    NOISY_DATA = "noisy_data"
    VERY_NOISY_DATA = "very_noisy_data"
    FLAT_DATA = "flat_data"
    JUMP = "jump"
    OTHER_DEVICE = "other_device"
    MAX_SAFE_BASAL = "max_safe_basal"
    PUMP_INCREMENT = "pump_increment"
    TEMP_BASAL_DURATION = "temp_basal_duration"
    MAX_BOLUS = "max_bolus"
    MAX_IOB = "max_iob"
    MICRO_BOLUS_BASAL_CAP = "micro_bolus_basal_cap"
    MICRO_BOLUS_HALF_NEED = "micro_bolus_half_need"
    MICRO_BOLUS_INTERVAL = "micro_bolus_interval"
    LOW_GLUCOSE_SUSPEND = "low_glucose_suspend"
    NO_BOLUS_AT_LOW = "no_bolus_at_low"
    RESCUE_CARBS = "rescue_carbs"
    PUMP_STATUS = "pump_status"
    PUMP_SUSPENDED = "pump_suspended"
    PUMP_BOLUSING = "pump_bolusing"
    RESERVOIR_MISMATCH = "reservoir_mismatch"


class Outcome(StrEnum):
    REFUSED = "refused"
    """The suggestion (or its insulin) is not carried out; nothing new goes to the pump."""
    FALLBACK = "fallback"
    """Replaced by the scheduled basal (a running temp basal above it is cancelled)."""
    CLAMPED = "clamped"
    """A rate, duration or amount was reduced to a limit."""
    SUSPENDED = "suspended"
    """Replaced by a zero temp basal because a low is present or predicted."""
    ADDED = "added"
    """The gate added something: rescue carbohydrate."""
    RESTRICTED = "restricted"
    """A condition that narrows what is allowed (no automatic bolus, raised targets)."""
    IGNORED = "ignored"
    """Input data left out (another device's readings, implausible values)."""


INTERVENTIONS = frozenset(
    {Outcome.REFUSED, Outcome.FALLBACK, Outcome.CLAMPED, Outcome.SUSPENDED, Outcome.ADDED}
)
"""Outcomes that changed what was suggested (what trial reports count)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One rule applied: e.g. ``Decision(Rule.MAX_SAFE_BASAL, Outcome.CLAMPED, "...",
    (("requested_u_per_h", 5.0), ("max_safe_basal_u_per_h", 2.4)))``."""

    rule: Rule
    outcome: Outcome
    message: str
    values: tuple[tuple[str, float | str], ...] = ()

    @property
    def is_intervention(self) -> bool:
        return self.outcome in INTERVENTIONS

    @property
    def action(self) -> str:
        """``refuse``, ``clamp`` or ``note``: the store's ``GateFinding.action`` vocabulary."""
        if self.outcome in (Outcome.REFUSED, Outcome.FALLBACK, Outcome.SUSPENDED):
            return "refuse"
        if self.outcome is Outcome.CLAMPED:
            return "clamp"
        return "note"

    def as_dict(self) -> dict[str, object]:
        return {
            "rule": str(self.rule),
            "outcome": str(self.outcome),
            "message": self.message,
            "values": dict(self.values),
        }
