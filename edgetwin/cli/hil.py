"""``edgetwin hil``: hardware-in-the-loop benches — the real gateway, simulated (or real) devices,
a virtual patient and the cloud twin, in accelerated time, judged by a scenario's assertions.

  edgetwin hil list                               the scenario library, with descriptions
  edgetwin hil check SCENARIO...                  validate scenario files (errors name the key)
  edgetwin hil run SCENARIO [--report DIR]        run one; exit 0 when every assertion holds,
                                                  1 when one fails (the report says which)

SCENARIO is a file or the name of a library scenario (``edgetwin hil list``). The report folder
gets ``report.md``, ``report.json``, ``overview.png`` and ``run/`` (the gateway's configuration,
store and log, and the cloud's database).

Real hardware: ``--device cgm=ble:AA:BB:CC:DD:EE:FF`` or ``--device pump=serial:/dev/ttyUSB0``
points a role at a real device (the rest stay simulated); the clock then runs in real time.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "hil",
        help="hardware-in-the-loop benches: scenarios, faults, reports",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    hs = p.add_subparsers(dest="hil_command", metavar="ACTION", required=True)

    r = hs.add_parser("run", help="run a scenario and write its report")
    r.add_argument("scenario", metavar="SCENARIO", help="a scenario file, or a library scenario's name")
    r.add_argument("--report", metavar="DIR", help="report folder (default: hil-reports/NAME)")
    r.add_argument("--speed", type=float, help="clock seconds per real second (default: the scenario's)")
    r.add_argument("--hours", type=float, help="run only the first HOURS of the scenario")
    r.add_argument("--short", action="store_true", help="run the scenario's short (CI) version")
    r.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="ROLE=NAME",
        help="a real device for a role, e.g. cgm=ble:AA:BB:CC:DD:EE:FF or pump=serial:/dev/ttyUSB0",
    )
    r.add_argument("--no-plots", action="store_true", help="skip overview.png (no matplotlib needed)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(handler=_run)

    c = hs.add_parser("check", help="validate scenario files")
    c.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    c.set_defaults(handler=_check)

    ls = hs.add_parser("list", help="the scenario library")
    ls.set_defaults(handler=_list)


def _resolve(name: str) -> Any:
    from pathlib import Path

    from hil import SCENARIO_DIR
    from hil.scenario import load_scenario

    path = Path(name)
    if not path.exists() and "/" not in name:
        candidate = SCENARIO_DIR / (name if name.endswith(".toml") else f"{name}.toml")
        if candidate.exists():
            path = candidate
    return load_scenario(path)


def _list(args: argparse.Namespace) -> int:
    import textwrap

    from hil import library
    from hil.scenario import load_scenario

    for path in library():
        s = load_scenario(path)
        kinds = sorted({f.kind for f in s.faults}) or ["no faults"]
        print(
            f"{s.name}  ({s.hours:g} h, short {s.short_hours:g} h, {s.mode}, gateway {s.run}; {', '.join(kinds)})"
        )
        print(textwrap.fill(s.description, 100, initial_indent="    ", subsequent_indent="    "))
    return 0


def _check(args: argparse.Namespace) -> int:
    for name in args.scenarios:
        s = _resolve(name)
        print(f"{s.source}: ok ({s.hours:g} h, {len(s.faults)} faults, {len(s.assertions)} assertions)")
    return 0


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import shutil
    from pathlib import Path

    from edgetwin.cli import UsageError
    from hil.bench import BenchOptions, run_scenario

    s = _resolve(args.scenario)
    overrides: dict[str, str] = {}
    for item in args.device:
        role, sep, name = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--device {item!r}: write ROLE=NAME, e.g. cgm=ble:AA:BB:CC:DD:EE:FF")
        overrides[role.strip()] = name.strip()
    if overrides:
        s = s.with_devices(overrides)
    hours = s.short_hours if args.short else args.hours
    if hours is not None and not 0 < hours <= s.hours:
        raise UsageError(f"--hours must be in (0, {s.hours:g}]")
    if args.speed is not None and not 1 <= args.speed <= 20000:
        raise UsageError("--speed must be in [1, 20000]")
    out = Path(args.report or Path("hil-reports") / s.name)
    if out.exists() and any(out.iterdir()) and not ((out / "run").exists() or (out / "report.json").exists()):
        raise UsageError(f"{out} exists and is not a HIL report folder; choose another --report")
    if out.exists() and (out / "run").exists():
        shutil.rmtree(out / "run")
    out.mkdir(parents=True, exist_ok=True)
    length = hours if hours is not None else s.hours
    speed = args.speed or s.speed
    print(
        f"HIL scenario {s.name}: {s.patient}, {length:g} h, {s.mode}, gateway {s.run}, x{speed:g} "
        f"(about {length * 3600 / speed:.0f} s plus start-up)."
    )
    bar = None if args.quiet else _Progress()
    opts = BenchOptions(out, speed=args.speed, hours=hours, plots=not args.no_plots, progress=bar)
    result = asyncio.run(run_scenario(s, opts))
    if bar is not None:
        bar.done()
    for a in result.report["assertions"]:
        mark = {"pass": "ok  ", "fail": "FAIL", "skip": "skip"}[a["outcome"]]
        known = (
            f" [known issue: {a['known_issue']}]" if a["outcome"] == "fail" and a.get("known_issue") else ""
        )
        print(f"  {mark} {a['label']}: {a['detail']}{known}")
    verdict = "PASSED" if result.passed else "FAILED"
    also = "report.json" if args.no_plots else "report.json, overview.png"
    print(f"{verdict} in {result.wall_s:.0f} s. Report: {result.report_md} (also {also})")
    return 0 if result.passed else 1


class _Progress:
    """``[#####-----]  52 %  glucose 123 mg/dL  faults: disconnect cgm`` on a terminal; a line
    per 10 % otherwise."""

    def __init__(self, width: int = 30) -> None:
        import sys

        self.stream = sys.stderr
        self.tty = self.stream.isatty()
        self.width = width
        self._decile = -1

    def __call__(self, frac: float, line: str) -> None:
        if self.tty:
            n = int(round(frac * self.width))
            self.stream.write(f"\r[{'#' * n}{'-' * (self.width - n)}] {frac * 100:5.1f} %  {line[:70]:<70}")
            self.stream.flush()
            return
        decile = int(frac * 10 + 1e-9)
        if decile != self._decile:
            self._decile = decile
            print(f"{decile * 10:3d} %  {line}", file=self.stream, flush=True)

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
