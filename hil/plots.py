"""``overview.png``: a run over time, four panels sharing the time axis (hours after t = 0).

1. glucose: the patient's true plasma and subcutaneous glucose, the CGM readings the gateway stored, and the 80 %
   bands (p10–p90, with the median dashed) of the gateway's 30- and 60-min forecasts drawn at the
   time they forecast; 54/70/180 mg/dL lines; alarms marked on top;
2. insulin delivered into the patient (U/h over 5 min), the patient's and the gateway's boluses,
   carbohydrate eaten (announced or not);
3. heart rate as stored by the gateway, exercise bouts shaded;
4. the fault timeline, one row per fault, and the times the gateway was down.

Fault windows are shaded lightly on every panel. Needs matplotlib (the ``plot`` extra).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from hil.results import RunData

__all__ = ["overview"]

FAULT_COLOUR = "#d62728"


def overview(data: RunData, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = 1.0 / 60.0
    end_h = data.end_minute * h
    fig, axes = plt.subplots(4, 1, figsize=(13, 11), sharex=True, height_ratios=[3.2, 1.6, 1.1, 1.2])
    ax_g, ax_i, ax_hr, ax_f = axes
    s = data.scenario
    fig.suptitle(f"{s.name}: {s.patient}, {s.mode}, {s.hours:g} h", fontsize=12, x=0.01, ha="left")

    applied = data.applied_faults()
    for ax in axes:
        for f, start in applied:
            if f.kind not in ("clock_jump", "gateway_kill", "gateway_restart"):
                end = min(start + f.minutes, data.end_minute)
                ax.axvspan(start * h, end * h, color=FAULT_COLOUR, alpha=0.07, lw=0)
        ax.grid(True, color="#e6e6e6", lw=0.6)

    # 1. glucose
    t = np.arange(data.truth_bg.size) * h
    for level, style in ((54, ":"), (70, "--"), (180, "--")):
        ax_g.axhline(level, color="#888888", ls=style, lw=0.8)
    for horizon, colour, alpha in ((60, "#9fa8da", 0.35), (30, "#3949ab", 0.35)):
        band = _band(data, horizon)
        if band is not None:
            bt, lo, mid, hi = band
            ax_g.fill_between(
                bt, lo, hi, color=colour, alpha=alpha, lw=0, label=f"{horizon}-min forecast, 80 % band"
            )
            ax_g.plot(bt, mid, color=colour, lw=0.8, ls="--")
    ax_g.plot(t, data.truth_bg, color="#222222", lw=1.2, label="true glucose (plasma)")
    ax_g.plot(
        t,
        data.truth_gsub,
        color="#777777",
        lw=0.9,
        ls="--",
        label="true subcutaneous glucose (what the CGM measures)",
    )
    cgm = [
        (data.minute_of(r.time_utc) * h, float(r.glucose_mg_dl))
        for r in data.cgm
        if r.glucose_mg_dl is not None
    ]
    if cgm:
        ct, cv = zip(*cgm, strict=True)
        ax_g.scatter(ct, cv, s=7, color="#e67e22", zorder=3, label="CGM (stored by the gateway)")
    top = max(300.0, float(np.nanmax(data.truth_bg)) + 20 if np.isfinite(data.truth_bg).any() else 300.0)
    for a in data.alarms:
        m = data.alarm_minute(a.alarm_id) * h
        if 0 <= m <= end_h:
            ax_g.plot(
                [m],
                [top - 8],
                marker="v",
                color="#c62828" if a.alarm.severity == "urgent" else "#f39c12",
                ms=6,
            )
    ax_g.set_ylim(30, top)
    ax_g.set_ylabel("glucose (mg/dL)")
    ax_g.legend(loc="upper right", fontsize=8, ncol=2, framealpha=0.85)

    # 2. insulin and carbs
    ins = np.nan_to_num(data.insulin_u)
    if ins.size >= 5:
        rate = np.convolve(ins, np.ones(5) / 5.0, mode="same") * 60.0
        ax_i.plot(
            t[: rate.size],
            np.minimum(rate, 10.0),
            color="#1f77b4",
            lw=1.0,
            label="insulin delivered (U/h, 5-min mean, cut at 10)",
        )
    for c in data.pump_commands:
        if c.kind == "bolus" and c.applied and c.minute <= data.end_minute:
            colour = "#2ca02c" if c.source == "patient" else "#9467bd"
            ax_i.vlines(c.minute * h, 0, c.units or 0, color=colour, lw=2)
    ax_i.plot([], [], color="#2ca02c", lw=2, label="meal bolus (U)")
    ax_i.plot([], [], color="#9467bd", lw=2, label="gateway bolus (U)")
    ax_i.set_ylabel("insulin")
    ax_c = ax_i.twinx()
    for m in data.meals:
        colour = "#8c564b" if m.announced_g > 0 else "#e377c2"
        ax_c.bar(m.minute * h, m.eaten_g, width=0.15, color=colour, alpha=0.5)
    ax_c.set_ylabel("carbs (g)")
    ax_c.set_ylim(0, max([80.0, *(m.eaten_g * 1.3 for m in data.meals)]))
    ax_i.legend(loc="upper left", fontsize=8, framealpha=0.85)

    # 3. heart rate
    for b in s.exercise:
        ax_hr.axvspan(b.minute * h, (b.minute + b.minutes) * h, color="#2ca02c", alpha=0.12, lw=0)
    hr = [(data.minute_of(r.time_utc) * h, r.heart_rate_bpm) for r in data.heart_rate]
    if hr:
        ht, hv = zip(*hr, strict=True)
        ax_hr.plot(ht, hv, color="#d62728", lw=0.7)
    if not hr:
        ax_hr.text(
            0.5,
            0.5,
            "no heart-rate band in this scenario",
            transform=ax_hr.transAxes,
            ha="center",
            color="#777777",
        )
    ax_hr.set_ylabel("heart rate (bpm)")

    # 4. faults and gateway down time
    labels: list[str] = []
    for f, start in applied:
        label = f.label
        if label not in labels:
            labels.append(label)
        y = labels.index(label)
        width = max(f.minutes, 3) if f.kind != "clock_jump" else 3
        ax_f.barh(y, width * h, left=start * h, height=0.6, color=FAULT_COLOUR, alpha=0.75)
        if f.kind == "clock_jump":
            ax_f.annotate(
                f"{f.jump_min:+g} min", (start * h, y), fontsize=7, xytext=(4, -3), textcoords="offset points"
            )
    down = []
    lives = data.lives
    for prev, nxt in itertools.pairwise(lives):
        if prev.ended_minute is not None:
            down.append((prev.ended_minute, nxt.started_minute))
    if down:
        labels.append("gateway down")
        y = len(labels) - 1
        for a, b in down:
            ax_f.barh(y, max(b - a, 2) * h, left=a * h, height=0.6, color="#555555")
    if not labels:
        ax_f.text(0.5, 0.5, "no faults", transform=ax_f.transAxes, ha="center", color="#777777")
    ax_f.set_yticks(range(len(labels)), labels, fontsize=8)
    ax_f.set_ylim(-0.7, max(len(labels), 1) - 0.3)
    ax_f.set_xlabel(f"hours after t = 0 ({data.start_utc:%Y-%m-%d %H:%M} UTC)")
    ax_f.set_xlim(0, end_h)

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _band(data: RunData, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    rows = []
    for f in data.obs.forecasts:
        for t, lo, mid, hi in f.points:
            if lo is None or mid is None or hi is None:
                continue
            if abs((t - f.issued_utc).total_seconds() / 60.0 - horizon) <= 0.5:
                rows.append((data.forecast_minute(f.minute, t) / 60.0, lo, mid, hi))
    if len(rows) < 2:
        return None
    a = np.array(sorted(rows))
    return a[:, 0], a[:, 1], a[:, 2], a[:, 3]
