"""``edgetwin demo``: the real gateway, a simulated day, in accelerated time.

The demo writes an ordinary gateway configuration into its output folder and runs the same
:class:`~edgetwin.gateway.runtime.Gateway` that ``edgetwin run`` starts, on a clock running
``speed`` times faster than real time, with simulated devices on a virtual patient. Every
reading goes through the durable store, the twin, the forecast and (where this build has them)
the suggestion engine and the safety gate. At the end it prints a summary and writes a report:

* ``report.md`` — the summary a person reads;
* ``report.json`` — the same figures for scripts (keys in :func:`summarise`);
* ``day.svg`` — glucose (CGM and the patient's true glucose), the forecast bands issued every
  hour, and suggestions, over the day;
* ``gateway.toml`` and ``data/`` — the configuration and the store, so ``edgetwin status``,
  ``edgetwin history --config OUT/gateway.toml`` work on the demo afterwards.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from edgetwin.gateway.config import load_config
from edgetwin.gateway.runtime import Gateway

__all__ = ["DemoOptions", "DemoResult", "run_demo", "summarise", "write_config"]

DEFAULT_SPEED = 2400.0
"""Clock seconds per real second: one simulated day in 36 s of real time."""


@dataclass(frozen=True)
class DemoOptions:
    out_dir: Path
    patient: str = "adult#001"
    hours: float = 24.0
    seed: int = 1
    speed: float = DEFAULT_SPEED
    status_port: int = 0
    start_utc: datetime | None = None


@dataclass
class ForecastCheck:
    target_utc: datetime
    horizon_min: int
    p10: float
    p50: float
    p90: float


@dataclass
class DemoResult:
    options: DemoOptions
    wall_s: float
    summary: dict[str, Any]
    report_md: Path
    report_json: Path
    chart_svg: Path
    forecasts: list[ForecastCheck] = field(default_factory=list)


@dataclass
class LocalCloud:
    """The cloud twin on loopback for the demo: its database, server thread and this gateway's
    credential (registered as ``edgetwin cloud add-gateway`` would)."""

    db: Any
    server: Any
    url: str
    credential_file: Path
    patient_id: str = "demo-patient"

    @classmethod
    def start(cls, out_dir: Path) -> LocalCloud:
        from sync.auth import Credential
        from sync.cloud.app import create_app
        from sync.cloud.db import CloudDB
        from sync.cloud.server import ServerThread

        out_dir.mkdir(parents=True, exist_ok=True)
        db = CloudDB(f"sqlite:///{out_dir / 'cloud.db'}")
        server = ServerThread(create_app(db)).start()
        cred = Credential.issue("gw-demo", "demo-patient", server.url)
        db.add_gateway(cred.gateway_id, cred.patient_id, cred.key)
        path = out_dir / "gateway.cred"
        path.unlink(missing_ok=True)
        cred.save(path)
        return cls(db, server, server.url, path)

    def count(self, kind: str) -> int:
        return int(self.db.count(self.patient_id, kind))

    def stop(self) -> None:
        self.server.stop()
        self.db.close()


def write_config(opts: DemoOptions, cloud: LocalCloud | None = None) -> Path:
    """The demo's gateway configuration (an ordinary one with a scaled clock and simulated devices)."""
    from edgetwin.model.cohort import load_patient, load_therapy

    start = opts.start_utc or datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0)
    anchor = datetime.now(UTC)
    pp = load_patient(opts.patient)
    th = load_therapy(opts.patient)
    basal = round(pp.basal_u_per_h / 0.05) * 0.05
    text = f"""# EdgeTwin demo gateway: written by `edgetwin demo` (an ordinary gateway configuration)
[gateway]
data_dir = "data"
mode = "open-loop"
cycle_min = 5
checkpoint_every_min = 30

[log]
format = "json"
level = "info"
file = "gateway.log.jsonl"

[status]
port = {opts.status_port}

[devices]
cgm = "ble-sim:cgm"          # a CGMS peripheral on the virtual Bluetooth LE radio
pump = "serial-sim:pump"     # a pump bridge on a pty (the real serial driver on a real tty)
heart_rate = "ble-sim:heart"

[sim]
patient = "{opts.patient}"
seed = {opts.seed}

[clock]
kind = "scaled"
factor = {opts.speed:g}
start_utc = "{start.isoformat()}"
anchor_utc = "{anchor.isoformat()}"

[profile]
weight_kg = {pp.BW:.1f}
carb_ratio_g_per_u = {th.carb_ratio_g_per_u:.1f}
correction_factor_mg_dl_per_u = {th.correction_factor_mg_dl_per_u:.1f}
target_mg_dl = 110
insulin_duration_h = 5
basal = {max(basal, 0.05):.2f}

[limits]
max_basal_u_per_h = {max(3.0, 4 * basal):.2f}
max_bolus_u = 10.0
"""
    if cloud is not None:
        text += f"""
[sync]                       # the local cloud twin started by the demo
endpoint = "{cloud.url}"
credentials_file = "{cloud.credential_file.name}"
interval_min = 15
"""
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    path = opts.out_dir / "gateway.toml"
    path.write_text(text, "utf-8")
    return path


async def run_demo(opts: DemoOptions, progress: Callable[[float, Gateway], None] | None = None) -> DemoResult:
    """Run the gateway over ``opts.hours`` of simulated time; returns the summary and report paths."""
    warm_up(opts.patient)
    try:
        cloud: LocalCloud | None = LocalCloud.start(opts.out_dir)
    except ImportError:
        cloud = None  # a build without the sync package: the gateway keeps its outbox
    try:
        return await _run(opts, cloud, progress)
    finally:
        if cloud is not None:
            cloud.stop()


async def _run(
    opts: DemoOptions, cloud: LocalCloud | None, progress: Callable[[float, Gateway], None] | None
) -> DemoResult:
    cfg_path = write_config(opts, cloud)
    cfg = load_config(cfg_path)
    from edgetwin.gateway.logs import configure_logging

    configure_logging(cfg.log_format, cfg.log_level, cfg.log_file)
    gw = Gateway(cfg)
    checks: list[ForecastCheck] = []
    last_issue: list[datetime] = []

    def on_cycle(g: Gateway) -> None:
        fc, mm = g.state.forecast, g.minutes
        if fc is None or mm is None or g.state.forecast_issued_utc is None:
            return
        issued = g.state.forecast_issued_utc
        if last_issue and (issued - last_issue[-1]) < timedelta(minutes=4):
            return
        last_issue.append(issued)
        for i, m in enumerate(fc.minutes):
            h = int(m) - int(fc.issued_minute)
            if h in (30, 60):
                checks.append(
                    ForecastCheck(
                        mm.time(int(m)),
                        h,
                        float(fc.p10_mg_dl[i]),
                        float(fc.p50_mg_dl[i]),
                        float(fc.p90_mg_dl[i]),
                    )
                )

    gw.on_cycle.append(on_cycle)
    t0 = time.perf_counter()
    await gw.start()
    start = gw.clock.now_utc()
    world = gw.devices.world
    truth: dict[int, float] = {}
    if world is not None:
        world.on_minute(lambda m: truth.__setitem__(m, world.patient.gsub_mg_dl))
    end = start + timedelta(hours=opts.hours)
    try:
        while True:
            now = gw.clock.now_utc()
            frac = min(1.0, (now - start) / (end - start))
            if progress is not None:
                progress(frac, gw)
            if now >= end:
                break
            await asyncio.sleep(0.2)
        true_g = body_start = None
        if world is not None and truth:
            first = min(truth)
            true_g = np.array([truth.get(m, np.nan) for m in range(first, max(truth) + 1)], dtype=np.float64)
            body_start = world.time_at(first)
        if gw.sync is not None:
            await gw.sync.once()  # a last upload, so the cloud holds the whole day
    finally:
        await gw.stop()
    wall = time.perf_counter() - t0
    summary = summarise(cfg.db_path, start, end, checks, true_g, body_start, gw)
    if cloud is not None:
        summary["cloud"] = {
            "url": cloud.url,
            "cgm_readings": cloud.count("cgm"),
            "insulin_records": cloud.count("insulin"),
            "sync_state": gw.state.sync.get("state"),
            "uploaded_batches": gw.state.sync.get("uploaded_batches"),
        }
    summary["wall_s"] = round(wall, 1)
    summary["speed"] = opts.speed
    md, js, svg = _write_report(opts, summary, cfg.db_path, start, end, checks, true_g, body_start)
    return DemoResult(opts, wall, summary, md, js, svg, checks)


def warm_up(patient: str) -> None:
    """Compile or load every numba kernel (``edgetwin warmup``) and import the virtual radio's
    stack before the accelerated clock starts: a second of loading would be an hour of it."""
    from edgetwin.model.cohort import load_patient
    from edgetwin.virtual.patient import VirtualPatient
    from edgetwin.warmup import warm_up as warm_kernels

    warm_kernels()
    VirtualPatient(load_patient(patient)).step(0.0, 0.0)
    import bumble.device  # noqa: F401


def summarise(
    db: Path,
    start: datetime,
    end: datetime,
    checks: list[ForecastCheck],
    true_g: np.ndarray | None,
    body_start: datetime | None,
    gw: Gateway,
) -> dict[str, Any]:
    """Figures of the run, from the store (what the gateway durably recorded)."""
    from edgetwin.metrics import glucose_metrics
    from edgetwin.store import Store

    with Store.open(db, readonly=True, integrity="none") as store:
        cgm = [r for r in store.cgm_between(start - timedelta(hours=1), end) if r.glucose_mg_dl is not None]
        counts = store.counts()
        suggestions = store.suggestions_between(start, end + timedelta(hours=1))
        decisions = store.decisions_between(start, end + timedelta(hours=1))
        alarms = store.alarms(start, end + timedelta(hours=1))
        insulin = store.insulin_between(start, end)
        carbs = store.carbs_between(start, end)
        cp = store.last_checkpoint()
        backlog = store.outbox_backlog()
    values = np.array([r.glucose_mg_dl for r in cgm if r.time_utc >= start], dtype=np.float64)
    by_time = {r.time_utc: float(r.glucose_mg_dl) for r in cgm if r.glucose_mg_dl is not None}
    out: dict[str, Any] = {
        "patient": gw.cfg.sim.patient,
        "start_utc": start.isoformat(),
        "end_utc": end.isoformat(),
        "hours": round((end - start).total_seconds() / 3600.0, 2),
        "twin_model": gw.twin_factory.description,
        "cgm_readings": int(values.size),
        "stored_rows": counts,
        "insulin_u": round(sum(d.units for d in insulin), 2),
        "carbs_g": round(sum(c.grams for c in carbs), 1),
        "suggestions": len(suggestions),
        "suggestions_by_kind": _count(str(s.kind) for _, s in suggestions),
        "gate_decisions_by_outcome": _count(str(d.outcome) for _, d in decisions),
        "alarms": len(alarms),
        "alarms_by_kind": _count(a.alarm.kind for a in alarms),
        "cycles": gw.cycles.count,
        "cycle_cpu_ms_mean": round(gw.cycles.cpu_s_total * 1e3 / max(1, gw.cycles.count), 2),
        "device_restarts": sum(h.restarts for h in gw.health.values()),
        "last_checkpoint_utc": None if cp is None else cp.time_utc.isoformat(),
        "sync_backlog": backlog,
        "sync": gw.state.sync.get("state"),
    }
    if values.size:
        m = glucose_metrics(values)
        out["cgm_metrics"] = {
            "mean_mg_dl": round(m.mean_mg_dl, 1),
            "tir_70_180_pct": round(m.tir_70_180_pct, 1),
            "tbr_70_pct": round(m.tbr_70_pct, 1),
            "tbr_54_pct": round(m.tbr_54_pct, 1),
            "tar_180_pct": round(m.tar_180_pct, 1),
            "cv_pct": round(m.cv_pct, 1),
        }
    if true_g is not None and body_start is not None:
        i0 = max(0, int((start - body_start).total_seconds() // 60))
        i1 = min(true_g.size, int((end - body_start).total_seconds() // 60) + 1)
        if i1 - i0 > 10:
            seg = true_g[i0:i1]
            m = glucose_metrics(seg[np.isfinite(seg)])
            out["true_metrics"] = {
                "mean_mg_dl": round(m.mean_mg_dl, 1),
                "tir_70_180_pct": round(m.tir_70_180_pct, 1),
                "tbr_70_pct": round(m.tbr_70_pct, 1),
                "min_mg_dl": round(m.min_mg_dl, 1),
                "max_mg_dl": round(m.max_mg_dl, 1),
            }
    fc: dict[str, Any] = {}
    for h in (30, 60):
        errs, covered = [], 0
        for c in checks:
            if c.horizon_min != h:
                continue
            actual = _nearest(by_time, c.target_utc)
            if actual is None:
                continue
            errs.append(c.p50 - actual)
            covered += int(c.p10 <= actual <= c.p90)
        if errs:
            e = np.asarray(errs)
            fc[f"{h}_min"] = {
                "forecasts": int(e.size),
                "mae_mg_dl": round(float(np.abs(e).mean()), 1),
                "rmse_mg_dl": round(float(np.sqrt((e * e).mean())), 1),
                "band_80_coverage_pct": round(100.0 * covered / e.size, 1),
            }
    out["forecast_accuracy"] = fc
    return out


def _nearest(by_time: dict[datetime, float], t: datetime, tol_min: float = 2.0) -> float | None:
    best, best_d = None, tol_min * 60.0 + 1e-9
    for dt in (0, -60, 60, -120, 120):
        v = by_time.get(t + timedelta(seconds=dt))
        if v is not None and abs(dt) < best_d:
            best, best_d = v, abs(dt)
    return best


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out


def _write_report(
    opts: DemoOptions,
    s: dict[str, Any],
    db: Path,
    start: datetime,
    end: datetime,
    checks: list[ForecastCheck],
    true_g: np.ndarray | None,
    body_start: datetime | None,
) -> tuple[Path, Path, Path]:
    js = opts.out_dir / "report.json"
    js.write_text(json.dumps(s, indent=2, ensure_ascii=False) + "\n", "utf-8")
    svg = opts.out_dir / "day.svg"
    svg.write_text(_chart(db, start, end, checks, true_g, body_start), "utf-8")
    md = opts.out_dir / "report.md"
    md.write_text(report_markdown(s), "utf-8")
    return md, js, svg


def report_markdown(s: dict[str, Any]) -> str:
    lines = [
        f"# EdgeTwin demo: {s['patient']}, {s['hours']:g} h",
        "",
        f"Simulated {s['start_utc'][:16]} to {s['end_utc'][:16]} UTC in {s.get('wall_s', 0):g} s of real time "
        f"(x{s.get('speed', 0):g}).",
        f"Twin: {s['twin_model']}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| CGM readings stored | {s['cgm_readings']} |",
        f"| insulin delivered (pump reports) | {s['insulin_u']} U |",
        f"| carbohydrate announced | {s['carbs_g']} g |",
        f"| decision cycles | {s['cycles']} (mean CPU {s['cycle_cpu_ms_mean']} ms) |",
        f"| suggestions | {s['suggestions']} {s['suggestions_by_kind'] or ''} |",
        f"| safety-gate decisions | {s['gate_decisions_by_outcome'] or 'none'} |",
        f"| alarms | {s['alarms']} {s['alarms_by_kind'] or ''} |",
        f"| device task restarts | {s['device_restarts']} |",
        f"| last twin checkpoint | {s['last_checkpoint_utc']} |",
        f"| sync | {s['sync']}, {s['sync_backlog']} records queued in the outbox |",
    ]
    c = s.get("cloud")
    if c:
        lines.append(
            f"| cloud twin ({c['url']}) | {c['cgm_readings']} CGM readings and {c['insulin_records']} insulin "
            f"records received in {c['uploaded_batches']} batches |"
        )
    for key, title in (("cgm_metrics", "CGM"), ("true_metrics", "true glucose (simulator)")):
        m = s.get(key)
        if m:
            lines.append(f"| {title} | " + ", ".join(f"{k} {v}" for k, v in m.items()) + " |")
    for h, f in s.get("forecast_accuracy", {}).items():
        lines.append(
            f"| forecast {h.replace('_', ' ')} | {f['forecasts']} forecasts, MAE {f['mae_mg_dl']} mg/dL, "
            f"RMSE {f['rmse_mg_dl']}, 80 % band covered {f['band_80_coverage_pct']} % |"
        )
    lines += ["", "![the day](day.svg)", ""]
    return "\n".join(lines)


def _chart(
    db: Path,
    start: datetime,
    end: datetime,
    checks: list[ForecastCheck],
    true_g: np.ndarray | None,
    body_start: datetime | None,
) -> str:
    """A self-contained SVG of the day."""
    from edgetwin.store import Store

    with Store.open(db, readonly=True, integrity="none") as store:
        cgm = [r for r in store.cgm_between(start, end) if r.glucose_mg_dl is not None]
        carbs = store.carbs_between(start, end)
        sugg = store.suggestions_between(start, end)
    W, H, L, R, T, B = 1000, 380, 44, 12, 14, 30
    span = max(1.0, (end - start).total_seconds())

    def x(t: datetime) -> float:
        return L + (t - start).total_seconds() / span * (W - L - R)

    def y(g: float) -> float:
        g = min(max(g, 40.0), 400.0)
        return T + (1 - (g - 40.0) / 360.0) * (H - T - B)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">',
        f'<rect x="0" y="0" width="{W}" height="{H}" fill="#fff"/>',
        f'<rect x="{L}" y="{y(180):.1f}" width="{W - L - R}" height="{y(70) - y(180):.1f}" fill="#e8f5e9"/>',
    ]
    for level in (54.0, 70.0, 180.0, 250.0, 400.0):
        parts.append(
            f'<line x1="{L}" x2="{W - R}" y1="{y(level):.1f}" y2="{y(level):.1f}" stroke="#e3e6eb"/>'
        )
        parts.append(f'<text x="4" y="{y(level) + 4:.1f}" fill="#5b6475">{level:.0f}</text>')
    hours = int(span // 3600)
    for h in range(0, hours + 1, max(1, hours // 8)):
        t = start + timedelta(hours=h)
        parts.append(f'<text x="{x(t) - 14:.1f}" y="{H - 10}" fill="#5b6475">{t:%H:%M}</text>')
    hourly = [c for c in checks if c.horizon_min in (30, 60) and c.target_utc.minute < 5]
    for c in hourly:
        t = c.target_utc
        parts.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{y(c.p90):.1f}" y2="{y(c.p10):.1f}" '
            f'stroke="#5c6bc0" stroke-opacity="0.5" stroke-width="5"/>'
        )
    if true_g is not None and body_start is not None:
        pts = []
        for i in range(0, true_g.size, 5):
            t = body_start + timedelta(minutes=i)
            if start <= t <= end and np.isfinite(true_g[i]):
                pts.append(f"{x(t):.1f},{y(float(true_g[i])):.1f}")
        if pts:
            parts.append(
                f'<polyline points="{" ".join(pts)}" fill="none" stroke="#9e9e9e" stroke-width="1.5"/>'
            )
    for r in cgm:
        g = float(r.glucose_mg_dl or 0.0)
        colour = "#c62828" if g < 70 else "#b26a00" if g > 180 else "#1d2330"
        parts.append(f'<circle cx="{x(r.time_utc):.1f}" cy="{y(g):.1f}" r="1.8" fill="{colour}"/>')
    for entry in carbs:
        parts.append(
            f'<text x="{x(entry.time_utc) - 8:.1f}" y="{H - B - 4}" fill="#2e7d32">{entry.grams:.0f}g</text>'
        )
    for _, s in sugg:
        if str(s.kind) != "keep_basal":
            parts.append(f'<circle cx="{x(s.created_utc):.1f}" cy="{T + 4}" r="3" fill="#3949ab"/>')
    parts.append(
        f'<text x="{L + 4}" y="{T + 12}" fill="#1d2330">dots: CGM · grey: true glucose · blue bars: '
        "80 % bands of 30/60-min forecasts (at their target time) · green: carbs</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


class ProgressBar:
    """``[#####-----]  52 %  18:40  glucose 123 mg/dL →`` on a terminal; a line per 10 % otherwise."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self._last_decile = -1

    def __call__(self, frac: float, gw: Gateway) -> None:
        latest = gw.state.latest
        g = (
            ""
            if latest is None or latest.glucose_mg_dl is None
            else f"glucose {latest.glucose_mg_dl:.0f} mg/dL"
        )
        now = gw.clock.now_utc()
        alarms = f"  ALARMS: {len(gw.alarms.active)}" if gw.alarms.active else ""
        if self.tty:
            n = int(round(frac * self.width))
            bar = "#" * n + "-" * (self.width - n)
            self.stream.write(f"\r[{bar}] {frac * 100:5.1f} %  {now:%H:%M} UTC  {g:<22}{alarms}   ")
            if frac >= 1.0:
                self.stream.write("\n")
            self.stream.flush()
        else:
            decile = int(math.floor(frac * 10 + 1e-9))
            if decile != self._last_decile:
                self._last_decile = decile
                print(
                    f"{decile * 10:3d} %  {now:%Y-%m-%d %H:%M} UTC  {g}{alarms}", file=self.stream, flush=True
                )
