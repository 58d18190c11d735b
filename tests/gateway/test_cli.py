"""``edgetwin demo``, ``history`` and ``status`` as a user runs them."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import pytest

from edgetwin.cli import main
from edgetwin.gateway import Gateway, load_config


def test_demo_then_history_and_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--hours", "3", "--speed", "1500", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Done in" in text and "Report:" in text
    report = json.loads((out / "report.json").read_text())
    assert report["cgm_readings"] >= 45  # a Dexcom reading every 3 min over 3 h, over BLE
    assert report["insulin_u"] > 1.0  # reported by the pump over the serial pty
    assert report["forecast_accuracy"]["30_min"]["forecasts"] > 10
    assert report["cloud"]["cgm_readings"] >= report["cgm_readings"]  # all of it in the cloud twin
    assert (out / "day.svg").read_text().startswith("<svg")
    assert "# EdgeTwin demo" in (out / "report.md").read_text()

    cfg = out / "gateway.toml"
    assert main(["history", "--config", str(cfg), "--since", report["start_utc"], "--until",
                 report["end_utc"], "--kind", "cgm,insulin", "--format", "csv"]) == 0  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0]) == ["time_utc", "kind", "id", "value", "unit", "detail"]
    cgm = [r for r in rows if r["kind"] == "cgm"]
    assert len(cgm) == report["cgm_readings"] and all(r["unit"] == "mg/dL" for r in cgm)
    assert any(r["kind"] == "insulin" and r["unit"] == "U" for r in rows)

    assert main(["status", "--config", str(cfg)]) == 1  # the demo's gateway has stopped
    assert "NOT RUNNING" in capsys.readouterr().out

    # "what if I bolus 2 U now?" on the twin the gateway left in its store
    w = tmp_path / "w.csv"
    assert main(["whatif", "--config", str(cfg), "--bolus", "2", "--horizon", "120", "--out", str(w)]) == 0
    text = capsys.readouterr().out
    assert "checkpoint of" in text and "as planned" in text and "bolus 2 U" in text
    traj = list(csv.DictReader(io.StringIO(w.read_text())))
    planned = [float(r["p50_mg_dl"]) for r in traj if r["scenario"] == "as planned"]
    bolus = [float(r["p50_mg_dl"]) for r in traj if r["scenario"] == "bolus 2 U"]
    assert len(planned) == len(bolus) > 20  # every 5 min over 2 h
    assert bolus[-1] < planned[-1] - 3 and all(b <= p + 0.5 for b, p in zip(bolus, planned, strict=True))
    assert main(["whatif", "--config", str(cfg), "--history", "h.csv", "--bolus", "1"]) == 2

    # a demo folder is replaced by the next demo; anything else is not touched
    other = tmp_path / "precious"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    assert main(["demo", "--hours", "1", "--out", str(other)]) == 2
    assert "not a demo folder" in capsys.readouterr().err


def test_status_asks_the_running_gateway(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = tmp_path / "gw.toml"
    cfg_path.write_text(
        (Path(__file__).resolve().parents[2] / "deploy" / "gateway.toml")
        .read_text()
        .replace('"/var/lib/edgetwin"', '"data"')
        .replace("port = 8473", "port = 0")
        .replace('cgm = "ble:AA:BB:CC:DD:EE:01"', 'cgm = "ble-sim:cgm"')
    )

    async def run() -> int:
        async with Gateway(load_config(cfg_path)):
            return await asyncio.to_thread(main, ["status", "--config", str(cfg_path), "--json"])

    code = asyncio.run(run())
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == 1 and doc["mode"] == "open-loop"
    assert {d["name"] for d in doc["devices"]} == {"ble-sim:cgm", "sim:patient"}
    assert code in (0, 1)
