"""Meal scenarios: what the virtual patient eats, and what they tell their controller.

Random days follow the public cohort's meal convention (``specs/model.md``): six slots
(breakfast, snack, lunch, snack, dinner, snack) with probabilities .95/.3/.95/.3/.95/.3, times
truncated-normal around 7/9.5/12/15/18/21.5 h (sd 60/30/60/30/60/30 min, bounds [5,9] [9,10]
[10,14] [14,16] [16,20] [20,23] h), amounts normal 45/10/70/10/80/10 g (sd 10/5/10/5/10/5 g).

On top of it, the imperfections real patients bring (configurable): carbohydrate counting errors
(announced = eaten × U(1 − e, 1 + e)), missed boluses (a meal eaten but never announced) and
unannounced snacks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MealEvent", "RandomScenario", "fixed_meals", "parse_meal_spec"]

_SLOTS = (
    # p, mean h, sd min, lo h, hi h, mean g, sd g, is_snack
    (0.95, 7.0, 60.0, 5.0, 9.0, 45.0, 10.0, False),
    (0.30, 9.5, 30.0, 9.0, 10.0, 10.0, 5.0, True),
    (0.95, 12.0, 60.0, 10.0, 14.0, 70.0, 10.0, False),
    (0.30, 15.0, 30.0, 14.0, 16.0, 10.0, 5.0, True),
    (0.95, 18.0, 60.0, 16.0, 20.0, 80.0, 10.0, False),
    (0.30, 21.5, 30.0, 20.0, 23.0, 10.0, 5.0, True),
)


@dataclass(frozen=True, slots=True)
class MealEvent:
    """A meal at ``minute``: ``eaten_g`` reaches the patient, ``announced_g`` the controller.

    ``announced_g`` 0 means the controller is never told (missed bolus, unannounced snack).
    """

    minute: int
    eaten_g: float
    announced_g: float


def fixed_meals(meals: list[tuple[int, float]]) -> list[MealEvent]:
    """Meals announced exactly as eaten."""
    return [MealEvent(minute=m, eaten_g=g, announced_g=g) for m, g in sorted(meals)]


def parse_meal_spec(spec: str) -> tuple[int, float]:
    """``HH:MM=GRAMS`` (or ``H:MM=GRAMS``) → (minute of the day, grams); ValueError if malformed."""
    try:
        hhmm, grams_s = spec.split("=", 1)
        hh, mm = hhmm.split(":", 1)
        minute = int(hh) * 60 + int(mm)
        grams = float(grams_s)
    except ValueError:
        raise ValueError(f"meal {spec!r} is not HH:MM=GRAMS") from None
    if not (0 <= int(hh) < 48 and 0 <= int(mm) < 60):
        raise ValueError(f"meal {spec!r}: time out of range")
    if not 0 < grams <= 500:
        raise ValueError(f"meal {spec!r}: grams must be in (0, 500]")
    return minute, grams


def _truncnorm(rng: np.random.Generator, mean: float, sd: float, lo: float, hi: float) -> float:
    while True:
        v = rng.normal(mean, sd)
        if lo <= v <= hi:
            return float(v)


@dataclass(frozen=True, slots=True)
class RandomScenario:
    """Random days of meals for one virtual patient, reproducible from ``seed``."""

    seed: int
    carb_error: float = 0.0
    p_missed_bolus: float = 0.0
    p_unannounced_snack: float = 0.0

    def meals(self, days: int) -> list[MealEvent]:
        rng = np.random.default_rng(self.seed)
        out: list[MealEvent] = []
        for day in range(days):
            for p, mean_h, sd_min, lo_h, hi_h, mean_g, sd_g, snack in _SLOTS:
                if rng.random() >= p:
                    continue
                t_min = _truncnorm(rng, mean_h * 60.0, sd_min, lo_h * 60.0, hi_h * 60.0)
                grams = max(round(rng.normal(mean_g, sd_g)), 0)
                if grams <= 0:
                    continue
                announced = grams * rng.uniform(1.0 - self.carb_error, 1.0 + self.carb_error)
                forgotten = rng.random() < (self.p_unannounced_snack if snack else self.p_missed_bolus)
                out.append(
                    MealEvent(
                        minute=day * 1440 + int(round(t_min)),
                        eaten_g=float(grams),
                        announced_g=0.0 if forgotten else round(float(announced)),
                    )
                )
        return out
