"""``edgetwin bench gateway``: the gateway daemon's footprint and speed, each next to a baseline
measured in the same run.

1. Memory: resident set (VmRSS) of a running ``edgetwin run`` process in steady state, reading a
   serial CGM (a simulator in its own process on a pty, :mod:`edgetwin.bench.serial_sim`) on an
   accelerated clock, next to a bare Python that imported numpy and numba.
2. Start-up: time from spawning ``edgetwin run`` to its status endpoint answering — cold (new
   data directory) as the baseline, then warm (existing store and twin checkpoint).
3. CPU: CPU seconds (user + system, all threads) the daemon used per 5 minutes of simulated
   operation, and the CPU of the decision cycle itself; baseline: the twin's update + forecast
   alone on the same data.
4. A simulated day through the full pipeline (devices → store → twin → forecast → decisions →
   outbox) in process at ``--speed``; baseline: the virtual patient simulating the same day alone.
   It also reports readings that arrived late or never (the pipeline must keep up).

Targets (issue 6): RSS ≤ 150 MB, warm start ≤ 3 s, CPU per 5-min cycle ≤ 50 ms, day ≤ 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run"]

TARGETS = {"rss_mb": 150.0, "warm_start_s": 3.0, "cpu_ms_per_5min": 50.0, "day_s": 60.0}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--speed", type=float, default=2880.0, help="clock factor of the simulated day (30 s/day)")
    p.add_argument("--measure-s", type=float, default=15.0, help="steady-state window of the daemon (real s)")
    p.add_argument("--patient", default="adult#001")


def _config(data: Path, tty: Path, factor: float, now: str) -> Path:
    text = f"""[gateway]
data_dir = "{data}"
[log]
level = "warning"
file = "{data.parent / "bench.log"}"
[status]
port = 0
[devices]
cgm = "serial:{tty}"
[clock]
kind = "scaled"
factor = {factor}
start_utc = "{now}"
anchor_utc = "{now}"
[profile]
weight_kg = 70
carb_ratio_g_per_u = 10
correction_factor_mg_dl_per_u = 40
basal = 1.0
[limits]
max_basal_u_per_h = 3
max_bolus_u = 10
"""
    path = data.parent / "gateway.toml"
    path.write_text(text)
    return path


def _env() -> dict[str, str]:
    root = Path(__file__).resolve().parents[2]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}


def _spawn(cfg: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "edgetwin", "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )


def _simulator(tty: Path, factor: float, now: str) -> subprocess.Popen[bytes]:
    """The CGM: a serial receiver simulator in its own process, as a real device is."""
    sim = subprocess.Popen(
        [sys.executable, "-m", "edgetwin.bench.serial_sim", "--path", str(tty), "--start", now,
         "--anchor", now, "--factor", str(factor)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not tty.exists():
        if time.monotonic() > deadline or sim.poll() is not None:
            sim.kill()
            raise RuntimeError("the serial simulator did not start")
        time.sleep(0.05)
    return sim


def _status(data: Path, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            port = json.loads((data / "gateway.run.json").read_text())["status_port"]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2) as r:
                doc: dict[str, Any] = json.loads(r.read())
                return doc
        except (OSError, ValueError, KeyError, urllib.error.URLError):
            time.sleep(0.02)
    raise RuntimeError("the gateway did not come up")


def _proc(pid: int) -> tuple[float, dict[str, float]]:
    """(CPU seconds, {VmRSS, VmHWM, RssAnon, RssFile} in MB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tick
    mem: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            mem[key] = int(line.split()[1]) / 1024
    return cpu, mem


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _bare_python_rss() -> float:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import numpy, numba, re; print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip()) / 1024


def _daemon(args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    now = datetime.now(UTC).isoformat()
    tty = tmp / "ttyCGM"
    sim = _simulator(tty, 600.0, now)
    try:
        return _measure_daemon(args, _config(tmp / "data", tty, 600.0, now), tmp / "data")
    finally:
        _stop(sim)


def _measure_daemon(args: argparse.Namespace, cfg: Path, data: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    proc = _spawn(cfg)
    try:
        _status(data, 120.0)
        cold = time.perf_counter() - t0
        time.sleep(3.0)  # past start-up transients
        doc1 = _status(data, 10.0)
        cpu1, _ = _proc(proc.pid)
        time.sleep(args.measure_s)
        doc2 = _status(data, 10.0)
        cpu2, mem = _proc(proc.pid)
    finally:
        _stop(proc)
    sim_min = (
        datetime.fromisoformat(doc2["time_utc"]) - datetime.fromisoformat(doc1["time_utc"])
    ).total_seconds() / 60
    cpu_per_5 = (cpu2 - cpu1) / (sim_min / 5.0) * 1e3
    t0 = time.perf_counter()
    proc = _spawn(cfg)
    try:
        doc = _status(data, 120.0)
        warm = time.perf_counter() - t0
        restored = doc["twin"]["restored_from_utc"] is not None
    finally:
        _stop(proc)
    return {
        "rss_mb": mem["VmRSS"],
        "rss_peak_mb": mem["VmHWM"],
        "rss_anon_mb": mem["RssAnon"],
        "rss_file_mb": mem["RssFile"],
        "cold_start_s": cold,
        "warm_start_s": warm,
        "warm_start_restored_twin": float(restored),
        "cpu_ms_per_5min": cpu_per_5,
        "cycle_cpu_ms_mean": float(doc2["cycles"]["cpu_ms_mean"] or 0.0),
        "daemon_sim_minutes": sim_min,
    }


def _twin_only_ms(values: list[float]) -> float:
    """Baseline: the twin's update + 120-min forecast alone, per reading (ms)."""
    from edgetwin.gateway.runtime import default_twin_factory
    from edgetwin.therapy import TherapyProfile

    prof = TherapyProfile(70.0, ((0, 1.0),), 10.0, 40.0)
    twin = default_twin_factory().new(prof, 0, 0)
    t0 = time.process_time()
    for i, v in enumerate(values):
        twin.assimilate_cgm(3 * i, v)
        twin.advance_to(3 * i)
        twin.forecast(120)
    return (time.process_time() - t0) * 1e3 / max(1, len(values))


def _day(args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    from edgetwin.gateway.demo import DemoOptions, run_demo
    from edgetwin.model.cohort import load_patient
    from edgetwin.virtual.patient import VirtualPatient

    opts = DemoOptions(tmp / "day", args.patient, 24.0, 1, args.speed)
    result = asyncio.run(run_demo(opts))
    s = result.summary
    t0 = time.perf_counter()
    vp = VirtualPatient(load_patient(args.patient))
    for _ in range(24 * 60):
        vp.step(0.0, 0.0)
    patient_only = time.perf_counter() - t0
    expected = 24 * 60 // 3
    from edgetwin.store import Store

    with Store.open(tmp / "day" / "data" / "edgetwin.db", readonly=True) as st:
        values = [
            float(r.glucose_mg_dl or 0)
            for r in st.cgm_between(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
        ]
    return {
        "day_s": result.wall_s,
        "day_patient_only_s": patient_only,
        "day_cgm_readings": float(s["cgm_readings"]),
        "day_cgm_expected": float(expected),
        "day_cycles": float(s["cycles"]),
        "day_cycle_cpu_ms_mean": float(s["cycle_cpu_ms_mean"]),
        "twin_only_ms_per_reading": _twin_only_ms(values[:300]),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="edgetwin-bench-") as d:
        tmp = Path(d)
        print(
            "gateway bench: the daemon reading a serial CGM simulator (two processes, x600 clock) ...",
            flush=True,
        )
        bare = _bare_python_rss()
        daemon = _daemon(args, tmp)
        print(
            f"  resident memory    {daemon['rss_mb']:7.1f} MB  (peak {daemon['rss_peak_mb']:.1f}; private "
            f"{daemon['rss_anon_mb']:.1f}, shared code/files {daemon['rss_file_mb']:.1f})   "
            f"baseline: a python that imported numpy+numba (what model kernels cost) {bare:.1f} MB   target <= 150 MB"
        )
        print(
            f"  start-up           warm {daemon['warm_start_s']:5.2f} s (twin restored: {bool(daemon['warm_start_restored_twin'])})   baseline: cold {daemon['cold_start_s']:.2f} s   target warm <= 3 s"
        )
        print(
            f"  CPU per 5 min      {daemon['cpu_ms_per_5min']:7.1f} ms whole daemon (all threads), decision cycle {daemon['cycle_cpu_ms_mean']:.2f} ms   target <= 50 ms"
        )
        print(f"a simulated day through the full pipeline (in process, x{args.speed:g}) ...", flush=True)
        day = _day(args, tmp)
        print(f"  twin update+forecast alone (baseline) {day['twin_only_ms_per_reading']:.3f} ms per reading")
        print(
            f"  day                {day['day_s']:7.1f} s   baseline: the virtual patient alone {day['day_patient_only_s']:.2f} s   target <= 60 s"
        )
        print(
            f"  readings           {day['day_cgm_readings']:.0f} of {day['day_cgm_expected']:.0f} stored, {day['day_cycles']:.0f} decision cycles"
        )
    out: dict[str, Any] = {"bench": "gateway", "baseline_python_rss_mb": bare, **daemon, **day}
    out["targets"] = TARGETS
    out["meets_targets"] = bool(
        daemon["rss_mb"] <= TARGETS["rss_mb"]
        and daemon["warm_start_s"] <= TARGETS["warm_start_s"]
        and daemon["cpu_ms_per_5min"] <= TARGETS["cpu_ms_per_5min"]
        and day["day_s"] <= TARGETS["day_s"]
    )
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()}
