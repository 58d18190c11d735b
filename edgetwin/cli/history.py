"""``edgetwin history``: what the gateway stored — readings, treatments, suggestions, safety-gate
decisions, alarms — oldest first, read-only (safe while the gateway runs).

``--hours H`` (default 24) back from now, or ``--since``/``--until`` ISO times; ``--kind`` picks
tables (default ``cgm,insulin,carbs,suggestion,decision,alarm``; also ``meter``, ``heart_rate``,
``pump_status``, ``pump_command``, ``command_result``, ``checkpoint``). ``--format csv`` columns:
``time_utc``, ``kind``, ``id``, ``value``, ``unit``, ``detail``; ``--format json``: one object per
line with the same keys.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import datetime, timedelta
from typing import Any

from edgetwin.cli._gateway_args import add_location, data_dir, open_store_readonly

__all__ = ["describe", "register"]

DEFAULT_KINDS = "cgm,insulin,carbs,suggestion,decision,alarm"
COLUMNS = ("time_utc", "kind", "id", "value", "unit", "detail")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "history", help="list what the gateway stored", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add_location(p)
    p.add_argument("--hours", type=float, default=24.0, help="how far back from now")
    p.add_argument("--since", metavar="ISO", help="start time (UTC ISO 8601), instead of --hours")
    p.add_argument("--until", metavar="ISO", help="end time (default: now)")
    p.add_argument("--kind", default=DEFAULT_KINDS, help="comma-separated record kinds")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(handler=run)


def _time(value: str, flag: str) -> datetime:
    from edgetwin.cli import UsageError
    from edgetwin.timeutil import UTC

    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag}: not an ISO time: {value!r}") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def describe(kind: str, record: Any) -> tuple[str, str, str]:
    """(value, unit, detail) of a stored record for listing."""
    r = record
    if kind in ("cgm", "meter"):
        v = "" if r.glucose_mg_dl is None else f"{r.glucose_mg_dl:g}"
        flags = ",".join(sorted(str(s) for s in getattr(r, "status", ()))) if kind == "cgm" else ""
        extra = " backfilled" if getattr(r, "backfilled", False) else ""
        return v, "mg/dL", f"{r.device_id}{extra}{' ' + flags if flags else ''}"
    if kind == "insulin":
        dur = f" over {r.duration_min:g} min" if r.duration_min else ""
        return f"{r.units:g}", "U", f"{r.kind}{dur} {r.device_id}"
    if kind == "carbs":
        return f"{r.grams:g}", "g", r.source
    if kind == "heart_rate":
        return str(r.heart_rate_bpm), "bpm", r.device_id
    if kind == "suggestion":
        amount = next((f"{v:g}" for v in (r.rate_u_per_h, r.units, r.carbs_g) if v is not None), "")
        unit = (
            "U/h" if r.rate_u_per_h is not None else "U" if r.units is not None else "g" if r.carbs_g else ""
        )
        return amount, unit, f"{r.kind}: {r.reason}"
    if kind == "decision":
        rules = "; ".join(f"{f.rule} ({f.action}): {f.message}" for f in r.findings)
        return str(r.outcome), "", f"suggestion {r.suggestion_id}: {rules}"
    if kind == "alarm":
        return r.severity, "", f"{r.kind}: {r.message}"
    if kind == "pump_status":
        return f"{r.reservoir_u:g}", "U reservoir", f"basal {r.basal_rate_u_per_h:g} U/h"
    if kind == "pump_command":
        return str(r.kind), "", r.command_id
    if kind == "command_result":
        return "confirmed" if r.confirmed else "NOT confirmed", "", f"{r.command_id} {r.detail}"
    if kind == "checkpoint":
        g = r.summary.get("glucose_mg_dl")
        return "" if g is None else f"{g:g}", "mg/dL", f"{r.format} v{r.version}"
    return "", "", str(r)


def run(args: argparse.Namespace) -> int:
    from edgetwin.cli import UsageError
    from edgetwin.timeutil import utc_now

    until = _time(args.until, "--until") if args.until else utc_now()
    since = _time(args.since, "--since") if args.since else until - timedelta(hours=args.hours)
    if since >= until:
        raise UsageError("--since must be before --until")
    kinds = [k.strip() for k in args.kind.split(",") if k.strip()]
    with open_store_readonly(data_dir(args)) as store:
        try:
            entries = store.history(since, until, kinds=kinds)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    rows = [(e.time_utc.isoformat(), e.kind, e.row_id, *describe(e.kind, e.record)) for e in entries]
    if args.format == "csv":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(COLUMNS)
        w.writerows(rows)
    elif args.format == "json":
        for row in rows:
            print(json.dumps(dict(zip(COLUMNS, row, strict=True)), ensure_ascii=False))
    else:
        for t, kind, _id, value, unit, detail in rows:
            print(f"{t[:19].replace('T', ' ')}  {kind:<11} {value:>8} {unit:<6} {detail}")
        print(
            f"{len(rows)} entries from {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC", file=sys.stderr
        )
    return 0
