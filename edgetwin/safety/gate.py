"""The safety gate: every suggestion passes here before it reaches the patient or the pump.

The gate does not import the suggestion engine and does not trust it: it recomputes what it needs
(CGM data quality, its own glucose trend, insulin on board from the pump's delivery records,
the max safe basal) and applies every rule of ``specs/safety.md`` in this order:

1. inputs and profile sanity (a bad profile or garbage input → no insulin above scheduled basal);
2. the suggestion itself: well formed, less than ``suggestion_max_age_s`` old, not expired;
3. CGM data (:func:`~edgetwin.safety.cgm.assess_cgm`): stale, future-dated, implausible, flagged,
   very noisy or flat data → fallback to the scheduled basal;
4. mode: automatic micro-boluses only in closed-loop mode;
5. predictive low-glucose suspend: glucose at or below the threshold, the suggestion's own low
   quantile within ``low_prediction_horizon_min``, or the gate's trend forecast below it → zero temp basal, no bolus (a meal bolus the
   patient asked for is judged on glucose now and the suggestion's prediction, which includes
   the meal, not on the trend alone); rescue carbs when a low comes within
   ``rescue_horizon_min`` despite the suspension;
6. temp basals: duration ≤ 30 min, rate in [0, max safe basal], pump increment, max IOB;
7. boluses: pump state (fresh status, not suspended, not bolusing, reservoir as computed), max
   bolus, max IOB; automatic ones also ≤ 30 min of scheduled basal, ≤ half the computed need, one
   per ``micro_bolus_interval_min``, and none on noisy or jumping data. An automatic bolus may
   carry the temp basal to run beside it (``rate_u_per_h``/``duration_min``, as oref0 pairs
   them): that part passes step 6 and shares the max-IOB room.

Every refusal, fallback, clamp, suspension and addition is a :class:`Decision` in the result.
The suggestion's own predictions can only make the gate stricter (trigger a suspension), never
looser. The gate never raises: anything it cannot make sense of becomes a refusal.

How the gateway calls it, every cycle and again right before commanding the pump::

    gate = SafetyGate(limits)                       # limits validated at start-up
    result = gate.review(suggestion, GateInputs(now_utc, profile, readings, deliveries, pump))
    if result.suggestion is None: ...               # nothing new is sent
    elif result.needs_confirmation: ...             # ask the patient (open loop, boluses, carbs)
    else: commands = result.pump_commands("cmd-42") # closed loop: send to the pump

Fallback means: cancel a running temp basal above the scheduled rate (or any temp basal when the
pump state is unknown); otherwise leave the pump alone — every temp basal ends within 30 min.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from edgetwin.messages import (
    CgmReading,
    InsulinDelivery,
    InsulinKind,
    PumpCommand,
    PumpCommandKind,
    PumpStatus,
    Suggestion,
    SuggestionKind,
)
from edgetwin.safety.cgm import FALLBACK_RULES, RESTRICT_RULES, CgmAssessment, assess_cgm
from edgetwin.safety.decisions import Decision, Outcome, Rule
from edgetwin.safety.insulin import MIN_EXPONENTIAL_DURATION_H, net_iob_u
from edgetwin.safety.limits import Mode, SafetyLimits, max_safe_basal_u_per_h, round_down
from edgetwin.therapy import TherapyProfile
from edgetwin.timeutil import ensure_utc

__all__ = ["GateInputs", "GateResult", "SafetyGate"]

log = logging.getLogger("edgetwin.safety")

_EPS = 1e-9
_FUTURE_SUGGESTION_S = 5.0  # a suggestion may be stamped this far ahead (clock granularity)
_TEMP_KINDS = (SuggestionKind.TEMP_BASAL, SuggestionKind.SUSPEND, SuggestionKind.CARBS)
_BOLUS_KINDS = (SuggestionKind.BOLUS, SuggestionKind.MICRO_BOLUS)


@dataclass(frozen=True)
class GateInputs:
    """What the gate checks a suggestion against, all as the gateway last received it.

    ``readings``: recent CGM readings (at least the last hour), any order. ``deliveries``: every
    insulin delivery the pump reported over at least the insulin duration, scheduled basal
    included (net IOB subtracts the schedule). ``pump``: the latest pump status (None if never
    received). ``cgm_device_id``: the active sensor (None: the newest reading's device).
    """

    now_utc: datetime
    profile: TherapyProfile
    readings: Sequence[CgmReading] = ()
    deliveries: Sequence[InsulinDelivery] = ()
    pump: PumpStatus | None = None
    cgm_device_id: str | None = None


@dataclass(frozen=True)
class GateResult:
    """The gated suggestion (None: nothing new goes to the pump) and every decision taken."""

    suggestion: Suggestion | None
    original: Suggestion | None
    decisions: tuple[Decision, ...]
    mode: Mode
    iob_u: float | None = None
    scheduled_basal_u_per_h: float | None = None
    max_safe_basal_u_per_h: float | None = None
    cgm: CgmAssessment | None = None

    @property
    def interventions(self) -> tuple[Decision, ...]:
        """Decisions that changed or refused what was suggested."""
        return tuple(d for d in self.decisions if d.is_intervention)

    @property
    def unchanged(self) -> bool:
        return self.suggestion is not None and not self.interventions

    @property
    def outcome(self) -> str:
        """``accepted``, ``clamped`` or ``refused`` (the store's ``GateOutcome`` values): refused
        when nothing goes out or something else replaces the suggestion."""
        s, o = self.suggestion, self.original
        if s is None or o is None or s.kind is not o.kind:
            return "refused" if s is None or o is None or self.interventions else "accepted"
        return "clamped" if self.interventions else "accepted"

    @property
    def needs_confirmation(self) -> bool:
        """The patient must act: everything in open loop; boluses and carbs in closed loop."""
        if self.suggestion is None:
            return False
        if self.mode is Mode.OPEN_LOOP:
            return True
        return self.suggestion.kind in (SuggestionKind.BOLUS, SuggestionKind.CARBS)

    def pump_commands(self, command_id: str) -> tuple[PumpCommand, ...]:
        """The pump commands that carry out the gated suggestion (zero temp for a suspension,
        so a silent gateway falls back to the scheduled basal by itself)."""
        s = self.suggestion
        if s is None:
            return ()
        if s.kind is SuggestionKind.KEEP_BASAL:
            return (PumpCommand(command_id, PumpCommandKind.CANCEL_TEMP_BASAL, s.created_utc),)
        commands: list[PumpCommand] = []
        if s.rate_u_per_h is not None and s.duration_min:
            commands.append(
                PumpCommand(
                    command_id if s.kind not in _BOLUS_KINDS else f"{command_id}-temp",
                    PumpCommandKind.TEMP_BASAL,
                    s.created_utc,
                    rate_u_per_h=s.rate_u_per_h,
                    duration_min=s.duration_min,
                )
            )
        if s.kind in _BOLUS_KINDS:
            commands.append(PumpCommand(command_id, PumpCommandKind.BOLUS, s.created_utc, units=s.units))
        return tuple(commands)

    def as_dict(self) -> dict[str, object]:
        s = self.suggestion
        return {
            "kind": None if s is None else str(s.kind),
            "rate_u_per_h": None if s is None else s.rate_u_per_h,
            "duration_min": None if s is None else s.duration_min,
            "units": None if s is None else s.units,
            "carbs_g": None if s is None else s.carbs_g,
            "iob_u": self.iob_u,
            "max_safe_basal_u_per_h": self.max_safe_basal_u_per_h,
            "decisions": [d.as_dict() for d in self.decisions],
        }


@dataclass
class _Review:
    """Working state of one review."""

    now: datetime
    limits: SafetyLimits
    pump: PumpStatus | None
    decisions: list[Decision] = field(default_factory=list)
    basal: float | None = None
    max_basal: float | None = None
    iob: float | None = None
    cgm: CgmAssessment | None = None

    def add(self, rule: Rule, outcome: Outcome, message: str, **values: float | str) -> None:
        self.decisions.append(Decision(rule, outcome, message, tuple(values.items())))


class SafetyGate:
    """Checks suggestions against :class:`SafetyLimits`. One gate per patient; it remembers when
    it last approved an automatic bolus (on top of the pump's delivery records) and when it last
    suggested rescue carbs."""

    def __init__(self, limits: SafetyLimits) -> None:
        if not isinstance(limits, SafetyLimits):
            raise TypeError("SafetyGate needs validated SafetyLimits (see SafetyLimits.from_mapping)")
        self.limits = limits
        self._last_auto_bolus_utc: datetime | None = None
        self._last_rescue_utc: datetime | None = None

    def review(self, suggestion: Suggestion | None, inputs: GateInputs) -> GateResult:
        """Gate ``suggestion`` at ``inputs.now_utc``. Never raises."""
        try:
            return self._review(suggestion, inputs)
        except Exception as exc:  # the gate must always answer; a fault becomes a refusal
            log.exception("safety gate refused a suggestion after an internal fault")
            return GateResult(
                suggestion=None,
                original=suggestion if isinstance(suggestion, Suggestion) else None,
                decisions=(
                    Decision(
                        Rule.INVALID_INPUT,
                        Outcome.REFUSED,
                        f"the safety gate could not check this suggestion ({type(exc).__name__}); nothing is sent",
                    ),
                ),
                mode=self.limits.mode,
            )

    # -- the review ------------------------------------------------------------------------

    def _review(self, s: Suggestion | None, inp: GateInputs) -> GateResult:
        limits = self.limits
        if not isinstance(inp, GateInputs) or not isinstance(inp.now_utc, datetime):
            return self._refuse_all(s, "the gate's inputs are not a GateInputs with a time")
        now = ensure_utc(inp.now_utc)
        pump = inp.pump if isinstance(inp.pump, PumpStatus) else None
        r = _Review(now=now, limits=limits, pump=pump)
        if inp.pump is not None and pump is None:
            r.add(
                Rule.INVALID_INPUT, Outcome.IGNORED, "the pump status is not a PumpStatus; treated as unknown"
            )
        profile = inp.profile
        if not isinstance(profile, TherapyProfile):
            r.add(Rule.INVALID_INPUT, Outcome.FALLBACK, "no valid therapy profile: scheduled basal only")
            return self._finish(s, r, self._fallback(r))
        problems = profile.problems()
        if problems:
            key, problem = problems[0]
            r.add(
                Rule.PROFILE,
                Outcome.FALLBACK,
                f"therapy profile fails its sanity check: {key}: {problem}",
                key=key,
            )
            return self._finish(s, r, self._fallback(r))
        r.basal = profile.basal_at(now)
        r.max_basal = max_safe_basal_u_per_h(profile, now, limits)
        deliveries = [d for d in inp.deliveries if isinstance(d, InsulinDelivery)]
        if profile.insulin_duration_h < MIN_EXPONENTIAL_DURATION_H:
            r.add(
                Rule.INSULIN_DURATION,
                Outcome.RESTRICTED,
                "insulin duration raised to 5 h for insulin on board (exponential curve)",
                profile_h=profile.insulin_duration_h,
                used_h=MIN_EXPONENTIAL_DURATION_H,
            )
        r.iob = max(0.0, net_iob_u(deliveries, profile, now, limits.insulin_peak_min))
        readings = [x for x in inp.readings if isinstance(x, CgmReading)]
        r.cgm = cgm = assess_cgm(readings, now, limits, inp.cgm_device_id)
        r.decisions.extend(f for f in cgm.findings if f.outcome is Outcome.IGNORED)

        if s is None:
            r.add(Rule.NO_SUGGESTION, Outcome.FALLBACK, "no suggestion: scheduled basal")
            return self._finish(s, r, self._fallback(r))
        if not isinstance(s, Suggestion):
            r.add(Rule.INVALID_INPUT, Outcome.FALLBACK, "not a Suggestion: scheduled basal")
            return self._finish(None, r, self._fallback(r))
        malformed = _malformed(s)
        if malformed:
            r.add(Rule.MALFORMED_SUGGESTION, Outcome.FALLBACK, malformed, kind=str(s.kind))
            return self._finish(s, r, self._fallback(r))
        age_s = (now - s.created_utc).total_seconds()
        if age_s > limits.suggestion_max_age_s or age_s < -_FUTURE_SUGGESTION_S:
            r.add(
                Rule.SUGGESTION_STALE,
                Outcome.REFUSED,
                f"the suggestion is {age_s:.0f} s old (limit {limits.suggestion_max_age_s:.0f} s): ask again",
                age_s=round(age_s, 1),
                limit_s=limits.suggestion_max_age_s,
            )
            return self._finish(s, r, None)
        if s.expires_utc < now:
            r.add(Rule.SUGGESTION_EXPIRED, Outcome.REFUSED, "the suggestion has expired: ask again")
            return self._finish(s, r, None)

        if cgm.fallback:
            if s.kind is SuggestionKind.KEEP_BASAL:
                return self._finish(s, r, s)
            r.decisions.extend(f for f in cgm.findings if f.rule in FALLBACK_RULES)
            return self._finish(s, r, self._fallback(r))
        if s.kind is SuggestionKind.MICRO_BOLUS and limits.mode is not Mode.CLOSED_LOOP:
            r.add(
                Rule.MODE, Outcome.REFUSED, "automatic boluses need closed-loop mode", mode=str(limits.mode)
            )
            return self._finish(s, r, None)

        low_handled, low = self._low_glucose(s, r)
        if low_handled:
            return self._finish(s, r, low)
        if s.kind is SuggestionKind.KEEP_BASAL:
            return self._finish(s, r, s)
        if s.kind in _TEMP_KINDS:
            return self._finish(s, r, self._temp_basal(s, r))
        if s.kind is SuggestionKind.MICRO_BOLUS and s.rate_u_per_h is not None:
            return self._finish(s, r, self._bolus_with_temp(s, r, deliveries))
        return self._finish(s, r, self._bolus(s, r, deliveries))

    # -- pieces ----------------------------------------------------------------------------------

    def _refuse_all(self, s: object, message: str) -> GateResult:
        return GateResult(
            suggestion=None,
            original=s if isinstance(s, Suggestion) else None,
            decisions=(Decision(Rule.INVALID_INPUT, Outcome.REFUSED, message + "; nothing is sent"),),
            mode=self.limits.mode,
        )

    def _finish(self, original: Suggestion | None, r: _Review, gated: Suggestion | None) -> GateResult:
        if gated is not None and gated is not original:
            notes = [d.message for d in r.decisions if d.is_intervention]
            reason = gated.reason
            if notes:
                reason = (
                    f"{reason} Safety check: {'; '.join(notes)}."
                    if reason
                    else f"Safety check: {'; '.join(notes)}."
                )
            gated = dataclasses.replace(gated, reason=reason)
        if gated is not None and gated.kind is SuggestionKind.MICRO_BOLUS:
            self._last_auto_bolus_utc = r.now
        if gated is not None and gated.kind is SuggestionKind.CARBS:
            self._last_rescue_utc = r.now
        return GateResult(
            suggestion=gated,
            original=original,
            decisions=tuple(r.decisions),
            mode=self.limits.mode,
            iob_u=r.iob,
            scheduled_basal_u_per_h=r.basal,
            max_safe_basal_u_per_h=r.max_basal,
            cgm=r.cgm,
        )

    def _new(self, r: _Review, kind: SuggestionKind, reason: str, **fields: float | None) -> Suggestion:
        return Suggestion(
            created_utc=r.now,
            expires_utc=r.now + timedelta(seconds=self.limits.suggestion_max_age_s),
            kind=kind,
            reason=reason,
            **fields,  # type: ignore[arg-type]
        )

    def _fallback(self, r: _Review) -> Suggestion | None:
        """Cancel a temp basal above the schedule (or any, if the pump state is unknown); at a
        low that usable CGM data show, pause insulin instead (the schedule would deliver more)."""
        pump = r.pump
        cgm = r.cgm
        if cgm is not None and not cgm.fallback and cgm.glucose_mg_dl is not None:
            why = [w for w in (self._low_now(cgm), self._low_trend(cgm)) if w]
            if why:
                if pump is not None and pump.suspended:
                    return None
                r.add(
                    Rule.LOW_GLUCOSE_SUSPEND,
                    Outcome.SUSPENDED,
                    f"insulin paused for {self.limits.max_temp_basal_min:.0f} min: {'; '.join(why)}",
                    glucose_mg_dl=round(cgm.glucose_mg_dl, 1),
                    threshold_mg_dl=self.limits.suspend_threshold_mg_dl,
                )
                return self._new(
                    r,
                    SuggestionKind.SUSPEND,
                    "Pause insulin: glucose is low or about to be.",
                    rate_u_per_h=0.0,
                    duration_min=self.limits.max_temp_basal_min,
                )
        running_high = (
            pump is None
            or r.basal is None
            or (
                pump.temp_basal_u_per_h is not None
                and pump.temp_basal_remaining_min > 0
                and pump.temp_basal_u_per_h > r.basal + _EPS
            )
        )
        if not running_high:
            return None
        return self._new(
            r,
            SuggestionKind.KEEP_BASAL,
            "Back to the scheduled basal: the data do not allow more insulin now.",
            rate_u_per_h=r.basal,
        )

    def _low_now(self, cgm: CgmAssessment) -> str:
        """Why glucose counts as low now ("" if it does not)."""
        g = cgm.glucose_mg_dl
        return (
            f"glucose is {g:.0f} mg/dL" if g is not None and g <= self.limits.suspend_threshold_mg_dl else ""
        )

    def _low_trend(self, cgm: CgmAssessment) -> str:
        """Why the CGM trend counts as heading low ("" if it does not)."""
        f = cgm.forecast_mg_dl
        if f is None or f >= self.limits.suspend_threshold_mg_dl:
            return ""
        return f"the glucose trend reaches {f:.0f} mg/dL in {self.limits.trend_horizon_min:.0f} min"

    def _low_glucose(self, s: Suggestion, r: _Review) -> tuple[bool, Suggestion | None]:
        """Predictive low-glucose suspend and rescue carbs: (False, None) when no low is in
        sight, else (True, what to do instead — None for nothing)."""
        limits = self.limits
        cgm = r.cgm
        assert cgm is not None and cgm.glucose_mg_dl is not None
        thr = limits.suspend_threshold_mg_dl
        glucose = cgm.glucose_mg_dl
        predicted = s.predicted_low_mg_dl(limits.low_prediction_horizon_min)
        low_now = self._low_now(cgm)
        why = [low_now] if low_now else []
        if predicted is not None and predicted < thr:
            why.append(f"the twin's low estimate falls to {predicted:.0f} mg/dL")
        # The gate's own trend forecast guards automatic insulin. A bolus the patient asks for
        # comes with a meal the trend cannot know about; it is refused on a low now or on the
        # suggestion's own prediction (which includes that meal), not on the trend alone.
        trend = self._low_trend(cgm)
        if trend and s.kind is not SuggestionKind.BOLUS:
            why.append(trend)
        if not why:
            return False, None
        values: dict[str, float | str] = {"glucose_mg_dl": round(glucose, 1), "threshold_mg_dl": thr}
        if predicted is not None:
            values["predicted_low_mg_dl"] = round(predicted, 1)
        if cgm.forecast_mg_dl is not None:
            values["trend_forecast_mg_dl"] = round(cgm.forecast_mg_dl, 1)
        suspended_already = s.kind in _TEMP_KINDS and (s.rate_u_per_h or 0.0) <= _EPS
        if s.kind is SuggestionKind.CARBS and s.rate_u_per_h is None:
            suspended_already = False
        if s.kind in _BOLUS_KINDS:
            r.add(
                Rule.NO_BOLUS_AT_LOW,
                Outcome.REFUSED,
                f"no bolus at or near a low ({'; '.join(why)})",
                units=float(s.units or 0.0),
                **values,
            )
        elif not suspended_already:
            r.add(
                Rule.LOW_GLUCOSE_SUSPEND,
                Outcome.SUSPENDED,
                f"insulin paused for {limits.max_temp_basal_min:.0f} min: {'; '.join(why)}",
                **values,
            )
        # Rescue carbs: a low now, or within the rescue horizon even with insulin paused.
        carbs: float | None = None
        soon = s.predicted_low_mg_dl(limits.rescue_horizon_min) if suspended_already else None
        if s.kind is SuggestionKind.CARBS and s.carbs_g is not None:
            carbs = min(s.carbs_g, limits.max_rescue_carbs_g)
            if carbs < s.carbs_g - _EPS:
                r.add(
                    Rule.RESCUE_CARBS,
                    Outcome.CLAMPED,
                    f"rescue carbs limited to {carbs:.0f} g",
                    requested_g=s.carbs_g,
                    max_g=limits.max_rescue_carbs_g,
                )
        elif (
            glucose < limits.rescue_low_mg_dl or (soon is not None and soon < limits.rescue_low_mg_dl)
        ) and (
            self._last_rescue_utc is None
            or (r.now - self._last_rescue_utc).total_seconds() >= 60.0 * limits.rescue_interval_min
        ):
            carbs = limits.rescue_carbs_g
            r.add(
                Rule.RESCUE_CARBS,
                Outcome.ADDED,
                f"take {carbs:.0f} g of fast carbs: a low is here or expected within "
                f"{limits.rescue_horizon_min:.0f} min even with insulin paused",
                carbs_g=carbs,
                **values,
            )
        pump_suspended = r.pump is not None and r.pump.suspended
        rate: float | None = None if pump_suspended else 0.0
        duration: float | None = None if pump_suspended else limits.max_temp_basal_min
        if carbs is not None and carbs > 0.0:
            if (
                s.kind is SuggestionKind.CARBS
                and carbs == s.carbs_g
                and suspended_already
                and not pump_suspended
            ):
                return True, self._clamp_temp_duration(_as_pause(s), r)
            return True, self._new(
                r,
                SuggestionKind.CARBS,
                s.reason if s.kind is SuggestionKind.CARBS else "Glucose is low or about to be low.",
                carbs_g=carbs,
                rate_u_per_h=rate,
                duration_min=duration,
            )
        if suspended_already:
            if pump_suspended:
                r.add(Rule.PUMP_SUSPENDED, Outcome.REFUSED, "the pump is already suspended")
                return True, None
            return True, self._clamp_temp_duration(_as_pause(s), r)
        if pump_suspended:
            r.add(Rule.PUMP_SUSPENDED, Outcome.REFUSED, "the pump is already suspended")
            return True, None
        return True, self._new(
            r,
            SuggestionKind.SUSPEND,
            "Insulin paused to prevent a low.",
            rate_u_per_h=0.0,
            duration_min=limits.max_temp_basal_min,
        )

    def _clamp_temp_duration(self, s: Suggestion, r: _Review) -> Suggestion:
        """Duration at most ``max_temp_basal_min`` (a missing one becomes that); a suspension
        always carries rate 0 so it goes to the pump as a zero temp basal."""
        limits = self.limits
        if s.kind is SuggestionKind.SUSPEND and s.rate_u_per_h is None:
            s = dataclasses.replace(s, rate_u_per_h=0.0)
        duration = s.duration_min if s.duration_min else limits.max_temp_basal_min
        if duration > limits.max_temp_basal_min:
            r.add(
                Rule.TEMP_BASAL_DURATION,
                Outcome.CLAMPED,
                f"temp basal shortened to {limits.max_temp_basal_min:.0f} min so it ends by itself",
                requested_min=duration,
                max_min=limits.max_temp_basal_min,
            )
            duration = limits.max_temp_basal_min
        if duration != s.duration_min:
            return dataclasses.replace(s, duration_min=duration)
        return s

    def _temp_basal(self, s: Suggestion, r: _Review, *, reserved_u: float = 0.0) -> Suggestion | None:
        """Temp basal rules; ``reserved_u``: IOB room already taken by a bolus sent with it."""
        limits = self.limits
        assert r.basal is not None and r.max_basal is not None and r.iob is not None
        if s.kind is SuggestionKind.CARBS:
            s = self._carbs_only(s, r)
            if s.rate_u_per_h is None:
                return s
        s = self._clamp_temp_duration(s, r)
        duration = float(s.duration_min or limits.max_temp_basal_min)
        requested = float(s.rate_u_per_h or 0.0)
        rate = requested
        if rate > r.max_basal + _EPS:
            r.add(
                Rule.MAX_SAFE_BASAL,
                Outcome.CLAMPED,
                f"basal limited to the max safe basal of {r.max_basal:.2f} U/h",
                requested_u_per_h=requested,
                max_safe_basal_u_per_h=r.max_basal,
            )
            rate = r.max_basal
        rounded = round_down(rate, limits.basal_increment_u_per_h)
        if rounded < rate - 1e-6:
            r.add(
                Rule.PUMP_INCREMENT,
                Outcome.CLAMPED,
                f"rate rounded down to the pump's {limits.basal_increment_u_per_h:g} U/h step",
                requested_u_per_h=rate,
                rounded_u_per_h=rounded,
            )
        rate = rounded
        if rate > r.basal + _EPS:
            room = max(0.0, limits.effective_max_iob_u - r.iob - reserved_u)
            excess = (rate - r.basal) * duration / 60.0
            if excess > room + _EPS:
                capped = round_down(r.basal + room * 60.0 / duration, limits.basal_increment_u_per_h)
                r.add(
                    Rule.MAX_IOB,
                    Outcome.CLAMPED,
                    f"insulin on board {r.iob:.2f} U is near the {limits.effective_max_iob_u:.2f} U limit: "
                    f"basal limited to {capped:.2f} U/h",
                    requested_u_per_h=rate,
                    capped_u_per_h=capped,
                    iob_u=round(r.iob, 3),
                    max_iob_u=limits.effective_max_iob_u,
                )
                rate = min(rate, capped)
        pump = r.pump
        if pump is not None and pump.suspended:
            r.add(Rule.PUMP_SUSPENDED, Outcome.REFUSED, "the pump is suspended: no temp basal is sent")
            return None
        if rate > r.basal + _EPS and not self._pump_fresh(r):
            return None
        if rate == s.rate_u_per_h:
            return s
        return dataclasses.replace(s, rate_u_per_h=rate)

    def _carbs_only(self, s: Suggestion, r: _Review) -> Suggestion:
        limits = self.limits
        carbs = float(s.carbs_g or 0.0)
        if carbs > limits.max_rescue_carbs_g:
            r.add(
                Rule.RESCUE_CARBS,
                Outcome.CLAMPED,
                f"rescue carbs limited to {limits.max_rescue_carbs_g:.0f} g",
                requested_g=carbs,
                max_g=limits.max_rescue_carbs_g,
            )
            return dataclasses.replace(s, carbs_g=limits.max_rescue_carbs_g)
        return s

    def _pump_fresh(self, r: _Review) -> bool:
        """Pump status present and fresh; records a refusal otherwise."""
        pump = r.pump
        if pump is None:
            r.add(Rule.PUMP_STATUS, Outcome.REFUSED, "no pump status: no extra insulin")
            return False
        age_min = (r.now - pump.time_utc).total_seconds() / 60.0
        if age_min > self.limits.pump_status_max_age_min or age_min < -self.limits.future_tolerance_min:
            r.add(
                Rule.PUMP_STATUS,
                Outcome.REFUSED,
                f"the pump status is {age_min:.0f} min old: no extra insulin until the pump reports again",
                age_min=round(age_min, 1),
                max_age_min=self.limits.pump_status_max_age_min,
            )
            return False
        return True

    def _bolus_with_temp(
        self, s: Suggestion, r: _Review, deliveries: list[InsulinDelivery]
    ) -> Suggestion | None:
        """An automatic bolus with the temp basal to run beside it (oref0's pairing): each part
        passes its own rules; the bolus comes first under the max IOB, the temp gets what is left."""
        bolus = self._bolus(dataclasses.replace(s, rate_u_per_h=None, duration_min=None), r, deliveries)
        reserved = bolus.units or 0.0 if bolus is not None else 0.0
        temp = self._temp_basal(
            dataclasses.replace(s, kind=SuggestionKind.TEMP_BASAL, units=None, need_u=None),
            r,
            reserved_u=reserved,
        )
        if bolus is None:
            return temp
        if temp is None:
            return bolus
        if (
            bolus.units == s.units
            and temp.rate_u_per_h == s.rate_u_per_h
            and temp.duration_min == s.duration_min
        ):
            return s
        return dataclasses.replace(
            s, units=bolus.units, rate_u_per_h=temp.rate_u_per_h, duration_min=temp.duration_min
        )

    def _bolus(self, s: Suggestion, r: _Review, deliveries: list[InsulinDelivery]) -> Suggestion | None:
        """Bolus rules (manual and automatic)."""
        limits = self.limits
        assert r.basal is not None and r.iob is not None and r.cgm is not None
        automatic = s.kind is SuggestionKind.MICRO_BOLUS
        if not self._pump_fresh(r):
            return None
        pump = r.pump
        assert pump is not None
        if pump.suspended:
            r.add(Rule.PUMP_SUSPENDED, Outcome.REFUSED, "the pump is suspended: no bolus")
            return None
        if pump.bolusing:
            r.add(Rule.PUMP_BOLUSING, Outcome.REFUSED, "the pump is still delivering a bolus")
            return None
        if (
            s.reservoir_u is None
            or abs(pump.reservoir_u - s.reservoir_u) > limits.reservoir_tolerance_u + _EPS
        ):
            r.add(
                Rule.RESERVOIR_MISMATCH,
                Outcome.REFUSED,
                "the pump's reservoir differs from when the suggestion was computed: insulin may have "
                "been delivered unseen; ask again",
                pump_reservoir_u=pump.reservoir_u,
                suggestion_reservoir_u="none" if s.reservoir_u is None else s.reservoir_u,
            )
            return None
        requested = float(s.units or 0.0)
        units = requested
        if units > limits.max_bolus_u + _EPS:
            r.add(
                Rule.MAX_BOLUS,
                Outcome.CLAMPED,
                f"bolus limited to the max bolus of {limits.max_bolus_u:.2f} U",
                requested_u=requested,
                max_bolus_u=limits.max_bolus_u,
            )
            units = limits.max_bolus_u
        if automatic:
            restricting = [f for f in r.cgm.findings if f.rule in RESTRICT_RULES]
            if restricting:
                r.decisions.extend(
                    Decision(f.rule, Outcome.REFUSED, f.message, f.values) for f in restricting
                )
                return None
            last = self._last_auto_bolus(deliveries)
            if last is not None:
                since = (r.now - last).total_seconds() / 60.0
                if since < limits.micro_bolus_interval_min - _EPS:
                    r.add(
                        Rule.MICRO_BOLUS_INTERVAL,
                        Outcome.REFUSED,
                        f"an automatic bolus was given {since:.1f} min ago (minimum interval "
                        f"{limits.micro_bolus_interval_min:.0f} min)",
                        minutes_since=round(since, 2),
                        interval_min=limits.micro_bolus_interval_min,
                    )
                    return None
            cap = r.basal * limits.max_micro_bolus_basal_min / 60.0
            if units > cap + _EPS:
                r.add(
                    Rule.MICRO_BOLUS_BASAL_CAP,
                    Outcome.CLAMPED,
                    f"automatic bolus limited to {limits.max_micro_bolus_basal_min:.0f} min of scheduled basal "
                    f"({cap:.2f} U)",
                    requested_u=units,
                    cap_u=round(cap, 4),
                )
                units = cap
            if s.need_u is None:
                r.add(
                    Rule.MICRO_BOLUS_HALF_NEED,
                    Outcome.REFUSED,
                    "an automatic bolus must state the insulin needed; none was given",
                )
                return None
            half = limits.micro_bolus_need_fraction * s.need_u
            if units > half + _EPS:
                r.add(
                    Rule.MICRO_BOLUS_HALF_NEED,
                    Outcome.CLAMPED,
                    f"automatic bolus limited to {limits.micro_bolus_need_fraction:.0%} of the "
                    f"{s.need_u:.2f} U needed",
                    requested_u=units,
                    need_u=s.need_u,
                    cap_u=round(half, 4),
                )
                units = half
        room = max(0.0, limits.effective_max_iob_u - r.iob)
        if units > room + _EPS:
            r.add(
                Rule.MAX_IOB,
                Outcome.CLAMPED,
                f"insulin on board {r.iob:.2f} U is near the {limits.effective_max_iob_u:.2f} U limit: "
                f"bolus limited to {room:.2f} U",
                requested_u=units,
                iob_u=round(r.iob, 3),
                max_iob_u=limits.effective_max_iob_u,
            )
            units = room
        rounded = round_down(units, limits.bolus_increment_u)
        if rounded < units - 1e-6:
            r.add(
                Rule.PUMP_INCREMENT,
                Outcome.CLAMPED,
                f"bolus rounded down to the pump's {limits.bolus_increment_u:g} U step",
                requested_u=round(units, 4),
                rounded_u=rounded,
            )
        units = rounded
        if units <= 0.0:
            clamps = [d.rule for d in r.decisions if d.outcome is Outcome.CLAMPED]
            r.add(
                clamps[0] if clamps else Rule.PUMP_INCREMENT,
                Outcome.REFUSED,
                "after the limits nothing is left to deliver",
                requested_u=requested,
            )
            return None
        if units == s.units:
            return s
        return dataclasses.replace(s, units=units)

    def _last_auto_bolus(self, deliveries: list[InsulinDelivery]) -> datetime | None:
        times = [d.time_utc for d in deliveries if d.kind is InsulinKind.MICRO_BOLUS]
        if self._last_auto_bolus_utc is not None:
            times.append(self._last_auto_bolus_utc)
        return max(times) if times else None


def _malformed(s: Suggestion) -> str:
    """Why a suggestion cannot be carried out as stated ('' when it can)."""
    k = s.kind
    if k is SuggestionKind.TEMP_BASAL and (s.rate_u_per_h is None or not s.duration_min):
        return "a temp basal needs a rate and a duration"
    if k is SuggestionKind.SUSPEND and (s.rate_u_per_h or 0.0) > 0.0:
        return "a suspension must have a zero rate"
    if k in _BOLUS_KINDS and not s.units:
        return "a bolus needs a number of units"
    if k is SuggestionKind.BOLUS and s.rate_u_per_h is not None:
        return "a bolus the patient confirms cannot carry a temp basal"
    if k is SuggestionKind.MICRO_BOLUS and s.rate_u_per_h is not None and not s.duration_min:
        return "the temp basal sent with an automatic bolus needs a duration"
    if k is SuggestionKind.CARBS and not s.carbs_g:
        return "a carbs suggestion needs grams"
    if k is SuggestionKind.CARBS and (s.rate_u_per_h or 0.0) > 0.0:
        return "a carbs suggestion may only pause insulin"
    return ""


def _as_pause(s: Suggestion) -> Suggestion:
    """A suggestion that already stops insulin at a low, sent as exactly that: rate 0 U/h (not a
    rate within rounding of it), and a zero temp basal as a suspension, so the patient and the log
    read that insulin is paused (found by the property test: a zero temp basal at the threshold
    went out as a temp basal, and a rate of 1e-308 U/h passed as "already suspended")."""
    kind = SuggestionKind.SUSPEND if s.kind is SuggestionKind.TEMP_BASAL else s.kind
    if kind is s.kind and s.rate_u_per_h == 0.0:
        return s
    return dataclasses.replace(s, kind=kind, rate_u_per_h=0.0)
