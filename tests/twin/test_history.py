"""History files, baselines and scores."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from edgetwin.errors import InputDataError
from edgetwin.twin.history import BacktestRow, History, linear_extrapolation, persistence, score


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "h.csv"
    p.write_text(text)
    return p


def test_a_simulate_style_file_is_a_history(tmp_path: Path) -> None:
    h = History.from_csv(
        write(
            tmp_path,
            "minute,bg_mg_dl,gsub_mg_dl,cgm_mg_dl,cho_g,insulin_u\n0,1,1,120,0,0.02\n1,1,1,,0,0.02\n3,1,1,118,40,4\n",
        )
    )
    assert h.minutes == 4 and h.last_minute == 3
    assert h.cgm_mg_dl[0] == 120 and math.isnan(h.cgm_mg_dl[1]) and math.isnan(h.cgm_mg_dl[2])
    assert h.cho_g[3] == 40 and h.insulin_u[2] == 0.0  # missing minutes: no input


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("minute,cgm_mg_dl,cho_g\n0,1,2\n", "missing column 'insulin_u'"),
        ("minute,cgm_mg_dl,cho_g,insulin_u\n0,120,0,abc\n", "row 2, column 'insulin_u'"),
        ("minute,cgm_mg_dl,cho_g,insulin_u\n0,120,0,1\n0,121,0,1\n", "row 3, column 'minute'"),
        ("minute,cgm_mg_dl,cho_g,insulin_u\n0,,0,1\n", "no readings"),
        ("minute,cgm_mg_dl,cho_g,insulin_u\n0,1200,0,1\n", "outside (0, 1000]"),
        ("minute,cgm_mg_dl,cho_g,insulin_u\n0,120,900,1\n", "over 500"),
    ],
)
def test_bad_histories_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(
        InputDataError,
        match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]"),
    ) as exc:
        History.from_csv(write(tmp_path, text))
    assert "h.csv" in str(exc.value)


def test_baselines() -> None:
    cgm = np.full(100, np.nan)
    cgm[0:61:3] = 100.0 + np.arange(0, 61, 3)  # +1 mg/dL per minute
    assert persistence(cgm, 61) == 160.0
    assert linear_extrapolation(cgm, 60, 30) == pytest.approx(190.0)
    assert linear_extrapolation(cgm, 60, 1000) == 400.0  # kept within the sensor range
    assert math.isnan(persistence(np.full(200, np.nan), 150))


def test_scores_compare_against_the_same_rows() -> None:
    rows = [
        BacktestRow(30, 30, 90.0, 100.0, 110.0, 105.0, 120.0, 100.0),
        BacktestRow(60, 30, 90.0, 100.0, 110.0, 80.0, 100.0, 90.0),
        BacktestRow(90, 30, 90.0, 100.0, 110.0, math.nan, 100.0, 90.0),
    ]
    (s,) = score(rows)
    assert s.n == 2
    assert s.rmse == pytest.approx(math.sqrt((25 + 400) / 2))
    assert s.coverage_pct == 50.0
    assert s.persistence_mae == pytest.approx((15 + 20) / 2)
    assert s.linear_mard_pct == pytest.approx(100 * (5 / 105 + 10 / 80) / 2)
