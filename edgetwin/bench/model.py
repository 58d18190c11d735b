"""``edgetwin bench model``: speed of the model kernels against a straightforward SciPy solver.

Figures: patient-days per second single-threaded over the 30-patient cohort, ms per patient-day,
ensemble throughput (member-minutes per second, all cores; baseline: the same members one by one
through the adaptive kernel, 1 thread) and the ensemble's error against a tight solve, cold and
warm start of the CLI (a fresh process with an empty / a populated numba cache), and the speed
ratio against
:func:`edgetwin.model.reference.reference_simulate` with SciPy's default ``solve_ivp`` (RK45),
restarted every minute as the widely used Python simulator does, on the same inputs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

__all__ = ["add_arguments", "run"]

ENSEMBLE_BASELINE_RTOL = 1e-4
"""The tolerance the adaptive ensemble used before the lock-step kernel (~0.1 mg/dL)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions of the cohort day")
    p.add_argument("--members", type=int, default=2000, help="ensemble members")
    p.add_argument("--baseline-patients", type=int, default=2, help="patients run through the SciPy baseline")
    p.add_argument("--skip-startup", action="store_true", help="skip the cold/warm start measurement")


def standard_day(params: Any, therapy: Any) -> tuple[np.ndarray, np.ndarray]:
    """A day with three meals and their boluses on top of the patient's basal."""
    cho = np.zeros(1440)
    ins = np.full(1440, params.basal_u_per_h / 60.0)
    for minute, grams in ((420, 45.0), (720, 70.0), (1080, 80.0)):
        cho[minute] = grams
        ins[minute] += grams / therapy.carb_ratio_g_per_u
    return cho, ins


def _startup_seconds(cache_dir: str) -> float:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "edgetwin", "simulate", "--hours", "24"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def run(args: argparse.Namespace) -> dict[str, Any]:
    from edgetwin.model import cohort_names, load_patient, load_therapy, new_aux, run_ensemble
    from edgetwin.model.kernels import AUX_H_HINT, DEFAULT_RTOL, N_AUX, simulate_states
    from edgetwin.model.params import N_STATES, X_GP, X_GS

    names = cohort_names()
    cases = []
    for n in names:
        pp = load_patient(n)
        cho, ins = standard_day(pp, load_therapy(n))
        cases.append((pp, pp.vector(), cho, ins))
    out = np.empty((1441, N_STATES))

    def one_day(case: tuple[Any, np.ndarray, np.ndarray, np.ndarray]) -> None:
        pp, p, cho, ins = case
        aux = np.zeros(N_AUX)
        aux[AUX_H_HINT] = 1.0
        simulate_states(p, pp.state0(), aux, cho, ins, DEFAULT_RTOL, out)

    for c in cases:  # compile / load from cache
        one_day(c)
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        for c in cases:
            one_day(c)
    kernel_s = (time.perf_counter() - t0) / (args.repeats * len(cases))

    # Ensemble: one patient's parameters, perturbed states, shared inputs.
    pp, p, cho, ins = cases[names.index("adult#001")]
    n = args.members
    x = np.tile(pp.state0(), (n, 1))
    aux = new_aux(n)
    run_ensemble(p, x.copy(), aux.copy(), cho[:60], ins[:60], stride=5)
    rng = np.random.default_rng(0)
    x *= rng.uniform(0.9, 1.1, size=x.shape)
    x_start = x.copy()
    # Median of three runs; measured before SciPy runs, whose BLAS threads keep spinning after.
    times = []
    for _ in range(3):
        x = x_start.copy()
        t0 = time.perf_counter()
        run_ensemble(p, x, aux.copy(), cho, ins, stride=5)
        times.append(time.perf_counter() - t0)
    ens_s = float(np.median(times))
    member_minutes_per_s = n * cho.size / ens_s
    # Baseline: the same members one by one through the adaptive single-patient kernel.
    n_base = min(n, 200)
    t0 = time.perf_counter()
    for m in range(n_base):
        a1 = np.zeros(N_AUX)
        a1[AUX_H_HINT] = 1.0
        simulate_states(p, x_start[m].copy(), a1, cho, ins, ENSEMBLE_BASELINE_RTOL, out)
    base_member_minutes_per_s = n_base * cho.size / (time.perf_counter() - t0)
    # Accuracy of the ensemble kernel: the cohort's bench day against a tight adaptive solve.
    worst = 0.0
    for pc, pv, cc, ic in cases:
        res = run_ensemble(pv, pc.state0()[None, :].copy(), new_aux(1), cc, ic, stride=5, want_bg=True)
        a1 = np.zeros(N_AUX)
        a1[AUX_H_HINT] = 1.0
        simulate_states(pv, pc.state0(), a1, cc, ic, 1e-10, out)
        worst = max(
            worst,
            float(np.abs(res.gsub_mg_dl[0] - out[::5, X_GS] / pc.Vg).max()),
            float(np.abs(res.bg_mg_dl[0] - out[::5, X_GP] / pc.Vg).max()),
        )

    # Baseline: straightforward SciPy, same equations, same inputs, same process.
    from edgetwin.model.reference import reference_simulate

    base_cases = cases[: max(1, args.baseline_patients)]
    t0 = time.perf_counter()
    for pp, _, cho, ins in base_cases:
        reference_simulate(pp, cho, ins, method="RK45", rtol=1e-3, atol=1e-6)
    scipy_s = (time.perf_counter() - t0) / len(base_cases)
    t0 = time.perf_counter()
    for c in base_cases:
        one_day(c)
    kernel_same_s = (time.perf_counter() - t0) / len(base_cases)

    import numba

    result: dict[str, Any] = {
        "bench": "model",
        "patient_days_per_s_single_thread": 1.0 / kernel_s,
        "ms_per_patient_day": kernel_s * 1e3,
        "ensemble_member_minutes_per_s": member_minutes_per_s,
        "ensemble_members": n,
        "ensemble_threads": numba.get_num_threads(),
        "ensemble_baseline_member_minutes_per_s": base_member_minutes_per_s,
        "ensemble_speedup_vs_one_by_one": member_minutes_per_s / base_member_minutes_per_s,
        "ensemble_max_error_mg_dl": worst,
        "scipy_baseline_s_per_patient_day": scipy_s,
        "speedup_vs_scipy": scipy_s / kernel_same_s,
    }
    print("edgetwin bench model (UVA/Padova, 30 virtual patients, 1 day with 3 meals + boluses)")
    print(
        f"  kernel        {kernel_s * 1e3:8.3f} ms per patient-day  ({1 / kernel_s:,.0f} patient-days/s, 1 thread)"
    )
    print(
        f"  SciPy RK45    {scipy_s * 1e3:8.1f} ms per patient-day  (baseline, {len(base_cases)} patients, same inputs)"
    )
    print(f"  speed ratio   {scipy_s / kernel_same_s:8.0f} x faster than the SciPy baseline")
    print(
        f"  ensemble      {member_minutes_per_s:,.0f} member-minutes/s "
        f"({n} members x 1440 min, {numba.get_num_threads()} threads, lock-step RK4)"
    )
    print(
        f"  baseline      {base_member_minutes_per_s:,.0f} member-minutes/s "
        f"(the same members one by one, adaptive solver at rtol {ENSEMBLE_BASELINE_RTOL:g}, 1 thread): "
        f"{member_minutes_per_s / base_member_minutes_per_s:.1f} x"
    )
    print(f"  ensemble error {worst:.4f} mg/dL max over the cohort's day vs a tight solve (rtol 1e-10)")
    if not args.skip_startup:
        with tempfile.TemporaryDirectory() as cache:
            cold = _startup_seconds(cache)
            warm = _startup_seconds(cache)
        result["cold_start_s"] = cold
        result["warm_start_s"] = warm
        print(
            f"  CLI start     cold {cold:.2f} s (empty numba cache), warm {warm:.2f} s (cached); simulate 24 h"
        )
    return result
