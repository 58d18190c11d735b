"""The living twin: state estimation, personalisation, forecasts and what-if on the model.

The facade is :class:`Twin` (:mod:`edgetwin.twin.twin`); :class:`TwinEnsemble`,
:class:`InputPlan` and :func:`simulate_plans` (:mod:`edgetwin.twin.ensemble`) are the shared
currency with the suggestion engine.
"""

from edgetwin.twin.ensemble import InputPlan, TwinEnsemble, simulate_plans, weighted_quantiles
from edgetwin.twin.filter import FilterConfig
from edgetwin.twin.forecast import Forecast, PlannedInputs
from edgetwin.twin.history import History
from edgetwin.twin.identify import Identification, IdentifyConfig, identify
from edgetwin.twin.prior import ParticlePrior, patient_prior, profile_prior
from edgetwin.twin.sensor_model import SensorErrorModel
from edgetwin.twin.summary import ParameterEstimate, ParameterSummary
from edgetwin.twin.twin import BasalSchedule, EventStatus, Twin
from edgetwin.twin.whatif import Bolus, Meal, Scenario, ScenarioOutcome, SkipBolus, TempBasal, WhatIfReport

__all__ = [
    "BasalSchedule",
    "Bolus",
    "EventStatus",
    "FilterConfig",
    "Forecast",
    "History",
    "Identification",
    "IdentifyConfig",
    "InputPlan",
    "Meal",
    "ParameterEstimate",
    "ParameterSummary",
    "ParticlePrior",
    "PlannedInputs",
    "Scenario",
    "ScenarioOutcome",
    "SensorErrorModel",
    "SkipBolus",
    "TempBasal",
    "Twin",
    "TwinEnsemble",
    "WhatIfReport",
    "identify",
    "patient_prior",
    "profile_prior",
    "simulate_plans",
    "weighted_quantiles",
]
