"""Virtual trials end to end (CI-sized: one day, two patients): the twin controller stays inside
its limits on every decision, beats basal-bolus on clear cases, and ``edgetwin trial`` keeps its
file contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgetwin.cli import main
from edgetwin.messages import SuggestionKind
from edgetwin.safety import GateResult, max_safe_basal_u_per_h
from edgetwin.trial.controllers import TrialController, TwinTrialController
from edgetwin.trial.run import (
    PatientJob,
    TrialSettings,
    run_patient,
    trial_limits,
    trial_profile,
)

pytestmark = pytest.mark.slow

ONE_DAY = TrialSettings(days=1, seed=1)
K = SuggestionKind
METRICS = (
    "tir_70_180_pct",
    "tbr_70_pct",
    "tbr_54_pct",
    "tar_180_pct",
    "tar_250_pct",
    "mean_mg_dl",
    "cv_pct",
    "lbgi",
    "hbgi",
)


def test_twin_controller_stays_in_limits_and_beats_basal_bolus_where_it_fails() -> None:
    name = "child#004"  # basal-bolus sends this child low for hours on this day
    history: list[tuple[int, GateResult]] = []

    def keep(controller: TrialController) -> None:
        assert isinstance(controller, TwinTrialController)
        controller.history = history

    twin = run_patient(PatientJob(name, "twin", ONE_DAY, "oracle"), on_controller=keep)
    bb = run_patient(PatientJob(name, "basal-bolus", ONE_DAY))
    assert bb.metrics["tbr_70_pct"] > 10.0  # the clear case
    assert twin.metrics["tbr_54_pct"] == 0.0 and twin.metrics["tbr_70_pct"] <= 2.0
    assert twin.metrics["tir_70_180_pct"] > bb.metrics["tir_70_180_pct"] + 10.0

    profile = trial_profile(name)
    limits = trial_limits(profile)
    assert len(history) >= 480
    kinds = set()
    for minute, result in history:
        s = result.suggestion
        if s is None:
            continue
        kinds.add(s.kind)
        now = s.created_utc
        basal = profile.basal_at(now)
        room = max(0.0, limits.effective_max_iob_u - (result.iob_u or 0.0))
        extra = 0.0
        if s.rate_u_per_h is not None and s.kind is not K.KEEP_BASAL:
            assert 0.0 <= s.rate_u_per_h <= max_safe_basal_u_per_h(profile, now, limits) + 1e-9
            assert s.duration_min is not None and s.duration_min <= 30
            extra += max(0.0, (s.rate_u_per_h - basal) * s.duration_min / 60.0)
        if s.kind in (K.BOLUS, K.MICRO_BOLUS):
            assert s.units is not None and 0 < s.units <= limits.max_bolus_u
            extra += s.units
        if s.kind is K.MICRO_BOLUS:
            assert s.units is not None and s.need_u is not None
            assert s.units <= basal * 0.5 + 1e-9 and s.units <= 0.5 * s.need_u + 1e-9
            assert result.cgm is not None and result.cgm.glucose_mg_dl is not None
            assert result.cgm.glucose_mg_dl > limits.suspend_threshold_mg_dl
        assert extra <= room + 1e-6, (minute, s)
        assert s.reason
    assert {K.MICRO_BOLUS, K.BOLUS} <= kinds  # automatic boluses and the patient's meal boluses
    assert twin.interventions == {
        rule: sum(1 for _, r in history for d in r.interventions if str(d.rule) == rule)
        for rule in twin.interventions
    }


def test_trial_command_writes_the_report_table_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "R.json"
    plots = tmp_path / "plots"
    code = main(
        [
            "trial", "--cohort", "adult", "--patients", "adult#001", "--days", "1", "--seed", "1",
            "--controller", "twin", "--estimator", "oracle", "--out", str(out), "--plot", str(plots),
            "--workers", "1",
        ]
    )  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert report["controller"] == "twin" and report["estimator"] == "oracle"
    assert "TRUE state" in report["estimator_note"]
    (patient,) = report["patients"]
    assert patient["patient"] == "adult#001"
    for key in (*METRICS, "total_insulin_u", "gate_interventions"):
        assert key in patient and key in report["aggregate"]["adult"]
    assert report["reference"]["controller"] == "basal-bolus"
    assert report["reference"]["patients"][0]["patient"] == "adult#001"
    assert (
        report["aggregate"]["adult"]["tir_70_180_pct"]
        > report["reference"]["aggregate"]["adult"]["tir_70_180_pct"]
    )
    assert set(report["targets"]["adult"]) >= {"tir_met", "tbr_54_met", "tbr_70_met", "beats_reference"}
    printed = capsys.readouterr().out
    assert "twin/oracle" in printed and "basal-bolus" in printed and "Targets adult" in printed
    assert (plots / "adult_001_twin.png").stat().st_size > 10_000


def test_the_living_twin_drives_the_controller_safely() -> None:
    """The product path: living twin (profile prior, patient left out, nightly personalisation)
    + suggester + gate. One day on an adult whose basal-bolus day has lows."""
    name = "adult#001"
    history: list[tuple[int, GateResult]] = []

    def keep(controller: TrialController) -> None:
        assert isinstance(controller, TwinTrialController)
        controller.history = history

    twin = run_patient(PatientJob(name, "twin", ONE_DAY, "twin"), on_controller=keep)
    bb = run_patient(PatientJob(name, "basal-bolus", ONE_DAY))
    assert twin.estimator == "twin"
    assert twin.metrics["tbr_54_pct"] == 0.0 and twin.metrics["tbr_70_pct"] < bb.metrics["tbr_70_pct"]
    assert twin.metrics["tir_70_180_pct"] > 80.0
    kinds = {r.suggestion.kind for _, r in history if r.suggestion is not None}
    assert K.BOLUS in kinds and (K.MICRO_BOLUS in kinds or K.TEMP_BASAL in kinds)
    assert "suggester_error" not in twin.interventions


def test_trial_command_refuses_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "R.json")
    assert main(["trial", "--cohort", "child", "--patients", "adult#001", "--days", "1", "--out", out]) == 2
    assert "not in cohort child" in capsys.readouterr().err
    assert main(["trial", "--days", "0", "--out", out]) == 2
    assert main(["trial", "--days", "1", "--out", str(tmp_path / "no" / "R.json"), "--patients", "adult#001",
                 "--controller", "basal-bolus", "--workers", "1"]) == 2  # fmt: skip
    assert "cannot write" in capsys.readouterr().err


def test_trial_runs_on_a_job_runner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--runner`` hands the patients to edgetwin.runner (here its local process pool, the same
    interface a Dask or Ray cluster offers); unknown runners are refused."""
    from edgetwin.trial.cohort import run_on_runner

    jobs = [PatientJob(n, "basal-bolus", ONE_DAY) for n in ("adult#001", "adult#002")]
    outcomes = run_on_runner(jobs, "local:2")
    direct = run_patient(jobs[1])
    assert [o.patient for o in outcomes] == ["adult#001", "adult#002"]
    assert outcomes[1].metrics == direct.metrics  # same days, same noise: same figures
    out = str(tmp_path / "R.json")
    assert main(["trial", "--days", "1", "--out", out, "--runner", "nowhere://x"]) == 2
    assert "unknown job runner" in capsys.readouterr().err
    assert main(["trial", "--days", "1", "--out", out, "--runner", "local:0"]) == 2
