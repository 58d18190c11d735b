"""A synthetic patient-day of records, shared by the sync tests and shaped like the gateway's."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from edgetwin.messages import (
    Alarm,
    CarbEntry,
    CgmReading,
    InsulinDelivery,
    InsulinKind,
    PumpStatus,
    Suggestion,
    SuggestionKind,
)
from edgetwin.store.records import GateDecision, GateFinding, GateOutcome, TwinCheckpoint

DAY0 = datetime(2024, 3, 1, tzinfo=UTC)


def day_records(
    seed: int = 0, *, start: datetime = DAY0, hours: float = 24.0, blob_size: int = 400
) -> list[object]:
    """Readings every 5 min, meals with boluses, basal, suggestions with decisions, snapshots."""
    rng = random.Random(seed)
    out: list[object] = []
    g = 120.0
    steps = int(hours * 12)
    for k in range(steps):
        t = start + timedelta(minutes=5 * k)
        g = min(380.0, max(45.0, g + rng.gauss(0, 3)))
        out.append(CgmReading(time_utc=t, glucose_mg_dl=float(round(g)), device_id="cgm-A1", sequence=5 * k,
                              trend_mg_dl_per_min=round(rng.gauss(0, 0.8), 1)))  # fmt: skip
        out.append(PumpStatus(time_utc=t, device_id="pump-1", reservoir_u=round(200 - k * 0.1, 2), suspended=False,
                              bolusing=False, basal_rate_u_per_h=0.8, insulin_on_board_u=round(rng.uniform(0, 3), 2)))  # fmt: skip
        s = Suggestion(t, t + timedelta(minutes=10), SuggestionKind.KEEP_BASAL if k % 6 else SuggestionKind.TEMP_BASAL,
                       "forecast in range, keep scheduled basal" if k % 6 else "forecast above target: raise basal",
                       rate_u_per_h=None if k % 6 else 1.2, duration_min=None if k % 6 else 30.0)  # fmt: skip
        out.append(s)
        if k % 6 == 0:
            out.append(GateDecision(t, k + 1, GateOutcome.CLAMPED, (GateFinding(
                "max_basal", "clamp", "rate above max safe basal", {"requested_u_per_h": 1.2, "max_u_per_h": 1.0}),)))  # fmt: skip
        summary = {"glucose_mg_dl": g + 0.04, "iob_u": rng.uniform(0, 3), "cob_g": rng.uniform(0, 40),
                   "pred_30_mg_dl": g + rng.gauss(0, 5), "pred_60_mg_dl": g + rng.gauss(0, 10),
                   "p10_60_mg_dl": g - 20, "p90_60_mg_dl": g + 25}  # fmt: skip
        out.append(TwinCheckpoint(t, "twin-ensemble", 1, rng.randbytes(blob_size), summary))
    for hh, grams in ((7, 45.0), (12, 70.0), (18, 80.0)):
        t = start + timedelta(hours=hh)
        if t < start + timedelta(hours=hours):
            out.append(CarbEntry(t, grams))
            out.append(
                InsulinDelivery(
                    time_utc=t, units=round(grams / 10, 2), kind=InsulinKind.BOLUS, device_id="pump-1"
                )
            )
    out.append(
        Alarm(start + timedelta(hours=3), "low_predicted", "Low predicted within 30 minutes", "urgent")
    )
    return out
