"""What-if: alternative interventions evaluated on the twin before anyone applies them.

A :class:`Scenario` is a named list of interventions (bolus now, temp basal, meal, skip a
planned bolus) applied on top of the baseline plan (basal in force, inputs already recorded for
the future, and the caller's planned inputs). Every scenario runs on the same ensemble members,
so differences between scenarios are the interventions' effect, not sampling noise. Risk figures
are computed on each member's subcutaneous glucose (what a perfect sensor would read) every
5 minutes and averaged across members (Battelino et al. 2019 ranges; Kovatchev LBGI/HBGI, see
:mod:`edgetwin.metrics`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from edgetwin.errors import InputDataError
from edgetwin.metrics import risk_index
from edgetwin.twin.ensemble import simulate_plans, weighted_quantiles
from edgetwin.twin.forecast import FORECAST_STEP_MIN, PlannedInputs

if TYPE_CHECKING:
    from edgetwin.twin.twin import Twin

__all__ = [
    "Bolus",
    "Intervention",
    "Meal",
    "Scenario",
    "ScenarioOutcome",
    "SkipBolus",
    "TempBasal",
    "WhatIfReport",
    "evaluate",
    "parse_scenario",
]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Bolus:
    units: float
    at_min: int = 0

    def describe(self) -> str:
        return f"bolus {self.units:g} U" + (f" at +{self.at_min} min" if self.at_min else " now")


@dataclass(frozen=True, slots=True)
class TempBasal:
    rate_u_per_h: float
    duration_min: int
    at_min: int = 0

    def describe(self) -> str:
        when = f" from +{self.at_min} min" if self.at_min else ""
        return f"temp basal {self.rate_u_per_h:g} U/h for {self.duration_min} min{when}"


@dataclass(frozen=True, slots=True)
class Meal:
    grams: float
    at_min: int = 0

    def describe(self) -> str:
        return f"meal {self.grams:g} g" + (f" at +{self.at_min} min" if self.at_min else " now")


@dataclass(frozen=True, slots=True)
class SkipBolus:
    """Leave out the planned bolus at ``at_min`` (every planned bolus if None)."""

    at_min: int | None = None

    def describe(self) -> str:
        return "skip the planned bolus" + (f" at +{self.at_min} min" if self.at_min is not None else "")


Intervention = Bolus | TempBasal | Meal | SkipBolus


@dataclass(frozen=True)
class Scenario:
    name: str
    interventions: tuple[Intervention, ...] = ()

    def plan(self, base: PlannedInputs) -> PlannedInputs:
        boluses = list(base.boluses)
        meals = list(base.meals)
        temps = list(base.temp_basals)
        for iv in self.interventions:
            if isinstance(iv, Bolus):
                boluses.append((iv.at_min, iv.units))
            elif isinstance(iv, TempBasal):
                temps.append((iv.at_min, iv.rate_u_per_h, iv.duration_min))
            elif isinstance(iv, Meal):
                meals.append((iv.at_min, iv.grams))
            elif isinstance(iv, SkipBolus):
                boluses = [b for b in boluses if iv.at_min is not None and b[0] != iv.at_min]
        return PlannedInputs(tuple(boluses), tuple(meals), tuple(temps))

    def describe(self) -> str:
        return ", ".join(iv.describe() for iv in self.interventions) or "as planned"


@dataclass(frozen=True)
class ScenarioOutcome:
    """Predicted glucose (mg/dL, no sensor error) and risk over the horizon for one scenario."""

    name: str
    description: str
    minutes: npt.NDArray[np.int64]
    p10_mg_dl: F64
    p50_mg_dl: F64
    p90_mg_dl: F64
    time_below_70_pct: float
    time_below_54_pct: float
    time_above_180_pct: float
    min_mg_dl: float
    min_p10_mg_dl: float
    prob_below_70: float
    lbgi: float
    hbgi: float
    end_mg_dl: float

    def risk(self) -> dict[str, float | str]:
        d = asdict(self)
        for k in ("minutes", "p10_mg_dl", "p50_mg_dl", "p90_mg_dl"):
            d.pop(k)
        return d


@dataclass(frozen=True)
class WhatIfReport:
    issued_minute: int
    horizon_min: int
    outcomes: tuple[ScenarioOutcome, ...]

    def __getitem__(self, name: str) -> ScenarioOutcome:
        for o in self.outcomes:
            if o.name == name:
                return o
        raise KeyError(name)

    def format(self) -> str:
        head = (
            f"{'scenario':<24}{'min':>6}{'min10%':>8}{'end':>6}{'<70%':>7}{'<54%':>7}{'>180%':>7}"
            f"{'P(<70)':>8}{'LBGI':>6}{'HBGI':>6}  what"
        )
        lines = [head]
        for o in self.outcomes:
            lines.append(
                f"{o.name[:23]:<24}{o.min_mg_dl:6.0f}{o.min_p10_mg_dl:8.0f}{o.end_mg_dl:6.0f}"
                f"{o.time_below_70_pct:7.1f}{o.time_below_54_pct:7.1f}{o.time_above_180_pct:7.1f}"
                f"{o.prob_below_70:8.2f}{o.lbgi:6.2f}{o.hbgi:6.2f}  {o.description}"
            )
        return "\n".join(lines)


def _outcome(name: str, description: str, minutes: npt.NDArray[np.int64], g: F64) -> ScenarioOutcome:
    m = g.shape[0]
    w = np.full(m, 1.0 / m)
    q = weighted_quantiles(g, w, (0.1, 0.5, 0.9))
    rl, rh = risk_index(g)
    return ScenarioOutcome(
        name=name,
        description=description,
        minutes=minutes,
        p10_mg_dl=q[0],
        p50_mg_dl=q[1],
        p90_mg_dl=q[2],
        time_below_70_pct=float(100.0 * np.mean(g < 70.0)),
        time_below_54_pct=float(100.0 * np.mean(g < 54.0)),
        time_above_180_pct=float(100.0 * np.mean(g > 180.0)),
        min_mg_dl=float(q[1].min()),
        min_p10_mg_dl=float(q[0].min()),
        prob_below_70=float(np.mean(g.min(axis=1) < 70.0)),
        lbgi=float(rl.mean()),
        hbgi=float(rh.mean()),
        end_mg_dl=float(q[1][-1]),
    )


def evaluate(
    twin: Twin,
    scenarios: Sequence[Scenario],
    *,
    horizon_min: int = 240,
    planned: PlannedInputs | None = None,
    members: int = 64,
) -> WhatIfReport:
    """Run the baseline ("as planned") and every scenario on the same members of ``twin``."""
    if not 0 < horizon_min <= 24 * 60:
        raise InputDataError(f"what-if horizon must be in (0, 1440] min, got {horizon_min}")
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names) or "as planned" in names:
        raise InputDataError("scenario names must be unique and not 'as planned'")
    steps = math.ceil(horizon_min / FORECAST_STEP_MIN)
    minutes_total = steps * FORECAST_STEP_MIN
    base = planned or PlannedInputs()
    all_scen = [Scenario("as planned"), *scenarios]
    plans = [twin.baseline_plan(minutes_total, s.plan(base), name=s.name) for s in all_scen]
    ens = twin.ensemble(members=members)
    g = simulate_plans(ens, plans, stride=FORECAST_STEP_MIN)[:, :, 1:]
    minutes = ens.minute + np.arange(1, steps + 1, dtype=np.int64) * FORECAST_STEP_MIN
    outcomes = tuple(_outcome(s.name, s.describe(), minutes, g[i]) for i, s in enumerate(all_scen))
    return WhatIfReport(issued_minute=ens.minute, horizon_min=minutes_total, outcomes=outcomes)


def parse_scenario(spec: str) -> Scenario:
    """``NAME=ITEM[,ITEM...]`` with items ``bolus:U[@MIN]``, ``temp:RATE:DURATION[@MIN]``,
    ``meal:G[@MIN]``, ``skip-bolus[@MIN]`` (MIN: minutes from now). Raises InputDataError."""
    if "=" not in spec:
        raise InputDataError(f"scenario {spec!r}: expected NAME=ITEM[,ITEM...]")
    name, body = spec.split("=", 1)
    name = name.strip()
    if not name:
        raise InputDataError(f"scenario {spec!r}: the name is empty")
    return Scenario(name, parse_items(body, where=f"scenario {name!r}"))


def parse_items(body: str, *, where: str) -> tuple[Intervention, ...]:
    items: list[Intervention] = []
    for raw in body.split(","):
        item = raw.strip()
        if not item:
            continue
        at = 0
        has_at = "@" in item
        if has_at:
            item, at_s = item.rsplit("@", 1)
            at = _int(at_s, where, raw)
            if at < 0:
                raise InputDataError(f"{where}: {raw!r}: @MIN must be >= 0")
        kind, _, args = item.partition(":")
        parts = args.split(":") if args else []
        if kind == "bolus" and len(parts) == 1:
            u = _num(parts[0], where, raw)
            if not 0 <= u <= 100:
                raise InputDataError(f"{where}: {raw!r}: bolus must be 0-100 U")
            items.append(Bolus(u, at))
        elif kind == "temp" and len(parts) == 2:
            r, d = _num(parts[0], where, raw), _int(parts[1], where, raw)
            if not (0 <= r <= 35 and 0 < d <= 1440):
                raise InputDataError(f"{where}: {raw!r}: temp basal needs 0-35 U/h and 1-1440 min")
            items.append(TempBasal(r, d, at))
        elif kind == "meal" and len(parts) == 1:
            g = _num(parts[0], where, raw)
            if not 0 < g <= 500:
                raise InputDataError(f"{where}: {raw!r}: meal must be 1-500 g")
            items.append(Meal(g, at))
        elif kind == "skip-bolus" and not parts:
            items.append(SkipBolus(at if has_at else None))
        else:
            raise InputDataError(
                f"{where}: {raw!r} is not bolus:U, temp:RATE:DURATION, meal:G or skip-bolus (each with optional @MIN)"
            )
    return tuple(items)


def _num(s: str, where: str, raw: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise InputDataError(f"{where}: {raw!r}: {s!r} is not a number") from None
    if not math.isfinite(v):
        raise InputDataError(f"{where}: {raw!r}: {s!r} is not finite")
    return v


def _int(s: str, where: str, raw: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise InputDataError(f"{where}: {raw!r}: {s!r} is not a whole number of minutes") from None
