"""Shared builders for gate tests: a sane profile, closed-loop limits, fresh data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edgetwin.messages import CgmReading, InsulinDelivery, InsulinKind, PumpStatus, Suggestion, SuggestionKind
from edgetwin.safety import GateInputs, SafetyLimits
from edgetwin.therapy import TherapyProfile

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def profile(basal: float = 1.0, **kw: object) -> TherapyProfile:
    args: dict[str, object] = {
        "weight_kg": 70.0,
        "basal_schedule": ((0, basal),),
        "carb_ratio_g_per_u": 10.0,
        "correction_factor_mg_dl_per_u": 40.0,
    }
    args.update(kw)
    return TherapyProfile(**args)  # type: ignore[arg-type]


def limits(**kw: object) -> SafetyLimits:
    args: dict[str, object] = {
        "mode": "closed-loop",
        "max_basal_u_per_h": 3.0,
        "max_bolus_u": 10.0,
        "max_iob_u": 5.0,
    }
    args.update(kw)
    return SafetyLimits.from_mapping(args)


def readings(
    values: list[float] | None = None,
    *,
    every_min: float = 5.0,
    newest_age_min: float = 0.0,
    device: str = "cgm",
) -> list[CgmReading]:
    """Readings oldest first; the last one ``newest_age_min`` before NOW."""
    vals = values if values is not None else [150.0 + 0.3 * i for i in range(13)]
    n = len(vals)
    return [
        CgmReading(NOW - timedelta(minutes=newest_age_min + every_min * (n - 1 - i)), v, device)
        for i, v in enumerate(vals)
    ]


def basal_history(rate: float = 1.0, hours: float = 6.0) -> list[InsulinDelivery]:
    n = int(hours * 12)
    return [
        InsulinDelivery(
            NOW - timedelta(minutes=5 * (i + 1)), rate / 12.0, InsulinKind.BASAL, "pump", duration_min=5
        )
        for i in range(n)
    ]


def pump(**kw: object) -> PumpStatus:
    args: dict[str, object] = {
        "time_utc": NOW,
        "device_id": "pump",
        "reservoir_u": 120.0,
        "suspended": False,
        "bolusing": False,
        "basal_rate_u_per_h": 1.0,
    }
    args.update(kw)
    return PumpStatus(**args)  # type: ignore[arg-type]


def suggestion(kind: SuggestionKind, **kw: object) -> Suggestion:
    args: dict[str, object] = {
        "created_utc": NOW,
        "expires_utc": NOW + timedelta(minutes=5),
        "kind": kind,
        "reason": "test",
    }
    if kind in (SuggestionKind.BOLUS, SuggestionKind.MICRO_BOLUS):
        args["reservoir_u"] = 120.0
    args.update(kw)
    return Suggestion(**args)  # type: ignore[arg-type]


def inputs(**kw: object) -> GateInputs:
    args: dict[str, object] = {
        "now_utc": NOW,
        "profile": profile(),
        "readings": readings(),
        "deliveries": basal_history(),
        "pump": pump(),
        "cgm_device_id": "cgm",
    }
    args.update(kw)
    return GateInputs(**args)  # type: ignore[arg-type]
