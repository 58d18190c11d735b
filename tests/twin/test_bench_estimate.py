"""``edgetwin bench estimate`` runs end to end in a small configuration and reports every figure
(the full run takes minutes and is run on demand; its figures are in the README)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgetwin.cli import main

SMALL = [
    "--patients",
    "1",
    "--days",
    "1",
    "--timing-patients",
    "1",
    "--batch-days",
    "1",
    "--particles",
    "128",
]


def _run(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[str, dict[str, Any]]:
    """A small ``bench estimate`` run: its printed text and its closing JSON line."""
    assert main(["bench", "estimate", *SMALL, *extra]) == 0
    out = capsys.readouterr().out
    return out, json.loads(out.strip().splitlines()[-1])


def test_a_small_run_reports_every_section(capsys: pytest.CaptureFixture[str]) -> None:
    out, result = _run(capsys, "--daypart-patients", "2", "--daypart-days", "3")
    assert result["bench"] == "estimate" and result["particles"] == 128
    for key in ("ratio_30_profile_vs_persistence_truth", "update_ms_cpu_mean", "batch_1d_s"):
        assert result[key] > 0, key
    # One day of data: the learning curve has that day, for both twins.
    assert len(result["ratio_30_known_by_day"]) == 1 and result["ratio_30_profile_by_day"][0] > 0
    assert "by day of data" in out and result["rmse_30_profile_over_known_by_day"][0] > 0
    assert result["daypart_patients"] == 2
    assert 0.0 <= result["daypart_identified_fraction"] <= 1.0
    assert 0.0 <= result["daypart_false_pattern_fraction"] <= 1.0
    assert "Insulin sensitivity by time of day" in out
    assert "rmse30_profile_le_0.6x_persistence_truth" in result["targets"]


def test_several_scenario_seeds_pool_and_report_each(capsys: pytest.CaptureFixture[str]) -> None:
    out, result = _run(capsys, "--daypart-patients", "0", "--seeds", "1,2")
    assert result["seeds"] == [1, 2]
    assert "(seed 1)" in out and "(seed 2)" in out and "by scenario seed" in out
    for kind in ("known", "profile"):
        per_seed = result[f"ratio_30_{kind}_by_seed"]
        assert len(per_seed) == 2 and per_seed[0] != per_seed[1]
        # The pooled ratio is over both seeds' errors, so it lies between the two.
        pooled = result[f"ratio_30_{kind}_vs_persistence_truth"]
        assert min(per_seed) - 1e-12 <= pooled <= max(per_seed) + 1e-12


@pytest.mark.parametrize("seeds", ["1,1", "a,b", ",", "-1"])
def test_bad_seed_lists_are_refused_with_a_clear_message(
    seeds: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "estimate", "--seeds", seeds, "--patients", "1", "--days", "1"])
    assert exc.value.code == 2
    assert "argument --seeds" in capsys.readouterr().err
