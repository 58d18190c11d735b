"""The 30 public UVA/Padova virtual patients and their therapy settings, loadable by name.

Data: ``edgetwin/data/uva_padova/`` (from the MIT-licensed simglucose package; the notice
``LICENSE.simglucose`` ships beside it). Names look like ``adult#001``, ``adolescent#010``,
``child#007``.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from importlib import resources

from edgetwin.errors import UnknownPatientError
from edgetwin.model.params import N_STATES, PARAM_NAMES, PatientParams

__all__ = [
    "GROUPS",
    "CohortTherapy",
    "PumpSpec",
    "SensorSpec",
    "cohort_names",
    "load_patient",
    "load_pump",
    "load_sensor",
    "load_therapy",
]

GROUPS = ("adolescent", "adult", "child")


@dataclass(frozen=True, slots=True)
class CohortTherapy:
    """A virtual patient's therapy settings from ``Quest.csv``."""

    name: str
    carb_ratio_g_per_u: float
    correction_factor_mg_dl_per_u: float
    age_years: float
    total_daily_insulin_u: float


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """A CGM model from ``sensor_params.csv``: Johnson-SU noise, sample period, clipping."""

    name: str
    pacf: float
    gamma: float
    lambda_: float
    delta: float
    xi: float
    sample_time_min: float
    min_mg_dl: float
    max_mg_dl: float


@dataclass(frozen=True, slots=True)
class PumpSpec:
    """An insulin pump from ``pump_params.csv`` (units U and U/h... see fields)."""

    name: str
    min_bolus_u: float
    max_bolus_u: float
    inc_bolus_u: float
    min_basal_u_per_h: float
    max_basal_u_per_h: float
    inc_basal_u_per_h: float


def _read_csv(filename: str) -> list[dict[str, str]]:
    text = resources.files("edgetwin.data.uva_padova").joinpath(filename).read_text("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@functools.cache
def _patients() -> dict[str, PatientParams]:
    out: dict[str, PatientParams] = {}
    for row in _read_csv("vpatient_params.csv"):
        name = row["Name"]
        x0 = tuple(float(row[f"x0_{i:2d}"]) for i in range(1, N_STATES + 1))
        values = {p: float(row[p]) for p in PARAM_NAMES}
        out[name] = PatientParams(name=name, x0=x0, **values)
    return out


@functools.cache
def _therapies() -> dict[str, CohortTherapy]:
    return {
        r["Name"]: CohortTherapy(
            name=r["Name"],
            carb_ratio_g_per_u=float(r["CR"]),
            correction_factor_mg_dl_per_u=float(r["CF"]),
            age_years=float(r["Age"]),
            total_daily_insulin_u=float(r["TDI"]),
        )
        for r in _read_csv("Quest.csv")
    }


def cohort_names(group: str = "all") -> list[str]:
    """Patient names in file order; ``group`` is ``adult``, ``adolescent``, ``child`` or ``all``."""
    names = list(_patients())
    if group == "all":
        return names
    if group not in GROUPS:
        raise UnknownPatientError(f"unknown cohort group {group!r}; choose from {', '.join(GROUPS)}, all")
    return [n for n in names if n.split("#")[0] == group]


def load_patient(name: str) -> PatientParams:
    """The virtual patient ``name`` (e.g. ``adult#001``)."""
    try:
        return _patients()[name]
    except KeyError:
        raise UnknownPatientError(
            f"unknown patient {name!r}; known: adolescent#001..010, adult#001..010, child#001..010"
        ) from None


def load_therapy(name: str) -> CohortTherapy:
    """The therapy settings (carb ratio, correction factor, age, TDI) of virtual patient ``name``."""
    try:
        return _therapies()[name]
    except KeyError:
        raise UnknownPatientError(f"no therapy settings for patient {name!r}") from None


def load_sensor(name: str = "Dexcom") -> SensorSpec:
    for r in _read_csv("sensor_params.csv"):
        if r["Name"] == name:
            return SensorSpec(
                name=name,
                pacf=float(r["PACF"]),
                gamma=float(r["gamma"]),
                lambda_=float(r["lambda"]),
                delta=float(r["delta"]),
                xi=float(r["xi"]),
                sample_time_min=float(r["sample_time"]),
                min_mg_dl=float(r["min"]),
                max_mg_dl=float(r["max"]),
            )
    raise UnknownPatientError(f"unknown sensor {name!r}; known: Dexcom, GuardianRT, Navigator")


def load_pump(name: str = "Insulet") -> PumpSpec:
    for r in _read_csv("pump_params.csv"):
        if r["Name"] == name:
            return PumpSpec(
                name=name,
                min_bolus_u=float(r["min_bolus"]),
                max_bolus_u=float(r["max_bolus"]),
                inc_bolus_u=float(r["inc_bolus"]),
                min_basal_u_per_h=float(r["min_basal"]),
                max_basal_u_per_h=float(r["max_basal"]),
                inc_basal_u_per_h=float(r["inc_basal"]),
            )
    raise UnknownPatientError(f"unknown pump {name!r}; known: Cozmo, Insulet")
