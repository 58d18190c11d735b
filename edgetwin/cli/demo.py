"""``edgetwin demo``: one simulated day through the real gateway, in accelerated time.

The gateway runs exactly as ``edgetwin run`` would, with simulated devices on a virtual patient
(from the public UVA/Padova cohort), a clock running ``--speed`` times faster than real time, a
progress bar, and at the end a summary plus a report folder (``report.md``, ``report.json``,
``day.svg``, the configuration and the store). While it runs, the status page is live at the
printed address.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="a simulated day through the real gateway (the main job)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--patient", default="adult#001", help="virtual patient (cohort name)")
    p.add_argument("--hours", type=float, default=24.0, help="simulated hours")
    p.add_argument("--seed", type=int, default=1, help="meals and sensor noise seed")
    p.add_argument("--speed", type=float, default=2400.0, help="clock seconds per real second")
    p.add_argument(
        "--out", default="edgetwin-demo", metavar="DIR", help="report folder (replaced if it holds a demo)"
    )
    p.add_argument("--status-port", type=int, default=0, help="status page port on 127.0.0.1 (0: any free)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import shutil
    from pathlib import Path

    from edgetwin.cli import UsageError
    from edgetwin.gateway.demo import DemoOptions, ProgressBar, run_demo
    from edgetwin.model.cohort import load_patient

    load_patient(args.patient)
    if not 0 < args.hours <= 24 * 14:
        raise UsageError("--hours must be in (0, 336]")
    if not 1 <= args.speed <= 20000:
        raise UsageError("--speed must be in [1, 20000]")
    out = Path(args.out)
    if out.exists():
        if not (out / "gateway.toml").exists() or not (out / "report.json").exists():
            if any(out.iterdir()):
                raise UsageError(f"{out} exists and is not a demo folder; choose another --out")
        else:
            shutil.rmtree(out)
    opts = DemoOptions(out, args.patient, args.hours, args.seed, args.speed, args.status_port)
    print(
        f"EdgeTwin demo: the gateway with simulated devices on virtual patient {args.patient}, "
        f"{args.hours:g} h at x{args.speed:g} (about {args.hours * 3600 / args.speed:.0f} s)."
    )
    bar = ProgressBar()
    announced: list[int] = []

    def progress(frac: float, gw: Any) -> None:
        if not announced and gw.status_port:
            announced.append(gw.status_port)
            print(f"Status page while it runs: http://127.0.0.1:{gw.status_port}/", flush=True)
        bar(frac, gw)

    result = asyncio.run(run_demo(opts, progress))
    s = result.summary
    print()
    print(f"Done in {result.wall_s:.0f} s. Twin: {s['twin_model']}.")
    cm = s.get("cgm_metrics")
    if cm:
        print(
            f"  glucose   mean {cm['mean_mg_dl']} mg/dL, time in range 70-180 {cm['tir_70_180_pct']} %, "
            f"below 70 {cm['tbr_70_pct']} %, above 180 {cm['tar_180_pct']} %  ({s['cgm_readings']} CGM readings)"
        )
    for h, f in s["forecast_accuracy"].items():
        print(
            f"  forecast  {h.replace('_', ' ')}: MAE {f['mae_mg_dl']} mg/dL, "
            f"80 % band covered {f['band_80_coverage_pct']} % of {f['forecasts']}"
        )
    print(f"  insulin   {s['insulin_u']} U delivered, {s['carbs_g']} g carbohydrate announced")
    print(f"  suggest   {s['suggestions']} suggestions {s['suggestions_by_kind'] or ''}")
    print(f"  alarms    {s['alarms']} {s['alarms_by_kind'] or ''}")
    print(
        f"  store     {s['stored_rows'].get('cgm', 0)} readings durable; checkpoint {s['last_checkpoint_utc']}"
    )
    c = s.get("cloud")
    if c:
        print(
            f"  cloud     {c['cgm_readings']} CGM readings in the local cloud twin ({c['uploaded_batches']} batches, "
            f"sync {c['sync_state']}); outbox left: {s['sync_backlog']}"
        )
    print(f"Report: {result.report_md} (also report.json, day.svg)")
    print(
        f"Look around: edgetwin history --config {out / 'gateway.toml'} "
        f"--since {s['start_utc'][:16]} --until {s['end_utc'][:16]}"
    )
    return 0
