"""``edgetwin hil``: list, check (errors name the key, exit 2), run (exit 0 passed, 1 failed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edgetwin.cli import main
from hil import library

TINY = """
description = "One quiet hour (CLI test)."
hours = 1.5
seed = 2
[devices]
cgm = "serial-sim"
pump = "serial-sim"
heart_rate = "none"
[meals]
random = false
[[assert]]
kind = "no_reading_lost"
[[assert]]
kind = "time_in_range"
low_mg_dl = {low}
min_pct = 100
"""


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hil", "list"]) == 0
    out = capsys.readouterr().out
    names = [line.split()[0] for line in out.splitlines() if line and not line.startswith(" ")]
    assert names == [p.stem for p in library()] and len(names) >= 12


def test_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hil", "check", "baseline-day", str(library()[0])]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'description = "x"\n[[faults]]\nkind = "disconnect"\nat = "+1h"\nminutes = -3\n[[assert]]\nkind = "sync_drained"\n'
    )
    assert main(["hil", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "faults[0].minutes" in err and str(bad) in err


def test_run_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok = tmp_path / "ok.toml"
    ok.write_text(TINY.format(low=40))
    report = tmp_path / "report"
    assert main(["hil", "run", str(ok), "--report", str(report), "--no-plots", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "PASSED" in out and str(report / "report.md") in out
    doc = json.loads((report / "report.json").read_text())
    assert doc["passed"] and doc["scenario"]["name"] == "ok"
    assert not (report / "overview.png").exists()

    impossible = tmp_path / "impossible.toml"
    impossible.write_text(TINY.format(low=199))
    assert (
        main(
            ["hil", "run", str(impossible), "--report", str(report), "--no-plots", "--quiet", "--hours", "1"]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert "FAIL time_in_range" in out and "FAILED" in out
    doc = json.loads((report / "report.json").read_text())
    assert doc["run"]["world_minutes"] == 60 and not doc["passed"]


def test_run_refuses_a_foreign_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["hil", "run", "baseline-day", "--report", str(tmp_path)]) == 2
    assert "not a HIL report folder" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").exists()
    assert main(["hil", "run", "baseline-day", "--hours", "99"]) == 2
    assert main(["hil", "run", "baseline-day", "--device", "cgm"]) == 2
    assert main(["hil", "run", "no-such-scenario"]) == 2


@pytest.mark.hardware
def test_real_device(tmp_path: Path) -> None:
    """``EDGETWIN_HIL_DEVICE=cgm=ble:AA:BB:CC:DD:EE:FF`` (or ``pump=serial:/dev/ttyUSB0``) runs the
    baseline scenario for ``EDGETWIN_HIL_HOURS`` (default 0.25) in real time against it."""
    device = os.environ.get("EDGETWIN_HIL_DEVICE")
    if not device:
        pytest.skip("no real device: set EDGETWIN_HIL_DEVICE=ROLE=NAME")
    role, _, name = device.partition("=")
    if name.startswith("serial:") and not Path(name.split(":", 1)[1].split("?")[0]).exists():
        pytest.skip(f"{name} is not plugged in")
    hours = os.environ.get("EDGETWIN_HIL_HOURS", "0.25")
    code = main(
        [
            "hil",
            "run",
            "baseline-day",
            "--hours",
            hours,
            "--device",
            device,
            "--report",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert code in (0, 1)
    doc = json.loads((tmp_path / "report.json").read_text())
    assert (
        doc["run"]["completed"]
        and doc["metrics"]["gateway"]["store_rows"].get("cgm" if role == "cgm" else "pump_status", 0) > 0
    )
