"""``edgetwin bench NAME``: benchmarks that print figures next to a baseline run in the same
process, ending with one JSON line. Each benchmark is a module ``edgetwin.bench.NAME`` with
``add_arguments(parser)`` and ``run(args) -> dict``.
"""

from __future__ import annotations

import argparse
import importlib
import json
from typing import Any

__all__ = ["BENCHMARKS", "register"]

BENCHMARKS = {
    "model": "model kernels: patient-days/s, ensemble throughput, start-up, vs SciPy",
    "sync": "sync: bytes per patient-day vs Nightscout JSON; cloud ingest batches/s and p99 on loopback",
    "gateway": "gateway daemon: memory, warm start, CPU per 5-min cycle, a simulated day through the pipeline",
    "estimate": "living twin: forecast RMSE/coverage vs baselines, parameter recovery, update cost",
}


def register(sub: Any) -> None:
    p = sub.add_parser("bench", help="run a benchmark", description=__doc__)
    bsub = p.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name, help_text in BENCHMARKS.items():
        bp = bsub.add_parser(name, help=help_text, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module = f"edgetwin.bench.{name}"
        bp.set_defaults(handler=_runner(module))
        # Argument definitions are light; the heavy imports happen in run().
        importlib.import_module(module).add_arguments(bp)


def _runner(module: str) -> Any:
    def handler(args: argparse.Namespace) -> int:
        result = importlib.import_module(module).run(args)
        print(json.dumps(result, sort_keys=True))
        return 0

    return handler
