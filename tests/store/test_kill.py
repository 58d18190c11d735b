"""SIGKILL at random points while readings stream: every acknowledged reading survives, once."""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgetwin.store import Store
from tests.store.helpers import at

ROOT = Path(__file__).resolve().parents[2]


def _one_life(
    path: Path, start: int, delay_s: float, *, during_open: bool = False
) -> list[tuple[str, int, bool]]:
    """One writer process killed ``delay_s`` after it opened the store (or after its start,
    with ``during_open``, so some kills land while it starts, creates or migrates the store)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.store.kill_writer", str(path), str(start)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = ""
    if not during_open:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        first = proc.stdout.readline() if ready else ""
    time.sleep(delay_s)
    os.kill(proc.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err  # it died by our hand, not by an error
    acks = []
    for line in (first + out).splitlines():
        parts = line.split()
        if parts and parts[0] in ("ack", "backfill") and len(parts) == 3:
            acks.append((parts[0], int(parts[1]), parts[2] == "1"))
    return acks


def _kill_many(path: Path, lives: int, seed: int) -> None:
    rng = random.Random(seed)
    acked: dict[str, set[int]] = {"ack": set(), "backfill": set()}
    for _ in range(lives):
        done = acked["ack"]
        # Restart a little before the last acknowledgement: the device re-sends what it is not sure of.
        start = max(0, max(done, default=-1) + 1 - rng.randint(0, 3))
        early = rng.random() < 0.2
        for kind, i, duplicate in _one_life(path, start, rng.uniform(0.0, 0.3), during_open=early):
            if i in acked[kind]:
                assert duplicate, f"{kind} {i} acknowledged twice as new"
            acked[kind].add(i)
    assert sum(len(v) for v in acked.values()) > 0
    with Store.open(path, integrity="full") as store:
        rows = store.cgm_between(at(-10), at(5 * (max(acked["ack"], default=0) + 10)))
    for kind, device in (("ack", "cgm-1"), ("backfill", "backfill")):
        stored = [r.sequence // 5 for r in rows if r.device_id == device and r.sequence is not None]
        assert len(stored) == len(set(stored)), f"{kind}: a reading stored twice"
        missing = acked[kind] - set(stored)
        assert not missing, f"{kind}: acknowledged but lost: {sorted(missing)[:10]}"


def test_sigkill_never_loses_or_duplicates_an_acknowledged_reading(tmp_path: Path) -> None:
    _kill_many(tmp_path / "edge.db", lives=25, seed=1)


@pytest.mark.soak
def test_sigkill_soak(tmp_path: Path) -> None:
    _kill_many(tmp_path / "edge.db", lives=400, seed=2)
