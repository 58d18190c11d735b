"""``edgetwin backtest``: rolling-origin forecasts over a history, scored against its readings.

Contract (keep it stable): ``edgetwin backtest (--patient NAME | --profile PROFILE.toml)
--history H.csv --every MIN --horizons 30,60,120 --out B.csv``. Forecasts are issued at minute
MIN, 2*MIN, ... up to the history's last minute, each using only data up to its issue minute
(future carbs and boluses are not known; the scheduled basal is assumed). ``B.csv`` columns:
``issued_minute``, ``horizon_min``, ``p10_mg_dl``, ``p50_mg_dl``, ``p90_mg_dl``,
``actual_mg_dl`` (the reading at the target minute; empty where the history has none). Printed:
RMSE, MAE, MARD and 80 % band coverage per horizon next to the persistence (latest reading) and
linear-extrapolation (least squares over the last 20 min) baselines on the same rows.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    from edgetwin.cli.forecast import add_twin_arguments

    p = sub.add_parser(
        "backtest",
        help="rolling-origin forecast evaluation against a history's readings",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_twin_arguments(p)
    p.add_argument("--every", type=int, required=True, metavar="MIN", help="minutes between forecasts")
    p.add_argument("--horizons", default="30,60,120", help="comma-separated horizons (multiples of 5 min)")
    p.add_argument("--out", metavar="B.csv", required=True, help="one row per forecast and horizon")
    p.set_defaults(handler=run)


def parse_horizons(text: str) -> list[int]:
    from edgetwin.cli import UsageError

    try:
        hs = sorted({int(h) for h in text.split(",") if h.strip()})
    except ValueError:
        raise UsageError(f"--horizons {text!r}: expected comma-separated whole minutes") from None
    if not hs or hs[0] < 5 or hs[-1] > 1440 or any(h % 5 for h in hs):
        raise UsageError(f"--horizons {text!r}: each must be a multiple of 5 in [5, 1440]")
    return hs


def run(args: argparse.Namespace) -> int:
    import math

    from edgetwin.cli import UsageError
    from edgetwin.cli.forecast import start_twin
    from edgetwin.csvfiles import write_table
    from edgetwin.twin.history import History, backtest, score

    horizons = parse_horizons(args.horizons)
    if not 1 <= args.every <= 1440:
        raise UsageError("--every must be in [1, 1440] minutes")
    history = History.from_csv(args.history)
    if args.every > history.last_minute:
        raise UsageError(f"--every {args.every} leaves no forecast in a {history.minutes}-minute history")
    setup = start_twin(args, history, rolling=True)
    twin = setup.twin
    rows = backtest(twin, history, args.every, horizons, before_issue=setup.before_issue)
    try:
        write_table(
            args.out,
            {
                "issued_minute": [r.issued_minute for r in rows],
                "horizon_min": [r.horizon_min for r in rows],
                "p10_mg_dl": [r.p10_mg_dl for r in rows],
                "p50_mg_dl": [r.p50_mg_dl for r in rows],
                "p90_mg_dl": [r.p90_mg_dl for r in rows],
                "actual_mg_dl": [r.actual_mg_dl for r in rows],
            },
            digits=1,
        )
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc.strerror}") from None
    issued = len({r.issued_minute for r in rows})
    print(
        f"Backtest of the twin ({setup.note}): {issued} forecasts, one every {args.every} min, "
        "each using only data up to its issue minute. Errors against the CGM readings (mg/dL)."
    )
    print(
        f"{'horizon':>8}{'n':>6} | {'twin RMSE':>9}{'MAE':>7}{'MARD%':>7}{'cover80%':>9} | "
        f"{'persist RMSE':>12}{'MAE':>7}{'MARD%':>7} | {'linear RMSE':>11}{'MAE':>7}{'MARD%':>7}"
    )
    for s in score(rows):
        if s.n == 0:
            print(f"{s.horizon_min:>5} min{0:>6} | no readings at the target minutes")
            continue
        print(
            f"{s.horizon_min:>5} min{s.n:>6} | {s.rmse:9.1f}{s.mae:7.1f}{s.mard_pct:7.1f}{s.coverage_pct:9.1f} | "
            f"{s.persistence_rmse:12.1f}{s.persistence_mae:7.1f}{s.persistence_mard_pct:7.1f} | "
            f"{s.linear_rmse:11.1f}{s.linear_mae:7.1f}{s.linear_mard_pct:7.1f}"
        )
    dayparts = getattr(setup.before_issue, "last_dayparts", None)
    if dayparts is not None:
        print("At the last nightly re-identification:")
        print(dayparts.format())
    missing = sum(1 for r in rows if not math.isfinite(r.actual_mg_dl))
    print(f"Rows written to {args.out} ({missing} without a reading at the target minute).")
    return 0
