"""``edgetwin simulate``: run virtual patients over inputs from a file or a quick meal plan.

Contract (other tools read these files; keep it stable):
``IN.csv``: ``minute`` (integer from 0), ``cho_g`` (announced at that minute, eaten at 5 g/min),
``insulin_u`` (delivered during that minute). Missing minutes mean zero input; the run covers
minute 0 to the last row's minute + 1. ``OUT.csv``: one row per minute, ``minute``,
``bg_mg_dl`` (plasma, Gp/Vg), ``gsub_mg_dl`` (subcutaneous, Gs/Vg), ``cgm_mg_dl`` (with
``--cgm-seed``, at the sensor's sample minutes; empty otherwise), ``cho_g``, ``insulin_u`` (the
inputs applied over [k, k+1)); a leading ``patient`` column with ``--patient all``.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]

DEFAULT_DAY = ("07:00=45", "12:00=70", "18:00=80")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate virtual patients (UVA/Padova model)",
        description="Simulate virtual patients from an input file or a meal plan, print a summary.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--patient", default="adult#001", help="cohort name (adult#001 ...) or 'all'")
    p.add_argument("--inputs", metavar="IN.csv", help="per-minute inputs: minute,cho_g,insulin_u")
    p.add_argument("--out", metavar="OUT.csv", help="per-minute output file")
    p.add_argument(
        "--meal",
        action="append",
        metavar="HH:MM=GRAMS",
        help=f"a meal (repeatable; without --inputs; default day: {' '.join(DEFAULT_DAY)})",
    )
    p.add_argument("--hours", type=float, default=24.0, help="length of a run without --inputs")
    p.add_argument(
        "--controller",
        choices=("basal-bolus", "basal"),
        help="insulin for a run without --inputs: the reference basal-bolus (default), or basal only",
    )
    p.add_argument("--cgm-seed", type=int, help="add CGM readings with this noise seed")
    p.add_argument(
        "--sensor", default="Dexcom", help="CGM model: Dexcom (3 min), GuardianRT (5), Navigator (1)"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from edgetwin.cli import UsageError
    from edgetwin.model.cohort import cohort_names, load_patient, load_sensor
    from edgetwin.virtual.runs import simulate_inputs, simulate_plan
    from edgetwin.virtual.scenario import parse_meal_spec

    names = cohort_names() if args.patient == "all" else [load_patient(args.patient).name]
    sensor_spec = load_sensor(args.sensor)
    if args.inputs:
        if args.meal or args.controller:
            raise UsageError("--meal and --controller apply only without --inputs")
        from edgetwin.csvfiles import read_minute_table

        table = read_minute_table(args.inputs, required=("cho_g", "insulin_u"))
        runs = [
            simulate_inputs(load_patient(n), table["cho_g"], table["insulin_u"], sensor_spec, args.cgm_seed)
            for n in names
        ]
    else:
        if not 0 < args.hours <= 24 * 90:
            raise UsageError("--hours must be in (0, 2160]")
        try:
            meals = [parse_meal_spec(m) for m in (args.meal or DEFAULT_DAY)]
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        runs = [
            simulate_plan(
                load_patient(n),
                meals,
                int(round(args.hours * 60)),
                args.controller or "basal-bolus",
                sensor_spec,
                args.cgm_seed,
            )
            for n in names
        ]
    if args.out:
        _write(args.out, runs, with_patient=args.patient == "all")
    _print_summary(runs, args.out)
    return 0


def _write(path: str, runs: list[Any], *, with_patient: bool) -> None:
    import numpy as np

    from edgetwin.csvfiles import write_table

    cols: dict[str, list[Any]] = {}
    if with_patient:
        cols["patient"] = []
    for key in ("minute", "bg_mg_dl", "gsub_mg_dl", "cgm_mg_dl", "cho_g", "insulin_u"):
        cols[key] = []
    for r in runs:
        n = r.bg_mg_dl.size
        if with_patient:
            cols["patient"].extend([r.patient] * n)
        cols["minute"].extend(range(n))
        cols["bg_mg_dl"].extend(r.bg_mg_dl.tolist())
        cols["gsub_mg_dl"].extend(r.gsub_mg_dl.tolist())
        cols["cgm_mg_dl"].extend(r.cgm_mg_dl.tolist())
        cols["cho_g"].extend(np.append(r.cho_g, 0.0).tolist())
        cols["insulin_u"].extend(np.append(r.insulin_u, 0.0).tolist())
    try:
        write_table(path, cols, digits=4)
    except OSError as exc:
        from edgetwin.cli import UsageError

        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def _print_summary(runs: list[Any], out: str | None) -> None:
    from edgetwin.metrics import glucose_metrics

    hours = (runs[0].bg_mg_dl.size - 1) / 60.0
    print(f"Simulated {len(runs)} virtual patient(s) for {hours:g} h (UVA/Padova model; glucose in mg/dL).")
    header = f"{'patient':<16}{'mean':>7}{'min':>7}{'max':>7}{'TIR%':>7}{'<70%':>7}{'<54%':>7}{'>180%':>7}{'LBGI':>6}{'HBGI':>6}{'insulin U':>10}{'carbs g':>9}"
    print(header)
    for r in runs:
        m = glucose_metrics(r.gsub_mg_dl)
        print(
            f"{r.patient:<16}{m.mean_mg_dl:7.1f}{m.min_mg_dl:7.1f}{m.max_mg_dl:7.1f}{m.tir_70_180_pct:7.1f}"
            f"{m.tbr_70_pct:7.1f}{m.tbr_54_pct:7.1f}{m.tar_180_pct:7.1f}{m.lbgi:6.2f}{m.hbgi:6.2f}"
            f"{r.insulin_u.sum():10.2f}{r.cho_g.sum():9.0f}"
        )
    print("Metrics over subcutaneous glucose (what a noise-free CGM would read), every minute.")
    if out:
        print(f"Per-minute trajectories written to {out}")
