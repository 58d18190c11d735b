"""``edgetwin forecast``: glucose forecast with 10/50/90 % quantiles from the end of a history.

Contract (keep it stable): ``edgetwin forecast (--patient NAME | --profile PROFILE.toml)
--history H.csv --horizon MIN --out F.csv``. ``H.csv``: ``minute``, ``cgm_mg_dl`` (empty where
there is no reading), ``cho_g`` (announced at that minute), ``insulin_u`` (delivered during that
minute, basal included), as ``edgetwin simulate --cgm-seed N --out`` writes it. ``F.csv``:
``minute``, ``p10_mg_dl``, ``p50_mg_dl``, ``p90_mg_dl`` every 5 min after the history's last
minute. The quantiles are for the CGM reading the patient will see, with the twin's learned
error model applied (:mod:`edgetwin.twin.correction`).

This module also holds the options the twin commands share (``backtest``, ``whatif``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from edgetwin.twin.daypart import DaypartSensitivity
    from edgetwin.twin.history import History
    from edgetwin.twin.twin import Twin

__all__ = ["TwinSetup", "add_twin_arguments", "register", "start_twin"]


def add_twin_arguments(p: argparse.ArgumentParser, *, gateway: bool = False) -> None:
    """The starting-twin and history options of ``forecast``, ``backtest`` and ``whatif``
    (``gateway``: also ``--config FILE``, the twin a gateway runs, with no history needed)."""
    src = p.add_mutually_exclusive_group(required=True)
    if gateway:
        src.add_argument(
            "--config",
            metavar="FILE",
            help="the gateway's twin now: its last checkpoint and the readings stored since (read-only)",
        )
    src.add_argument(
        "--patient", metavar="NAME", help="start from this known virtual patient (adult#001 ...)"
    )
    src.add_argument(
        "--profile",
        metavar="PROFILE.toml",
        help="start from a therapy profile alone and personalise from the history (format: README)",
    )
    p.add_argument(
        "--history",
        metavar="H.csv",
        required=not gateway,
        help="minute,cgm_mg_dl,cho_g,insulin_u" + (" (with --patient or --profile)" if gateway else ""),
    )
    p.add_argument(
        "--start-time",
        default="00:00",
        metavar="HH:MM",
        help="local time of day at minute 0 of the history (places the profile's basal schedule)",
    )
    p.add_argument("--sensor", default="Dexcom", help="CGM noise model: Dexcom, GuardianRT or Navigator")
    p.add_argument("--particles", type=int, default=None, help="particles in the filter (default 1024)")
    p.add_argument("--seed", type=int, default=0, help="seed of the filter's random draws")


@dataclass
class TwinSetup:
    """A starting twin for a history: feed it minutes ``feed_from``..end; ``before_issue`` (for
    backtests) re-personalises it nightly; ``note`` says what was done."""

    twin: Twin
    feed_from: int
    before_issue: Callable[[Twin, int], None] | None
    note: str
    dayparts: DaypartSensitivity | None = None


def start_twin(args: argparse.Namespace, history: History, *, rolling: bool = False) -> TwinSetup:
    """The twin the options describe, in "delivered" basal mode (histories report all insulin).

    ``--patient``: the known patient, fed the whole history. ``--profile``: the population prior
    made consistent with the profile, then personalised: for a forecast, identified in batch on
    the history (its last 14 days) and filtered over its last day; for a rolling backtest
    (``rolling``), learned online and re-identified every 24 h from the data seen so far.
    """
    from edgetwin.cli import UsageError
    from edgetwin.model.cohort import load_patient
    from edgetwin.therapy import load_profile
    from edgetwin.twin.daypart import posterior_with_dayparts
    from edgetwin.twin.filter import FilterConfig
    from edgetwin.twin.history import NightlyPersonaliser
    from edgetwin.twin.identify import identify
    from edgetwin.twin.prior import profile_prior
    from edgetwin.twin.sensor_model import SensorErrorModel
    from edgetwin.twin.twin import BasalSchedule, Twin

    hhmm = str(args.start_time)
    try:
        hh, mm = hhmm.split(":")
        minute_of_day = int(hh) * 60 + int(mm)
        if not (0 <= int(hh) < 24 and 0 <= int(mm) < 60):
            raise ValueError
    except ValueError:
        raise UsageError(f"--start-time {hhmm!r} is not HH:MM") from None
    if args.seed < 0:
        raise UsageError("--seed must be >= 0")
    try:
        config = FilterConfig() if args.particles is None else FilterConfig(particles=args.particles)
    except ValueError as exc:
        raise UsageError(f"--particles: {exc}") from None
    common: dict[str, Any] = {
        "sensor": SensorErrorModel.from_spec(args.sensor),
        "config": config,
        "seed": args.seed,
        "basal_mode": "delivered",
    }

    def first_reading(after: int) -> float | None:
        cgm = history.cgm_mg_dl[after:]
        seen = cgm[np.isfinite(cgm)]
        return float(seen[0]) if seen.size else None

    if args.patient:
        twin = Twin.from_patient(
            load_patient(args.patient),
            minute_of_day_at_zero=minute_of_day,
            initial_glucose_mg_dl=first_reading(0),
            **common,
        )
        return TwinSetup(twin, 0, None, f"known patient {args.patient}")
    profile = load_profile(args.profile)
    prior = profile_prior(profile)
    schedule = BasalSchedule.from_profile(profile, minute_of_day)
    if rolling:
        twin = Twin(prior, schedule, initial_glucose_mg_dl=first_reading(0), **common)
        nightly = NightlyPersonaliser(prior, history)
        return TwinSetup(twin, 0, nightly, "profile prior, learned online and re-identified every 24 h")
    if history.minutes < 6 * 60:
        twin = Twin(prior, schedule, initial_glucose_mg_dl=first_reading(0), **common)
        return TwinSetup(twin, 0, None, "profile prior, learned online (history under 6 h: no batch step)")
    res = identify(prior, history)
    posterior, dayparts = posterior_with_dayparts(res, history, minute_of_day)
    start = max(0, history.last_minute - 1439)
    twin = Twin(posterior, schedule, start_minute=start, initial_glucose_mg_dl=first_reading(start), **common)
    note = (
        f"personalised in batch from {res.days:.1f} days ({res.evaluations} model runs, {res.seconds:.1f} s), "
        f"then filtered over the last {history.last_minute - start + 1} min"
    )
    return TwinSetup(twin, start, None, note, dayparts)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "forecast",
        help="forecast glucose with 10/50/90 %% quantiles from a history",
        description=(
            "Run the twin over a history (CGM, announced carbs, delivered insulin) and forecast the "
            "CGM every 5 minutes after its last minute, with calibrated 10/50/90 %% quantiles."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_twin_arguments(p)
    p.add_argument("--horizon", type=int, required=True, metavar="MIN", help="minutes ahead (5-1440)")
    p.add_argument("--out", metavar="F.csv", required=True, help="minute,p10_mg_dl,p50_mg_dl,p90_mg_dl")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from edgetwin.cli import UsageError
    from edgetwin.csvfiles import write_table
    from edgetwin.twin.history import History, feed

    if not 5 <= args.horizon <= 1440:
        raise UsageError("--horizon must be in [5, 1440] minutes")
    history = History.from_csv(args.history)
    setup = start_twin(args, history)
    twin = setup.twin
    feed(twin, history, setup.feed_from, history.last_minute)
    fc = twin.forecast(args.horizon - args.horizon % 5)
    try:
        write_table(
            args.out,
            {
                "minute": fc.minutes.tolist(),
                "p10_mg_dl": fc.p10_mg_dl,
                "p50_mg_dl": fc.p50_mg_dl,
                "p90_mg_dl": fc.p90_mg_dl,
            },
            digits=1,
        )
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc.strerror}") from None
    last = history.cgm_mg_dl[history.cgm_mg_dl == history.cgm_mg_dl]
    print(
        f"Twin: {setup.note}. History: {history.minutes} min, {last.size} CGM readings, "
        f"last {last[-1]:.0f} mg/dL."
    )
    print(f"Forecast from minute {fc.issued_minute} (CGM, mg/dL; 80 % of outcomes between p10 and p90):")
    print(f"{'ahead':>7}{'p10':>7}{'p50':>7}{'p90':>7}")
    for h in (15, 30, 60, 90, 120, 180, 240):
        if h <= fc.horizons_min[-1]:
            p10, p50, p90 = fc.at(h)
            print(f"{h:>4} min{p10:7.0f}{p50:7.0f}{p90:7.0f}")
    if args.profile:
        print("Personalised parameters (posterior mean, sd, 10-90 % range):")
        print(twin.parameters().format())
        if setup.dayparts is not None:
            print(setup.dayparts.format())
    print(f"Forecast every 5 min written to {args.out}")
    return 0
