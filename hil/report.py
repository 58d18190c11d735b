"""The report of a run: ``report.json`` (for scripts), ``report.md`` (for people) and
``overview.png`` (glucose, CGM, forecast bands, insulin, heart rate and faults over time).

``report.json`` keys (``schema`` 1): ``scenario``, ``passed``, ``assertions`` (index, kind, label,
outcome, detail, values), ``run`` (wall time, speed, gateway lives, drain), ``metrics``
(``true_glucose``, ``cgm``, ``readings``, ``insulin``, ``forecast``, ``alarms``, ``sync``,
``heart_rate``, ``gateway``), ``safety_gate`` (every suggestion and gate decision the gateway
stored, with the rules that fired, and the bench's own check of every delivered command),
``pump_commands``, ``alarms``, ``faults`` (planned and applied windows) and ``log_events``.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from hil.assertions import AssertionResult, unsafe_commands
from hil.results import RunData
from hil.scenario import Scenario

__all__ = ["SCHEMA", "forecast_accuracy", "report_markdown", "write_report"]

SCHEMA = 1


def write_report(
    s: Scenario,
    data: RunData | None,
    results: list[AssertionResult],
    out: Path,
    *,
    wall_s: float,
    speed: float,
    plots: bool = True,
) -> dict[str, Any]:
    doc = build_report(s, data, results, wall_s=wall_s, speed=speed)
    if plots and data is not None:
        from hil.plots import overview

        overview(data, out / "overview.png")
        doc["plots"] = ["overview.png"]
    (out / "report.json").write_text(
        json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n", "utf-8"
    )
    (out / "report.md").write_text(report_markdown(doc), "utf-8")
    return doc


def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


def _glucose(g: np.ndarray) -> dict[str, Any] | None:
    from edgetwin.metrics import glucose_metrics

    g = g[np.isfinite(g)]
    if g.size < 2:
        return None
    m = glucose_metrics(g)
    return {
        "values": int(g.size),
        "mean_mg_dl": _r(m.mean_mg_dl),
        "tir_70_180_pct": _r(m.tir_70_180_pct, 2),
        "tbr_70_pct": _r(m.tbr_70_pct, 2),
        "tbr_54_pct": _r(m.tbr_54_pct, 2),
        "tar_180_pct": _r(m.tar_180_pct, 2),
        "cv_pct": _r(m.cv_pct),
        "min_mg_dl": _r(m.min_mg_dl),
        "max_mg_dl": _r(m.max_mg_dl),
        "lbgi": _r(m.lbgi, 2),
        "hbgi": _r(m.hbgi, 2),
    }


def forecast_accuracy(data: RunData) -> dict[str, Any]:
    """p50 error and 80 % band coverage of the forecasts the gateway issued, at 30 and 60 min,
    against the patient's true subcutaneous glucose (what the CGM measures, without noise)."""
    out: dict[str, Any] = {"forecasts": len(data.obs.forecasts)}
    truth = data.truth_gsub
    for h in (30, 60):
        errs, covered = [], 0
        for f in data.obs.forecasts:
            for t, lo, mid, hi in f.points:
                if mid is None or lo is None or hi is None:
                    continue
                if abs((t - f.issued_utc).total_seconds() / 60.0 - h) > 0.5:
                    continue
                m = int(round(data.forecast_minute(f.minute, t)))
                if 0 <= m < truth.size and math.isfinite(truth[m]):
                    errs.append(mid - truth[m])
                    covered += int(lo <= truth[m] <= hi)
        if errs:
            e = np.asarray(errs)
            out[f"{h}_min"] = {
                "n": int(e.size),
                "mae_mg_dl": _r(float(np.abs(e).mean())),
                "rmse_mg_dl": _r(float(np.sqrt((e * e).mean()))),
                "bias_mg_dl": _r(float(e.mean())),
                "band_80_coverage_pct": _r(100.0 * covered / e.size),
            }
    return out


def build_report(
    s: Scenario, data: RunData | None, results: list[AssertionResult], *, wall_s: float, speed: float
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "scenario": {
            "name": s.name,
            "description": s.description,
            "source": s.source,
            "patient": s.patient,
            "mode": s.mode,
            "hours": s.hours,
            "seed": s.seed,
            "speed": speed,
            "gateway_run": s.run,
            "devices": dict(s.devices),
        },
        "passed": all(r.outcome != "fail" for r in results),
        "assertions": [r.as_dict() for r in results],
    }
    if data is None:
        doc["run"] = {"wall_s": round(wall_s, 1), "completed": False}
        return doc
    obs = data.obs
    days = data.end_minute / 1440.0
    doc["run"] = {
        "completed": True,
        "start_utc": data.start_utc.isoformat(),
        "end_utc": data.time_of(data.end_minute).isoformat(),
        "world_minutes": data.end_minute,
        "wall_s": round(wall_s, 1),
        "speed": speed,
        "wall_s_per_simulated_day": _r(wall_s / days, 1) if days > 0 else None,
        "gateway_ready_minute": obs.gateway_ready_minute,
        "gateway_lives": [vars(life) for life in data.lives],
        "drain": obs.drain,
        "status_polls": len(obs.samples),
        "status_errors": obs.status_errors,
        "effective_speed": obs.effective_speed,
        "speed_changes": obs.speed_changes,
        "max_event_loop_lag_s": round(obs.max_loop_lag_s, 3),
        "stalls": obs.stalls,
    }
    values = [e for e in data.sensor_log if e.has_value]
    sm, cm = data.store_match, data.cloud_match  # computed once here: matching is not free
    bolus_p = [c for c in data.pump_commands if c.source == "patient" and c.kind == "bolus" and c.applied]
    gw_cmds = [c for c in data.pump_commands if c.source == "gateway"]
    last = obs.last_status or {}
    doc["metrics"] = {
        "true_glucose": _glucose(data.truth_bg),
        "cgm": _glucose(
            np.array(
                [
                    float(r.glucose_mg_dl)
                    for r in data.cgm
                    if r.glucose_mg_dl is not None and 0 <= data.minute_of(r.time_utc) <= data.end_minute
                ]
            )
        ),
        "readings": {
            "sensor_records": len(data.sensor_log),
            "with_value": len(values),
            "without_value": len(data.sensor_log) - len(values),
            "sensor_sessions": len({e.session for e in data.sensor_log}),
            "stored_cgm_rows": len(data.cgm),
            "store": None if sm is None else sm.as_dict(5),
            "cloud": None if cm is None else cm.as_dict(5),
        },
        "insulin": {
            "delivered_u": _r(float(np.nansum(data.insulin_u)), 2),
            "patient_boluses": len(bolus_p),
            "patient_bolus_u": _r(sum(c.units or 0.0 for c in bolus_p), 2),
            "gateway_commands": dict(
                Counter(f"{c.kind}:{'applied' if c.applied else 'not applied'}" for c in gw_cmds)
            ),
            "pump_reported_u": _r(sum(d.units for d in data.insulin), 2),
            "carbs_eaten_g": _r(float(np.nansum(data.carbs_g)), 1),
            "carbs_announced_g": _r(sum(c.grams for c in data.carbs), 1),
            "meals": len(data.meals),
            "missed_or_unannounced_meals": sum(1 for m in data.meals if m.announced_g <= 0),
        },
        "forecast": forecast_accuracy(data),
        "alarms": dict(Counter(a.alarm.kind for a in data.alarms)),
        "sync": {
            "cloud_counts": data.cloud_counts,
            "outbox_backlog_at_stop": data.outbox_backlog,
            "stored_readings_in_cloud": data.cloud_store_match.as_dict(5),
            "proxy_connections": data.proxy_stats,
            "last_state": (last.get("sync") or {}).get("state"),
        },
        "heart_rate": {
            "readings": len(data.heart_rate),
            "max_bpm": max((r.heart_rate_bpm for r in data.heart_rate), default=None),
        },
        "gateway": {
            "store_rows": data.store_counts,
            "checkpoints": data.checkpoints,
            "devices": last.get("devices"),
            "cycles": last.get("cycles"),
            "twin": last.get("twin"),
            "suggestions": last.get("suggestions"),
        },
    }
    doc["safety_gate"] = {
        "suggestions": [
            {"id": sid, "created_utc": sg.created_utc.isoformat(), "kind": str(sg.kind), "reason": sg.reason,
             "rate_u_per_h": sg.rate_u_per_h, "duration_min": sg.duration_min, "units": sg.units, "carbs_g": sg.carbs_g}
            for sid, sg in data.suggestions
        ],
        "decisions": [
            {"id": did, "time_utc": dc.time_utc.isoformat(), "suggestion_id": dc.suggestion_id, "outcome": str(dc.outcome),
             "result_suggestion_id": dc.result_suggestion_id,
             "findings": [{"rule": f.rule, "action": f.action, "message": f.message, "values": dict(f.values)} for f in dc.findings]}
            for did, dc in data.decisions
        ],
        "limits": {"max_basal_u_per_h": data.cfg.limits.max_basal_u_per_h, "max_bolus_u": data.cfg.limits.max_bolus_u, **{k: v for k, v in data.cfg.limits.table.items() if isinstance(v, (int, float, str))}},
        "delivered_commands_checked": sum(1 for c in gw_cmds if c.applied),
        "unsafe_commands": unsafe_commands(data),
    }  # fmt: skip
    doc["pump_commands"] = [c.as_dict() for c in data.pump_commands]
    doc["alarms"] = [
        {"time_utc": a.alarm.time_utc.isoformat(), "minute": _r(data.alarm_minute(a.alarm_id)), "kind": a.alarm.kind,
         "severity": a.alarm.severity, "message": a.alarm.message}
        for a in sorted(data.alarms, key=lambda a: a.alarm_id)
    ]  # fmt: skip
    doc["faults"] = obs.fault_log
    doc["log_events"] = dict(Counter(str(e.get("event")) for e in data.log_events))
    return doc


def _fmt(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items()) or "none"
    if v is None:
        return "–"
    return f"{v:g}" if isinstance(v, float) else str(v)


def report_markdown(doc: dict[str, Any]) -> str:
    sc = doc["scenario"]
    verdict = "PASSED" if doc["passed"] else "FAILED"
    lines = [
        f"# HIL scenario `{sc['name']}`: {verdict}",
        "",
        sc["description"],
        "",
        f"Patient {sc['patient']}, {sc['mode']}, {sc['hours']:g} h simulated, seed {sc['seed']}, gateway {sc['gateway_run']}, "
        f"devices {_fmt(sc['devices'])}.",
    ]
    run = doc.get("run", {})
    if run.get("completed"):
        lines.append(
            f"Ran {run['start_utc'][:16]} to {run['end_utc'][:16]} UTC (clock time) in {run['wall_s']:g} s of real time at "
            f"x{run['speed']:g}; gateway lives: {len(run['gateway_lives'])}; drain {_fmt(run['drain'].get('clock_min'))} clock min."
        )
        if run.get("speed_changes"):
            lines.append(
                f"The machine could not keep up at x{run['speed']:g}: the bench slowed its clock "
                f"{len(run['speed_changes'])} time(s) (effective x{_fmt(run.get('effective_speed'))})."
            )
    hung = [life for life in run.get("gateway_lives", []) if life.get("stop_hung")]
    for life in hung:
        lines.append(
            f"**Bench note:** stopping the gateway (life from minute {life['started_minute']}) hung: tasks "
            f"{', '.join(life['stop_hung'])} ignored their cancellation and were cancelled again."
        )
    lines += ["", "## Assertions", "", "| # | assertion | outcome | detail |", "|---|---|---|---|"]
    for a in doc["assertions"]:
        mark = {"pass": "pass", "fail": "**FAIL**", "skip": "skip"}[a["outcome"]]
        detail = a["detail"]
        if a.get("known_issue"):
            detail += f" (known issue: {a['known_issue']})"
        lines.append(f"| {a['index']} | `{a['label']}` | {mark} | {detail} |")
    if not run.get("completed"):
        return "\n".join(lines) + "\n"
    m = doc["metrics"]
    lines += ["", "## Figures", "", "| figure | value |", "|---|---|"]
    for key, title in (("true_glucose", "true glucose (plasma)"), ("cgm", "CGM (stored)")):
        g = m.get(key)
        if g:
            lines.append(
                f"| {title} | mean {g['mean_mg_dl']} mg/dL, TIR 70-180 {g['tir_70_180_pct']} %, <70 {g['tbr_70_pct']} %, "
                f"<54 {g['tbr_54_pct']} %, >180 {g['tar_180_pct']} %, min {g['min_mg_dl']}, max {g['max_mg_dl']} |"
            )
    rd = m["readings"]
    lines.append(
        f"| sensor | {rd['sensor_records']} records in {rd['sensor_sessions']} session(s), {rd['with_value']} with a value |"
    )
    for where in ("store", "cloud"):
        mm = rd.get(where)
        if mm:
            lines.append(
                f"| readings in the {where} | {mm['found']}/{mm['expected']} found, {mm['lost']} lost, {mm['duplicated']} duplicated |"
            )
    ins = m["insulin"]
    lines.append(
        f"| insulin | {ins['delivered_u']} U delivered into the patient ({ins['patient_boluses']} meal boluses, {ins['patient_bolus_u']} U); "
        f"pump reported {ins['pump_reported_u']} U; gateway commands {_fmt(ins['gateway_commands'])} |"
    )
    lines.append(
        f"| meals | {ins['meals']} meals, {ins['carbs_eaten_g']} g eaten, {ins['carbs_announced_g']} g announced, "
        f"{ins['missed_or_unannounced_meals']} missed or unannounced |"
    )
    for h in ("30_min", "60_min"):
        f = m["forecast"].get(h)
        if f:
            lines.append(
                f"| forecast {h.replace('_', ' ')} | {f['n']} forecasts, MAE {f['mae_mg_dl']} mg/dL, bias {f['bias_mg_dl']}, "
                f"80 % band covered {f['band_80_coverage_pct']} % |"
            )
    lines.append(f"| alarms | {_fmt(m['alarms'])} |")
    sy = m["sync"]
    lines.append(
        f"| sync | cloud holds {_fmt(sy['cloud_counts'])}; outbox backlog at stop {sy['outbox_backlog_at_stop']}; "
        f"proxy connections {_fmt(sy['proxy_connections'])} |"
    )
    hr = m["heart_rate"]
    lines.append(f"| heart rate | {hr['readings']} readings, max {_fmt(hr['max_bpm'])} bpm |")
    gw = m["gateway"]
    lines.append(f"| gateway | {gw['checkpoints']} checkpoints; log events {_fmt(doc['log_events'])} |")
    sg = doc["safety_gate"]
    lines += [
        "",
        "## Safety gate",
        "",
        f"{len(sg['suggestions'])} suggestion(s) and {len(sg['decisions'])} gate decision(s) stored; "
        f"{sg['delivered_commands_checked']} delivered gateway command(s) checked against the limits "
        f"({_fmt({k: v for k, v in sg['limits'].items() if k.startswith('max')})}): {len(sg['unsafe_commands'])} unsafe.",
    ]
    if isinstance(gw.get("suggestions"), dict) and gw["suggestions"].get("available") is False:
        lines.append(f"The gateway says: {gw['suggestions'].get('detail')}.")
    for d in sg["decisions"][:50]:
        rules = "; ".join(f"{f['rule']} ({f['action']})" for f in d["findings"]) or "no rule fired"
        lines.append(f"- {d['time_utc'][:16]} suggestion {d['suggestion_id']}: {d['outcome']} — {rules}")
    lines += ["", "## Faults", "", "| fault | planned (min) | applied (min) |", "|---|---|---|"]
    for f in doc["faults"]:
        planned = f"{f['planned_minute']}+{f['planned_minutes']}"
        applied = (
            "not reached"
            if f.get("started_minute") is None
            else f"{f['started_minute']}–{_fmt(f.get('ended_minute'))}"
        )
        lines.append(f"| {f['label']} | {planned} | {applied} |")
    if doc["alarms"]:
        lines += ["", "## Alarms", ""]
        for a in doc["alarms"][:40]:
            lines.append(f"- minute {a['minute']}: {a['severity']} `{a['kind']}` — {a['message']}")
        if len(doc["alarms"]) > 40:
            lines.append(f"- … {len(doc['alarms']) - 40} more in report.json")
    if doc.get("plots"):
        lines += ["", "## Over time", "", "![overview](overview.png)"]
    return "\n".join(lines) + "\n"


def _iso(t: datetime) -> str:
    return t.isoformat()
