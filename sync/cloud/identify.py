"""The living twin's batch identification, as the cloud's re-personalisation job calls it.

``twin_identify`` is the default ``identify`` function of the cloud configuration: it turns the
stored history (UTC milliseconds) into the twin's per-minute :class:`~edgetwin.twin.History`,
starts from the parameters published last (the prior is centred on them, wide enough to move:
insulin sensitivity and absorption ±20-30 %, endogenous production ±5 %), identifies in batch on
the numba kernels, and returns the most probable parameter set. The job runner then checks it
against the physiological bounds and publishes it as a signed update.

A patient needs published parameters before the first round (``edgetwin cloud seed``): the cloud
has no therapy profile to build a prior from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from edgetwin.model.params import PARAM_NAMES, PatientParams
from edgetwin.model.steady_state import with_steady_state
from sync.cloud.jobs import IdentificationInput
from sync.errors import SyncError

__all__ = ["twin_identify"]

MS_PER_MIN = 60_000
PRIOR_THETA_SD = (0.2, 0.3, 0.05, 0.02)
"""Prior spread (log-multipliers) of insulin sensitivity, absorption, EGP and unexplained flux."""


def twin_identify(inp: IdentificationInput) -> Mapping[str, float]:
    from edgetwin.twin import History, identify, patient_prior

    if inp.current is None:
        raise SyncError(
            f"patient {inp.patient_id}: no parameters published yet; seed them with `edgetwin cloud seed`"
        )
    missing = [n for n in PARAM_NAMES if n not in inp.current]
    if missing:
        raise SyncError(f"patient {inp.patient_id}: published parameters lack {', '.join(missing)}")
    current = with_steady_state(
        PatientParams.from_vector(inp.patient_id, [float(inp.current[n]) for n in PARAM_NAMES])
    )

    # The window may open before the first record (a new gateway): start the history where the
    # data start, or the model would spend that empty stretch without insulin.
    first = [t for t, _ in inp.cgm] + [t for t, *_ in inp.insulin]
    origin = max(inp.start_ms, min(first)) if first else inp.start_ms

    def minute(ms: int) -> int:
        return (ms - origin) // MS_PER_MIN

    minutes = max(1, math.ceil((inp.end_ms - origin) / MS_PER_MIN))
    history = History.from_events(
        minutes,
        readings=((minute(t), g) for t, g in inp.cgm),
        insulin=((minute(t), units, int(round(duration))) for t, units, duration, _kind in inp.insulin),
        carbs=((minute(t), g) for t, g in inp.carbs),
    )
    result = identify(patient_prior(current, theta_sd=PRIOR_THETA_SD), history)
    best = result.best_params(inp.patient_id)
    return {name: float(getattr(best, name)) for name in PARAM_NAMES}


def seed_params(*, virtual: str | None = None, profile_path: str | None = None) -> dict[str, float]:
    """First parameters for a patient: a cohort patient by name (benches, demos), or the most
    probable virtual-population donor made consistent with a therapy profile file."""
    import numpy as np

    from edgetwin.model.cohort import load_patient
    from edgetwin.therapy import load_profile
    from edgetwin.twin.prior import compose_params, profile_prior

    if (virtual is None) == (profile_path is None):
        raise SyncError("seed from exactly one of a virtual patient or a profile file")
    if virtual is not None:
        pp = load_patient(virtual)
        return {n: float(getattr(pp, n)) for n in PARAM_NAMES}
    assert profile_path is not None
    prior = profile_prior(load_profile(profile_path), mixed_guts=False)  # a point: the donor itself
    d = int(np.argmax(prior.donor_weights))
    vec = compose_params(prior.donors, np.array([d], dtype=np.int64), prior.theta_mean[d : d + 1].copy())[0]
    return {n: float(v) for n, v in zip(PARAM_NAMES, vec, strict=True)}
