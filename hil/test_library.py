"""Every library scenario, through the real gateway: the short versions in the default suite
(``short_hours`` of each, a few simulated hours in seconds), the full lengths with ``-m soak``.

A scenario passes when exactly the assertions it marks ``known_issue`` fail: a known issue that
starts passing fails this test too, so the marks are removed as the gateway improves.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hil import library
from hil.bench import BenchOptions, run_scenario
from hil.scenario import load_scenario

SCENARIOS = library()


def _check(path: Path, out: Path, *, short: bool) -> None:
    s = load_scenario(path)
    hours = s.short_hours if short else None
    result = asyncio.run(run_scenario(s, BenchOptions(out, hours=hours, plots=not short)))
    doc = result.report
    failed = {a["index"] for a in doc["assertions"] if a["outcome"] == "fail"}
    known = {a.index for a in s.assertions if a.known_issue}
    details = {a["index"]: a["detail"] for a in doc["assertions"]}
    assert failed - known == set(), (
        f"{s.name}: unexpected failures {[details[i] for i in sorted(failed - known)]}"
    )
    assert known - failed == set(), (
        f"{s.name}: known issues now pass, remove their marks: {sorted(known - failed)}"
    )
    assert doc["run"]["completed"] and doc["run"]["drain"]["complete"], doc["run"]["drain"]
    assert result.report_json.exists() and result.report_md.exists()
    applied = [f for f in doc["faults"] if f["started_minute"] is not None]
    assert len(applied) == len(s.truncated(hours).faults if hours else s.faults), "a fault was never injected"


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_short_version(path: Path, tmp_path: Path) -> None:
    _check(path, tmp_path, short=True)


@pytest.mark.soak
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_full_length(path: Path, tmp_path: Path) -> None:
    _check(path, tmp_path, short=False)
