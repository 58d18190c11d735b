"""Suggestion → safety gate → output inside the running gateway (needs the living twin, the
suggestion engine and the safety gate: skipped in a build without them)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest

from edgetwin.clock import ScaledClock
from edgetwin.gateway import Gateway
from edgetwin.store import GateOutcome, Store
from tests.gateway.helpers import START, make_config

pytest.importorskip("edgetwin.safety", reason="the safety gate is not in this build")
pytest.importorskip("edgetwin.suggest", reason="the suggestion engine is not in this build")
pytest.importorskip("edgetwin.twin.twin", reason="the living twin is not in this build")

DEVICES = {"cgm": "ble-sim:cgm", "pump": "serial-sim:pump"}


async def _run(tmp_path: Path, mode: str, hours: float) -> Gateway:
    from edgetwin.gateway.demo import warm_up

    warm_up("adult#001")
    limits = {"max_basal_u_per_h": 3.0, "max_bolus_u": 8.0, "max_iob_u": 4.0}
    cfg = make_config(tmp_path, gateway={"mode": mode}, devices=DEVICES, limits=limits, sim={"seed": 4})
    clock = ScaledClock(START, 1200.0)
    gw = Gateway(cfg, clock=clock)
    async with gw:
        assert gw.decider is not None
        assert gw.suggestions_status()["available"] is True
        await asyncio.sleep(hours * 3600 / clock.factor)
        deadline = time.monotonic() + 60  # a loaded machine runs an accelerated clock late
        while gw.decider.decisions < 10 or (mode == "closed-loop" and not gw.decider.commands_sent):
            assert time.monotonic() < deadline, "too few decisions"
            await asyncio.sleep(0.05)
    return gw


def _records(db: Path) -> dict[str, list[object]]:
    lo, hi = START - timedelta(days=1), START + timedelta(days=3)
    with Store.open(db, readonly=True) as s:
        return {
            "suggestions": s.suggestions_between(lo, hi),
            "decisions": s.decisions_between(lo, hi),
            "commands": [e.record for e in s.history(lo, hi, kinds=("pump_command",))],
            "results": [e.record for e in s.history(lo, hi, kinds=("command_result",))],
        }


@pytest.mark.asyncio
async def test_open_loop_suggests_through_the_gate_and_never_commands_the_pump(tmp_path: Path) -> None:
    gw = await _run(tmp_path, "open-loop", 3.0)
    got = _records(tmp_path / "edgetwin.db")
    assert len(got["suggestions"]) >= 10
    assert len(got["decisions"]) >= 10
    ids = {sid for sid, _ in got["suggestions"]}
    for _, d in got["decisions"]:
        assert d.suggestion_id in ids  # every decision names the stored suggestion it judged
    assert got["commands"] == []
    assert gw.state.suggestion is not None and gw.state.suggestion["reason"]


@pytest.mark.asyncio
async def test_closed_loop_sends_only_what_the_gate_passed_and_stores_it_first(tmp_path: Path) -> None:
    await _run(tmp_path, "closed-loop", 3.0)
    got = _records(tmp_path / "edgetwin.db")
    suggestions = dict(got["suggestions"])
    passed = {
        d.result_suggestion_id
        for _, d in got["decisions"]
        if d.outcome in (GateOutcome.ACCEPTED, GateOutcome.CLAMPED)
    }
    assert got["commands"], "closed loop never commanded the pump"
    confirmed = {r.command_id for r in got["results"] if r.confirmed}
    answered = {r.command_id for r in got["results"]}
    for cmd in got["commands"]:
        assert cmd.rate_u_per_h is None or cmd.rate_u_per_h <= 3.0
        assert cmd.units is None or cmd.units <= 8.0
        assert str(cmd.kind) != "bolus" or (cmd.units is not None and cmd.units <= 1.0)  # micro-boluses only
    # The pump's answer is stored for every command, except that the stop may come while the last
    # cycle's commands are on the wire: those stay unanswered in the store, and a restart treats
    # them as not running (Store.unconfirmed_commands).
    last = got["commands"][-1].created_utc
    assert all(c.created_utc == last for c in got["commands"] if c.command_id not in answered)
    matched = [
        sid
        for sid in passed
        if sid is not None
        and any(
            abs((suggestions[sid].created_utc - c.created_utc).total_seconds()) < 1 for c in got["commands"]
        )
    ]
    assert matched, "commands do not correspond to suggestions the gate passed"
    assert confirmed
