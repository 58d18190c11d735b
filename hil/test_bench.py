"""A short run end to end (the real gateway, BLE and serial simulators, the cloud behind the
fault proxy), its report, and assertions that fail when they should."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest

from hil.assertions import evaluate
from hil.bench import BenchOptions, BenchResult, run_scenario
from hil.scenario import parse_scenario
from hil.world import PumpCommandRecord

SCENARIO = {
    "description": "A short run with a CGM disconnect and a network outage (bench self-test).",
    "hours": 2.5,
    "seed": 4,
    "devices": {"cgm": "ble-sim", "pump": "serial-sim", "heart_rate": "ble-sim"},
    "meals": {"random": False, "fixed": [{"at": "+20m", "grams": 40}]},
    "exercise": [{"at": "+60m", "minutes": 20, "heart_rate_bpm": 150}],
    "faults": [
        {"kind": "disconnect", "device": "cgm", "at": "+40m", "minutes": 30},
        {"kind": "network_outage", "at": "+30m", "minutes": 60},
    ],
    "assert": [
        {"kind": "no_reading_lost"},
        {"kind": "alarm_within", "alarm": "no_glucose_data", "fault": "disconnect", "minutes": 30},
        {"kind": "no_unsafe_command"},
        {"kind": "time_below", "max_pct": 1.0},
        {"kind": "sync_drained"},
        {"kind": "exercise_seen", "min_bpm": 120},
    ],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> BenchResult:
    import asyncio

    s = parse_scenario(SCENARIO, name="selftest", source="selftest.toml")
    out = tmp_path_factory.mktemp("selftest")
    return asyncio.run(run_scenario(s, BenchOptions(out)))


def test_the_run_passes_and_reports(run: BenchResult) -> None:
    assert run.passed, run.failed
    doc = json.loads(run.report_json.read_text())
    assert doc["passed"] is True and doc["schema"] == 1
    assert [a["outcome"] for a in doc["assertions"]] == ["pass"] * 6
    m = doc["metrics"]
    assert m["readings"]["store"]["found"] == m["readings"]["with_value"] > 40
    assert m["true_glucose"]["values"] == 151
    assert m["insulin"]["patient_boluses"] == 1 and m["insulin"]["carbs_announced_g"] == 40
    assert m["forecast"]["forecasts"] > 5 and "30_min" in m["forecast"]
    assert m["sync"]["proxy_connections"].get("outage", 0) > 0  # the gateway did try during the outage
    assert m["heart_rate"]["max_bpm"] >= 130
    assert [f["label"] for f in doc["faults"]] == ["disconnect cgm", "network_outage"]
    assert all(f["started_minute"] is not None for f in doc["faults"])
    assert "no_glucose_data" in m["alarms"]
    assert doc["safety_gate"]["unsafe_commands"] == []
    md = run.report_md.read_text()
    assert md.startswith("# HIL scenario `selftest`: PASSED") and "![overview](overview.png)" in md
    png = (run.out_dir / "overview.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert (run.out_dir / "run" / "gateway.toml").exists() and (
        run.out_dir / "run" / "data" / "edgetwin.db"
    ).exists()


def _outcome(run: BenchResult, data: Any, kind: str) -> tuple[str, str]:
    [r] = [r for r in evaluate(run.scenario, data) if r.kind == kind]
    return r.outcome, r.detail


def test_an_unsafe_command_fails_the_run(run: BenchResult) -> None:
    d = run.data
    start = d.start_utc
    rogue = [
        PumpCommandRecord(50, start, "gateway", "bolus", "SUCCESS", True, units=12.0),
        PumpCommandRecord(
            55, start, "gateway", "temp_basal", "SUCCESS", True, rate_u_per_h=9.0, duration_min=30.0
        ),
        PumpCommandRecord(56, start, "patient", "bolus", "SUCCESS", True, units=14.0),  # the patient may
    ]
    outcome, detail = _outcome(
        run, dataclasses.replace(d, pump_commands=[*d.pump_commands, *rogue]), "no_unsafe_command"
    )
    assert outcome == "fail" and "2 unsafe" in detail and "open-loop" in detail
    closed = dataclasses.replace(d.cfg, mode="closed-loop")
    within = PumpCommandRecord(50, start, "gateway", "bolus", "SUCCESS", True, units=1.0)
    outcome, _ = _outcome(
        run, dataclasses.replace(d, cfg=closed, pump_commands=[within]), "no_unsafe_command"
    )
    assert outcome == "pass"
    too_big = PumpCommandRecord(
        50, start, "gateway", "bolus", "SUCCESS", True, units=d.cfg.limits.max_bolus_u + 0.05
    )
    outcome, detail = _outcome(
        run, dataclasses.replace(d, cfg=closed, pump_commands=[too_big]), "no_unsafe_command"
    )
    assert outcome == "fail" and "max_bolus_u" in detail
    not_applied = dataclasses.replace(too_big, applied=False)
    outcome, _ = _outcome(
        run, dataclasses.replace(d, cfg=closed, pump_commands=[not_applied]), "no_unsafe_command"
    )
    assert outcome == "pass"


def test_a_lost_or_doubled_reading_fails_the_run(run: BenchResult) -> None:
    d = run.data
    lost = dataclasses.replace(d, cgm=d.cgm[:10] + d.cgm[11:])
    outcome, detail = _outcome(run, lost, "no_reading_lost")
    assert outcome == "fail" and "1 of" in detail and "store" in detail
    doubled = dataclasses.replace(d, cloud_cgm=[*d.cloud_cgm, d.cloud_cgm[5]])
    outcome, detail = _outcome(run, doubled, "no_reading_lost")
    assert outcome == "fail" and "more than once" in detail
    outcome, _ = _outcome(run, dataclasses.replace(d, cloud_cgm=d.cloud_cgm[1:]), "sync_drained")
    assert outcome == "fail"


def test_a_missing_alarm_or_a_low_fails_the_run(run: BenchResult) -> None:
    d = run.data
    quiet = dataclasses.replace(
        d, alarms=[a for a in d.alarms if a.alarm.kind != "no_glucose_data"], _alarm_minutes={}
    )
    outcome, detail = _outcome(run, quiet, "alarm_within")
    assert outcome == "fail" and "no no_glucose_data alarm" in detail
    low = d.truth_bg.copy()
    low[: low.size // 20] = 45.0
    outcome, detail = _outcome(run, dataclasses.replace(d, truth_bg=low), "time_below")
    assert outcome == "fail" and "below 54" in detail
    calm = dataclasses.replace(d, heart_rate=[r for r in d.heart_rate if r.heart_rate_bpm < 100])
    assert _outcome(run, calm, "exercise_seen")[0] == "fail"


def test_the_truth_matches_what_the_sensor_saw(run: BenchResult) -> None:
    d = run.data
    g = np.array([e.record.glucose_mg_dl for e in d.expected_readings])
    truth = np.array([d.truth_gsub[e.record.world_minute] for e in d.expected_readings])
    assert np.abs(g - truth).mean() < 25  # sensor noise, not a different patient


def test_gateway_times_are_mapped_through_clock_jumps_it_took(run: BenchResult) -> None:
    from datetime import timedelta

    d = run.data
    s = parse_scenario(
        {**SCENARIO, "faults": [{"kind": "clock_jump", "at": "+60m", "jump_min": 120, "minutes": 30},
                                {"kind": "clock_jump", "at": "+150m", "jump_min": -60}],
         "assert": [{"kind": "no_reading_lost"}]},
        name="jumps",
    )  # fmt: skip
    log = [
        {"index": 0, "kind": "clock_jump", "started_minute": 60, "ended_minute": 90},
        {"index": 1, "kind": "clock_jump", "started_minute": 150, "ended_minute": 150},
    ]
    kept = dataclasses.replace(d, scenario=s, obs=dataclasses.replace(d.obs, fault_log=log), log_events=[])
    # the gateway absorbed both steps: its times are true times
    assert [kept.offset_at(m) for m in (10, 70, 100, 200)] == [0, 0, 0, 0]
    assert kept.gateway_minute(kept.start_utc + timedelta(minutes=70)) == 70
    # a gateway that took the stepped clock (a device confirmed it): times are mapped back
    taken = [{"event": "wall_clock_taken", "jump_s": 7200.0}]
    j = dataclasses.replace(kept, log_events=taken)
    assert [j.offset_at(m) for m in (10, 70, 100, 200)] == [0, 120, 0, -60]
    at = j.start_utc + timedelta(minutes=190)  # the gateway's clock at world minute 70
    assert j.gateway_minute(at) == 70
    at = j.start_utc + timedelta(minutes=100)  # shown twice: at minute 100 and (set back) at 160
    assert j.gateway_minute(at) == 100 and j.gateway_minute(at, after=150) == 160
    assert j.forecast_minute(70, j.start_utc + timedelta(minutes=220)) == 100
