"""``edgetwin trial``: closed-loop virtual trials over the cohort.

Contract: ``edgetwin trial --cohort adult|adolescent|child|all --days N --seed S
--controller twin|basal-bolus --out R.json [--plot DIR] [--runner SPEC]``. ``R.json`` holds per-patient and
aggregate ``tir_70_180_pct``, ``tbr_70_pct``, ``tbr_54_pct``, ``tar_180_pct``, ``tar_250_pct``,
``mean_mg_dl``, ``cv_pct``, ``lbgi``, ``hbgi``, ``total_insulin_u`` and ``gate_interventions``
(count by rule); see :mod:`edgetwin.trial.report` for the whole layout. A summary table prints;
``--plot DIR`` writes one PNG glucose trace per patient (needs matplotlib: the ``plot`` extra).

With ``--controller twin`` the basal-bolus reference runs on the same days and sensor noise in
the same invocation (``reference`` in R.json) unless ``--no-reference`` is given.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "trial",
        help="closed-loop virtual trials on the cohort (twin controller vs basal-bolus)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cohort", choices=("adult", "adolescent", "child", "all"), default="adult")
    p.add_argument("--days", type=int, default=14, help="days per patient (default 14)")
    p.add_argument("--seed", type=int, default=1, help="scenario and sensor-noise seed (default 1)")
    p.add_argument("--controller", choices=("twin", "basal-bolus"), default="twin")
    p.add_argument("--out", metavar="R.json", required=True, help="report file")
    p.add_argument("--plot", metavar="DIR", help="write PNG glucose traces here")
    p.add_argument(
        "--estimator",
        choices=("twin", "oracle"),
        default="twin",
        help="what the twin controller's ensemble comes from: twin = the living twin (default), "
        "oracle = the true patient state (an upper bound, labelled as such in the report)",
    )
    p.add_argument("--patients", metavar="NAME[,NAME]", help="only these patients of the cohort")
    p.add_argument("--workers", type=int, help="parallel processes (default: all cores)")
    p.add_argument(
        "--runner",
        metavar="SPEC",
        help="run the patients on a job runner instead of local processes: dask://HOST:PORT, ray, "
        "ray://HOST:PORT (the cloud's runners, edgetwin.runner; local:N is --workers N)",
    )
    p.add_argument("--no-reference", action="store_true", help="with --controller twin, skip basal-bolus")
    p.add_argument("--carb-error", type=float, default=0.3, help="carb-count error, ± fraction (default 0.3)")
    p.add_argument("--missed-bolus", type=float, default=0.05, help="probability a meal goes unannounced")
    p.add_argument(
        "--unannounced-snack", type=float, default=0.3, help="probability a snack goes unannounced"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from edgetwin.cli import UsageError
    from edgetwin.model.cohort import cohort_names
    from edgetwin.trial.cohort import run_jobs, run_on_runner
    from edgetwin.trial.report import build_report, format_table, write_plots, write_report
    from edgetwin.trial.run import PatientJob, TrialSettings

    try:
        settings = TrialSettings(
            days=args.days,
            seed=args.seed,
            carb_error=args.carb_error,
            p_missed_bolus=args.missed_bolus,
            p_unannounced_snack=args.unannounced_snack,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be >= 1")
    names = cohort_names(args.cohort)
    if args.patients:
        wanted = [n.strip() for n in args.patients.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise UsageError(f"not in cohort {args.cohort}: {', '.join(unknown)}")
        names = wanted
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("--plot needs matplotlib: pip install 'edgetwin[plot]'") from None
    jobs = [PatientJob(n, args.controller, settings, args.estimator) for n in names]
    with_reference = args.controller == "twin" and not args.no_reference
    if with_reference:
        jobs += [PatientJob(n, "basal-bolus", settings) for n in names]

    def progress(outcome: Any, done: int, total: int) -> None:
        label = outcome.controller if outcome.controller != "twin" else f"twin/{outcome.estimator}"
        print(
            f"  [{done}/{total}] {outcome.patient} {label}: TIR {outcome.metrics['tir_70_180_pct']:.1f} % "
            f"({outcome.seconds:.0f} s)",
            file=sys.stderr,
        )

    if args.runner and not (args.runner == "local" or args.runner.startswith("local:")):
        outcomes = run_on_runner(jobs, args.runner)
    else:
        workers = args.workers
        if args.runner and args.runner.startswith("local:"):
            workers = int(args.runner.split(":", 1)[1]) if args.runner[6:].isdigit() else 0
            if workers < 1:
                raise UsageError(f"--runner {args.runner}: local:N needs N >= 1")
        outcomes = run_jobs(jobs, workers, progress)
    main = [o for o in outcomes if o.controller == args.controller]
    reference = [o for o in outcomes if o.controller == "basal-bolus"] if with_reference else None
    report = build_report(
        args.cohort,
        settings,
        args.controller,
        args.estimator if args.controller == "twin" else None,
        main,
        reference,
    )
    try:
        write_report(report, args.out)
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc.strerror}") from None
    print(format_table(report))
    print(f"Report written to {args.out}")
    if args.plot:
        paths = write_plots(main, reference, args.plot)
        print(f"{len(paths)} plot(s) written to {args.plot}")
    return 0
