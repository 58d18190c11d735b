"""``edgetwin status``: what the gateway sees now (glucose, forecast, suggestion, alarms, health).

Asks the running gateway's status endpoint (``http://127.0.0.1:PORT/api/status``, the port from
the data directory's run file); when no gateway runs, reads the store (read-only) and says so.
``--json`` prints the endpoint's document unchanged. Exit status 0, or 1 when an urgent alarm
is active or the gateway is not running, so scripts can watch it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from edgetwin.cli._gateway_args import add_location, data_dir, open_store_readonly

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "status", help="show the gateway's current state", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add_location(p)
    p.add_argument("--json", action="store_true", help="print the status document as JSON")
    p.set_defaults(handler=run)


def _fetch(port: int) -> dict[str, Any] | None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5) as resp:
            doc: dict[str, Any] = json.loads(resp.read())
            return doc
    except (urllib.error.URLError, OSError, ValueError):
        return None


def run(args: argparse.Namespace) -> int:
    directory = data_dir(args)
    run_file = directory / "gateway.run.json"
    doc = None
    if run_file.exists():
        try:
            port = json.loads(run_file.read_text("utf-8")).get("status_port")
        except (OSError, ValueError):
            port = None
        if isinstance(port, int):
            doc = _fetch(port)
    if doc is None:
        return _offline(args, directory)
    if args.json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        _print(doc)
    return 1 if any(a["severity"] == "urgent" for a in doc["alarms"]) else 0


def _print(doc: dict[str, Any]) -> None:
    g = doc["glucose"]
    if g:
        trend = f" {g['trend_arrow']}" if g["trend_arrow"] else ""
        print(f"glucose     {g['mg_dl']:.0f} mg/dL{trend}  ({g['age_min']:.0f} min ago)")
    else:
        print("glucose     no reading yet")
    fc = doc["forecast"]
    if fc and fc["points"]:
        for p in fc["points"]:
            if p["time_utc"] and p is fc["points"][min(5, len(fc["points"]) - 1)]:
                print(
                    f"forecast    {p['p50_mg_dl']:.0f} mg/dL at {p['time_utc'][11:16]} UTC "
                    f"(80 % band {p['p10_mg_dl']:.0f}-{p['p90_mg_dl']:.0f})"
                )
    s = doc["suggestion"]
    if s:
        print(f"suggestion  {s.get('summary') or s['kind']}: {s.get('reason', '')}")
    elif not doc["suggestions"]["available"]:
        print(f"suggestion  off: {doc['suggestions']['detail']}")
    for a in doc["alarms"]:
        print(f"ALARM       [{a['severity']}] {a['message']}")
    for d in doc["devices"]:
        print(
            f"device      {d['role']:<10} {d['name']:<28} {d['state']:<10} {d['records']} records, {d['restarts']} restarts"
        )
    sy = doc["sync"]
    print(
        f"sync        {sy['state']}" + (f", {sy['backlog']} waiting" if sy.get("backlog") is not None else "")
    )
    print(f"storage     {doc['store']['state']} {doc['store']['detail']}".rstrip())
    print(f"twin        {doc['twin']['model']}; checkpoint {doc['twin']['checkpoint_utc'] or 'none yet'}")


def _offline(args: argparse.Namespace, directory: Any) -> int:
    from datetime import timedelta

    from edgetwin.timeutil import utc_now

    with open_store_readonly(directory) as store:
        latest = store.latest_cgm(usable=True)
        cp = store.last_checkpoint()
        now = utc_now()
        alarms = store.alarms(now - timedelta(days=1), now + timedelta(days=1), unacknowledged_only=True)
        backlog = store.outbox_backlog()
    doc = {
        "running": False,
        "glucose": None
        if latest is None
        else {"mg_dl": latest.glucose_mg_dl, "time_utc": latest.time_utc.isoformat()},
        "checkpoint_utc": None if cp is None else cp.time_utc.isoformat(),
        "alarms_last_day": len(alarms),
        "sync_backlog": backlog,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"gateway     NOT RUNNING (data in {directory})")
        if latest is not None:
            print(f"last reading {latest.glucose_mg_dl} mg/dL at {latest.time_utc:%Y-%m-%d %H:%M} UTC")
        print(f"checkpoint  {doc['checkpoint_utc'] or 'none'}; {backlog} records waiting for sync")
    return 1
