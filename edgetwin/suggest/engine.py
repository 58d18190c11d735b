"""The suggestion engine: model-predictive choice of what insulin change, if any, to make now.

Each cycle the engine builds candidate actions, runs every one on the twin's ensemble
(:func:`~edgetwin.twin.ensemble.simulate_plans`, all members, ``horizon_min`` ahead) and scores
the predicted glucose with the asymmetric risk of :mod:`edgetwin.suggest.risk` (lows on a low
quantile of the members, weighted far more than highs). Candidates:

* keep the scheduled basal;
* temp basals of ``temp_multipliers`` × the scheduled rate (0 = suspend) for 30 min, capped at the
  max safe basal, then the schedule again (a silent gateway falls back by itself);
* the insulin *need*: the best single bolus from a grid (what the model says would be right
  now). In closed loop it becomes an automatic micro-bolus of at most 30 min of scheduled basal
  and half the need; in open loop a correction bolus the patient confirms;
* after a carb announcement: a meal bolus, chosen on a grid around carbs/CR + correction;
* "take G g of fast carbs" (with insulin paused) when the low quantile falls below the rescue
  level within ``rescue_horizon_min`` even with insulin paused.

The engine stays inside the limits it knows (it reads :mod:`edgetwin.safety`), but it does not
enforce them: every suggestion still goes through :class:`~edgetwin.safety.SafetyGate`.

How the gateway calls it::

    suggester = Suggester()
    s = suggester.suggest(twin.ensemble(for_dosing=True), SuggestInputs(now_utc, profile, limits,
                          reservoir_u=pump.reservoir_u, cgm=assess_cgm(readings, now_utc, limits)))
    result = gate.review(s, GateInputs(now_utc, profile, readings, deliveries, pump))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from edgetwin.messages import Suggestion, SuggestionKind
from edgetwin.model.kernels import AUX_PLANNED_G
from edgetwin.model.params import (
    P_BW,
    P_KA1,
    P_KA2,
    P_KD,
    P_U2SS,
    P_VG,
    X_GS,
    X_ISC1,
    X_ISC2,
    X_QGUT,
    X_QSTO1,
    X_QSTO2,
)
from edgetwin.safety.cgm import CgmAssessment
from edgetwin.safety.limits import SafetyLimits, max_safe_basal_u_per_h, round_down
from edgetwin.suggest.explain import Outlook, TwinView, action_phrase, explain
from edgetwin.suggest.risk import plan_risk, quantile_trajectories
from edgetwin.therapy import TherapyProfile
from edgetwin.timeutil import ensure_utc
from edgetwin.twin.ensemble import InputPlan, TwinEnsemble, simulate_plans, weighted_quantiles

__all__ = ["SuggestInputs", "Suggester", "SuggesterConfig"]

F64 = npt.NDArray[np.float64]

_INFEASIBLE = 1e6


@dataclass(frozen=True)
class SuggesterConfig:
    """How the engine searches and scores (not safety limits: those are :class:`SafetyLimits`)."""

    horizon_min: int = 240
    """How far ahead candidates are simulated (min)."""
    stride_min: int = 5
    max_members: int = 32
    """Larger ensembles are resampled (systematically, by weight) to this many members."""
    quantiles: tuple[float, float, float] = (0.1, 0.5, 0.9)
    """Reported trajectories; the first is the low quantile lows are scored and guarded on."""
    low_weight: float = 10.0
    low_weight_full_min: int = 120
    """Lows are weighted fully up to this many minutes ahead ..."""
    low_weight_at_end: float = 0.3
    """... and then less, down to this fraction at the horizon (a later suspension can still
    avert a low that far away; the gate and the next cycles guard the near term)."""
    low_recourse_after_min: int | None = None
    """When set, lows are scored on the plan with the basal paused from this minute on (the
    recourse a closed loop has when a low approaches); the gate's check is unaffected."""
    temp_multipliers: tuple[float, ...] = (0.0, 0.5, 1.5, 2.5, 4.0)
    need_grid_basal_h: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    """Bolus sizes tried for the insulin need, in hours of scheduled basal."""
    meal_bolus_factors: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
    """Meal bolus sizes tried first, as fractions of carbs/CR + correction; a finer grid is then
    tried between the neighbours of the best."""
    insulin_penalty: float = 0.05
    """Cost per 100 mg/dL of glucose-lowering (U × ISF) beyond the scheduled basal: a tie-breaker
    towards doing less."""
    open_loop_min_bolus_u: float = 0.5
    """In open loop a correction bolus smaller than this is not worth asking the patient for."""
    bolus_prompt_cost: float = 0.3
    """Cost of asking the patient for a correction bolus (open loop)."""
    carbs_grid_g: tuple[float, ...] = (5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
    carbs_check_min: int = 90
    """Suggested carbs must keep the low quantile above the rescue level this long."""
    report_every_min: int = 15
    """Spacing of the trajectories attached to a suggestion."""
    routine_expiry_min: float = 5.0
    """Temp basals and suspensions expire after this (the next cycle replaces them)."""
    bolus_expiry_s: float = 60.0
    carbs_expiry_min: float = 15.0

    def __post_init__(self) -> None:
        if self.horizon_min < 60 or self.horizon_min % self.stride_min:
            raise ValueError("horizon_min must be >= 60 and a multiple of stride_min")
        if self.report_every_min % self.stride_min:
            raise ValueError("report_every_min must be a multiple of stride_min")
        if list(self.quantiles) != sorted(self.quantiles) or not 0 < self.quantiles[0] < 0.5:
            raise ValueError("quantiles must ascend and start with a low quantile below 0.5")


@dataclass(frozen=True)
class SuggestInputs:
    """What a suggestion is computed from besides the ensemble.

    ``meal_carbs_g``: carbs the patient just announced (already recorded in the twin, so in the
    ensemble); asks for a meal bolus. ``cgm``: the data assessment (raises targets on a noisy
    sensor, gives the sensor value for the reason). ``reservoir_u``: the pump's reservoir now,
    carried in the suggestion so the gate can tell whether anything was delivered unseen.
    """

    now_utc: datetime
    profile: TherapyProfile
    limits: SafetyLimits
    reservoir_u: float | None = None
    meal_carbs_g: float = 0.0
    cgm: CgmAssessment | None = None


@dataclass(frozen=True)
class _Candidate:
    kind: SuggestionKind
    rate_u_per_h: float | None = None
    duration_min: float | None = None
    units: float | None = None
    carbs_g: float | None = None
    notes: tuple[str, ...] = field(default=())

    def plan(self, basal_u_per_min: F64) -> InputPlan:
        ins = basal_u_per_min.copy()
        cho = np.zeros_like(ins)
        if self.rate_u_per_h is not None and self.duration_min:
            n = int(self.duration_min)
            ins[:n] = self.rate_u_per_h / 60.0
        if self.units:
            ins[0] += self.units
        if self.carbs_g:
            cho[0] = self.carbs_g
        return InputPlan(str(self.kind), cho, ins)

    @property
    def is_suspension(self) -> bool:
        """Insulin paused, nothing given: always allowed (with or without carbs)."""
        return self.rate_u_per_h == 0.0 and not self.units

    def extra_insulin_u(self, basal_u_per_min: F64) -> float:
        extra = self.units or 0.0
        if self.rate_u_per_h is not None and self.duration_min:
            n = int(self.duration_min)
            extra += float(self.rate_u_per_h / 60.0 * n - basal_u_per_min[:n].sum())
        return extra


@dataclass
class _Scored:
    candidates: list[_Candidate]
    glucose: F64  # (K, N, T)
    cost: F64  # (K,)
    low: F64  # (K, T) low quantile


class Suggester:
    """Chooses the next action on a :class:`TwinEnsemble`; see the module docstring."""

    def __init__(self, config: SuggesterConfig | None = None) -> None:
        self.config = config or SuggesterConfig()

    # -- public ------------------------------------------------------------------------------

    def suggest(self, ensemble: TwinEnsemble, inputs: SuggestInputs) -> Suggestion:
        """The suggestion for now. Raises ValueError only for inputs that are not what the types
        say (the gate, not the suggester, is where bad data becomes a refusal)."""
        now = ensure_utc(inputs.now_utc, "SuggestInputs.now_utc")
        ens = _resample(ensemble, self.config.max_members)
        c = _Cycle(self.config, ens, inputs, now)
        if inputs.meal_carbs_g > 0:
            meal = c.meal_bolus()
            if meal is not None:
                return meal
        return c.routine()


class _Cycle:
    """One suggestion computation."""

    def __init__(self, cfg: SuggesterConfig, ens: TwinEnsemble, inputs: SuggestInputs, now: datetime) -> None:
        self.cfg = cfg
        self.ens = ens
        self.inputs = inputs
        self.now = now
        self.profile = p = inputs.profile
        self.limits = lim = inputs.limits
        self.basal = p.basal_at(now)
        self.max_basal = max_safe_basal_u_per_h(p, now, lim)
        self.basal_u_per_min = _basal_per_minute(p, now, cfg.horizon_min)
        target = p.target_mg_dl
        if inputs.cgm is not None:
            target = inputs.cgm.target_mg_dl(target, lim)
        self.target = target
        self.target_note = (
            [f"target raised to {target:.0f} mg/dL because the sensor is noisy"]
            if target > p.target_mg_dl
            else []
        )
        self.times = np.arange(0, cfg.horizon_min + 1, cfg.stride_min)
        self.keep = _Candidate(SuggestionKind.KEEP_BASAL, rate_u_per_h=None)
        self._keep_scored: _Scored | None = None

    # -- scoring -----------------------------------------------------------------------------

    def score(self, candidates: list[_Candidate]) -> _Scored:
        cfg = self.cfg
        plans = [cand.plan(self.basal_u_per_min) for cand in candidates]
        recourse = cfg.low_recourse_after_min
        if recourse is not None:
            # Lows are scored as if the loop paused the basal from ``recourse`` min on, as it
            # will when a low approaches; highs on the plan as it stands.
            for cand in candidates:
                plan = cand.plan(self.basal_u_per_min)
                ins = plan.insulin_u.copy()
                ins[recourse:] = 0.0
                plans.append(InputPlan(plan.name + "+pause", plan.cho_g, ins))
        g_all = simulate_plans(self.ens, plans, stride=cfg.stride_min)
        k = len(candidates)
        g = g_all[:k]
        cost, low = plan_risk(
            g,
            self.ens.weights,
            self.target,
            low_quantile=cfg.quantiles[0],
            low_weight=cfg.low_weight,
            low_weight_at_end=cfg.low_weight_at_end,
            full_weight_until=cfg.low_weight_full_min // cfg.stride_min,
            low_glucose=g_all[k:] if recourse is not None else None,
        )
        isf = self.profile.correction_factor_mg_dl_per_u
        threshold = self.limits.suspend_threshold_mg_dl
        guarded = self.times <= self.limits.low_prediction_horizon_min
        for i, cand in enumerate(candidates):
            cost[i] += cfg.insulin_penalty * abs(cand.extra_insulin_u(self.basal_u_per_min)) * isf / 100.0
            # What the gate would turn into a suspension is not a real option: anything but a
            # suspension whose low quantile crosses the threshold (where the gate looks) is out.
            if not cand.is_suspension and low[i][guarded].min() < threshold:
                cost[i] += _INFEASIBLE
        return _Scored(candidates, g, cost, low)

    # -- the two kinds of cycle -------------------------------------------------------------------

    def routine(self) -> Suggestion:
        cfg, lim = self.cfg, self.limits
        temps: list[_Candidate] = []
        seen: set[float] = set()
        for m in cfg.temp_multipliers:
            want = m * self.basal
            rate = round_down(min(want, self.max_basal), lim.basal_increment_u_per_h)
            if rate in seen or abs(rate - self.basal) < 1e-9:
                continue
            seen.add(rate)
            cap_note: tuple[str, ...] = (
                (f"basal capped at the max safe basal of {self.max_basal:.2f} U/h",)
                if want > self.max_basal + 1e-9
                else ()
            )
            kind = SuggestionKind.SUSPEND if rate == 0.0 else SuggestionKind.TEMP_BASAL
            temps.append(
                _Candidate(kind, rate_u_per_h=rate, duration_min=lim.max_temp_basal_min, notes=cap_note)
            )
        grid = sorted(
            {
                round_down(min(h * self.basal, lim.max_bolus_u), lim.bolus_increment_u)
                for h in cfg.need_grid_basal_h
            }
            - {0.0}
        )
        boluses = [_Candidate(SuggestionKind.BOLUS, units=u) for u in grid]
        first = self.score([self.keep, *temps, *boluses])
        self._keep_scored = first
        n_temp = 1 + len(temps)
        need = _grid_minimum([0.0, *grid], np.concatenate([[first.cost[0]], first.cost[n_temp:]]))

        # Extra insulin now: in closed loop an automatic bolus (at most 30 min of basal and half
        # the need, with the scheduled basal beside it); in open loop a correction bolus.
        cgm = self.inputs.cgm
        automatic = (
            lim.closed_loop
            and lim.max_micro_bolus_basal_min > 0
            and (cgm is None or cgm.automatic_bolus_allowed)
        )
        option: _Candidate | None = None
        if automatic:
            cap = self.basal * lim.max_micro_bolus_basal_min / 60.0
            half = lim.micro_bolus_need_fraction * need
            units = round_down(min(cap, half), lim.bolus_increment_u)
            if units > 0:
                note = (
                    f"automatic bolus capped at {lim.max_micro_bolus_basal_min:.0f} min of scheduled basal "
                    f"({cap:.2f} U) of the {need:.2f} U needed"
                    if cap < half
                    else f"automatic bolus is {lim.micro_bolus_need_fraction:.0%} of the {need:.2f} U needed"
                )
                option = _Candidate(
                    SuggestionKind.MICRO_BOLUS,
                    # the scheduled basal carries on beside the bolus, never above the max safe basal
                    rate_u_per_h=round_down(min(self.basal, self.max_basal), lim.basal_increment_u_per_h),
                    duration_min=lim.max_temp_basal_min,
                    units=units,
                    notes=(note,),
                )
        elif not lim.closed_loop:
            units = round_down(min(need, lim.max_bolus_u), lim.bolus_increment_u)
            if units >= cfg.open_loop_min_bolus_u:
                option = _Candidate(
                    SuggestionKind.BOLUS,
                    units=units,
                    notes=(f"bolus capped at the max bolus of {lim.max_bolus_u:.2f} U",)
                    if need > lim.max_bolus_u
                    else (),
                )

        cands = [self.keep, *temps]
        costs = list(first.cost[:n_temp])
        lows = [first.low[i] for i in range(n_temp)]
        gl = [first.glucose[i] for i in range(n_temp)]
        best = int(np.argmin(costs))
        if option is not None:
            extra = self.score([option])
            cands.append(option)
            lows.append(extra.low[0])
            gl.append(extra.glucose[0])
            if option.kind is SuggestionKind.MICRO_BOLUS:
                # Repeated every cycle, small automatic boluses outpace any temp basal; the myopic
                # comparison would favour the temp, so prefer the bolus whenever more insulin is
                # wanted (best temp at or above the schedule) and it beats doing nothing.
                costs.append(float(extra.cost[0]))
                wants_more = (cands[best].rate_u_per_h or self.basal) >= self.basal
                feasible = costs[-1] < _INFEASIBLE
                if feasible and ((wants_more and costs[-1] <= costs[0]) or costs[-1] < costs[best]):
                    best = len(cands) - 1
            else:
                costs.append(float(extra.cost[0]) + cfg.bolus_prompt_cost)
                if costs[-1] < costs[best]:
                    best = len(cands) - 1

        # Rescue carbs when even a suspension leaves a low within the rescue horizon.
        suspend_idx = next((i for i, c in enumerate(cands) if c.kind is SuggestionKind.SUSPEND), None)
        if suspend_idx is not None:
            soon = self.times <= lim.rescue_horizon_min
            if lows[suspend_idx][soon].min() < lim.rescue_low_mg_dl:
                carbs = self.rescue_carbs()
                if carbs is not None:
                    return carbs
        chosen = cands[best]
        need_u = need if need > 0 else None
        return self.build(chosen, gl[best], headline=self._headline(chosen), need_u=need_u)

    def meal_bolus(self) -> Suggestion | None:
        cfg, lim, p = self.cfg, self.limits, self.profile
        carbs = self.inputs.meal_carbs_g
        glucose = self.view().glucose_mg_dl
        hint = carbs / p.carb_ratio_g_per_u + max(
            0.0, (glucose - self.target) / p.correction_factor_mg_dl_per_u
        )
        grid = sorted(
            {
                round_down(min(f * hint, lim.max_bolus_u), lim.bolus_increment_u)
                for f in cfg.meal_bolus_factors
            }
        )
        cands = [_Candidate(SuggestionKind.BOLUS, units=u) if u > 0 else self.keep for u in grid]
        scored = self.score(cands)
        j = int(np.argmin(scored.cost))
        lo = grid[max(j - 1, 0)]
        hi = grid[min(j + 1, len(grid) - 1)]
        fine = sorted(
            {round_down(u, lim.bolus_increment_u) for u in np.linspace(lo, hi, 7)[1:-1]} - set(grid) - {0.0}
        )
        costs = list(scored.cost)
        if fine:
            costs += list(self.score([_Candidate(SuggestionKind.BOLUS, units=u) for u in fine]).cost)
        both = sorted(zip([*grid, *fine], costs, strict=True))
        best_u = _grid_minimum([u for u, _ in both], np.array([c for _, c in both]))
        units = round_down(best_u, lim.bolus_increment_u)
        if min(c for _, c in both) >= _INFEASIBLE:
            return None
        if units <= 0:
            return None
        notes: list[str] = []
        if hint > lim.max_bolus_u:
            notes.append(f"bolus capped at the max bolus of {lim.max_bolus_u:.2f} U")
        chosen = _Candidate(SuggestionKind.BOLUS, units=units, notes=tuple(notes))
        final = self.score([chosen])
        self._keep_scored = self._keep_scored or self.score([self.keep])
        calc = f"carbs/CR + correction would give {hint:.2f} U"
        return self.build(
            chosen,
            final.glucose[0],
            headline=f"Bolus for {carbs:.0f} g ({calc}; the twin's prediction gives {units:.2f} U).",
            need_u=units,
            meal_carbs_g=carbs,
        )

    def rescue_carbs(self) -> Suggestion | None:
        cfg, lim = self.cfg, self.limits
        grams = sorted({min(g, lim.max_rescue_carbs_g) for g in cfg.carbs_grid_g})
        cands = [
            _Candidate(SuggestionKind.CARBS, rate_u_per_h=0.0, duration_min=lim.max_temp_basal_min, carbs_g=g)
            for g in grams
        ]
        scored = self.score(cands)
        window = self.times <= cfg.carbs_check_min
        pick = len(cands) - 1
        for i in range(len(cands)):
            if scored.low[i][window].min() >= lim.rescue_low_mg_dl:
                pick = i
                break
        chosen = cands[pick]
        return self.build(
            chosen,
            scored.glucose[pick],
            headline=(
                f"Low expected within {lim.rescue_horizon_min:.0f} min even with insulin paused: "
                f"take {chosen.carbs_g:.0f} g of fast-acting carbohydrate."
            ),
            need_u=None,
        )

    # -- building the message -----------------------------------------------------------------

    def view(self) -> TwinView:
        ens = self.ens
        w = ens.weights
        p = ens.member_params()
        gs = ens.x[:, X_GS] / p[:, P_VG]
        gut_g = (ens.x[:, X_QSTO1] + ens.x[:, X_QSTO2] + ens.x[:, X_QGUT]) / 1000.0 + ens.aux[
            :, AUX_PLANNED_G
        ]
        isc1_ss = p[:, P_U2SS] / (p[:, P_KA1] + p[:, P_KD])
        isc2_ss = p[:, P_KD] / p[:, P_KA2] * isc1_ss
        sc_u = (ens.x[:, X_ISC1] + ens.x[:, X_ISC2] - isc1_ss - isc2_ss) * p[:, P_BW] / 6000.0
        stacked = np.stack([gs, gut_g, sc_u], axis=1)
        med = weighted_quantiles(stacked, w, (0.5,))[0]
        trend = 0.0
        if self._keep_scored is not None:
            keep_med = weighted_quantiles(self._keep_scored.glucose[0][:, :4], w, (0.5,))[0]
            trend = float((keep_med[3] - keep_med[0]) / (3 * self.cfg.stride_min))
        cgm = self.inputs.cgm.glucose_mg_dl if self.inputs.cgm is not None else None
        return TwinView(float(med[0]), trend, float(med[1]), float(med[2]), cgm)

    def outlook(self, glucose: F64) -> tuple[Outlook, F64]:
        cfg = self.cfg
        q = quantile_trajectories(glucose[None], self.ens.weights, cfg.quantiles)[0]
        at = min(120, cfg.horizon_min)
        j = int(at // cfg.stride_min)
        return (
            Outlook(
                at_min=at,
                median_mg_dl=float(q[1, j]),
                low_mg_dl=float(q[0, j]),
                high_mg_dl=float(q[-1, j]),
                lowest_mg_dl=float(q[0].min()),
                highest_median_mg_dl=float(q[1].max()),
            ),
            q,
        )

    def build(
        self,
        chosen: _Candidate,
        glucose: F64,
        *,
        headline: str,
        need_u: float | None,
        meal_carbs_g: float = 0.0,
    ) -> Suggestion:
        cfg = self.cfg
        if self._keep_scored is None:
            self._keep_scored = self.score([self.keep])
        keep_out, keep_q = self.outlook(self._keep_scored.glucose[0])
        out, q = self.outlook(glucose)
        phrase = action_phrase(
            str(chosen.kind),
            rate_u_per_h=chosen.rate_u_per_h,
            duration_min=chosen.duration_min,
            units=chosen.units,
            carbs_g=chosen.carbs_g,
            scheduled_u_per_h=self.basal,
            meal_carbs_g=meal_carbs_g,
        )
        reason = explain(
            self.view(),
            phrase,
            keep_out,
            None if chosen.kind is SuggestionKind.KEEP_BASAL else out,
            [*self.target_note, *chosen.notes],
            headline=headline,
        )
        every = cfg.report_every_min // cfg.stride_min
        minutes = tuple(int(m) for m in self.times[::every])
        if chosen.kind in (SuggestionKind.BOLUS, SuggestionKind.MICRO_BOLUS):
            expires = self.now + timedelta(seconds=cfg.bolus_expiry_s)
        elif chosen.kind is SuggestionKind.CARBS:
            expires = self.now + timedelta(minutes=cfg.carbs_expiry_min)
        else:
            expires = self.now + timedelta(minutes=cfg.routine_expiry_min)
        rate = chosen.rate_u_per_h
        if chosen.kind is SuggestionKind.KEEP_BASAL:
            rate = self.basal
        return Suggestion(
            created_utc=self.now,
            expires_utc=expires,
            kind=chosen.kind,
            reason=reason,
            rate_u_per_h=rate,
            duration_min=chosen.duration_min,
            units=chosen.units,
            carbs_g=chosen.carbs_g,
            reservoir_u=self.inputs.reservoir_u,
            need_u=None if need_u is None else min(round(need_u, 3), 100.0),
            trajectory_minutes=minutes,
            trajectory_quantiles=tuple(cfg.quantiles),
            predicted_mg_dl=_rows(q[:, ::every]),
            baseline_mg_dl=_rows(keep_q[:, ::every]),
        )

    def _headline(self, chosen: _Candidate) -> str:
        k = chosen.kind
        if k is SuggestionKind.KEEP_BASAL:
            return "Keep the scheduled basal."
        if k is SuggestionKind.SUSPEND:
            return "Pause insulin to prevent a low."
        if k is SuggestionKind.TEMP_BASAL:
            more = (chosen.rate_u_per_h or 0.0) > self.basal
            return "Raise the basal for a while." if more else "Lower the basal for a while."
        if k is SuggestionKind.MICRO_BOLUS:
            return "A small automatic bolus to bring glucose down."
        return "A correction bolus to bring glucose down."


def _rows(q: F64) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(round(float(v), 1) for v in np.clip(row, 0.0, 1000.0)) for row in q)


def _grid_minimum(xs: list[float], costs: F64) -> float:
    """Argmin over a sorted grid, refined by a parabola through the best point and its neighbours."""
    c = np.asarray(costs, dtype=np.float64)
    j = int(np.argmin(c))
    if c[j] >= _INFEASIBLE:
        return 0.0
    if 0 < j < len(xs) - 1 and max(c[j - 1], c[j + 1]) < _INFEASIBLE:
        x0, x1, x2 = xs[j - 1], xs[j], xs[j + 1]
        y0, y1, y2 = c[j - 1], c[j], c[j + 1]
        denom = (x0 - x1) * (x0 - x2) * (x1 - x2)
        a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom
        b = (x2 * x2 * (y0 - y1) + x1 * x1 * (y2 - y0) + x0 * x0 * (y1 - y2)) / denom
        if a > 0:
            return float(min(max(-b / (2 * a), x0), x2))
    return float(xs[j])


def _basal_per_minute(profile: TherapyProfile, now: datetime, minutes: int) -> F64:
    """Scheduled basal (U per minute) for each minute from now (looked up every 15 min)."""
    out = np.empty(minutes)
    for start in range(0, minutes, 15):
        out[start : start + 15] = profile.basal_at(now + timedelta(minutes=start)) / 60.0
    return out


def _resample(ens: TwinEnsemble, m: int) -> TwinEnsemble:
    """At most ``m`` members: systematic resampling by weight (deterministic), equal weights."""
    if ens.size <= m:
        return ens
    cdf = np.cumsum(ens.weights)
    cdf[-1] = 1.0
    idx = np.searchsorted(cdf, (np.arange(m) + 0.5) / m)
    return ens.select(idx)
