"""The ``forecast``, ``backtest`` and ``whatif`` contracts: flags, files, messages."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from edgetwin.cli import main

FAST = ["--particles", "128"]


def read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open() as fh:
        r = csv.DictReader(fh)
        rows = list(r)
        return list(r.fieldnames or []), rows


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hist") / "h.csv"
    assert (
        main(
            [
                "simulate",
                "--patient",
                "adult#001",
                "--hours",
                "9",
                "--meal",
                "07:00=45",
                "--cgm-seed",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("prof") / "profile.toml"
    p.write_text(
        "weight_kg = 102.3\ncarb_ratio_g_per_u = 10.0\ncorrection_factor_mg_dl_per_u = 8.8\n"
        'insulin_duration_h = 5.0\nbasal = [ { start = "00:00", u_per_h = 1.2 }, { start = "06:00", u_per_h = 1.35 } ]\n'
    )
    return p


def test_forecast_writes_quantiles_every_five_minutes(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "f.csv"
    assert (
        main(
            [
                "forecast",
                "--patient",
                "adult#001",
                "--history",
                str(history),
                "--horizon",
                "120",
                "--out",
                str(out),
                *FAST,
            ]
        )
        == 0
    )
    cols, rows = read(out)
    assert cols == ["minute", "p10_mg_dl", "p50_mg_dl", "p90_mg_dl"]
    last = 9 * 60
    assert [int(r["minute"]) for r in rows] == list(range(last + 5, last + 125, 5))
    q = np.array([[float(r[c]) for c in cols[1:]] for r in rows])
    assert (q[:, 0] <= q[:, 1]).all() and (q[:, 1] <= q[:, 2]).all()
    assert 40 < q[0, 1] < 400
    assert "Forecast" in capsys.readouterr().out


def test_forecast_from_a_profile_personalises_and_reports_spread(
    history: Path, profile: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "f.csv"
    code = main(
        [
            "forecast",
            "--profile",
            str(profile),
            "--history",
            str(history),
            "--horizon",
            "60",
            "--out",
            str(out),
            *FAST,
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "personalised in batch" in text and "insulin_sensitivity_mg_dl_per_u" in text
    # insulin sensitivity by time of day: every part reported, identified or why not
    assert "insulin_sensitivity_mg_dl_per_u_night_00_06" in text
    assert "insulin sensitivity by time of day" in text and "evening 18-24" in text
    assert len(read(out)[1]) == 12


def test_backtest_rows_and_summary(history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b.csv"
    code = main(
        [
            "backtest",
            "--patient",
            "adult#001",
            "--history",
            str(history),
            "--every",
            "60",
            "--horizons",
            "30,60",
            "--out",
            str(out),
            *FAST,
        ]
    )
    assert code == 0
    cols, rows = read(out)
    assert cols == ["issued_minute", "horizon_min", "p10_mg_dl", "p50_mg_dl", "p90_mg_dl", "actual_mg_dl"]
    issued = sorted({int(r["issued_minute"]) for r in rows})
    assert issued == list(range(60, 9 * 60 + 1, 60))
    assert {int(r["horizon_min"]) for r in rows} == {30, 60}
    beyond = [r for r in rows if int(r["issued_minute"]) + int(r["horizon_min"]) > 9 * 60]
    assert beyond and all(r["actual_mg_dl"] == "" for r in beyond)
    # Dexcom reads every 3 minutes, so every target minute (a multiple of 30) inside has a reading.
    inside = [r for r in rows if int(r["issued_minute"]) + int(r["horizon_min"]) <= 9 * 60]
    assert all(r["actual_mg_dl"] != "" for r in inside)
    text = capsys.readouterr().out
    for word in ("RMSE", "MAE", "MARD", "cover80", "persist", "linear"):
        assert word in text


def test_whatif_compares_scenarios(history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "w.csv"
    code = main(
        [
            "whatif", "--patient", "adult#001", "--history", str(history), "--planned", "meal:40,bolus:4",
            "--bolus", "2", "--temp-basal", "0:60", "--meal", "20", "--skip-bolus",
            "--scenario", "half=skip-bolus,bolus:2", "--horizon", "180", "--out", str(out), *FAST,
        ]
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    for name in ("as planned", "bolus 2 U", "temp 0 U/h 60 min", "meal 20 g", "skip bolus", "half"):
        assert name in text
    cols, rows = read(out)
    assert cols == ["scenario", "minute", "p10_mg_dl", "p50_mg_dl", "p90_mg_dl"]
    end = {r["scenario"]: float(r["p50_mg_dl"]) for r in rows if int(r["minute"]) == 9 * 60 + 180}
    assert end["skip bolus"] > end["half"] > end["as planned"] > end["bolus 2 U"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["forecast", "--patient", "adult#999", "--horizon", "60"], "unknown patient"),
        (["forecast", "--patient", "adult#001", "--horizon", "0"], "--horizon"),
        (["backtest", "--patient", "adult#001", "--every", "30", "--horizons", "30,7"], "--horizons"),
        (["whatif", "--patient", "adult#001"], "at least one scenario"),
        (["whatif", "--patient", "adult#001", "--scenario", "x=bolus:lots"], "not a number"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    extra = ["--history", str(history)]
    if argv[0] != "whatif":
        extra += ["--out", str(tmp_path / "o.csv")]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_bad_history_names_file_row_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("minute,cgm_mg_dl,cho_g,insulin_u\n0,120,0,0.02\n1,,0,zero\n")
    assert (
        main(
            [
                "forecast",
                "--patient",
                "adult#001",
                "--history",
                str(bad),
                "--horizon",
                "30",
                "--out",
                str(tmp_path / "f.csv"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "bad.csv" in err and "row 3" in err and "insulin_u" in err and len(err.splitlines()) == 1


def test_bad_profile_names_the_key(history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prof = tmp_path / "p.toml"
    prof.write_text(
        "weight_kg = 70\ncarb_ratio_g_per_u = 10\ncorrection_factor_mg_dl_per_u = 2\nbasal = 1.0\n"
    )
    code = main(
        [
            "forecast",
            "--profile",
            str(prof),
            "--history",
            str(history),
            "--horizon",
            "30",
            "--out",
            str(tmp_path / "f.csv"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "correction_factor_mg_dl_per_u" in err and "p.toml" in err


def test_patient_and_profile_are_exclusive(history: Path, profile: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "forecast",
                "--patient",
                "adult#001",
                "--profile",
                str(profile),
                "--history",
                str(history),
                "--horizon",
                "30",
                "--out",
                str(tmp_path / "f.csv"),
            ]
        )
    assert exc.value.code == 2


def test_backtest_from_a_profile_reidentifies_nightly_and_reports_time_of_day(
    profile: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hist = tmp_path / "h30.csv"
    sim = ["simulate", "--patient", "adult#001", "--hours", "30", "--meal", "07:00=45", "--meal", "19:00=60"]
    assert main([*sim, "--cgm-seed", "4", "--out", str(hist)]) == 0
    out = tmp_path / "b.csv"
    argv = ["backtest", "--profile", str(profile), "--history", str(hist), "--every", "120"]
    assert main([*argv, "--horizons", "30", "--out", str(out), *FAST]) == 0
    text = capsys.readouterr().out
    assert "re-identified every 24 h" in text
    assert "At the last nightly re-identification:" in text and "night 00-06" in text
    issued = {int(r["issued_minute"]) for r in read(out)[1]}
    assert max(issued) > 1440  # forecasts after the nightly step
