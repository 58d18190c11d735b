"""Shared options of the commands that look at a gateway (``status``, ``history``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "/etc/edgetwin/gateway.toml"


def add_location(p: Any) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--config",
        metavar="FILE",
        help=f"the gateway configuration (default: $EDGETWIN_CONFIG or {DEFAULT_CONFIG})",
    )
    g.add_argument("--data-dir", metavar="DIR", help="the gateway's data directory instead of a config")


def data_dir(args: argparse.Namespace) -> Path:
    from edgetwin.cli import UsageError
    from edgetwin.gateway import load_config

    if args.data_dir:
        return Path(args.data_dir)
    path = args.config or os.environ.get("EDGETWIN_CONFIG") or DEFAULT_CONFIG
    if not args.config and not Path(path).exists():
        raise UsageError(f"no configuration at {path}; pass --config FILE or --data-dir DIR")
    return load_config(path).data_dir


def open_store_readonly(directory: Path) -> Any:
    from edgetwin.cli import UsageError
    from edgetwin.store import Store

    db = directory / "edgetwin.db"
    if not db.exists():
        raise UsageError(f"no gateway store at {db}")
    return Store.open(db, readonly=True, integrity="none")
