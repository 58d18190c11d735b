"""Property-based tests of the gate over random states, histories, configurations and
suggestions: no gated output leaves the limits, stale or missing data never give more insulin
than the scheduled basal, no bolus at a low, and the gate never raises."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edgetwin.messages import (
    CgmReading,
    CgmStatus,
    InsulinDelivery,
    InsulinKind,
    PumpStatus,
    Suggestion,
    SuggestionKind,
)
from edgetwin.safety import GateInputs, SafetyGate, SafetyLimits, max_safe_basal_u_per_h
from edgetwin.therapy import TherapyProfile
from tests.safety.builders import NOW

K = SuggestionKind
EPS = 1e-6
PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

rates = st.floats(0.05, 5.0)


@st.composite
def profiles(draw: st.DrawFn) -> TherapyProfile:
    n = draw(st.integers(1, 4))
    starts = sorted(draw(st.sets(st.integers(1, 1439), min_size=n - 1, max_size=n - 1)))
    schedule = tuple(zip([0, *starts], draw(st.lists(rates, min_size=n, max_size=n)), strict=True))
    return TherapyProfile(
        weight_kg=draw(st.floats(10, 200)),
        basal_schedule=schedule,
        carb_ratio_g_per_u=draw(st.floats(3, 150)),
        correction_factor_mg_dl_per_u=draw(st.floats(5, 500)),
        insulin_duration_h=draw(st.floats(3, 12)),
        target_mg_dl=draw(st.floats(80, 200)),
    )


@st.composite
def limit_sets(draw: st.DrawFn) -> SafetyLimits:
    mode = draw(st.sampled_from(["open-loop", "closed-loop"]))
    max_bolus = draw(st.floats(0.05, 50))
    max_iob = (
        draw(st.one_of(st.none(), st.floats(0, 100))) if mode == "open-loop" else draw(st.floats(0, 100))
    )
    return SafetyLimits(
        mode=mode,  # type: ignore[arg-type]
        max_basal_u_per_h=draw(st.floats(0.05, 35)),
        max_bolus_u=max_bolus,
        max_iob_u=max_iob,
        stale_after_min=draw(st.floats(1, 15)),
        suspend_threshold_mg_dl=draw(st.floats(60, 120)),
        max_temp_basal_min=draw(st.floats(5, 30)),
        max_micro_bolus_basal_min=draw(st.floats(0, 30)),
        micro_bolus_need_fraction=draw(st.floats(0, 0.5)),
        micro_bolus_interval_min=draw(st.floats(3, 60)),
        basal_increment_u_per_h=draw(st.sampled_from([0.01, 0.025, 0.05, 0.1])),
        bolus_increment_u=draw(st.sampled_from([0.01, 0.025, 0.05, 0.1])),
        max_rescue_carbs_g=draw(st.floats(15, 60)),
    )


glucose = st.one_of(st.none(), st.floats(0, 1000))


@st.composite
def reading_lists(
    draw: st.DrawFn, max_age_min: float = 120.0, min_age_min: float = -10.0
) -> list[CgmReading]:
    n = draw(st.integers(0, 30))
    out = []
    for _ in range(n):
        age = draw(st.floats(min_age_min, max_age_min))
        status = draw(st.frozensets(st.sampled_from(list(CgmStatus)), max_size=2))
        out.append(
            CgmReading(
                NOW - timedelta(minutes=age),
                draw(glucose),
                draw(st.sampled_from(["cgm", "cgm", "cgm", "other"])),
                status=status,
            )
        )
    return out


@st.composite
def delivery_lists(draw: st.DrawFn, max_units: float = 100.0) -> list[InsulinDelivery]:
    return [
        InsulinDelivery(
            NOW - timedelta(minutes=draw(st.floats(-60, 600))),
            draw(st.floats(0, max_units)),
            draw(st.sampled_from(list(InsulinKind))),
            "pump",
            duration_min=draw(st.sampled_from([0.0, 3.0, 5.0, 30.0, 240.0])),
        )
        for _ in range(draw(st.integers(0, 40)))
    ]


@st.composite
def pump_states(draw: st.DrawFn) -> PumpStatus | None:
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    temp = draw(st.one_of(st.none(), st.floats(0, 50)))
    return PumpStatus(
        time_utc=NOW - timedelta(minutes=draw(st.floats(-10, 60))),
        device_id="pump",
        reservoir_u=draw(st.floats(0, 300)),
        suspended=draw(st.booleans()),
        bolusing=draw(st.booleans()),
        basal_rate_u_per_h=draw(st.floats(0, 50)),
        temp_basal_u_per_h=temp,
        temp_basal_remaining_min=draw(st.floats(0, 120)) if temp is not None else 0.0,
    )


opt = st.one_of


@st.composite
def suggestions(draw: st.DrawFn) -> Suggestion:
    created = NOW - timedelta(seconds=draw(st.floats(-30, 120)))
    n_t = draw(st.integers(0, 6))
    minutes = tuple(sorted(draw(st.lists(st.integers(0, 240), min_size=n_t, max_size=n_t))))
    rows: tuple[tuple[float, ...], ...] = ()
    quantiles: tuple[float, ...] = ()
    if n_t and draw(st.booleans()):
        quantiles = (0.1, 0.5)
        rows = tuple(tuple(draw(st.lists(st.floats(0, 500), min_size=n_t, max_size=n_t))) for _ in quantiles)
    else:
        minutes = ()
    return Suggestion(
        created_utc=created,
        expires_utc=created + timedelta(minutes=draw(st.floats(-1, 30))),
        kind=draw(st.sampled_from(list(K))),
        reason="random",
        rate_u_per_h=draw(opt(st.none(), st.floats(0, 50))),
        duration_min=draw(opt(st.none(), st.floats(0, 1440))),
        units=draw(opt(st.none(), st.floats(0, 100))),
        carbs_g=draw(opt(st.none(), st.floats(0, 500))),
        reservoir_u=draw(opt(st.none(), st.floats(0, 300))),
        need_u=draw(opt(st.none(), st.floats(0, 100))),
        trajectory_minutes=minutes,
        trajectory_quantiles=quantiles,
        predicted_mg_dl=rows,
    )


def insulin_above_basal_u(s: Suggestion | None, basal: float) -> float:
    """Insulin the gated suggestion adds above the scheduled basal over its effect."""
    if s is None or s.kind in (K.KEEP_BASAL,):
        return 0.0
    extra = s.units or 0.0 if s.kind in (K.BOLUS, K.MICRO_BOLUS) else 0.0
    if s.rate_u_per_h is not None:
        extra += max(0.0, (s.rate_u_per_h - basal) * (s.duration_min or 0.0) / 60.0)
    return extra


def is_multiple(value: float, inc: float) -> bool:
    steps = value / inc
    return abs(steps - round(steps)) < 1e-6


@st.composite
def fresh_readings(draw: st.DrawFn) -> list[CgmReading]:
    """A plausible recent CGM history: every 5 min for an hour, a smooth walk, newest fresh."""
    g = draw(st.floats(80, 380))
    slope = draw(st.floats(-1.5, 1.5))
    wiggle = draw(st.lists(st.floats(-2, 2), min_size=12, max_size=12))
    age = draw(st.floats(0, 6))
    return [
        CgmReading(
            NOW - timedelta(minutes=age + 5 * (11 - i)), min(max(g + slope * 5 * i + w, 40.0), 400.0), "cgm"
        )
        for i, w in enumerate(wiggle)
    ]


@st.composite
def matching_pumps(draw: st.DrawFn, s: Suggestion | None) -> PumpStatus:
    reservoir = s.reservoir_u if s is not None and s.reservoir_u is not None else draw(st.floats(0, 300))
    return PumpStatus(NOW, "pump", reservoir, draw(st.booleans()) and draw(st.booleans()), False, 1.0)


@st.composite
def fresh_suggestions(draw: st.DrawFn) -> Suggestion:
    """Well-formed suggestions of every kind with values from modest to absurd."""
    kind = draw(st.sampled_from(list(K)))
    rate = draw(st.floats(0, 50)) if kind in (K.TEMP_BASAL, K.MICRO_BOLUS) else None
    if kind is K.MICRO_BOLUS and draw(st.booleans()):
        rate = None
    if kind in (K.SUSPEND, K.CARBS):
        rate = 0.0
    units = draw(st.floats(0.01, 100)) if kind in (K.BOLUS, K.MICRO_BOLUS) else None
    rows: tuple[tuple[float, ...], ...] = ()
    minutes: tuple[int, ...] = ()
    if draw(st.booleans()):
        minutes = (0, 30, 60, 120)
        low = tuple(draw(st.lists(st.floats(50, 300), min_size=4, max_size=4)))
        rows = (low, tuple(v + 20 for v in low))
    return Suggestion(
        created_utc=NOW - timedelta(seconds=draw(st.floats(0, 30))),
        expires_utc=NOW + timedelta(minutes=5),
        kind=kind,
        reason="random",
        rate_u_per_h=rate,
        duration_min=draw(st.floats(1, 600)) if rate is not None else None,
        units=units,
        carbs_g=draw(st.floats(1, 500)) if kind is K.CARBS else None,
        reservoir_u=draw(st.floats(0, 300)),
        need_u=draw(st.floats(0, 100)) if kind is K.MICRO_BOLUS else None,
        trajectory_minutes=minutes,
        trajectory_quantiles=(0.1, 0.5) if rows else (),
        predicted_mg_dl=rows,
    )


@st.composite
def gate_cases(
    draw: st.DrawFn,
) -> tuple[list[CgmReading], list[InsulinDelivery], PumpStatus | None, Suggestion | None]:
    """Either anything at all, or a plausible situation in which suggestions can pass."""
    if draw(st.booleans()):
        return (
            draw(reading_lists()),
            draw(delivery_lists()),
            draw(pump_states()),
            draw(st.one_of(st.none(), suggestions())),
        )
    s = draw(fresh_suggestions())
    return draw(fresh_readings()), draw(delivery_lists(max_units=3.0)), draw(matching_pumps(s)), s


@PROPS
@given(profiles(), limit_sets(), gate_cases())
def test_no_gated_output_ever_leaves_the_limits(
    prof: TherapyProfile,
    lim: SafetyLimits,
    case: tuple[list[CgmReading], list[InsulinDelivery], PumpStatus | None, Suggestion | None],
) -> None:
    data, deliveries, pump, s = case
    _check_limits(prof, lim, data, deliveries, pump, s)


def _check_limits(
    prof: TherapyProfile,
    lim: SafetyLimits,
    data: list[CgmReading],
    deliveries: list[InsulinDelivery],
    pump: PumpStatus | None,
    s: Suggestion | None,
) -> None:
    result = SafetyGate(lim).review(s, GateInputs(NOW, prof, data, deliveries, pump, "cgm"))
    g = result.suggestion
    assert all(d.message for d in result.decisions)
    event(f"gated: {'none' if g is None else g.kind}{' unchanged' if result.unchanged else ''}")
    cgm = result.cgm
    at_low = (
        cgm is not None
        and not cgm.fallback
        and cgm.glucose_mg_dl is not None
        and cgm.glucose_mg_dl <= lim.suspend_threshold_mg_dl
    )
    if at_low:
        # At or below the threshold: insulin paused (or nothing sent), never more.
        assert g is None or (g.kind in (K.SUSPEND, K.CARBS) and (g.rate_u_per_h or 0.0) == 0.0)
    if g is None or g.kind is K.KEEP_BASAL:
        return
    basal = prof.basal_at(NOW)
    max_basal = max_safe_basal_u_per_h(prof, NOW, lim)
    assert max_basal <= min(lim.max_basal_u_per_h, 3 * prof.max_scheduled_basal_u_per_h, 4 * basal) + EPS
    iob = result.iob_u or 0.0
    room = max(0.0, lim.effective_max_iob_u - iob)
    assert insulin_above_basal_u(g, basal) <= room + EPS
    if g.rate_u_per_h is not None:
        assert g.kind is not K.BOLUS
        assert 0.0 <= g.rate_u_per_h <= max_basal + EPS
        assert is_multiple(g.rate_u_per_h, lim.basal_increment_u_per_h)
        assert g.duration_min is not None and 0 < g.duration_min <= min(lim.max_temp_basal_min, 30.0)
    if g.kind in (K.SUSPEND, K.CARBS):
        assert (g.rate_u_per_h or 0.0) == 0.0
    if g.kind is K.CARBS:
        assert g.carbs_g is not None and 0 < g.carbs_g <= lim.max_rescue_carbs_g
    if g.kind in (K.BOLUS, K.MICRO_BOLUS):
        assert g.units is not None and 0 < g.units <= lim.max_bolus_u + EPS
        assert is_multiple(g.units, lim.bolus_increment_u)
        assert pump is not None and not pump.suspended and not pump.bolusing
        assert g.reservoir_u is not None and abs(pump.reservoir_u - g.reservoir_u) <= 0.1 + EPS
        assert (NOW - g.created_utc).total_seconds() <= 60.0
        assert result.cgm is not None and result.cgm.glucose_mg_dl is not None
        assert result.cgm.glucose_mg_dl > lim.suspend_threshold_mg_dl
        low = g.predicted_low_mg_dl(lim.low_prediction_horizon_min)
        assert low is None or low >= lim.suspend_threshold_mg_dl
    if g.kind is K.MICRO_BOLUS:
        assert lim.closed_loop
        assert g.units is not None and g.need_u is not None
        assert g.units <= basal * lim.max_micro_bolus_basal_min / 60.0 + EPS
        assert g.units <= lim.micro_bolus_need_fraction * g.need_u + EPS
        assert result.cgm is not None and result.cgm.automatic_bolus_allowed
        recent = [
            d
            for d in deliveries
            if d.kind is InsulinKind.MICRO_BOLUS and d.time_utc > NOW - timedelta(minutes=3)
        ]
        assert all(d.time_utc < NOW - timedelta(minutes=lim.micro_bolus_interval_min) for d in recent)


@PROPS
@given(
    profiles(),
    limit_sets(),
    st.one_of(st.just("none"), st.just("stale"), st.just("future"), st.just("garbage")),
    delivery_lists(),
    pump_states(),
    st.one_of(st.none(), suggestions()),
    st.data(),
)
def test_stale_or_missing_data_never_yield_more_than_scheduled_basal(
    prof: TherapyProfile,
    lim: SafetyLimits,
    problem: str,
    deliveries: list[InsulinDelivery],
    pump: PumpStatus | None,
    s: Suggestion | None,
    data: st.DataObject,
) -> None:
    if problem == "none":
        readings: list[CgmReading] = []
    elif problem == "stale":
        readings = data.draw(reading_lists(min_age_min=lim.stale_after_min + 0.01, max_age_min=600))
    elif problem == "future":
        readings = [
            *data.draw(reading_lists()),
            CgmReading(NOW + timedelta(minutes=data.draw(st.floats(5.01, 600))), 150.0, "cgm"),
        ]
    else:
        readings = [
            *data.draw(reading_lists()),
            CgmReading(NOW, data.draw(st.one_of(st.none(), st.floats(0, 39))), "cgm"),
        ]
    result = SafetyGate(lim).review(s, GateInputs(NOW, prof, readings, deliveries, pump, "cgm"))
    g = result.suggestion
    assert g is None or insulin_above_basal_u(g, prof.basal_at(NOW)) == 0.0
    assert g is None or g.kind in (K.KEEP_BASAL, K.SUSPEND, K.TEMP_BASAL, K.CARBS)
    if g is not None and g.kind is not K.KEEP_BASAL:
        # Only what the suggestion asked for, and only at or below the scheduled basal.
        assert g.rate_u_per_h is not None and g.rate_u_per_h <= prof.basal_at(NOW) + EPS


@PROPS
@given(
    st.one_of(st.none(), profiles(), st.integers(), st.text(max_size=5)),
    limit_sets(),
    st.one_of(st.none(), reading_lists(), st.lists(st.one_of(st.integers(), st.none(), st.text(max_size=3)))),
    st.one_of(st.none(), delivery_lists(), st.lists(st.floats())),
    st.one_of(st.none(), pump_states(), st.text(max_size=3)),
    st.one_of(st.none(), suggestions(), st.integers(), st.text(max_size=3)),
    st.one_of(st.just(NOW), st.just(NOW.replace(tzinfo=None)), st.none(), st.floats()),
)
def test_the_gate_never_raises_and_bad_input_is_refused(
    prof: object, lim: SafetyLimits, data: object, deliveries: object, pump: object, s: object, now: object
) -> None:
    inputs = GateInputs(now, prof, data, deliveries, pump, "cgm")  # type: ignore[arg-type]
    result = SafetyGate(lim).review(s, inputs)  # type: ignore[arg-type]
    g = result.suggestion
    well_formed = isinstance(prof, TherapyProfile) and now is NOW and isinstance(s, Suggestion)
    if not well_formed:
        assert g is None or g.kind is K.KEEP_BASAL
