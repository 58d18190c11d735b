"""``edgetwin bench suggest``: how long one decision cycle takes on the gateway.

A cycle is one suggestion (every candidate simulated on the ensemble over the horizon) plus the
safety gate's review. Figures per ensemble size: milliseconds per suggestion and per gate review,
(medians of repeated calls) next to the baseline measured in the same process: one plain forecast (the scheduled basal only)
on the same ensemble, which is the least any model-based decision must compute. The cycle must fit
well inside the CGM period (3-5 min) on a Raspberry-Pi-class gateway.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--members", default="1,16,32", help="comma-separated ensemble sizes")
    p.add_argument("--repeats", type=int, default=10, help="timed cycles per size")
    p.add_argument("--patient", default="adult#003")


def _median_s(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls (robust to a busy machine)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numba

    from edgetwin.messages import CgmReading, PumpStatus
    from edgetwin.model.cohort import load_patient
    from edgetwin.safety import GateInputs, SafetyGate, assess_cgm
    from edgetwin.suggest import Suggester, SuggestInputs
    from edgetwin.trial.run import trial_limits, trial_profile
    from edgetwin.twin.ensemble import InputPlan, TwinEnsemble, simulate_plans
    from edgetwin.virtual.patient import VirtualPatient

    sizes = [int(s) for s in args.members.split(",") if s.strip()]
    pp = load_patient(args.patient)
    profile = trial_profile(args.patient)
    limits = trial_limits(profile)
    now = datetime(2026, 1, 5, 12, tzinfo=UTC)
    # A post-meal state: 60 g eaten 40 min ago with a small bolus, glucose rising.
    cho = np.zeros(40)
    cho[0] = 60.0
    ins = np.full(40, pp.basal_u_per_h / 60.0)
    ins[0] += 2.0
    vp = VirtualPatient(pp)
    vp.run(cho, ins)
    snap = vp.snapshot()
    readings = [
        CgmReading(now - timedelta(minutes=3 * i), 150.0 + 1.5 * (12 - i), "cgm") for i in range(12, -1, -1)
    ]
    pump = PumpStatus(now, "pump", 150.0, False, False, profile.basal_at(now))
    gate_inputs = GateInputs(now, profile, readings, (), pump, "cgm")
    cgm = assess_cgm(readings, now, limits, "cgm")
    suggester = Suggester()
    horizon = suggester.config.horizon_min
    rng = np.random.default_rng(0)
    rows: list[dict[str, float]] = []
    print(
        f"edgetwin bench suggest ({args.patient}, horizon {horizon} min, {numba.get_num_threads()} threads)"
    )
    print(f"  {'members':>8}{'suggest ms':>12}{'gate ms':>10}{'forecast ms':>13}{'x forecast':>12}")
    for n in sizes:
        params = np.repeat(pp.vector()[None, :], n, axis=0)
        params[:, :] *= rng.uniform(0.97, 1.03, size=params.shape) if n > 1 else 1.0
        ens = TwinEnsemble(
            0, params, np.tile(np.array(snap["x"]), (n, 1)), np.tile(np.array(snap["aux"]), (n, 1))
        )
        inputs = SuggestInputs(now, profile, limits, reservoir_u=150.0, cgm=cgm)
        keep = InputPlan("keep", np.zeros(horizon), np.full(horizon, profile.basal_at(now) / 60.0))
        suggestion = suggester.suggest(ens, inputs)  # compile / warm caches
        simulate_plans(ens, [keep])
        t_suggest = _median_s(lambda: suggester.suggest(ens, inputs), args.repeats)  # noqa: B023
        t_gate = _median_s(lambda: SafetyGate(limits).review(suggestion, gate_inputs), args.repeats)  # noqa: B023
        t_forecast = _median_s(lambda: simulate_plans(ens, [keep]), args.repeats)  # noqa: B023
        rows.append(
            {
                "members": n,
                "suggest_ms": t_suggest * 1e3,
                "gate_ms": t_gate * 1e3,
                "forecast_baseline_ms": t_forecast * 1e3,
                "ratio_to_forecast": t_suggest / t_forecast,
            }
        )
        print(
            f"  {n:>8}{t_suggest * 1e3:12.1f}{t_gate * 1e3:10.2f}{t_forecast * 1e3:13.2f}"
            f"{t_suggest / t_forecast:12.1f}"
        )
    print("  baseline: one forecast with the scheduled basal on the same ensemble, same process")
    return {"bench": "suggest", "patient": args.patient, "threads": numba.get_num_threads(), "sizes": rows}
