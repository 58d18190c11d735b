"""The UVA/Padova type-1 glucose-insulin model: parameters, cohort, compiled kernels.

Pure numerics: no I/O beyond reading the shipped cohort tables, no logging, no devices.
"""

from edgetwin.model.cohort import cohort_names, load_patient, load_pump, load_sensor, load_therapy
from edgetwin.model.ensemble import EnsembleOutput, new_aux, run_ensemble
from edgetwin.model.params import N_PARAMS, N_STATES, PARAM_NAMES, STATE_NAMES, PatientParams
from edgetwin.model.steady_state import steady_state, with_steady_state

__all__ = [
    "N_PARAMS",
    "N_STATES",
    "PARAM_NAMES",
    "STATE_NAMES",
    "EnsembleOutput",
    "PatientParams",
    "cohort_names",
    "load_patient",
    "load_pump",
    "load_sensor",
    "load_therapy",
    "new_aux",
    "run_ensemble",
    "steady_state",
    "with_steady_state",
]
