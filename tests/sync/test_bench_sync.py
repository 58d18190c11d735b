"""``edgetwin bench sync`` size figures (deterministic, so the size targets are guarded here)."""

from __future__ import annotations

import json

import pytest

from edgetwin.cli import main


@pytest.mark.slow
def test_size_figures_meet_the_targets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "sync", "--skip-ingest"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["readings_lossless"] is True
    assert result["bytes_per_day_hourly"] <= 5000
    assert result["ratio_vs_nightscout_json"] >= 20
    assert result["bytes_per_day_daily"] < result["bytes_per_day_hourly"] < result["bytes_per_day_5min"]
    assert "Nightscout JSON, same data" in out
