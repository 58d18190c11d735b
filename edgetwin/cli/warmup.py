"""``edgetwin warmup``: compile and cache the numba kernels (run after install or upgrade)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("warmup", help="compile and cache the numba kernels", description=__doc__)
    p.add_argument("--quiet", action="store_true", help="print nothing")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from edgetwin.warmup import warm_up

    if not args.quiet:
        print("Compiling EdgeTwin's numba kernels (cached for later starts)...")
    seconds = warm_up(verbose=not args.quiet)
    if not args.quiet:
        print(f"Done in {seconds:.1f} s.")
    return 0
