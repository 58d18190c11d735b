"""SIGKILL the gateway process at random points while readings stream, many times: after each
restart no acknowledged reading is lost or duplicated, and the twin resumes from its checkpoint.

The CGM is a serial receiver simulator in a process of its own, on a pty (``edgetwin.bench.serial_sim``): it
keeps running while the gateway is dead, on a clock anchored to the same real time, so every
restart must ask it for what the store does not have (the real serial driver, resumed from the
store's newest sequence). About 20 s of killing in the default suite; ``-m soak`` runs 3 minutes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edgetwin.store import Store

REPO = Path(__file__).resolve().parents[2]


CONFIG = """
[gateway]
data_dir = "{data}"
checkpoint_every_min = 5
[status]
enabled = false
[devices]
cgm = "serial:{tty}"
[clock]
kind = "scaled"
factor = {factor}
start_utc = "{start}"
anchor_utc = "{start}"
[log]
format = "json"
level = "debug"
file = "{log}"
[profile]
weight_kg = 70
carb_ratio_g_per_u = 10
correction_factor_mg_dl_per_u = 40
basal = 1.0
[limits]
max_basal_u_per_h = 3
max_bolus_u = 10
"""


def _config(tmp_path: Path, factor: float) -> tuple[Path, subprocess.Popen[bytes]]:
    """The gateway's configuration, and the simulator process it reads from."""
    start = datetime.now(UTC).isoformat()
    tty = tmp_path / "ttyCGM"
    with open(tmp_path / "sim-stderr.txt", "wb") as err:
        sim = subprocess.Popen(
            [sys.executable, "-m", "edgetwin.bench.serial_sim", "--path", str(tty), "--start", start,
             "--anchor", start, "--factor", str(factor)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )  # fmt: skip
    for _ in range(300):
        if tty.exists():
            break
        time.sleep(0.05)
    else:
        sim.kill()
        raise AssertionError("the serial simulator did not start")
    text = CONFIG.format(
        data=tmp_path / "data", tty=tty, factor=factor, start=start, log=tmp_path / "gateway.jsonl"
    )
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path, sim


def _start(cfg: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(tmp_path / "stderr.txt", "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "edgetwin", "run", "--config", str(cfg)],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _events(log: Path) -> list[dict[str, object]]:
    out = []
    for line in log.read_text("utf-8", errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # the line being written when the process was killed
    return out


def _kill_loop(tmp_path: Path, seconds: float, seed: int) -> None:
    rng = random.Random(seed)
    cfg, sim = _config(tmp_path, factor=600.0)
    try:
        _kills(tmp_path, cfg, seconds, rng)
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)
    _check(tmp_path)


def _kills(tmp_path: Path, cfg: Path, seconds: float, rng: random.Random) -> None:
    deadline = time.monotonic() + seconds
    kills = 0
    log = tmp_path / "gateway.jsonl"
    while time.monotonic() < deadline:
        proc = _start(cfg, tmp_path)
        if kills == 0:  # the first run lives until it has checkpointed the twin at least once
            while proc.poll() is None and not (
                log.exists() and any(e.get("event") == "checkpoint" for e in _events(log))
            ):
                time.sleep(0.1)
        else:  # then anywhere: while importing, opening the store, replaying, streaming
            time.sleep(rng.uniform(0.2, 6.0))
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited by itself: {(tmp_path / 'stderr.txt').read_text()}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1
    # A last, clean run: it must start from the wreckage, catch up and stop cleanly.
    proc = _start(cfg, tmp_path)
    _wait_caught_up(tmp_path / "data" / "edgetwin.db", proc, timeout_s=90.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, (tmp_path / "stderr.txt").read_text()
    assert kills >= 3


def _sequences(db: Path) -> list[int]:
    far = datetime.now(UTC) + timedelta(days=400)
    with Store.open(db, readonly=True, integrity="none") as store:
        cgm = store.cgm_between(datetime(2000, 1, 1, tzinfo=UTC), far)
    return sorted(r.sequence for r in cgm if r.sequence is not None)


def _wait_caught_up(db: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Let the last run back-fill what the kills left behind (it may take a while on a loaded machine)."""
    time.sleep(4.0)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        seqs = _sequences(db)
        if len(seqs) > 20 and seqs == list(range(len(seqs))):
            return
        time.sleep(0.5)


def _check(tmp_path: Path) -> None:
    db = tmp_path / "data" / "edgetwin.db"
    events = _events(tmp_path / "gateway.jsonl")
    acked = {
        (e["device"], e["sequence"])
        for e in events
        if e.get("event") == "acknowledged" and e.get("table") == "cgm"
    }
    with Store.open(db, integrity="full") as store:
        far = datetime.now(UTC) + timedelta(days=400)
        cgm = store.cgm_between(datetime(2000, 1, 1, tzinfo=UTC), far)
        checkpoints = store.counts()["checkpoint"]
    stored = [(r.device_id, r.sequence) for r in cgm]
    assert len(stored) == len(set(stored)), "a reading was stored twice"
    assert acked <= set(stored), f"acknowledged but lost: {sorted(acked - set(stored))[:5]}"
    seqs = sorted(s for _, s in stored if s is not None)
    assert seqs == list(range(len(seqs))), "a gap: a reading was never back-filled"
    assert len(seqs) > 20
    ready = [e for e in events if e.get("event") == "twin_ready"]
    assert len(ready) >= 2 and ready[-1]["restored_from"] is not None
    minutes = [int(e["twin_minute"]) for e in ready if e["restored_from"] is not None]
    assert minutes == sorted(minutes), "the twin went back in time after a restart"
    assert checkpoints >= 2


def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    _kill_loop(tmp_path, 20.0, seed=1)


@pytest.mark.soak
def test_sigkill_soak(tmp_path: Path) -> None:
    _kill_loop(tmp_path, 180.0, seed=2)
