"""``edgetwin whatif``: compare interventions on the twin at the end of a history.

``edgetwin whatif (--patient NAME | --profile PROFILE.toml) --history H.csv [--horizon MIN]
[--planned ITEMS] [--bolus U] [--temp-basal RATE:MIN] [--meal G] [--skip-bolus]
[--scenario NAME=ITEMS]... [--out W.csv]``

``edgetwin whatif --config GATEWAY.toml [options]`` asks the twin a gateway runs: its last
checkpoint in the gateway's store and the readings stored since, opened read-only (the running
gateway is not disturbed), with the gateway's therapy profile.

Every scenario is compared with "as planned" (scheduled basal plus ``--planned``). ITEMS is a
comma-separated list of ``bolus:U``, ``temp:RATE_U_PER_H:DURATION_MIN``, ``meal:GRAMS`` and
``skip-bolus`` (drops the planned boluses), each optionally ``@MIN`` minutes from now. The
table shows, per scenario, the predicted minimum (median and 10 % quantile), glucose at the end,
expected % of time below 70 and 54 and above 180 mg/dL, the probability of going below 70, and
LBGI/HBGI, all on the twin's glucose (no sensor error). ``W.csv``: ``scenario``, ``minute``,
``p10_mg_dl``, ``p50_mg_dl``, ``p90_mg_dl`` every 5 min.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    from edgetwin.cli.forecast import add_twin_arguments

    p = sub.add_parser(
        "whatif",
        help="compare interventions (bolus, temp basal, meal, skipped bolus) on the twin",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_twin_arguments(p, gateway=True)
    p.add_argument("--horizon", type=int, default=240, metavar="MIN", help="minutes ahead (default 240)")
    p.add_argument(
        "--planned", default="", metavar="ITEMS", help="what is planned anyway, e.g. meal:60,bolus:6"
    )
    p.add_argument(
        "--bolus", type=float, action="append", default=[], metavar="U", help="scenario: bolus U now"
    )
    p.add_argument(
        "--temp-basal",
        action="append",
        default=[],
        metavar="RATE:MIN",
        help="scenario: temp basal for MIN min",
    )
    p.add_argument(
        "--meal", type=float, action="append", default=[], metavar="G", help="scenario: meal of G g now"
    )
    p.add_argument("--skip-bolus", action="store_true", help="scenario: skip the planned bolus(es)")
    p.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="NAME=ITEMS",
        help="a named combination (repeatable)",
    )
    p.add_argument(
        "--out", metavar="W.csv", help="trajectories: scenario,minute,p10_mg_dl,p50_mg_dl,p90_mg_dl"
    )
    p.set_defaults(handler=run)


def build_scenarios(args: argparse.Namespace) -> list[Any]:
    from edgetwin.cli import UsageError
    from edgetwin.errors import InputDataError
    from edgetwin.twin.whatif import parse_items, parse_scenario

    specs: list[str] = []
    for u in args.bolus:
        specs.append(f"bolus {u:g} U=bolus:{u:g}")
    for tb in args.temp_basal:
        rate, _, dur = str(tb).partition(":")
        specs.append(f"temp {rate} U/h {dur} min=temp:{rate}:{dur}")
    for g in args.meal:
        specs.append(f"meal {g:g} g=meal:{g:g}")
    if args.skip_bolus:
        specs.append("skip bolus=skip-bolus")
    specs.extend(args.scenario)
    try:
        scenarios = [parse_scenario(s) for s in specs]
        parse_items(args.planned, where="--planned")
    except InputDataError as exc:
        raise UsageError(str(exc)) from None
    if not scenarios:
        raise UsageError(
            "give at least one scenario (--bolus, --temp-basal, --meal, --skip-bolus, --scenario)"
        )
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise UsageError("scenario names must be unique")
    return scenarios


def run(args: argparse.Namespace) -> int:
    from edgetwin.cli import UsageError
    from edgetwin.cli.forecast import start_twin
    from edgetwin.csvfiles import write_table
    from edgetwin.twin.history import History, feed
    from edgetwin.twin.whatif import Scenario, parse_items

    if not 5 <= args.horizon <= 1440:
        raise UsageError("--horizon must be in [5, 1440] minutes")
    scenarios = build_scenarios(args)
    planned = Scenario("planned", parse_items(args.planned, where="--planned")).plan(_empty_plan())
    if args.config:
        if args.history:
            raise UsageError("--history goes with --patient or --profile; --config reads the gateway's store")
        twin, note = gateway_twin(args.config)
    else:
        if not args.history:
            raise UsageError("--history H.csv is required with --patient or --profile")
        history = History.from_csv(args.history)
        setup = start_twin(args, history)
        twin, note = setup.twin, setup.note
        feed(twin, history, setup.feed_from, history.last_minute)
    report = twin.whatif(scenarios, horizon_min=args.horizon, planned=planned)
    p10, p50, p90 = twin.glucose_now()
    print(
        f"What-if on the twin ({note}) at minute {report.issued_minute}: glucose now "
        f"{p50:.0f} mg/dL (80 % range {p10:.0f}-{p90:.0f}); next {report.horizon_min} min, "
        f"as planned = scheduled basal{' + ' + args.planned if args.planned else ''}."
    )
    print(report.format())
    print(
        "min/min10%/end: median and 10 % quantile of glucose (mg/dL); % of time; P(<70): share of outcomes."
    )
    if args.out:
        cols: dict[str, list[Any]] = {
            k: [] for k in ("scenario", "minute", "p10_mg_dl", "p50_mg_dl", "p90_mg_dl")
        }
        for o in report.outcomes:
            n = o.minutes.size
            cols["scenario"].extend([o.name] * n)
            cols["minute"].extend(o.minutes.tolist())
            cols["p10_mg_dl"].extend(o.p10_mg_dl.tolist())
            cols["p50_mg_dl"].extend(o.p50_mg_dl.tolist())
            cols["p90_mg_dl"].extend(o.p90_mg_dl.tolist())
        try:
            write_table(args.out, cols, digits=1)
        except OSError as exc:
            raise UsageError(f"cannot write {args.out}: {exc.strerror}") from None
        print(f"Trajectories written to {args.out}")
    return 0


def gateway_twin(config_path: str) -> tuple[Any, str]:
    """The twin of the gateway configured by ``config_path`` and a note saying how fresh it is."""
    from edgetwin.cli import UsageError
    from edgetwin.cli._gateway_args import open_store_readonly
    from edgetwin.gateway import load_config
    from edgetwin.gateway.runtime import default_twin_factory
    from edgetwin.gateway.snapshot import load_twin
    from edgetwin.timeutil import utc_now

    cfg = load_config(config_path)
    now = utc_now() if cfg.clock.kind == "real" else None
    with open_store_readonly(cfg.data_dir) as store:
        latest = store.latest_cgm(usable=True)
        if now is None:  # a bench or demo clock: "now" is the gateway's last reading
            now = latest.time_utc if latest is not None else utc_now()
        snap = load_twin(store, default_twin_factory(cfg), cfg.profile, now)
    if snap.checkpoint is None and snap.replayed == 0:
        raise UsageError(f"the gateway at {cfg.data_dir} has no twin checkpoint and no readings yet")
    when = snap.minutes.time(snap.twin.minute)
    source = (
        f"checkpoint of {snap.checkpoint.time_utc:%Y-%m-%d %H:%M} UTC"
        if snap.checkpoint is not None
        else "no checkpoint: rebuilt from stored readings"
    )
    age_min = (now - when).total_seconds() / 60.0
    stale = f"; WARNING: {age_min:.0f} min old, the gateway has no newer data" if age_min > 15 else ""
    return (
        snap.twin,
        f"gateway at {cfg.data_dir}, {source} + {snap.replayed} stored records, as of {when:%H:%M} UTC{stale}",
    )


def _empty_plan() -> Any:
    from edgetwin.twin.forecast import PlannedInputs

    return PlannedInputs()
