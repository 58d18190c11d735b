"""A trial over the cohort: every patient in parallel processes, then per-group aggregates.

Workers are separate processes (``spawn``), each with one numba thread, so N workers use N cores
without oversubscription. Results come back in the order the jobs were given.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context

from edgetwin.trial.run import PatientJob, PatientOutcome, run_patient

__all__ = ["METRIC_KEYS", "aggregate", "run_jobs", "run_on_runner"]

METRIC_KEYS = (
    "tir_70_180_pct",
    "tbr_70_pct",
    "tbr_54_pct",
    "tar_180_pct",
    "tar_250_pct",
    "mean_mg_dl",
    "cv_pct",
    "lbgi",
    "hbgi",
)


def _init_worker() -> None:
    import numba

    numba.set_num_threads(1)


def run_jobs(
    jobs: Sequence[PatientJob],
    workers: int | None = None,
    progress: Callable[[PatientOutcome, int, int], None] | None = None,
) -> list[PatientOutcome]:
    """Run every job; ``workers`` processes (default: all cores; 1 runs in this process)."""
    n = len(jobs)
    workers = min(n, workers or os.cpu_count() or 1)
    results: list[PatientOutcome | None] = [None] * n
    if workers <= 1:
        for i, job in enumerate(jobs):
            results[i] = run_patient(job)
            if progress:
                progress(results[i], i + 1, n)  # type: ignore[arg-type]
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker) as pool:
            futures = {pool.submit(run_patient, job): i for i, job in enumerate(jobs)}
            for done, fut in enumerate(as_completed(futures), start=1):
                i = futures[fut]
                results[i] = fut.result()
                if progress:
                    progress(results[i], done, n)  # type: ignore[arg-type]
    return [r for r in results if r is not None]


def run_on_runner(jobs: Sequence[PatientJob], spec: str) -> list[PatientOutcome]:
    """Run every job on the job runner ``spec`` names (:func:`edgetwin.runner.make_runner`: a Dask
    scheduler or a Ray cluster, as the cloud's re-personalisation uses); raises the first job's
    error, if any, after all have run."""
    from edgetwin.runner import make_runner

    runner = make_runner(spec)
    try:
        results = runner.map(run_patient, list(jobs))
    finally:
        runner.close()
    for job, r in zip(jobs, results, strict=True):
        if isinstance(r, BaseException):
            raise RuntimeError(f"trial of {job.patient} ({job.controller}) failed on {spec}: {r}") from r
    return list(results)


def aggregate(outcomes: Sequence[PatientOutcome], days: int) -> dict[str, dict[str, object]]:
    """Per group and ``all``: the mean of each patient metric, mean insulin, summed
    interventions by rule, rescue carbs."""
    groups: dict[str, list[PatientOutcome]] = {}
    for o in outcomes:
        groups.setdefault(o.group, []).append(o)
    if len(groups) > 1:
        groups["all"] = list(outcomes)
    out: dict[str, dict[str, object]] = {}
    for group, items in groups.items():
        row: dict[str, object] = {"n": len(items)}
        for key in METRIC_KEYS:
            values = [o.metrics[key] for o in items if math.isfinite(o.metrics[key])]
            row[key] = round(sum(values) / len(values), 3) if values else None
        row["worst_tbr_70_pct"] = round(max(o.metrics["tbr_70_pct"] for o in items), 3)
        row["worst_tbr_54_pct"] = round(max(o.metrics["tbr_54_pct"] for o in items), 3)
        row["min_tir_70_180_pct"] = round(min(o.metrics["tir_70_180_pct"] for o in items), 3)
        row["total_insulin_u"] = round(sum(o.total_insulin_u for o in items) / len(items), 2)
        row["insulin_u_per_day"] = round(sum(o.total_insulin_u for o in items) / len(items) / days, 2)
        row["rescue_carbs_g_per_day"] = round(sum(o.rescue_carbs_g for o in items) / len(items) / days, 2)
        counts: Counter[str] = Counter()
        for o in items:
            counts.update(o.interventions)
        row["gate_interventions"] = dict(sorted(counts.items()))
        out[group] = row
    return out
