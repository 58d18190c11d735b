"""The ``edgetwin`` command line.

Each sub-command lives in its own module under ``edgetwin.cli`` with a ``register(subparsers)``
function; heavy imports happen inside the handlers so ``edgetwin --help`` stays fast. Errors the
user can fix (bad files, bad flags, bad configuration) print one line to stderr and exit 2;
nothing the user typed ever produces a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from edgetwin.errors import EdgeTwinError

__all__ = ["main"]

# Sub-command modules, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "edgetwin.cli.simulate",
    "edgetwin.cli.bench",
    "edgetwin.cli.devices",
    "edgetwin.cli.cloud",
    "edgetwin.cli.warmup",
    "edgetwin.cli.run",
    "edgetwin.cli.status",
    "edgetwin.cli.history",
    "edgetwin.cli.config",
    "edgetwin.cli.demo",
    "edgetwin.cli.forecast",
    "edgetwin.cli.backtest",
    "edgetwin.cli.whatif",
    "edgetwin.cli.trial",
    "edgetwin.cli.hil",
)


class UsageError(EdgeTwinError):
    """A command-line problem the user can fix; printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgetwin",
        description="EdgeTwin: a personal glucose-insulin digital twin for the patient's gateway.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.handler(args)
    except EdgeTwinError as exc:
        print(f"edgetwin {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgetwin {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return int(result or 0)
