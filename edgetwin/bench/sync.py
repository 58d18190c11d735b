"""``edgetwin bench sync``: how small the sync is and how fast the cloud ingests.

Size: one simulated patient-day (:func:`sync.demo.patient_day`: 5-minute CGM, boluses and hourly
basal, announced carbs, a suggestion every 5 minutes with its safety-gate decisions, a twin
snapshot every 5 minutes) encoded as the uploader sends it — at several upload cadences — next
to the same data as Nightscout JSON documents (entries, treatments, devicestatus), raw and
gzip-compressed, built in the same run. Readings are checked to decode bit-for-bit. Pump status
(also every 5 minutes) is reported separately; the opaque twin blob, sent at most daily, too.

Ingest: a real cloud server (``edgetwin cloud serve``, SQLite, in its own process) on loopback;
client threads post signed 5-minute batches from many gateways for a fixed time; sustained
batches/s and latency percentiles, next to the same server's ``/health`` round trip as the
HTTP floor. Target: >= 500 batches/s.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patient", default="adult#001", help="virtual patient for the size figures")
    p.add_argument("--seconds", type=float, default=8.0, help="duration of each ingest measurement")
    p.add_argument("--clients", type=int, default=16, help="client threads posting batches")
    p.add_argument("--gateways", type=int, default=200, help="distinct gateways posting")
    p.add_argument(
        "--blob-bytes", type=int, default=4096, help="size of the (opaque) twin blob in the demo day"
    )
    p.add_argument("--skip-ingest", action="store_true", help="only the size figures")


def _wire(records: list[object]) -> list[Any]:
    from edgetwin.store.rows import table_for
    from sync.codec import WireRecord

    return [WireRecord(table_for(r).name, i + 1, r, "device") for i, r in enumerate(records)]


def _bytes_at_cadence(wire: list[Any], minutes: int) -> int:
    from edgetwin.timeutil import to_epoch_ms
    from sync.codec import encode_batch

    groups: dict[int, list[Any]] = {}
    for w in wire:
        t = getattr(w.record, "time_utc", None) or w.record.created_utc
        groups.setdefault(to_epoch_ms(t) // (minutes * 60_000), []).append(w)
    return sum(
        len(encode_batch("gw-7f3a9c21", i + 1, 0, g, blobs="none")) for i, g in enumerate(groups.values())
    )


def _nightscout_json(records: list[object], with_pump: bool) -> list[dict[str, Any]]:
    from edgetwin.messages import CarbEntry, CgmReading, InsulinDelivery, PumpStatus, Suggestion
    from edgetwin.store.records import TwinCheckpoint
    from sync.nightscout.documents import devicestatus, entry, treatment

    by_time: dict[Any, dict[str, Any]] = {}
    docs: list[dict[str, Any]] = []
    for r in records:
        if isinstance(r, CgmReading):
            e = entry(r)
            if e:
                docs.append(e)
        elif isinstance(r, (CarbEntry, InsulinDelivery)):
            docs.append(treatment(r))
        elif isinstance(r, Suggestion):
            by_time.setdefault(r.created_utc, {})["s"] = r
        elif isinstance(r, PumpStatus):
            by_time.setdefault(r.time_utc, {})["p"] = r
    for r in records:
        if isinstance(r, TwinCheckpoint):
            same = by_time.get(r.time_utc, {})
            docs.append(devicestatus(r, same.get("s"), same.get("p") if with_pump else None))
    return docs


def _sizes(args: argparse.Namespace) -> dict[str, Any]:
    from datetime import UTC, datetime

    from edgetwin.messages import CgmReading, PumpStatus
    from sync.codec import decode_batch, encode_batch
    from sync.demo import patient_day

    t0 = time.perf_counter()
    records = patient_day(datetime(2024, 3, 1, tzinfo=UTC), patient=args.patient, blob_size=args.blob_bytes)
    gen_s = time.perf_counter() - t0
    core = [r for r in records if not isinstance(r, PumpStatus)]
    wire, wire_all = _wire(core), _wire(records)
    out: dict[str, Any] = {"records_per_day": len(core), "generate_s": round(gen_s, 2)}
    for label, minutes in (("5min", 5), ("hourly", 60), ("daily", 1440)):
        out[f"bytes_per_day_{label}"] = _bytes_at_cadence(wire, minutes)
    out["bytes_per_day_hourly_with_pump_status"] = _bytes_at_cadence(wire_all, 60)
    docs = _nightscout_json(core, with_pump=False)
    ns_raw = sum(len(json.dumps(d).encode()) for d in docs)
    ns_gzip = len(gzip.compress("\n".join(json.dumps(d) for d in docs).encode(), 9))
    out["nightscout_json_bytes"] = ns_raw
    out["nightscout_json_gzip_bytes"] = ns_gzip
    out["ratio_vs_nightscout_json"] = round(ns_raw / out["bytes_per_day_hourly"], 1)
    out["ratio_vs_nightscout_gzip"] = round(ns_gzip / out["bytes_per_day_hourly"], 1)
    sent = [r for r in core if isinstance(r, CgmReading)]
    got = [w.record for w in decode_batch(encode_batch("gw", 1, 0, wire)).records if w.kind == "cgm"]
    out["readings_lossless"] = got == sent
    out["twin_blob_bytes_daily"] = args.blob_bytes
    return out


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), for a load-independent cost figure."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ingest(args: argparse.Namespace) -> dict[str, Any]:
    import requests

    from edgetwin.messages import CgmReading, Suggestion, SuggestionKind
    from edgetwin.store.records import TwinCheckpoint
    from edgetwin.timeutil import from_epoch_ms
    from sync.auth import Credential, sign_request
    from sync.cloud.db import CloudDB
    from sync.codec import WireRecord, encode_batch

    tmp = tempfile.mkdtemp(prefix="edgetwin-bench-sync-")
    url = f"sqlite:///{tmp}/cloud.db"
    db = CloudDB(url)
    creds = [Credential.issue(f"gw-{i:05d}", f"patient-{i:05d}") for i in range(args.gateways)]
    for c in creds:
        db.add_gateway(c.gateway_id, c.patient_id, c.key)
    db.close()
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "edgetwin", "cloud", "serve", "--database-url", url, "--port", str(port),
         "--log-level", "warning"],
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(base + "/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("cloud server did not start")
            time.sleep(0.1)

        def batch(cred: Credential, seq: int) -> bytes:
            t = from_epoch_ms(1_709_251_200_000 + seq * 300_000)
            recs = [
                WireRecord("cgm", seq, CgmReading(time_utc=t, glucose_mg_dl=float(100 + seq % 80), device_id="cgm",
                                                  sequence=seq * 5)),
                WireRecord("suggestion", seq, Suggestion(t, t, SuggestionKind.KEEP_BASAL, "forecast in range")),
                WireRecord("checkpoint", seq, TwinCheckpoint(t, "twin", 1, None, {"glucose_mg_dl": 101.5, "iob_u": 1.2})),
            ]  # fmt: skip
            return encode_batch(cred.gateway_id, seq, 0, recs)

        def hammer(path: str, make: Any, seconds: float) -> tuple[int, list[float], int]:
            latencies: list[float] = []
            errors = 0
            lock = threading.Lock()
            stop = time.monotonic() + seconds

            def worker(k: int) -> None:
                nonlocal errors
                # A lean keep-alive client (http.client) so the clients' own CPU, on the same two
                # cores, disturbs the server as little as possible.
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                n = 0
                mine: list[float] = []
                while time.monotonic() < stop:
                    cred = creds[(k + n * args.clients) % len(creds)]
                    n += 1
                    method, body = make(cred, k, n)
                    headers = sign_request(cred, method, path, body, now_ms=int(time.time() * 1000))
                    if body:
                        headers["Content-Type"] = "application/msgpack"
                    t1 = time.perf_counter()
                    conn.request(method, path, body=body or None, headers=headers)
                    r = conn.getresponse()
                    r.read()
                    mine.append(time.perf_counter() - t1)
                    if r.status != 200:
                        with lock:
                            errors += 1
                conn.close()
                with lock:
                    latencies.extend(mine)

            threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.clients)]
            t0 = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            return len(latencies), sorted(latencies), errors, time.perf_counter() - t0  # type: ignore[return-value]

        seqs: dict[str, int] = {}

        def make_batch(cred: Credential, k: int, n: int) -> tuple[str, bytes]:
            seqs[cred.gateway_id] = seqs.get(cred.gateway_id, 0) + 1
            return "POST", batch(cred, seqs[cred.gateway_id])

        n_h, lat_h, err_h, el_h = hammer("/health", lambda c, k, n: ("GET", b""), args.seconds / 2)  # type: ignore[misc]
        cpu0 = _cpu_seconds(server.pid)
        n_b, lat_b, err_b, el_b = hammer("/v1/batches", make_batch, args.seconds)  # type: ignore[misc]
        cpu1 = _cpu_seconds(server.pid)
        cpu_ms = None if cpu0 is None or cpu1 is None or not n_b else round((cpu1 - cpu0) / n_b * 1000, 3)
        pct = lambda xs, q: round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 2) if xs else None  # noqa: E731
        stored = sum(seqs.values())
        check = CloudDB(url)
        in_cloud = sum(check.count(c.patient_id, "cgm") for c in creds)
        check.close()
        return {
            "ingest_batches_per_s": round(n_b / el_b, 1),
            "ingest_p50_ms": pct(lat_b, 0.50),
            "ingest_p99_ms": pct(lat_b, 0.99),
            "ingest_errors": err_b,
            "ingest_server_cpu_ms_per_batch": cpu_ms,
            "ingest_capacity_per_core_batches_per_s": round(1000 / cpu_ms, 1) if cpu_ms else None,
            "load_average_1min": round(os.getloadavg()[0], 2),
            "ingest_stored_exactly": in_cloud == stored - err_b,
            "health_requests_per_s": round(n_h / el_h, 1),
            "health_p99_ms": pct(lat_h, 0.99),
            "health_errors": err_h,
        }
    finally:
        server.terminate()
        server.wait(timeout=10)


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = _sizes(args)
    print(
        "Bytes per patient-day (readings, treatments, suggestions + decisions, twin snapshots every 5 min):"
    )
    for label in ("5min", "hourly", "daily"):
        print(f"  uploaded {label:>6}: {sizes[f'bytes_per_day_{label}']:7d} B")
    print(f"  hourly incl. pump status every 5 min: {sizes['bytes_per_day_hourly_with_pump_status']} B")
    print(f"  Nightscout JSON, same data: {sizes['nightscout_json_bytes']} B "
          f"(gzip {sizes['nightscout_json_gzip_bytes']} B)")  # fmt: skip
    print(f"  ratio (hourly uploads): {sizes['ratio_vs_nightscout_json']}x smaller than JSON, "
          f"{sizes['ratio_vs_nightscout_gzip']}x smaller than gzip'd JSON; readings lossless: "
          f"{sizes['readings_lossless']}")  # fmt: skip
    print("  targets: <= 5000 B/day, >= 20x smaller, lossless readings")
    result = {"benchmark": "sync", **sizes}
    if not args.skip_ingest:
        ing = _ingest(args)
        print(f"Cloud ingest on loopback ({args.clients} client threads, {args.gateways} gateways, SQLite):")
        print(f"  batches: {ing['ingest_batches_per_s']} /s, p50 {ing['ingest_p50_ms']} ms, "
              f"p99 {ing['ingest_p99_ms']} ms, errors {ing['ingest_errors']}, stored exactly once: "
              f"{ing['ingest_stored_exactly']}")  # fmt: skip
        print(f"  server CPU per batch: {ing['ingest_server_cpu_ms_per_batch']} ms "
              f"(= {ing['ingest_capacity_per_core_batches_per_s']} batches/s per free core); "
              f"machine load average {ing['load_average_1min']} on {os.cpu_count()} cores")  # fmt: skip
        print(
            f"  baseline /health round trip: {ing['health_requests_per_s']} /s, p99 {ing['health_p99_ms']} ms"
        )
        print("  target: >= 500 batches/s")
        result.update(ing)
    return result
