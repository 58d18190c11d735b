"""Trial reports: the R.json document, the printed summary table and PNG glucose traces.

``R.json`` (version 1)::

    {"edgetwin_trial": 1,
     "settings": {cohort, days, seed, carb_error, p_missed_bolus, p_unannounced_snack, sensor, pump},
     "controller": "twin" | "basal-bolus",
     "estimator": "oracle" | ... | null,   "estimator_note": "...",
     "patients": [{patient, group, tir_70_180_pct, tbr_70_pct, tbr_54_pct, tar_180_pct, tar_250_pct,
                   mean_mg_dl, cv_pct, lbgi, hbgi, ..., total_insulin_u, insulin_u_per_day,
                   rescue_carbs_g, gate_interventions: {rule: count}, ...}],
     "aggregate": {group | "all": {n, <the same metrics, mean over patients>, total_insulin_u
                   (mean per patient), gate_interventions: {rule: count}, ...}},
     "reference": {"controller": "basal-bolus", "patients": [...], "aggregate": {...}},
     "targets": {group: {tir_target_pct, tir_met, tbr_54_met, tbr_70_met, beats_reference}}}

``reference`` (the basal-bolus controller on exactly the same days and sensor noise) and
``targets`` are present when the twin controller ran with its reference.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edgetwin.trial.cohort import aggregate
from edgetwin.trial.run import PLOT_STEP_MIN, PatientOutcome, TrialSettings

__all__ = [
    "ESTIMATOR_NOTES",
    "TIR_TARGETS_PCT",
    "build_report",
    "format_table",
    "write_plots",
    "write_report",
]

TIR_TARGETS_PCT = {"adult": 90.0, "adolescent": 80.0, "child": 75.0}
TBR_54_TARGET_PCT = 0.5
TBR_70_TARGET_PCT = 2.0

ESTIMATOR_NOTES = {
    "oracle": (
        "oracle: the suggester ran on the virtual patient's TRUE state (no estimation error); "
        "an upper bound for the living twin, not its performance"
    ),
    "twin": "the living twin: particle-filter estimate from CGM, insulin and announced carbs",
}


def build_report(
    cohort: str,
    settings: TrialSettings,
    controller: str,
    estimator: str | None,
    outcomes: Sequence[PatientOutcome],
    reference: Sequence[PatientOutcome] | None = None,
) -> dict[str, Any]:
    days = settings.days
    report: dict[str, Any] = {
        "edgetwin_trial": 1,
        "settings": {"cohort": cohort, **asdict(settings)},
        "controller": controller,
        "estimator": estimator,
        "estimator_note": ESTIMATOR_NOTES.get(estimator or "", ""),
        "patients": [o.summary(days) for o in outcomes],
        "aggregate": aggregate(outcomes, days),
    }
    if reference:
        ref_agg = aggregate(reference, days)
        report["reference"] = {
            "controller": "basal-bolus",
            "patients": [o.summary(days) for o in reference],
            "aggregate": ref_agg,
        }
        targets: dict[str, Any] = {}
        for group, row in report["aggregate"].items():
            ref = ref_agg.get(group, {})
            tir_target = TIR_TARGETS_PCT.get(group)
            entry: dict[str, Any] = {
                "tir_target_pct": tir_target,
                "tir_met": None if tir_target is None else row["tir_70_180_pct"] >= tir_target,
                "tbr_54_met": row["tbr_54_pct"] <= TBR_54_TARGET_PCT,
                "tbr_70_met": row["tbr_70_pct"] <= TBR_70_TARGET_PCT,
                "beats_reference_tir": row["tir_70_180_pct"] > ref.get("tir_70_180_pct", float("inf")),
                "beats_reference_tbr_70": row["tbr_70_pct"] <= ref.get("tbr_70_pct", float("-inf")),
            }
            entry["beats_reference"] = entry["beats_reference_tir"] and entry["beats_reference_tbr_70"]
            targets[group] = entry
        report["targets"] = targets
    return report


def write_report(report: dict[str, Any], path: str | Path) -> None:
    """Write ``R.json`` atomically (a temporary file renamed into place)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1, sort_keys=False) + "\n", "utf-8")
    tmp.replace(p)


_COLS = (
    ("TIR%", "tir_70_180_pct", "{:7.1f}"),
    ("<70%", "tbr_70_pct", "{:7.2f}"),
    ("<54%", "tbr_54_pct", "{:7.2f}"),
    (">180%", "tar_180_pct", "{:7.1f}"),
    (">250%", "tar_250_pct", "{:7.1f}"),
    ("mean", "mean_mg_dl", "{:7.1f}"),
    ("CV%", "cv_pct", "{:7.1f}"),
    ("LBGI", "lbgi", "{:7.2f}"),
    ("HBGI", "hbgi", "{:7.2f}"),
    ("U/day", "insulin_u_per_day", "{:7.1f}"),
)


def _row(label: str, controller: str, values: dict[str, Any], extra: str) -> str:
    cells = []
    for _, key, fmt in _COLS:
        v = values.get(key)
        cells.append(fmt.format(v) if isinstance(v, (int, float)) else f"{'-':>7}")
    return f"{label:<16}{controller:<13}{''.join(cells)}  {extra}"


def _interventions(counts: dict[str, int]) -> str:
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{k} {v}" for k, v in top)


def format_table(report: dict[str, Any], *, per_patient: bool = True) -> str:
    s = report["settings"]
    lines = [
        f"Virtual trial: cohort {s['cohort']}, {s['days']} day(s), seed {s['seed']}, "
        f"{len(report['patients'])} patient(s); carb-count errors ±{s['carb_error'] * 100:.0f} %, "
        f"missed boluses {s['p_missed_bolus'] * 100:.0f} %, unannounced snacks "
        f"{s['p_unannounced_snack'] * 100:.0f} %, {s['sensor']} CGM noise.",
    ]
    if report["controller"] == "twin":
        lines.append(f"Twin controller estimator: {report['estimator_note']}.")
    lines.append("Metrics on true subcutaneous glucose every minute (mg/dL); group rows are patient means.")
    header = f"{'patient/group':<16}{'controller':<13}" + "".join(f"{h:>7}" for h, _, _ in _COLS)
    lines.append(header + "  gate interventions (top 3)")
    ref = report.get("reference")
    ref_patients = {p["patient"]: p for p in ref["patients"]} if ref else {}
    twin_label = report["controller"] if report["controller"] != "twin" else f"twin/{report['estimator']}"
    if per_patient:
        for p in report["patients"]:
            lines.append(
                _row(p["patient"], twin_label, p, _interventions(p["gate_interventions"]))
                + (f"  rescue {p['rescue_carbs_g']:.0f} g" if p.get("rescue_carbs_g") else "")
            )
            if p["patient"] in ref_patients:
                lines.append(_row("", "basal-bolus", ref_patients[p["patient"]], ""))
    lines.append("")
    for group, row in report["aggregate"].items():
        lines.append(_row(f"[{group}]", twin_label, row, _interventions(row["gate_interventions"])))
        if ref:
            lines.append(_row("", "basal-bolus", ref["aggregate"][group], ""))
    targets = report.get("targets")
    if targets:
        lines.append("")
        for group, t in targets.items():
            if t["tir_target_pct"] is None:
                continue
            marks = [
                f"TIR >= {t['tir_target_pct']:.0f} %: {'yes' if t['tir_met'] else 'NO'}",
                f"<54 <= 0.5 %: {'yes' if t['tbr_54_met'] else 'NO'}",
                f"<70 <= 2 %: {'yes' if t['tbr_70_met'] else 'NO'}",
                f"beats basal-bolus: {'yes' if t['beats_reference'] else 'NO'}",
            ]
            lines.append(f"Targets {group:<11}" + "; ".join(marks))
    return "\n".join(lines)


def write_plots(
    outcomes: Sequence[PatientOutcome], reference: Sequence[PatientOutcome] | None, directory: str | Path
) -> list[Path]:
    """One PNG per patient: glucose traces (and the reference's), insulin and carbs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    ref_by_name = {o.patient: o for o in reference or ()}
    written: list[Path] = []
    for o in outcomes:
        fig, (ax_g, ax_i) = plt.subplots(
            2, 1, figsize=(14, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
        )
        hours = [i * PLOT_STEP_MIN / 60.0 for i in range(len(o.gsub_mg_dl))]
        ax_g.axhspan(70, 180, color="tab:green", alpha=0.08)
        ax_g.axhline(54, color="tab:red", lw=0.6, ls=":")
        label = o.controller if o.controller != "twin" else f"twin ({o.estimator})"
        ref = ref_by_name.get(o.patient)
        if ref is not None:
            ax_g.plot(hours, ref.gsub_mg_dl, color="tab:gray", lw=0.7, label="basal-bolus")
        ax_g.plot(hours, o.gsub_mg_dl, color="tab:blue", lw=0.9, label=label)
        for minute, _eaten, announced in o.meals:
            colour = "tab:orange" if announced > 0 else "tab:red"
            ax_g.plot(minute / 60.0, 40, marker="^", color=colour, ms=4)
        ax_g.set_ylabel("glucose (mg/dL)")
        ax_g.set_ylim(30, 400)
        ax_g.legend(loc="upper right", fontsize=8)
        ax_g.set_title(
            f"{o.patient}: TIR {o.metrics['tir_70_180_pct']:.1f} %, <70 {o.metrics['tbr_70_pct']:.2f} % "
            f"(meals: orange announced, red unannounced)"
        )
        ih = [i * PLOT_STEP_MIN / 60.0 for i in range(len(o.insulin_u))]
        ax_i.bar(ih, o.insulin_u, width=PLOT_STEP_MIN / 60.0, color="tab:purple")
        ax_i.set_ylabel(f"insulin (U/{PLOT_STEP_MIN} min)")
        ax_i.set_xlabel("hours from the start")
        fig.tight_layout()
        path = out_dir / f"{o.patient.replace('#', '_')}_{o.controller}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
