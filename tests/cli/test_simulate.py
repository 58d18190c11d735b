"""The ``edgetwin simulate`` contract: files other tools read."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgetwin.cli import main
from edgetwin.model import load_patient
from edgetwin.virtual.patient import VirtualPatient


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def read(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_inputs_file_gives_one_row_per_minute_matching_the_model(tmp_path: Path) -> None:
    inp = write(tmp_path / "in.csv", "minute,cho_g,insulin_u\n0,0,0.02\n60,50,5\n119,0,0.02\n")
    out = tmp_path / "out.csv"
    assert main(["simulate", "--patient", "adult#001", "--inputs", str(inp), "--out", str(out)]) == 0
    rows = read(out)
    assert [r["minute"] for r in rows] == [str(i) for i in range(121)]
    assert {"minute", "bg_mg_dl", "gsub_mg_dl", "cgm_mg_dl"} <= set(rows[0])
    assert all(r["cgm_mg_dl"] == "" for r in rows)
    pp = load_patient("adult#001")
    cho = np.zeros(120)
    ins = np.zeros(120)
    cho[60], ins[0], ins[60], ins[119] = 50, 0.02, 5, 0.02
    states = VirtualPatient(pp).run(cho, ins)
    got = np.array([float(r["bg_mg_dl"]) for r in rows])
    np.testing.assert_allclose(got, states[:, 3] / pp.Vg, atol=1e-3)
    assert float(rows[0]["bg_mg_dl"]) == pytest.approx(pp.basal_glucose_mg_dl, abs=1e-3)


def test_cgm_seed_fills_sensor_minutes_reproducibly(tmp_path: Path) -> None:
    outs = []
    for i in range(2):
        out = tmp_path / f"o{i}.csv"
        main(["simulate", "--hours", "2", "--cgm-seed", "5", "--sensor", "GuardianRT", "--out", str(out)])
        outs.append(read(out))
    assert outs[0] == outs[1]
    cgm = [r["cgm_mg_dl"] for r in outs[0]]
    assert all(c != "" for c in cgm[::5]) and all(c == "" for c in cgm[1::5])


def test_quick_plan_with_basal_bolus_lowers_post_meal_peak(tmp_path: Path) -> None:
    peaks = {}
    for ctrl in ("basal", "basal-bolus"):
        out = tmp_path / f"{ctrl}.csv"
        main(["simulate", "--meal", "01:00=60", "--hours", "5", "--controller", ctrl, "--out", str(out)])
        peaks[ctrl] = max(float(r["gsub_mg_dl"]) for r in read(out))
    assert peaks["basal-bolus"] < peaks["basal"] - 20


def test_all_patients_adds_a_patient_column(tmp_path: Path) -> None:
    out = tmp_path / "all.csv"
    main(["simulate", "--patient", "all", "--hours", "1", "--out", str(out)])
    rows = read(out)
    assert len(rows) == 30 * 61 and len({r["patient"] for r in rows}) == 30


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("minute,cho_g,insulin_u\n0,abc,0.1\n", "row 2, column 'cho_g': 'abc' is not a number"),
        ("minute,cho_g,insulin_u\n0,0,-1\n", "row 2, column 'insulin_u': -1 must be finite and >= 0"),
        ("minute,cho_g\n0,0\n", "missing column 'insulin_u'"),
        ("minute,cho_g,insulin_u\n5,0,0\n3,0,0\n", "row 3, column 'minute': 3 is not after"),
        ("minute,cho_g,insulin_u\n1.5,0,0\n", "row 2, column 'minute'"),
        ("minute,cho_g,insulin_u\n0,0\n", "row 2: 2 cells"),
        ("", "empty file"),
    ],
)
def test_bad_input_is_one_line_naming_file_row_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    inp = write(tmp_path / "bad.csv", content)
    assert main(["simulate", "--inputs", str(inp)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(inp) in err and message in err


def test_unknown_patient_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--patient", "adult#099"]) == 2
    assert "unknown patient 'adult#099'" in capsys.readouterr().err
    assert main(["simulate", "--inputs", str(tmp_path / "nope.csv")]) == 2
    assert "cannot open" in capsys.readouterr().err


def test_console_script_prints_a_summary_without_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edgetwin", "simulate", "--hours", "3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "adult#001" in proc.stdout and "TIR%" in proc.stdout
