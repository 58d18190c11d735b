"""What happened in a run, gathered once the gateway has stopped: the ground truth from the world,
what the gateway durably recorded (its store, read-only), what reached the cloud twin, what the
gateway logged, and what the bench observed. Assertions and the report read only this.

Readings are matched, not counted: a sensor record is *found* in the store (or the cloud) when a
stored reading has its value within ``MATCH_TOLERANCE_S`` of its time (the BLE collector anchors
sensor time offsets to its own clock in whole minutes, so stamps may differ from the world's by a
minute); found twice is a duplicate, not found is lost.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgetwin.gateway.config import GatewayConfig
from edgetwin.timeutil import from_epoch_ms, to_epoch_ms
from hil.scenario import FaultSpec, Scenario
from hil.world import BenchWorld, PumpCommandRecord, SensorLogEntry

__all__ = ["MATCH_TOLERANCE_S", "Match", "RunData", "collect", "match_readings", "missing_readings"]

MATCH_TOLERANCE_S = 90.0
"""The BLE collector anchors offsets to its clock floored to the minute (≤ 1 min off); the
sensors sample every 3 or 5 min, so a neighbouring record is never within this window."""
LOG_EVENTS = {
    "started",
    "stopped",
    "twin_ready",
    "checkpoint_unusable",
    "device_restart",
    "device_error",
    "wall_clock_jump",
    "wall_clock_taken",
    "device_clock_skew",
    "twin_rejected",
    "record_rejected",
    "sync_offline",
    "sync_failed",
    "params_adopted",
    "cycle_failed",
    "store_open_failed",
}


@dataclass
class Match:
    """Sensor records looked up in a list of stored readings."""

    expected: int = 0
    found: int = 0
    lost: list[dict[str, Any]] = field(default_factory=list)
    duplicated: list[dict[str, Any]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.lost and not self.duplicated

    def as_dict(self, limit: int = 20) -> dict[str, Any]:
        return {
            "expected": self.expected,
            "found": self.found,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "lost_examples": self.lost[:limit],
            "duplicated_examples": self.duplicated[:limit],
        }


def match_readings(
    expected: list[SensorLogEntry], time_at: Callable[[int], datetime], stored: list[tuple[datetime, float]]
) -> Match:
    """Find each sensor record (with a value) among ``stored`` (time, mg/dL) pairs;
    ``time_at(world minute)`` gives a record's true time."""
    pairs = sorted(stored)
    times = [to_epoch_ms(t) for t, _ in pairs]
    tol_ms = int(MATCH_TOLERANCE_S * 1000)
    out = Match(expected=len(expected))
    for e in expected:
        t = time_at(e.record.world_minute)
        want = e.record.glucose_mg_dl
        ms = to_epoch_ms(t)
        lo = bisect.bisect_left(times, ms - tol_ms)
        hi = bisect.bisect_right(times, ms + tol_ms)
        hits = [pairs[i] for i in range(lo, hi) if abs(pairs[i][1] - want) < 0.51]
        where = {
            "time_utc": t.isoformat(),
            "mg_dl": want,
            "session": e.session,
            "offset_min": e.record.offset_min,
        }
        if not hits:
            out.lost.append(where)
        else:
            out.found += 1
            if len(hits) > 1:
                out.duplicated.append({**where, "copies": len(hits)})
    return out


def expected_readings(world: BenchWorld, end_minute: int) -> list[SensorLogEntry]:
    """The sensor records with a value produced up to ``end_minute``."""
    return [e for e in world.sensor_log if e.has_value and e.record.world_minute <= end_minute]


def _store_cgm(cfg: GatewayConfig, start: datetime, end: datetime) -> list[Any]:
    from edgetwin.store import Store

    if not cfg.db_path.exists():
        return []
    with Store.open(cfg.db_path, readonly=True, integrity="none") as store:
        return list(store.cgm_between(start, end))


def _cloud_cgm(cloud: Any, start: datetime, end: datetime) -> list[dict[str, Any]]:
    if cloud is None:
        return []
    docs: list[dict[str, Any]] = cloud.db.history(
        cloud.patient_id, "cgm", to_epoch_ms(start), to_epoch_ms(end), 1_000_000
    )
    return docs


def _window(world: BenchWorld, end_minute: int) -> tuple[datetime, datetime]:
    return world.start_utc - timedelta(hours=1), world.time_at(end_minute) + timedelta(hours=1)


def _stored_pairs(rows: list[Any]) -> list[tuple[datetime, float]]:
    return [(r.time_utc, float(r.glucose_mg_dl)) for r in rows if r.glucose_mg_dl is not None]


def _cloud_pairs(docs: list[dict[str, Any]]) -> list[tuple[datetime, float]]:
    return [
        (from_epoch_ms(int(d["time_utc"])), float(d["glucose_mg_dl"]))
        for d in docs
        if d.get("glucose_mg_dl") is not None and d.get("time_utc") is not None
    ]


def missing_readings(
    s: Scenario, cfg: GatewayConfig, world: BenchWorld, end_minute: int, cloud: Any
) -> dict[str, int]:
    """How many sensor readings up to ``end_minute`` are not yet in the store / the cloud."""
    if s.devices.get("cgm") not in ("ble-sim", "serial-sim"):
        return {"store": 0, "cloud": 0}
    expected = expected_readings(world, end_minute)
    start, end = _window(world, end_minute)
    in_store = match_readings(expected, world.time_at, _stored_pairs(_store_cgm(cfg, start, end)))
    in_cloud = match_readings(expected, world.time_at, _cloud_pairs(_cloud_cgm(cloud, start, end)))
    return {"store": len(in_store.lost), "cloud": len(in_cloud.lost)}


@dataclass
class RunData:
    scenario: Scenario
    cfg: GatewayConfig
    start_utc: datetime
    end_minute: int
    truth_bg: npt.NDArray[np.float64]
    """Plasma glucose (mg/dL) at each world minute 0..end_minute."""
    truth_gsub: npt.NDArray[np.float64]
    insulin_u: npt.NDArray[np.float64]
    """Insulin delivered into the patient in the minute ending at each world minute (U)."""
    carbs_g: npt.NDArray[np.float64]
    sensor_log: list[SensorLogEntry]
    pump_commands: list[PumpCommandRecord]
    meals: list[Any]
    cgm: list[Any]
    insulin: list[Any]
    carbs: list[Any]
    heart_rate: list[Any]
    pump_status: list[Any]
    suggestions: list[tuple[int, Any]]
    decisions: list[tuple[int, Any]]
    alarms: list[Any]
    gateway_commands: list[Any]
    """Pump commands the gateway stored (before sending them)."""
    command_results: list[Any]
    store_counts: dict[str, int]
    outbox_backlog: int
    checkpoints: int
    cloud_counts: dict[str, int]
    cloud_cgm: list[tuple[datetime, float]]
    """The CGM readings the cloud holds for the patient (time, mg/dL)."""
    log_events: list[dict[str, Any]]
    lives: list[Any]
    obs: Any
    proxy_stats: dict[str, int]
    simulated_cgm: bool
    _alarm_minutes: dict[int, float] = field(default_factory=dict)

    def minute_of(self, t: datetime) -> float:
        return (t - self.start_utc).total_seconds() / 60.0

    @property
    def expected_readings(self) -> list[SensorLogEntry]:
        """Sensor records with a value up to the end (what must be stored and synced)."""
        return [e for e in self.sensor_log if e.has_value and e.record.world_minute <= self.end_minute]

    @property
    def store_match(self) -> Match | None:
        """The sensor's readings found in the gateway's store (None for a real CGM)."""
        if not self.simulated_cgm:
            return None
        return match_readings(self.expected_readings, self._time_at, _stored_pairs(self.cgm))

    @property
    def cloud_match(self) -> Match | None:
        """The sensor's readings found in the cloud (None for a real CGM)."""
        if not self.simulated_cgm:
            return None
        return match_readings(self.expected_readings, self._time_at, self.cloud_cgm)

    @property
    def cloud_store_match(self) -> Match:
        """Every reading the gateway stored up to the end, found in the cloud (same time, value)."""
        end = self.time_of(self.end_minute)
        return _match_exact([(t, v) for t, v in _stored_pairs(self.cgm) if t <= end], self.cloud_cgm)

    def _time_at(self, minute: int) -> datetime:
        return self.start_utc + timedelta(minutes=minute)

    def gateway_minute(self, t: datetime, after: float = float("-inf")) -> float:
        """The world minute at which the gateway's clock showed ``t``: the same as
        :meth:`minute_of` unless the scenario stepped the gateway's wall clock (``clock_jump``);
        then the offset in force at that moment is taken off. A clock set back shows some times
        twice: the earliest candidate not before ``after`` is taken."""
        m = self.minute_of(t)
        candidates = sorted(m - off for start, end, off in self.clock_offsets if start <= m - off < end)
        if not candidates:
            return m
        return next((c for c in candidates if c >= after), candidates[-1])

    def applied_faults(self, kind: str | None = None) -> list[tuple[FaultSpec, float]]:
        """Faults (of ``kind``) that were injected, with the world minute each started (the
        bench starts a fault planned before the gateway was up once it is)."""
        specs = {f.index: f for f in self.scenario.faults}
        return [
            (specs[e["index"]], float(e["started_minute"]))
            for e in self.obs.fault_log
            if e.get("started_minute") is not None and (kind is None or e["kind"] == kind)
        ]

    def offset_at(self, world_minute: float) -> float:
        """Minutes the gateway's wall clock was ahead of true time at ``world_minute``."""
        for start, end, offset in self.clock_offsets:
            if start <= world_minute < end:
                return offset
        return 0.0

    def forecast_minute(self, snapshot_minute: int, t: datetime) -> float:
        """The world minute a forecast point at gateway time ``t`` refers to (the forecast was
        observed at world minute ``snapshot_minute``)."""
        return self.minute_of(t) - self.offset_at(snapshot_minute)

    def alarm_minute(self, alarm_id: int) -> float:
        """The world minute a stored alarm was raised (alarms are stored in the order raised)."""
        if not self._alarm_minutes:
            prev = float("-inf")
            for a in sorted(self.alarms, key=lambda a: a.alarm_id):
                prev = self.gateway_minute(a.alarm.time_utc, prev)
                self._alarm_minutes[a.alarm_id] = prev
        return self._alarm_minutes[alarm_id]

    @property
    def clock_offsets(self) -> list[tuple[float, float, float]]:
        """(start minute, end minute, offset minutes) of the gateway's time, piecewise. The
        gateway absorbs wall-clock steps (its time carries on, ``GatewayTime``) unless a device
        confirms the new wall time (a ``wall_clock_taken`` log event): without one its time is
        the true time throughout; with one, it is taken to have followed the stepped clock."""
        if not any(e.get("event") == "wall_clock_taken" for e in self.log_events):
            return [(float("-inf"), float("inf"), 0.0)]
        steps = []
        for e in self.obs.fault_log:
            if e["kind"] != "clock_jump" or e.get("started_minute") is None:
                continue
            f = next(f for f in self.scenario.faults if f.index == e["index"])
            steps.append((float(e["started_minute"]), f.jump_min))
            if f.minutes > 0 and e.get("ended_minute") is not None:
                steps.append((float(e["ended_minute"]), -f.jump_min))
        steps.sort()
        out, offset, start = [], 0.0, float("-inf")
        for minute, delta in steps:
            out.append((start, minute, offset))
            start, offset = minute, offset + delta
        out.append((start, float("inf"), offset))
        return out

    def time_of(self, minute: float) -> datetime:
        return self.start_utc + timedelta(minutes=minute)


def collect(
    s: Scenario,
    cfg: GatewayConfig,
    world: BenchWorld,
    obs: Any,
    cloud: Any,
    gateway: Any,
    proxy: Any,
) -> RunData:
    from edgetwin.store import Store

    end = obs.end_minute
    start_utc = world.start_utc
    w0, w1 = _window(world, end)
    with Store.open(cfg.db_path, readonly=True, integrity="none") as store:
        cgm = list(store.cgm_between(w0, w1))
        insulin = list(store.insulin_between(w0, w1))
        carbs = list(store.carbs_between(w0, w1))
        hr = list(store.heart_rate_between(w0, w1))
        pump_status = list(store.pump_status_between(w0, w1))
        suggestions = list(store.suggestions_between(w0, w1))
        decisions = list(store.decisions_between(w0, w1))
        alarms = list(store.alarms(w0, w1))
        commands = store.history(
            w0,
            max(w1, world.time_at(world.minute) + timedelta(hours=1)),
            kinds=("pump_command", "command_result"),
        )
        counts = dict(store.counts())
        backlog = int(store.outbox_backlog())
    simulated = s.devices.get("cgm") in ("ble-sim", "serial-sim")
    cloud_docs = _cloud_cgm(cloud, w0, w1)
    cloud_counts: dict[str, int] = {}
    if cloud is not None:
        for kind in (
            "cgm",
            "insulin",
            "carbs",
            "heart_rate",
            "pump_status",
            "alarm",
            "suggestion",
            "decision",
            "checkpoint",
        ):
            cloud_counts[kind] = int(cloud.db.count(cloud.patient_id, kind))
    n = end + 1
    return RunData(
        scenario=s,
        cfg=cfg,
        start_utc=start_utc,
        end_minute=end,
        truth_bg=_arr(world.truth_bg, n),
        truth_gsub=_arr(world.truth_gsub, n),
        insulin_u=_arr(world.insulin_u, n),
        carbs_g=_arr(world.carbs_g, n),
        sensor_log=[e for e in world.sensor_log if e.record.world_minute <= end],
        # every command the pump saw, also while the bench drained after the scenario's end (the
        # gateway keeps deciding then): safety and confirmation checks judge them all
        pump_commands=list(world.recording_pump.commands),
        meals=[m for m in world.meals if m.minute <= end],
        cgm=cgm,
        insulin=insulin,
        carbs=carbs,
        heart_rate=hr,
        pump_status=pump_status,
        suggestions=suggestions,
        decisions=decisions,
        alarms=alarms,
        gateway_commands=[e.record for e in commands if e.kind == "pump_command"],
        command_results=[e.record for e in commands if e.kind == "command_result"],
        store_counts=counts,
        outbox_backlog=backlog,
        checkpoints=int(counts.get("checkpoint", 0)),
        cloud_counts=cloud_counts,
        cloud_cgm=_cloud_pairs(cloud_docs),
        log_events=read_log_events(cfg.log_file),
        lives=list(gateway.lives),
        obs=obs,
        proxy_stats=dict(proxy.stats) if proxy is not None else {},
        simulated_cgm=simulated,
    )


def _match_exact(readings: list[tuple[datetime, float]], stored: list[tuple[datetime, float]]) -> Match:
    """Each (time, mg/dL) reading looked up among ``stored`` at exactly its time."""
    index: dict[int, list[float]] = {}
    for t, v in stored:
        index.setdefault(to_epoch_ms(t), []).append(v)
    out = Match(expected=len(readings))
    for t, v in readings:
        hits = [x for x in index.get(to_epoch_ms(t), []) if abs(x - v) < 0.51]
        where = {"time_utc": t.isoformat(), "mg_dl": v}
        if not hits:
            out.lost.append(where)
        else:
            out.found += 1
            if len(hits) > 1:
                out.duplicated.append({**where, "copies": len(hits)})
    return out


def _arr(values: list[float], n: int) -> npt.NDArray[np.float64]:
    a = np.full(n, np.nan)
    k = min(n, len(values))
    a[:k] = values[:k]
    return a


def read_log_events(path: Path | None) -> list[dict[str, Any]]:
    """The gateway's structured log lines that matter to a bench (JSON format)."""
    if path is None or not path.exists():
        return []
    out = []
    for line in path.read_text("utf-8", errors="replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue  # a line cut by a SIGKILL
        if isinstance(doc, dict) and doc.get("event") in LOG_EVENTS:
            out.append(doc)
    return out


def finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)
