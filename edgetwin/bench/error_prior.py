"""Fit the population's forecast-error model (``edgetwin/data/forecast_error_prior.json``).

    python -m edgetwin.bench.error_prior [--seeds 11,12,13] [--days 7] [--out PATH]

Every cohort patient lives ``--days`` days under each scenario seed exactly as in ``edgetwin
bench estimate`` (same therapy, meals, counting errors, unlogged snacks, sensor), with its
profile-only twin (the patient left out of the population, re-personalised nightly). Each twin
learns its error model from its own forecasts; this pools the pairs every twin learned (the
sufficient statistics of :class:`~edgetwin.twin.correction.MedianCorrector`, per calibration
horizon) and solves one ridge regression per horizon: on all patients, and on all but each one
(what a twin built with that patient left out must use; :mod:`edgetwin.twin.error_prior`).

The default seeds are not the benchmark's (1, 2, 3), so no figure of ``edgetwin bench
estimate`` is measured on the scenarios the prior was fitted on. Re-fit whenever the filter, the
forecast or the error model's features change (a test checks that the shipped file matches the
features and horizons); it takes about 2 minutes per seed on two cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["fit_coefficients", "main"]

RIDGE = 10.0
"""Prior weight of "no correction" in the pooled fit, in pairs: tens of thousands of pairs make
it matter only for features that hardly vary."""


def default_out() -> Path:
    import edgetwin.data
    from edgetwin.twin.error_prior import DATA_FILE

    return Path(edgetwin.data.__file__).parent / DATA_FILE


def _patient_statistics(job: tuple[int, str, int, int]) -> dict[str, Any]:
    """One patient under one scenario seed: the profile twin's error-model statistics."""
    import numba

    from edgetwin.bench.estimate import (
        EVERY_MIN,
        FIRST_ISSUE_MIN,
        HORIZONS,
        _history,
        _profile_twin,
        _simulate,
    )
    from edgetwin.twin.filter import FilterConfig
    from edgetwin.twin.history import backtest

    i, name, days, seed = job
    numba.set_num_threads(1)
    t0 = time.perf_counter()
    pp, th, trace = _simulate(name, days, seed)
    hist = _history(trace)
    twin, nightly = _profile_twin(i, pp, th, hist, FilterConfig())
    backtest(twin, hist, EVERY_MIN, HORIZONS, first_issue_min=FIRST_ISSUE_MIN, before_issue=nightly)
    em = twin.error_model()
    return {
        "name": name,
        "ata": em.ata,
        "aty": em.aty,
        "pairs": em.pairs,
        "seconds": time.perf_counter() - t0,
    }


def fit_coefficients(ata: np.ndarray, aty: np.ndarray, ridge: float = RIDGE) -> np.ndarray:
    """(K, F) ridge solutions of pooled statistics ``ata`` (K, F, F) and ``aty`` (K, F)."""
    f = ata.shape[-1]
    return np.stack([np.linalg.solve(a + ridge * np.eye(f), b) for a, b in zip(ata, aty, strict=True)])


def fit(seeds: Sequence[int], days: int, patients: int, workers: int, log: Any = print) -> dict[str, Any]:
    """The prior file's content (see the module docstring)."""
    from concurrent.futures import ProcessPoolExecutor

    from edgetwin.bench.estimate import _SPAWN, _patients
    from edgetwin.twin.correction import FEATURE_NAMES
    from edgetwin.twin.error_prior import ALL_PATIENTS
    from edgetwin.twin.forecast import CALIBRATION_HORIZONS

    names = _patients(patients)
    jobs = [(i, name, days, s * 1000 + i) for s in seeds for i, name in enumerate(names)]
    k, f = len(CALIBRATION_HORIZONS), len(FEATURE_NAMES)
    per: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    pairs = np.zeros(k)
    with ProcessPoolExecutor(max_workers=workers, mp_context=_SPAWN) as pool:
        for res in pool.map(_patient_statistics, jobs):
            a, b = per.setdefault(res["name"], (np.zeros((k, f, f)), np.zeros((k, f))))
            a += res["ata"]
            b += res["aty"]
            pairs += res["pairs"]
            log(
                f"  {res['name']:<15} {res['seconds']:6.1f} s, {res['pairs'][1]:.0f} pairs at 30 min",
                flush=True,
            )
    total_a = np.sum([a for a, _ in per.values()], axis=0)
    total_b = np.sum([b for _, b in per.values()], axis=0)
    coefficients = {ALL_PATIENTS: fit_coefficients(total_a, total_b)}
    if len(per) > 1:
        for name, (a, b) in per.items():
            coefficients[name] = fit_coefficients(total_a - a, total_b - b)
    return {
        "about": "Forecast-error model of profile-only twins on the virtual cohort "
        "(edgetwin.twin.error_prior); written by python -m edgetwin.bench.error_prior",
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seeds": list(seeds),
        "days": days,
        "patients": sorted(per),
        "pairs_per_horizon": [round(float(n), 1) for n in pairs],
        "ridge": RIDGE,
        "horizons_min": list(CALIBRATION_HORIZONS),
        "feature_names": list(FEATURE_NAMES),
        "coefficients": {k: [[float(f"{c:.5g}") for c in row] for row in v] for k, v in coefficients.items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    from edgetwin.bench.estimate import _seed_list

    p = argparse.ArgumentParser(
        prog="python -m edgetwin.bench.error_prior",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seeds", type=_seed_list, default=[11, 12, 13], help="scenario seeds (default 11,12,13)")
    p.add_argument("--days", type=int, default=7, help="simulated days per patient and seed (default 7)")
    p.add_argument(
        "--patients", type=int, default=30, help="cohort patients, spread over the 30 (default 30)"
    )
    p.add_argument("--workers", type=int, default=2, help="patients replayed in parallel (default 2)")
    p.add_argument("--out", type=Path, default=None, help="where to write (default: the shipped file)")
    args = p.parse_args(argv)
    if args.days < 1 or args.patients < 1 or args.workers < 1:
        p.error("--days, --patients and --workers must be >= 1")
    out = args.out or default_out()
    t0 = time.perf_counter()
    print(
        f"fitting the population forecast-error model: {args.patients} patients x {args.days} days x seeds "
        f"{','.join(map(str, args.seeds))}"
    )
    table = fit(args.seeds, args.days, args.patients, args.workers)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out)
    coef = np.array(table["coefficients"]["all"])
    print(f"{'horizon':>8} {'pairs':>8} {'intercept':>10} {'x change':>9} {'x trend':>8}")
    for h, n, row in zip(table["horizons_min"], table["pairs_per_horizon"], coef, strict=True):
        print(f"{h:>5} min {n:>8.0f} {row[0]:>10.2f} {row[1]:>9.3f} {row[2]:>8.3f}")
    print(f"wrote {out} ({len(table['coefficients'])} coefficient sets) in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
