"""Judging a run: each ``[[assert]]`` of the scenario against the collected data.

Every assertion gives ``pass``, ``fail`` or ``skip`` (nothing to judge in this run, e.g. the
fault it measures from was cut off by a short version) with a one-line reason and the numbers it
compared. What each kind checks:

* ``time_below``: percent of minutes below ``below_mg_dl`` (default 54) ≤ ``max_pct``; of the
  true plasma glucose (``of = "true"``, default) or of the stored CGM readings (``"cgm"``).
* ``time_in_range``: percent in [``low_mg_dl``, ``high_mg_dl``] ≥ ``min_pct``.
* ``no_unsafe_command``: every command the *gateway* got the pump to apply is within the safety
  limits of its configuration (temp basal rate ≤ ``max_basal_u_per_h``, bolus ≤ ``max_bolus_u``,
  temp basal duration ≤ ``max_temp_basal_min`` when set) and, in open loop, there is none at all
  (the patient's own meal boluses are not gateway commands).
* ``no_reading_lost``: every sensor record with a value up to the end is in the gateway's store
  exactly once and (``cloud = true``, default) in the cloud exactly once, after the drain.
* ``alarm_within``: for every window of ``fault`` (on ``device``, if given) that lasts at least
  ``minutes``, an alarm whose kind matches ``alarm`` (a shell pattern: ``"*occlusion*"``) was
  raised within ``minutes`` of the window's start.
* ``no_alarm``: no alarm matching ``alarm`` ever raised (``outside_faults``: never outside fault windows and the
  hour after each).
* ``pump_fault_seen_within``: the stored pump status shows the pump fault (occlusion, empty
  reservoir) within ``minutes`` of its start.
* ``sync_drained``: every reading the gateway stored up to the end reached the cloud.
* ``gateway_resumed``: after every stop or SIGKILL the gateway came back, restored its twin from
  a checkpoint, and its twin never went back in time.
* ``exercise_seen``: the stored heart rate reached ``min_bpm`` during every exercise bout.
* ``unconfirmed_reported``: every gateway command the pump answered without applying it
  (``unconfirmed_commands``) is stored by the gateway as not confirmed, and nothing the pump did
  not apply is stored as confirmed.

An assertion with ``known_issue`` still fails when it fails; its result carries the note.
"""

from __future__ import annotations

import fnmatch
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from hil.results import RunData
from hil.scenario import AssertionSpec, FaultSpec, Scenario

__all__ = ["AssertionResult", "evaluate", "unsafe_commands"]

ALARM_GRACE_MIN = 60.0
STALL_EXCUSE = 0.25
"""Fraction of an alarm's window that measured stalls must fill for the alarm not to count."""
INSTANT_FAULTS = ("clock_jump", "sensor_warmup", "gateway_kill", "gateway_restart")
"""Faults that act at their start (their window length is not how long they last)."""


@dataclass
class AssertionResult:
    index: int
    kind: str
    label: str
    outcome: str
    """``pass``, ``fail`` or ``skip``."""
    detail: str
    values: dict[str, Any] = field(default_factory=dict)
    known_issue: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "kind": self.kind,
            "label": self.label,
            "outcome": self.outcome,
            "detail": self.detail,
            "values": self.values,
            "known_issue": self.known_issue,
        }


def evaluate(s: Scenario, data: RunData | None) -> list[AssertionResult]:
    out = []
    for a in s.assertions:
        if data is None:
            out.append(
                AssertionResult(
                    a.index, a.kind, a.label, "fail", "the run did not complete", {}, a.known_issue
                )
            )
            continue
        outcome, detail, values = _CHECKS[a.kind](a, data)
        out.append(AssertionResult(a.index, a.kind, a.label, outcome, detail, values, a.known_issue))
    return out


Check = Callable[[AssertionSpec, RunData], tuple[str, str, dict[str, Any]]]


def _verdict(ok: bool) -> str:
    return "pass" if ok else "fail"


def _series(a: AssertionSpec, d: RunData) -> np.ndarray:
    if a.get("of", "true") == "cgm":
        return np.array(
            [
                float(r.glucose_mg_dl)
                for r in d.cgm
                if r.glucose_mg_dl is not None and 0 <= d.minute_of(r.time_utc) <= d.end_minute
            ]
        )
    g = d.truth_bg
    return g[np.isfinite(g)]


def _time_below(a: AssertionSpec, d: RunData) -> tuple[str, str, dict[str, Any]]:
    g = _series(a, d)
    if g.size == 0:
        return "fail", "no glucose values to judge", {}
    below = float(a.get("below_mg_dl"))
    pct = 100.0 * float((g < below).mean())
    limit = float(a.get("max_pct"))
    return (
        _verdict(pct <= limit),
        f"{pct:.2f} % of {a.get('of')} glucose below {below:g} mg/dL (limit {limit:g} %)",
        {"pct": round(pct, 3), "min_mg_dl": round(float(g.min()), 1)},
    )


def _time_in_range(a: AssertionSpec, d: RunData) -> tuple[str, str, dict[str, Any]]:
    g = _series(a, d)
    if g.size == 0:
        return "fail", "no glucose values to judge", {}
    lo, hi = float(a.get("low_mg_dl")), float(a.get("high_mg_dl"))
    pct = 100.0 * float(((g >= lo) & (g <= hi)).mean())
    need = float(a.get("min_pct"))
    return (
        _verdict(pct >= need),
        f"{pct:.1f} % of {a.get('of')} glucose in {lo:g}-{hi:g} mg/dL (need ≥ {need:g} %)",
        {"pct": round(pct, 2)},
    )


def unsafe_commands(d: RunData) -> list[dict[str, Any]]:
    """Gateway commands the pump applied that break the configured limits (with the rule): the
    safety gate's own validated limits when this build has them (``cfg.limits.safety``: its
    time-of-day maximum safe basal and longest temp basal), the ``[limits]`` table otherwise."""
    lim = d.cfg.limits
    safety = getattr(lim, "safety", None)
    max_temp = lim.table.get("max_temp_basal_min", getattr(safety, "max_temp_basal_min", None))
    bad = []
    for c in d.pump_commands:
        if c.source != "gateway" or not c.applied:
            continue
        why = []
        if not d.cfg.closed_loop and c.kind in ("temp_basal", "bolus", "therapy_state"):
            why.append("open-loop: the gateway must not command the pump")
        if c.kind == "temp_basal" and c.rate_u_per_h is not None:
            cap, rule = lim.max_basal_u_per_h, "max_basal_u_per_h"
            safe = _max_safe_basal(d, c.time_utc)
            if safe is not None and safe < cap:
                cap, rule = safe, "max safe basal (safety gate)"
            if c.rate_u_per_h > cap + 1e-9:
                why.append(f"rate {c.rate_u_per_h:g} U/h > {rule} {cap:g}")
            if isinstance(max_temp, (int, float)) and (c.duration_min or 0) > max_temp + 1e-9:
                why.append(f"duration {c.duration_min:g} min > max_temp_basal_min {max_temp:g}")
        if c.kind == "bolus" and c.units is not None and c.units > lim.max_bolus_u + 1e-9:
            why.append(f"bolus {c.units:g} U > max_bolus_u {lim.max_bolus_u:g}")
        if why:
            bad.append({**c.as_dict(), "violations": why})
    return bad


def _max_safe_basal(d: RunData, when: datetime) -> float | None:
    safety = getattr(d.cfg.limits, "safety", None)
    if safety is None:
        return None
    try:
        from edgetwin.safety.limits import max_safe_basal_u_per_h
    except ImportError:
        return None
    return float(max_safe_basal_u_per_h(d.cfg.profile, when, safety))


def _no_unsafe_command(a: AssertionSpec, d: RunData) -> tuple[str, str, dict[str, Any]]:
    gateway = [c for c in d.pump_commands if c.source == "gateway"]
    applied = [c for c in gateway if c.applied]
    bad = unsafe_commands(d)
    values = {"gateway_commands": len(gateway), "applied": len(applied), "unsafe": bad[:20]}
    if bad:
        return (
            "fail",
            f"{len(bad)} unsafe command(s) delivered, first: {'; '.join(bad[0]['violations'])}",
            values,
        )
    return "pass", f"{len(applied)} gateway command(s) applied by the pump, all within limits", values


def _no_reading_lost(a: AssertionSpec, d: RunData) -> tuple[str, str, dict[str, Any]]:
    if not d.simulated_cgm:
        m = d.cloud_store_match
        ok = m.complete or not a.get("cloud")
        return (
            _verdict(ok),
            f"real CGM: {m.found}/{m.expected} stored readings in the cloud ({len(m.duplicated)} duplicated)",
            {"cloud": m.as_dict()},
        )
    sm, cm = d.store_match, d.cloud_match
    assert sm is not None and cm is not None
    values: dict[str, Any] = {"store": sm.as_dict(), "cloud": cm.as_dict()}
    problems = []
    if sm.lost:
        problems.append(
            f"{len(sm.lost)} of {sm.expected} readings never reached the store (first {sm.lost[0]['time_utc']})"
        )
    if sm.duplicated:
        problems.append(f"{len(sm.duplicated)} readings stored more than once")
    if a.get("cloud"):
        if cm.lost:
            problems.append(f"{len(cm.lost)} readings missing in the cloud (first {cm.lost[0]['time_utc']})")
        if cm.duplicated:
            problems.append(f"{len(cm.duplicated)} readings in the cloud more than once")
    if problems:
        return "fail", "; ".join(problems), values
    where = "store and cloud" if a.get("cloud") else "store"
    return "pass", f"all {sm.expected} sensor readings in the {where} exactly once", values


@dataclass(frozen=True)
class _Window:
    """A fault as it was applied: its spec and the world minutes it started (and will end)."""

    f: FaultSpec
    minute: float

    @property
    def end_minute(self) -> float:
        return self.minute + self.f.minutes


def _windows(d: RunData, kind: str) -> list[_Window]:
    return [_Window(f, start) for f, start in d.applied_faults(kind) if start <= d.end_minute]


def _alarm_minutes(d: RunData, pattern: str) -> list[float]:
    return sorted(d.alarm_minute(a.alarm_id) for a in d.alarms if fnmatch.fnmatchcase(a.alarm.kind, pattern))


def _stalled(d: RunData, start: float, end: float) -> float:
    """Clock minutes the bench itself did not run (measured event-loop stalls) in [start, end]."""
    return float(sum(s["clock_min"] for s in d.obs.stalls if start <= s["minute"] <= end))


def _alarm_within(a: AssertionSpec, d: RunData) -> tuple[str, str, dict[str, Any]]:
    kind, within = str(a.get("alarm")), float(a.get("minutes"))
    device = a.get("device") or None
    windows = [
        w
        for w in _windows(d, str(a.get("fault")))
        if w.minute + within <= d.end_minute
        and (w.f.minutes >= within or w.f.kind in INSTANT_FAULTS)
        and w.f.probability >= 1.0  # a fault that lets some data through need not alarm
        and (device is None or w.f.device == device)
    ]
    if not windows:
        return "skip", f"no {a.get('fault')} window of ≥ {within:g} min inside this run", {}
    raised = _alarm_minutes(d, kind)
    delays, missed = [], []
    for w in windows:
        # A bench that stalled inside the window delayed everything by as much: allow for it.
        deadline = w.minute + within + _stalled(d, w.minute, w.minute + within)
        hit = [m for m in raised if w.minute <= m <= deadline]
        if hit:
            delays.append(round(hit[0] - w.minute, 1))
        else:
            missed.append(w.minute)
    values = {"windows": len(windows), "delays_min": delays, "missed_at_minute": missed}
    if missed:
        return (
            "fail",
            f"no {kind} alarm within {within:g} min of {a.get('fault')} at minute(s) {missed}",
            values,
        )
    return (
        "pass",
        f"{kind} raised {max(delays):g} min (worst) after each of {len(windows)} {a.get('fault')} window(s)",
        values,
    )


def _no_alarm(a: AssertionSpec, d: RunData) -> tuple[str, str, dict[str, Any]]:
    kind = str(a.get("alarm"))
    raised = [m for m in _alarm_minutes(d, kind) if 0 <= m <= d.end_minute]
    if a.get("outside_faults"):
        applied = [_Window(f, start) for f, start in d.applied_faults()]

        def in_fault(m: float) -> bool:
            return any(w.minute <= m <= w.end_minute + ALARM_GRACE_MIN for w in applied)

        raised = [m for m in raised if not in_fault(m)]
    # On an accelerated clock a stalled event loop (a busy machine, or the gateway's own CPU work,
    # harmless in real time) is clock minutes without data. An alarm is not counted when the bench
    # measured stalls worth a quarter of the alarm's window around it (a stall is logged when it
    # ends, so the window reaches a little past the alarm).
    window = d.scenario.no_data_alarm_min
    excused = [m for m in raised if _stalled(d, m - window, m + window / 2) >= window * STALL_EXCUSE]
    raised = [m for m in raised if m not in excused]
    values = {
        "raised_at_minute": [round(m, 1) for m in raised[:20]],
        "excused_bench_stall_at_minute": excused[:20],
    }
    note = f" ({len(excused)} raised during measured bench stalls, excused)" if excused else ""
    if raised:
        return "fail", f"{kind} raised {len(raised)} time(s), first at minute {raised[0]:.0f}{note}", values
    where = " outside fault windows" if a.get("outside_faults") else ""
    return "pass", f"{kind} never raised{where}{note}", values


def _pump_fault_seen(a: AssertionSpec, d: RunData) -> tuple[str, str, dict[str, Any]]:
    fault, within = str(a.get("fault")), float(a.get("minutes"))
    windows = [w for w in _windows(d, fault) if w.minute + within <= d.end_minute]
    if not windows:
        return "skip", f"no {fault} inside this run", {}

    def shows(st: Any) -> bool:
        return bool(st.occluded) if fault == "pump_occlusion" else st.reservoir_u <= 0.0

    seen = sorted(d.minute_of(st.time_utc) for st in d.pump_status if shows(st))
    delays, missed = [], []
    for w in windows:
        hit = [m for m in seen if w.minute <= m <= w.minute + within]
        (delays.append(round(hit[0] - w.minute, 1)) if hit else missed.append(w.minute))
    values = {"delays_min": delays, "missed_at_minute": missed, "statuses_showing_it": len(seen)}
    if missed:
        return (
            "fail",
            f"no stored pump status showed {fault} within {within:g} min (at minute(s) {missed})",
            values,
        )
    return "pass", f"the gateway recorded {fault} {max(delays):g} min (worst) after it began", values


def _sync_drained(a: AssertionSpec, d: RunData) -> tuple[str, str, dict[str, Any]]:
    m = d.cloud_store_match
    values = {**m.as_dict(), "drain": d.obs.drain, "outbox_backlog_at_stop": d.outbox_backlog}
    if m.lost:
        return "fail", f"{len(m.lost)} of {m.expected} stored readings never reached the cloud", values
    return (
        "pass",
        f"all {m.expected} stored readings reached the cloud (drain {d.obs.drain.get('clock_min')} clock min)",
        values,
    )


def _gateway_resumed(a: AssertionSpec, d: RunData) -> tuple[str, str, dict[str, Any]]:
    planned = [f for f in d.scenario.faults_of("gateway_kill", "gateway_restart") if f.minute <= d.end_minute]
    applied = [
        e
        for e in d.obs.fault_log
        if e["kind"] in ("gateway_kill", "gateway_restart") and e.get("started_minute") is not None
    ]
    if not applied:
        return "skip", "no gateway stop or kill happened inside this run", {}
    ready = [e for e in d.log_events if e.get("event") == "twin_ready"]
    restarts = ready[1:]
    values: dict[str, Any] = {
        "planned": len(planned),
        "applied": len(applied),
        "lives": len(d.lives),
        "kills": sum(1 for life in d.lives if life.ended_by == "kill"),
        "down_min": [
            round(nxt.started_minute - prev.ended_minute, 1)
            for prev, nxt in itertools.pairwise(d.lives)
            if prev.ended_minute is not None
        ],
        "twin_ready": [
            {
                "restored_from": e.get("restored_from"),
                "twin_minute": e.get("twin_minute"),
                "replayed": e.get("replayed"),
            }
            for e in ready
        ],
    }
    problems = []
    if len(d.lives) < len(applied) + 1:
        problems.append(
            f"{len(d.lives)} gateway lives for {len(applied)} stop(s)/kill(s): it did not come back"
        )
    not_restored = [e for e in restarts if e.get("restored_from") is None]
    if not_restored:
        problems.append(f"{len(not_restored)} restart(s) did not restore the twin from a checkpoint")
    minutes = [int(e["twin_minute"]) for e in ready if e.get("twin_minute") is not None]
    if minutes != sorted(minutes):
        problems.append(f"the twin went back in time across restarts ({minutes})")
    if problems:
        return "fail", "; ".join(problems), values
    late = len(planned) - len(applied)
    note = f" ({late} planned one(s) not reached: earlier restarts took longer)" if late else ""
    return "pass", f"{len(restarts)} restart(s), each resumed from its twin checkpoint{note}", values


def _exercise_seen(a: AssertionSpec, d: RunData) -> tuple[str, str, dict[str, Any]]:
    need = float(a.get("min_bpm"))
    bouts = [b for b in d.scenario.exercise if b.minute + b.minutes <= d.end_minute]
    if not bouts:
        return "skip", "no complete exercise bout inside this run", {}
    peaks = []
    for b in bouts:
        t0, t1 = d.time_of(b.minute), d.time_of(b.minute + b.minutes) + timedelta(minutes=2)
        hr = [r.heart_rate_bpm for r in d.heart_rate if t0 <= r.time_utc <= t1]
        peaks.append(max(hr) if hr else None)
    missed = [b.minute for b, p in zip(bouts, peaks, strict=True) if p is None or p < need]
    values = {"peak_bpm": peaks, "missed_at_minute": missed}
    if missed:
        return (
            "fail",
            f"stored heart rate stayed below {need:g} bpm during the bout(s) at minute(s) {missed}",
            values,
        )
    return (
        "pass",
        f"stored heart rate reached {min(p for p in peaks if p is not None)}+ bpm in each of {len(bouts)} bout(s)",
        values,
    )


def _unconfirmed_reported(a: AssertionSpec, d: RunData) -> tuple[str, str, dict[str, Any]]:
    gateway = [c for c in d.pump_commands if c.source == "gateway" and c.kind != "cancel_bolus"]
    if not gateway:
        return "skip", "no gateway command reached the pump in this run (nothing to confirm)", {}
    unapplied = [c for c in gateway if not c.applied and c.response == "SUCCESS"]
    # cancelling a temp basal that had already ended leaves the pump as asked: the pump answers
    # "not applicable" and the read-back rightly confirms no temp basal runs
    moot = [c for c in gateway if c.kind == "cancel_temp_basal" and c.response == "PROCEDURE_NOT_APPLICABLE"]
    applied = [c for c in gateway if c.applied]
    confirmed = sum(1 for r in d.command_results if r.confirmed)
    unconfirmed = sum(1 for r in d.command_results if not r.confirmed)
    values = {
        "pump_applied": len(applied),
        "cancels_with_nothing_to_cancel": len(moot),
        "pump_answered_success_without_applying": len(unapplied),
        "stored_confirmed": confirmed,
        "stored_not_confirmed": unconfirmed,
    }
    problems = []
    if confirmed > len(applied) + len(moot):
        problems.append(
            f"{confirmed} results stored as confirmed but the pump applied only {len(applied)}"
            + (f" (and {len(moot)} cancel(s) of a temp basal that had already ended)" if moot else "")
        )
    if unconfirmed < len(unapplied):
        problems.append(
            f"{len(unapplied)} commands were not applied but only {unconfirmed} stored as not confirmed"
        )
    if problems:
        return "fail", "; ".join(problems), values
    return (
        "pass",
        f"{len(unapplied)} unapplied command(s) reported as not confirmed, {confirmed} confirmed",
        values,
    )


_CHECKS: dict[str, Check] = {
    "time_below": _time_below,
    "time_in_range": _time_in_range,
    "no_unsafe_command": _no_unsafe_command,
    "no_reading_lost": _no_reading_lost,
    "alarm_within": _alarm_within,
    "no_alarm": _no_alarm,
    "pump_fault_seen_within": _pump_fault_seen,
    "sync_drained": _sync_drained,
    "gateway_resumed": _gateway_resumed,
    "exercise_seen": _exercise_seen,
    "unconfirmed_reported": _unconfirmed_reported,
}
