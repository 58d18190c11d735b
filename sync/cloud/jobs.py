"""Re-personalisation jobs and the runner they (and virtual-cohort trials) run on.

The identification algorithm is pluggable: any callable ``identify(IdentificationInput) ->
Mapping[str, float]`` returning a full parameter set (names of
:data:`edgetwin.model.params.PARAM_NAMES`). The cloud configuration names it as
``"module:function"`` (key ``identify``); the living twin's batch identification plugs in here.
Its result is validated against the physiological bounds before it becomes a parameter update
(signed per gateway when served, see :mod:`sync.downlink`); a failing or out-of-bounds result is
recorded on the job and never published.

Runners (``runner`` key) come from :mod:`edgetwin.runner` (``local``, ``local:N``,
``dask://HOST:PORT``, ``ray``, ``ray://HOST:PORT``), the same runners virtual-cohort trials use.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgetwin.runner import JobRunner, LocalRunner, make_runner
from sync.cloud.db import CloudDB
from sync.downlink import validate_params
from sync.errors import SyncError, UpdateRejectedError

__all__ = [
    "IdentificationInput",
    "IdentifyFn",
    "JobOutcome",
    "JobRunner",
    "JobScheduler",
    "LocalRunner",
    "load_identify",
    "make_runner",
    "repersonalise",
]

log = logging.getLogger("edgetwin.cloud.jobs")


@dataclass(frozen=True)
class IdentificationInput:
    """A patient's recent history for batch identification (times in UTC ms).

    ``cgm``: (time_ms, glucose mg/dL or None); ``insulin``: (time_ms, units, duration_min, kind);
    ``carbs``: (time_ms, grams); ``current``: the parameters published last (None at first).
    """

    patient_id: str
    start_ms: int
    end_ms: int
    cgm: tuple[tuple[int, float | None], ...]
    insulin: tuple[tuple[int, float, float, str], ...]
    carbs: tuple[tuple[int, float], ...]
    current: Mapping[str, float] | None = None


IdentifyFn = Callable[[IdentificationInput], Mapping[str, float]]


def load_identify(spec: str) -> IdentifyFn:
    """The identification function named ``module:function``."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise SyncError(f"identify must look like 'package.module:function', got {spec!r}")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise SyncError(f"cannot load identification function {spec!r}: {exc}") from exc
    if not callable(fn):
        raise SyncError(f"{spec!r} is not callable")
    identify: IdentifyFn = fn
    return identify


@dataclass(frozen=True)
class JobOutcome:
    patient_id: str
    job_id: str
    status: str  # "published" | "rejected" | "failed" | "skipped"
    detail: str = ""
    version: int | None = None


def _input_for(db: CloudDB, patient: str, start_ms: int, end_ms: int) -> IdentificationInput:
    cgm = tuple(
        (r["time_utc"], r["glucose_mg_dl"]) for r in db.history(patient, "cgm", start_ms, end_ms, 10**6)
    )
    insulin = tuple(
        (r["time_utc"], r["units"], r.get("duration_min", 0.0), r["kind"])
        for r in db.history(patient, "insulin", start_ms, end_ms, 10**6)
    )
    carbs = tuple((r["time_utc"], r["grams"]) for r in db.history(patient, "carbs", start_ms, end_ms, 10**6))
    latest = db.latest_param_update(patient)
    return IdentificationInput(
        patient, start_ms, end_ms, cgm, insulin, carbs, None if latest is None else latest.params
    )


def repersonalise(
    db: CloudDB,
    identify: IdentifyFn,
    runner: JobRunner,
    *,
    now_ms: int,
    window_days: float = 14.0,
    min_readings: int = 288,
    patients: Sequence[str] | None = None,
) -> list[JobOutcome]:
    """One round: identify each patient with enough recent data, publish valid results."""
    start = now_ms - int(window_days * 86_400_000)
    inputs, outcomes = [], []
    for patient in patients if patients is not None else db.patients():
        inp = _input_for(db, patient, start, now_ms)
        if sum(v is not None for _, v in inp.cgm) < min_readings:
            outcomes.append(JobOutcome(patient, "", "skipped", f"{len(inp.cgm)} readings < {min_readings}"))
            continue
        inputs.append(inp)
    results = runner.map(identify, inputs)
    for inp, result in zip(inputs, results, strict=True):
        job_id = f"reperso-{inp.patient_id}-{now_ms}-{uuid.uuid4().hex[:6]}"
        basis = f"{job_id}: {len(inp.cgm)} CGM readings from {inp.start_ms} to {inp.end_ms}"
        if isinstance(result, BaseException):
            outcome = JobOutcome(inp.patient_id, job_id, "failed", f"{type(result).__name__}: {result}")
        else:
            try:
                params = {k: float(v) for k, v in dict(result).items()}
                validate_params(params, inp.patient_id)
            except (UpdateRejectedError, TypeError, ValueError) as exc:
                outcome = JobOutcome(inp.patient_id, job_id, "rejected", str(exc))
            else:
                version = db.add_param_update(inp.patient_id, params, basis, now_ms)
                outcome = JobOutcome(inp.patient_id, job_id, "published", basis, version)
        db.record_job(job_id, inp.patient_id, now_ms, int(time.time() * 1000), outcome.status, outcome.detail)
        log.info("re-personalisation %s: %s %s", inp.patient_id, outcome.status, outcome.detail)
        outcomes.append(outcome)
    return outcomes


class JobScheduler:
    """Runs :func:`repersonalise` every ``interval_s`` in a background thread."""

    def __init__(
        self, db: CloudDB, identify: IdentifyFn, runner: JobRunner, interval_s: float, **kwargs: Any
    ) -> None:
        self._args = (db, identify, runner)
        self._kwargs = kwargs
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="edgetwin-jobs", daemon=True)
        self.rounds = 0

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                repersonalise(*self._args, now_ms=int(time.time() * 1000), **self._kwargs)
            except Exception:  # a failed round is logged; the next one runs on schedule
                log.exception("re-personalisation round failed")
            self.rounds += 1

    def start(self) -> JobScheduler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
