"""The patient's therapy profile: what their clinician set, and the file format it lives in.

A profile is a TOML table (a file of its own for ``--profile``, or the ``[profile]`` table of the
gateway configuration)::

    weight_kg = 70.0                       # body weight (kg)
    insulin_duration_h = 5.0               # duration of insulin action (h)
    carb_ratio_g_per_u = 10.0              # grams of carbohydrate covered by 1 U
    correction_factor_mg_dl_per_u = 40.0   # glucose drop per 1 U (ISF)
    target_mg_dl = 110.0                   # correction target
    timezone = "Europe/Berlin"             # schedules are in local time (IANA name; default UTC)
    basal = [                              # scheduled basal (U/h) from each local time of day
        { start = "00:00", u_per_h = 0.8 },
        { start = "06:00", u_per_h = 1.0 },
    ]
    # optional: age_years, total_daily_insulin_u

Sanity rules (``specs/safety.md``, as oref0/Loop apply them): insulin duration >= 3 h, target in
[80, 200] mg/dL, correction factor >= 5 mg/dL/U, carb ratio in [3, 150] g/U, every basal rate > 0.
A profile that breaks one is refused with :class:`~edgetwin.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edgetwin.errors import ConfigError
from edgetwin.timeutil import ensure_utc
from edgetwin.tomlfiles import read_table

__all__ = ["TherapyProfile", "load_profile"]

MIN_INSULIN_DURATION_H = 3.0
TARGET_RANGE_MG_DL = (80.0, 200.0)
MIN_ISF_MG_DL_PER_U = 5.0
CARB_RATIO_RANGE_G_PER_U = (3.0, 150.0)
MAX_BASAL_U_PER_H = 35.0


@dataclass(frozen=True, slots=True)
class TherapyProfile:
    """Therapy settings. ``basal_schedule`` holds (start minute of local day, U/h), sorted, from 0."""

    weight_kg: float
    basal_schedule: tuple[tuple[int, float], ...]
    carb_ratio_g_per_u: float
    correction_factor_mg_dl_per_u: float
    insulin_duration_h: float = 5.0
    target_mg_dl: float = 110.0
    timezone: str = "UTC"
    age_years: float | None = None
    total_daily_insulin_u: float | None = None

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            key, problem = problems[0]
            raise ConfigError(key, problem)

    def problems(self) -> list[tuple[str, str]]:
        """Every sanity-rule violation as (key, problem); empty when the profile is sane."""
        out: list[tuple[str, str]] = []

        def finite(key: str, value: float) -> bool:
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                out.append((key, f"must be a finite number, got {value!r}"))
                return False
            return True

        if finite("weight_kg", self.weight_kg) and not 10.0 <= self.weight_kg <= 250.0:
            out.append(("weight_kg", f"{self.weight_kg} kg is outside [10, 250]"))
        if finite("insulin_duration_h", self.insulin_duration_h) and not (
            MIN_INSULIN_DURATION_H <= self.insulin_duration_h <= 12.0
        ):
            out.append(("insulin_duration_h", f"{self.insulin_duration_h} h is outside [3, 12]"))
        lo, hi = TARGET_RANGE_MG_DL
        if finite("target_mg_dl", self.target_mg_dl) and not lo <= self.target_mg_dl <= hi:
            out.append(("target_mg_dl", f"{self.target_mg_dl} mg/dL is outside [{lo:g}, {hi:g}]"))
        isf = self.correction_factor_mg_dl_per_u
        if finite("correction_factor_mg_dl_per_u", isf) and not MIN_ISF_MG_DL_PER_U <= isf <= 500.0:
            out.append(("correction_factor_mg_dl_per_u", f"{isf} mg/dL/U is outside [5, 500]"))
        lo, hi = CARB_RATIO_RANGE_G_PER_U
        cr = self.carb_ratio_g_per_u
        if finite("carb_ratio_g_per_u", cr) and not lo <= cr <= hi:
            out.append(("carb_ratio_g_per_u", f"{cr} g/U is outside [{lo:g}, {hi:g}]"))
        if not self.basal_schedule:
            out.append(("basal", "needs at least one entry"))
        else:
            starts = [s for s, _ in self.basal_schedule]
            if starts[0] != 0:
                out.append(("basal", "the first entry must start at 00:00"))
            if starts != sorted(set(starts)):
                out.append(("basal", "start times must be increasing and unique"))
            for i, (start, rate) in enumerate(self.basal_schedule):
                if not 0 <= start < 1440:
                    out.append((f"basal[{i}].start", f"minute {start} is outside the day"))
                if finite(f"basal[{i}].u_per_h", rate) and not 0.0 < rate <= MAX_BASAL_U_PER_H:
                    out.append((f"basal[{i}].u_per_h", f"{rate} U/h must be > 0 and <= 35"))
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            out.append(("timezone", f"unknown time zone {self.timezone!r}"))
        return out

    # -- schedule lookups -------------------------------------------------------------------

    def local_minute_of_day(self, time_utc: datetime) -> int:
        local = ensure_utc(time_utc).astimezone(ZoneInfo(self.timezone))
        return local.hour * 60 + local.minute

    def basal_at_minute(self, minute_of_day: int) -> float:
        """Scheduled basal (U/h) at a local minute of the day."""
        rate = self.basal_schedule[0][1]
        for start, r in self.basal_schedule:
            if start <= minute_of_day % 1440:
                rate = r
            else:
                break
        return rate

    def basal_at(self, time_utc: datetime) -> float:
        """Scheduled basal (U/h) in force at ``time_utc``."""
        return self.basal_at_minute(self.local_minute_of_day(time_utc))

    @property
    def max_scheduled_basal_u_per_h(self) -> float:
        return max(r for _, r in self.basal_schedule)

    @property
    def daily_basal_u(self) -> float:
        """Total scheduled basal over one day (U)."""
        total = 0.0
        entries = [*list(self.basal_schedule), (1440, 0.0)]
        for (start, rate), (end, _) in itertools.pairwise(entries):
            total += rate * (end - start) / 60.0
        return total

    # -- file format --------------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "") -> TherapyProfile:
        """Build from a parsed TOML table; errors name ``source`` and the key."""
        known = {
            "weight_kg",
            "insulin_duration_h",
            "carb_ratio_g_per_u",
            "correction_factor_mg_dl_per_u",
            "target_mg_dl",
            "timezone",
            "basal",
            "age_years",
            "total_daily_insulin_u",
        }
        for key in data:
            if key not in known:
                raise ConfigError(key, f"unknown key (known: {', '.join(sorted(known))})", source=source)
        for key in ("weight_kg", "carb_ratio_g_per_u", "correction_factor_mg_dl_per_u", "basal"):
            if key not in data:
                raise ConfigError(key, "is required", source=source)
        basal = data["basal"]
        if isinstance(basal, (int, float)) and not isinstance(basal, bool):
            schedule: list[tuple[int, float]] = [(0, float(basal))]
        elif isinstance(basal, list):
            schedule = []
            for i, entry in enumerate(basal):
                if not isinstance(entry, Mapping) or set(entry) != {"start", "u_per_h"}:
                    raise ConfigError(
                        f"basal[{i}]", 'must be a table { start = "HH:MM", u_per_h = number }', source=source
                    )
                schedule.append(
                    (
                        _parse_hhmm(entry["start"], f"basal[{i}].start", source),
                        _num(entry["u_per_h"], f"basal[{i}].u_per_h", source),
                    )
                )
        else:
            raise ConfigError(
                "basal", "must be a number (U/h) or a list of { start, u_per_h }", source=source
            )
        try:
            return cls(
                weight_kg=_num(data["weight_kg"], "weight_kg", source),
                basal_schedule=tuple(schedule),
                carb_ratio_g_per_u=_num(data["carb_ratio_g_per_u"], "carb_ratio_g_per_u", source),
                correction_factor_mg_dl_per_u=_num(
                    data["correction_factor_mg_dl_per_u"], "correction_factor_mg_dl_per_u", source
                ),
                insulin_duration_h=_num(data.get("insulin_duration_h", 5.0), "insulin_duration_h", source),
                target_mg_dl=_num(data.get("target_mg_dl", 110.0), "target_mg_dl", source),
                timezone=str(data.get("timezone", "UTC")),
                age_years=_opt_num(data.get("age_years"), "age_years", source),
                total_daily_insulin_u=_opt_num(
                    data.get("total_daily_insulin_u"), "total_daily_insulin_u", source
                ),
            )
        except ConfigError as exc:
            if exc.source or not source:
                raise
            raise ConfigError(exc.key, exc.problem, source=source) from None

    def to_mapping(self) -> dict[str, Any]:
        """The TOML table form (inverse of :meth:`from_mapping`)."""
        out: dict[str, Any] = {
            "weight_kg": self.weight_kg,
            "insulin_duration_h": self.insulin_duration_h,
            "carb_ratio_g_per_u": self.carb_ratio_g_per_u,
            "correction_factor_mg_dl_per_u": self.correction_factor_mg_dl_per_u,
            "target_mg_dl": self.target_mg_dl,
            "timezone": self.timezone,
            "basal": [{"start": f"{s // 60:02d}:{s % 60:02d}", "u_per_h": r} for s, r in self.basal_schedule],
        }
        if self.age_years is not None:
            out["age_years"] = self.age_years
        if self.total_daily_insulin_u is not None:
            out["total_daily_insulin_u"] = self.total_daily_insulin_u
        return out


def load_profile(path: str | Path) -> TherapyProfile:
    """Read a profile file: the keys at top level, or inside a ``[profile]`` table."""
    return TherapyProfile.from_mapping(read_table(path, "profile"), source=str(path))


def _num(value: Any, key: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, f"must be a number, got {value!r}", source=source)
    return float(value)


def _opt_num(value: Any, key: str, source: str) -> float | None:
    return None if value is None else _num(value, key, source)


def _parse_hhmm(value: Any, key: str, source: str) -> int:
    if isinstance(value, str) and len(value) == 5 and value[2] == ":":
        hh, mm = value[:2], value[3:]
        if hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60:
            return int(hh) * 60 + int(mm)
    raise ConfigError(key, f'must be a local time "HH:MM", got {value!r}', source=source)
