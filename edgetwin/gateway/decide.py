"""The decision stage: suggestion → safety gate → output, once per cycle.

1. Inputs from the store (the durable truth): CGM readings of the last two hours, every insulin
   delivery the pump reported over the insulin duration, the latest pump status.
2. :class:`edgetwin.suggest.Suggester` on the twin's ensemble (in a worker thread: it simulates
   every candidate action), with carbohydrate announced since the last cycle as a meal.
3. The suggestion is stored, then :class:`edgetwin.safety.SafetyGate` reviews it (its age is the
   real time the computation took, so an accelerated bench does not inflate it); the gate's
   decision (outcome and every rule that fired, with its values) is stored next to it, and a
   suggestion the gate changed is stored as well and referenced.
4. Output. Open loop: the patient sees the gated suggestion and its reason on the status page (a
   bolus is also announced through the notifiers; rescue carbohydrate is an urgent alarm).
   Closed loop: what the gate passed and does not need the patient (temp basals, suspensions,
   automatic micro-boluses) goes to the pump — each command stored *before* it is sent, the
   pump's read-back stored after; a command the pump does not confirm sounds an alarm. Nothing
   the gate refused or that needs confirmation is ever sent.

Suggestions are computed on the living twin's ensemble (``Twin.ensemble()``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from edgetwin.messages import Alarm, PumpCommand, Suggestion, SuggestionKind
from edgetwin.safety import GateInputs, SafetyGate, SafetyLimits, assess_cgm
from edgetwin.store import GateDecision, GateFinding, GateOutcome
from edgetwin.suggest import Suggester, SuggestInputs

if TYPE_CHECKING:
    from edgetwin.gateway.runtime import Gateway

__all__ = ["DecisionStage", "summarise_suggestion"]

log = logging.getLogger("edgetwin.gateway.decide")

READINGS_WINDOW = timedelta(hours=2)
MEAL_WINDOW = timedelta(minutes=20)
"""Carbohydrate announced this recently and not yet considered asks for a meal bolus."""


def summarise_suggestion(s: Suggestion) -> str:
    """A one-line summary a patient reads first (the reason follows)."""
    k = s.kind
    if k is SuggestionKind.KEEP_BASAL:
        return "keep the scheduled basal"
    if k is SuggestionKind.TEMP_BASAL:
        return f"temporary basal {s.rate_u_per_h:g} U/h for {s.duration_min:g} min"
    if k is SuggestionKind.SUSPEND:
        return f"pause insulin for {s.duration_min or 30:g} min"
    if k is SuggestionKind.CARBS:
        return f"eat {s.carbs_g:g} g of fast carbohydrate"
    if k is SuggestionKind.MICRO_BOLUS:
        return f"automatic micro-bolus {s.units:g} U"
    return f"bolus {s.units:g} U"


class DecisionStage:
    def __init__(self, gw: Gateway, limits: SafetyLimits) -> None:
        self.gw = gw
        self.limits = limits
        self.gate = SafetyGate(limits)
        self.suggester = Suggester()
        self._meals_seen: set[datetime] = set()
        self._commands = 0
        self.decisions = 0
        self.commands_sent = 0

    async def decide(self, now: datetime) -> None:
        t0_real = time.monotonic()
        gw = self.gw
        store, twin = gw.store, gw.twin
        assert store is not None and twin is not None
        profile = gw.cfg.profile
        dia = timedelta(hours=max(profile.insulin_duration_h, 5.0) + 1.0)
        readings = await store.call(
            lambda s: s.cgm_between(now - READINGS_WINDOW, now + timedelta(minutes=10))
        )
        deliveries = await store.call(lambda s: s.insulin_between(now - dia, now + timedelta(minutes=1)))
        carbs = await store.call(lambda s: s.carbs_between(now - MEAL_WINDOW, now + timedelta(minutes=1)))
        pump = await store.call(lambda s: s.latest_pump_status())
        cgm_device = gw.health["cgm"].device_id if "cgm" in gw.health else None
        new_meals = [c for c in carbs if c.time_utc not in self._meals_seen]
        meal_g = sum(c.grams for c in new_meals)
        cgm = assess_cgm(readings, now, self.limits, cgm_device)
        inputs = SuggestInputs(
            now, profile, self.limits, reservoir_u=None if pump is None else pump.reservoir_u,
            meal_carbs_g=meal_g, cgm=cgm,
        )  # fmt: skip
        ensemble = twin.ensemble(for_dosing=True)  # type: ignore[attr-defined]
        suggestion = await asyncio.to_thread(self.suggester.suggest, ensemble, inputs)
        self._meals_seen.update(c.time_utc for c in new_meals)
        self._meals_seen = {t for t in self._meals_seen if t > now - 2 * MEAL_WINDOW}
        ack = await store.add(suggestion)
        # The gate judges the suggestion's age by the real time its computation took: on a
        # gateway that is the clock; on an accelerated bench the clock would multiply it.
        gate_now = now + timedelta(seconds=time.monotonic() - t0_real)
        result = self.gate.review(
            suggestion, GateInputs(gate_now, profile, readings, deliveries, pump, cgm_device)
        )
        gated = result.suggestion
        gated_id: int | None = None
        if gated is not None:
            gated_id = ack.row_id if gated is suggestion else (await store.add(gated)).row_id
        findings = tuple(
            GateFinding(str(d.rule), d.action, d.message, dict(d.values)) for d in result.decisions
        )
        outcome = GateOutcome(result.outcome)
        if outcome is not GateOutcome.ACCEPTED and not findings:
            findings = (GateFinding("no_suggestion", "refuse", "nothing to send"),)
        await store.add(GateDecision(now, ack.row_id, outcome, findings, gated_id))
        self.decisions += 1
        shown = gated or suggestion
        gw.state.suggestion = {
            "kind": str(shown.kind),
            "summary": summarise_suggestion(shown) if gated is not None else "nothing new (see the reason)",
            "reason": shown.reason if gated is not None else _refusal_text(result, suggestion),
            "created_utc": shown.created_utc.isoformat(),
            "expires_utc": shown.expires_utc.isoformat(),
            "rate_u_per_h": shown.rate_u_per_h,
            "duration_min": shown.duration_min,
            "units": shown.units,
            "carbs_g": shown.carbs_g,
            "gate": outcome.value,
            "rules": [f.rule for f in findings if f.action != "note"],
            "needs_confirmation": result.needs_confirmation,
            "sent_to_pump": False,
            "iob_u": None if result.iob_u is None else round(result.iob_u, 2),
        }
        if gated is None:
            return
        if gated.kind is SuggestionKind.CARBS:
            await gw.alarms.raise_alarm(
                "rescue_carbs", f"{summarise_suggestion(gated)}: {gated.reason}", "urgent"
            )
        else:
            await gw.alarms.resolve("rescue_carbs", "No low is predicted any more.")
        if result.needs_confirmation:
            if gated.kind in (SuggestionKind.BOLUS, SuggestionKind.MICRO_BOLUS):
                for n in gw.alarms.notifiers:
                    await n.notify(
                        Alarm(now, "suggestion", f"{summarise_suggestion(gated)}: {gated.reason}", "info")
                    )
            return
        if not gw.cfg.closed_loop or gw.devices.pump_control is None:
            return
        sent = await self._command(result, now)
        gw.state.suggestion["sent_to_pump"] = sent

    async def _command(self, result: Any, now: datetime) -> bool:
        """Send the gate's pump commands; each is durable before it is sent. True if all confirmed."""
        gw = self.gw
        assert gw.store is not None and gw.devices.pump_control is not None
        self._commands += 1
        commands: tuple[PumpCommand, ...] = result.pump_commands(
            f"gw-{int(now.timestamp())}-{self._commands}"
        )
        ok = True
        for cmd in commands:
            await gw.store.add(cmd)
            answer = await gw.devices.pump_control.send(cmd)
            await gw.store.add(answer)
            self.commands_sent += 1  # sent and its answer recorded
            log.info(
                "pump command %s %s: %s",
                cmd.kind,
                "confirmed" if answer.confirmed else "NOT confirmed",
                answer.detail,
                extra={"event": "pump_command", "command_id": cmd.command_id, "confirmed": answer.confirmed},
            )
            if not answer.confirmed:
                ok = False
                await gw.alarms.raise_alarm(
                    "pump_command_unconfirmed",
                    f"The pump did not confirm the {cmd.kind} command ({answer.detail}); it is treated as not "
                    "running. Check the pump.",
                    "urgent",
                )
        if ok and commands:
            await gw.alarms.resolve("pump_command_unconfirmed", "The pump confirms commands again.")
        return ok and bool(commands)


def _refusal_text(result: Any, suggestion: Suggestion) -> str:
    rules = [d.message for d in result.decisions if d.is_intervention]
    return (
        f"The safety check stopped '{summarise_suggestion(suggestion)}': " + "; ".join(rules) if rules else ""
    )
