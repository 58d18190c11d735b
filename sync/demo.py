"""A realistic patient-day of gateway records, from a virtual patient, for benchmarks and the demo.

The day: a cohort patient under basal-bolus therapy with three meals, a 5-minute CGM (integer
mg/dL, as CGMs report), hourly basal and meal bolus deliveries, announced carbs, a suggestion
with a safety-gate decision every 5 minutes, and a twin snapshot every 5 minutes whose summary
carries the estimate, insulin and carbs on board, and the 30/60-minute forecast with its 10-90 %
band (here taken from the simulated truth, so the numbers are as smooth as a real twin's).
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

from edgetwin.messages import (
    CarbEntry,
    CgmReading,
    InsulinDelivery,
    InsulinKind,
    PumpStatus,
    Suggestion,
    SuggestionKind,
)
from edgetwin.store.records import GateDecision, GateFinding, GateOutcome, TwinCheckpoint

__all__ = ["MEALS", "patient_day"]

MEALS = ((7 * 60, 45.0), (12 * 60, 70.0), (18 * 60, 80.0))
_INSULIN_TAU_MIN = 75.0  # exponential insulin-action decay used for the demo's IOB
_CARB_TAU_MIN = 45.0


def patient_day(start: datetime, *, patient: str = "adult#001", seed: int = 0, blob_size: int = 4096,
                device_id: str = "cgm-demo") -> list[object]:  # fmt: skip
    """All records of one simulated day, in time order."""
    from edgetwin.model.cohort import load_patient, load_sensor
    from edgetwin.virtual.runs import simulate_plan

    pp = load_patient(patient)
    minutes = 24 * 60 + 90
    trace = simulate_plan(pp, list(MEALS), minutes, sensor=load_sensor("GuardianRT"), cgm_seed=seed)
    rng = random.Random(seed)
    basal = round(pp.basal_u_per_h / 0.05) * 0.05
    out: list[object] = []
    iob = cob = 0.0
    reservoir = 180.0
    seq = 0
    for minute in range(24 * 60):
        t = start + timedelta(minutes=minute)
        bolus = max(0.0, float(trace.insulin_u[minute]) - pp.basal_u_per_h / 60.0)
        grams = float(trace.announced_cho_g[minute])
        iob = iob * math.exp(-1 / _INSULIN_TAU_MIN) + float(trace.insulin_u[minute])
        cob = cob * math.exp(-1 / _CARB_TAU_MIN) + grams
        reservoir -= float(trace.insulin_u[minute])
        if grams > 0:
            out.append(CarbEntry(t, grams))
        if bolus > 0.01:
            out.append(InsulinDelivery(time_utc=t, units=round(bolus / 0.05) * 0.05, kind=InsulinKind.BOLUS,
                                       device_id="pump-demo", sequence=seq))  # fmt: skip
            seq += 1
        if minute % 60 == 0:
            out.append(InsulinDelivery(time_utc=t, units=round(basal, 2), kind=InsulinKind.BASAL, device_id="pump-demo",
                                       duration_min=60.0, sequence=seq))  # fmt: skip
            seq += 1
        if minute % 5:
            continue
        cgm = trace.cgm_mg_dl[minute]
        if not math.isnan(cgm):
            prev = trace.cgm_mg_dl[minute - 5] if minute >= 5 else cgm
            out.append(CgmReading(time_utc=t, glucose_mg_dl=float(round(cgm)), device_id=device_id, sequence=minute,
                                  trend_mg_dl_per_min=round((cgm - prev) / 5.0, 1)))  # fmt: skip
        bg = float(trace.bg_mg_dl[minute])
        p30, p60 = float(trace.bg_mg_dl[minute + 30]), float(trace.bg_mg_dl[minute + 60])
        out.append(PumpStatus(time_utc=t, device_id="pump-demo", reservoir_u=round(reservoir, 2), suspended=False,
                              bolusing=False, basal_rate_u_per_h=basal, battery_pct=float(90 - minute // 180),
                              insulin_on_board_u=round(iob, 2)))  # fmt: skip
        out.extend(_suggest(t, p60, basal, len([o for o in out if isinstance(o, Suggestion)]) + 1))
        summary = {
            "glucose_mg_dl": bg,
            "iob_u": iob,
            "cob_g": cob,
            "pred_30_mg_dl": p30,
            "pred_60_mg_dl": p60,
            "p10_60_mg_dl": p60 - 12.0 - 0.05 * abs(p60 - bg),
            "p90_60_mg_dl": p60 + 15.0 + 0.05 * abs(p60 - bg),
        }
        out.append(TwinCheckpoint(t, "twin-demo", 1, rng.randbytes(blob_size), summary))
    return out


def _suggest(t: datetime, p60: float, basal: float, next_id: int) -> list[object]:
    expires = t + timedelta(minutes=15)
    if p60 > 180.0:
        rate = round(min(basal * 2.5, basal + (p60 - 180.0) / 100.0), 2)
        s = Suggestion(t, expires, SuggestionKind.TEMP_BASAL, "forecast above target: raise basal",
                       rate_u_per_h=rate, duration_min=30.0)  # fmt: skip
        limit = round(basal * 2.0, 2)
        if rate > limit:
            finding = GateFinding("max_safe_basal", "clamp", "rate above the maximum safe basal",
                                  {"requested_u_per_h": rate, "max_safe_basal_u_per_h": limit})  # fmt: skip
            return [s, GateDecision(t, next_id, GateOutcome.CLAMPED, (finding,))]
        return [s, GateDecision(t, next_id, GateOutcome.ACCEPTED)]
    if p60 < 80.0:
        s = Suggestion(t, expires, SuggestionKind.SUSPEND, "low predicted within the hour: suspend basal",
                       rate_u_per_h=0.0, duration_min=30.0)  # fmt: skip
        return [s, GateDecision(t, next_id, GateOutcome.ACCEPTED)]
    return [Suggestion(t, expires, SuggestionKind.KEEP_BASAL, "forecast in range: keep the scheduled basal")]
