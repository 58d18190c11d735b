"""Plain-language reasons a patient can follow: what the twin sees, what it predicts with and
without the action, and which limit shaped it. Numbers are rounded the way a patient reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Outlook", "TwinView", "action_phrase", "explain"]


@dataclass(frozen=True, slots=True)
class TwinView:
    """What the twin sees now (medians over the ensemble)."""

    glucose_mg_dl: float
    trend_mg_dl_per_min: float
    carbs_absorbing_g: float
    insulin_above_basal_u: float
    cgm_mg_dl: float | None = None
    """The newest CGM value, when the caller passed the data assessment."""


@dataclass(frozen=True, slots=True)
class Outlook:
    """A prediction summarised: median at ``at_min``, likely range, lowest likely value."""

    at_min: int
    median_mg_dl: float
    low_mg_dl: float
    high_mg_dl: float
    lowest_mg_dl: float
    highest_median_mg_dl: float


def _trend_words(trend: float) -> str:
    if trend <= -2.0:
        return f"falling fast ({trend:+.1f} mg/dL per min)"
    if trend <= -0.6:
        return f"falling ({trend:+.1f} mg/dL per min)"
    if trend >= 2.0:
        return f"rising fast ({trend:+.1f} mg/dL per min)"
    if trend >= 0.6:
        return f"rising ({trend:+.1f} mg/dL per min)"
    return "steady"


def _outlook(o: Outlook) -> str:
    hours = o.at_min / 60.0
    when = f"{hours:g} h" if hours >= 1 else f"{o.at_min} min"
    return (
        f"{o.median_mg_dl:.0f} mg/dL in {when} (likely {o.low_mg_dl:.0f}-{o.high_mg_dl:.0f}), "
        f"lowest likely {o.lowest_mg_dl:.0f}, highest expected {o.highest_median_mg_dl:.0f}"
    )


def action_phrase(
    kind: str,
    *,
    rate_u_per_h: float | None = None,
    duration_min: float | None = None,
    units: float | None = None,
    carbs_g: float | None = None,
    scheduled_u_per_h: float = 0.0,
    meal_carbs_g: float = 0.0,
) -> str:
    """The action in words, e.g. 'a temporary basal of 1.60 U/h for 30 min (scheduled 0.80)'."""
    if kind == "keep_basal":
        return f"the scheduled basal of {scheduled_u_per_h:.2f} U/h"
    if kind == "temp_basal":
        return (
            f"a temporary basal of {rate_u_per_h or 0.0:.2f} U/h for {duration_min or 0.0:.0f} min "
            f"(scheduled {scheduled_u_per_h:.2f} U/h)"
        )
    if kind == "suspend":
        return f"insulin paused for {duration_min or 0.0:.0f} min"
    if kind == "micro_bolus":
        return f"an automatic bolus of {units or 0.0:.2f} U"
    if kind == "bolus":
        if meal_carbs_g > 0:
            return f"a bolus of {units or 0.0:.2f} U for the {meal_carbs_g:.0f} g meal"
        return f"a correction bolus of {units or 0.0:.2f} U"
    if kind == "carbs":
        return f"{carbs_g or 0.0:.0f} g of fast carbs now, with insulin paused"
    return kind


def explain(
    view: TwinView,
    action: str,
    without: Outlook,
    with_action: Outlook | None,
    limits: list[str],
    *,
    headline: str = "",
) -> str:
    """Assemble the reason: headline, what the twin sees, both predictions, limits applied."""
    parts: list[str] = []
    if headline:
        parts.append(headline)
    seen = (
        f"The twin sees glucose at {view.glucose_mg_dl:.0f} mg/dL, {_trend_words(view.trend_mg_dl_per_min)}"
    )
    if view.cgm_mg_dl is not None:
        seen += f" (sensor {view.cgm_mg_dl:.0f})"
    extras = []
    if view.carbs_absorbing_g >= 1.0:
        extras.append(f"about {view.carbs_absorbing_g:.0f} g of carbohydrate still being absorbed")
    if abs(view.insulin_above_basal_u) >= 0.1:
        if view.insulin_above_basal_u > 0:
            extras.append(f"{view.insulin_above_basal_u:.1f} U of insulin acting above basal")
        else:
            extras.append(f"{-view.insulin_above_basal_u:.1f} U less insulin than basal would give")
    if extras:
        seen += ", with " + " and ".join(extras)
    parts.append(seen + ".")
    parts.append(f"With the scheduled basal only it predicts {_outlook(without)}.")
    if with_action is not None:
        parts.append(f"With {action} it predicts {_outlook(with_action)}.")
    else:
        parts.append(f"Suggested: {action}.")
    if limits:
        parts.append("Limits applied: " + "; ".join(limits) + ".")
    return " ".join(parts)
