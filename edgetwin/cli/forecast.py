"""``edgetwin forecast``: glucose forecast with 10/50/90 % quantiles from the end of a history.

Contract (keep it stable): ``edgetwin forecast (--patient NAME | --profile PROFILE.toml)
--history H.csv --horizon MIN --out F.csv``. ``H.csv``: ``minute``, ``cgm_mg_dl`` (empty where
there is no reading), ``cho_g`` (announced at that minute), ``insulin_u`` (delivered during that
minute, basal included), as ``edgetwin simulate --cgm-seed N --out`` writes it. ``F.csv``:
``minute``, ``p10_mg_dl``, ``p50_mg_dl``, ``p90_mg_dl`` every 5 min after the history's last
minute. The quantiles are for the CGM reading the patient will see.

This module also holds the options the twin commands share (``backtest``, ``whatif``).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgetwin.twin.history import History
    from edgetwin.twin.twin import Twin

__all__ = ["add_twin_arguments", "register", "start_twin"]


def add_twin_arguments(p: argparse.ArgumentParser) -> None:
    """The starting-twin and history options of ``forecast``, ``backtest`` and ``whatif``."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--patient", metavar="NAME", help="start from this known virtual patient (adult#001 ...)"
    )
    src.add_argument(
        "--profile",
        metavar="PROFILE.toml",
        help="start from a therapy profile alone and personalise from the history (format: README)",
    )
    p.add_argument("--history", metavar="H.csv", required=True, help="minute,cgm_mg_dl,cho_g,insulin_u")
    p.add_argument(
        "--start-time",
        default="00:00",
        metavar="HH:MM",
        help="local time of day at minute 0 of the history (places the profile's basal schedule)",
    )
    p.add_argument("--sensor", default="Dexcom", help="CGM noise model: Dexcom, GuardianRT or Navigator")
    p.add_argument("--particles", type=int, default=None, help="particles in the filter (default 384)")
    p.add_argument("--seed", type=int, default=0, help="seed of the filter's random draws")


def start_twin(args: argparse.Namespace, history: History | None = None) -> Twin:
    """The starting twin the options describe (in "delivered" basal mode, for histories)."""
    from edgetwin.cli import UsageError
    from edgetwin.errors import ConfigError
    from edgetwin.model.cohort import load_patient
    from edgetwin.therapy import load_profile
    from edgetwin.twin.filter import FilterConfig
    from edgetwin.twin.sensor_model import SensorErrorModel
    from edgetwin.twin.twin import Twin

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
    if history is not None:
        first = history.cgm_mg_dl[history.cgm_mg_dl == history.cgm_mg_dl]
        common["initial_glucose_mg_dl"] = float(first[0]) if first.size else None
    if args.patient:
        return Twin.from_patient(load_patient(args.patient), minute_of_day_at_zero=minute_of_day, **common)
    profile = load_profile(args.profile)
    try:
        return Twin.from_profile(profile, minute_of_day_at_zero=minute_of_day, **common)
    except ConfigError:
        raise
    except ValueError as exc:
        raise UsageError(f"{args.profile}: {exc}") from None


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
    twin = start_twin(args, history)
    feed(twin, history, 0, history.last_minute)
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
        f"Twin ({twin.prior.description}) followed {history.minutes} min of history "
        f"({last.size} CGM readings, last {last[-1]:.0f} mg/dL)."
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
    print(f"Forecast every 5 min written to {args.out}")
    return 0
