"""The living twin: one object the gateway and the trial controller talk to.

Time is the twin's own integer minute clock (the gateway maps UTC to minutes). Data may arrive
late, out of order, twice, or not at all; the twin keeps a bounded window of inputs and readings
and of snapshots of its particle cloud every 30 minutes, and when something arrives for a minute
it has already passed it replays from the snapshot before it. The replay is lazy (a back-fill of
twenty readings costs one replay, on the next query) and exact: every random draw is seeded by
the twin's seed and the minute of the step, so a replay reproduces what in-order arrival would
have produced, bit for bit.

The filter steps at *boundaries*: every reading minute, every announced-meal minute and every
30-minute grid point. Grid points a reading might still arrive for are committed only once
they are :data:`SETTLE_MIN` old; between boundaries the twin projects its state to "now" on a
copy. See :mod:`edgetwin.twin.filter` for the estimator, :mod:`edgetwin.twin.forecast` for the
forecast and its online calibration.

Public API (all minutes are twin minutes, all glucose mg/dL)::

    Twin.from_patient(params | name, ...)      Twin.from_profile(profile, ...)
    record_insulin(minute, units, duration_min=0, event_id=None) -> EventStatus
    record_basal(minute, u_per_h | None, duration_min=None, event_id=None) -> EventStatus
    record_carbs(minute, grams, event_id=None) -> EventStatus
    assimilate_cgm(minute, mg_dl | None, usable=True) -> EventStatus
    assimilate_reading(minute, CgmReading) -> EventStatus
    advance_to(minute)             minute (property)
    ensemble(members=None) -> TwinEnsemble      baseline_plan(minutes, planned=None) -> InputPlan
    forecast(horizon_min=120, planned=None, members=64) -> Forecast
    whatif(scenarios, horizon_min=240, planned=None) -> WhatIfReport
    parameters() -> ParameterSummary            diagnostics() -> dict
    checkpoint() -> bytes          Twin.restore(bytes) -> Twin
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import msgpack
import numpy as np
import numpy.typing as npt

from edgetwin.errors import InputDataError
from edgetwin.messages import GLUCOSE_MAX_MG_DL, CgmReading
from edgetwin.model.cohort import load_patient
from edgetwin.model.params import PatientParams
from edgetwin.therapy import TherapyProfile
from edgetwin.twin.correction import LOOKBACK_MIN, CorrectionInputs, MedianCorrector, by_window
from edgetwin.twin.ensemble import InputPlan, TwinEnsemble, run_members
from edgetwin.twin.events import BasalMode, EventLog
from edgetwin.twin.filter import Assimilation, FilterConfig, FilterState, ParticleFilter
from edgetwin.twin.forecast import (
    CALIBRATION_HORIZONS,
    FORECAST_STEP_MIN,
    Calibrator,
    Forecast,
    PlannedInputs,
    cgm_bands,
)
from edgetwin.twin.indices import (
    absorption_half_time_min,
    basal_glucose_mg_dl,
    insulin_sensitivity_mg_dl_per_u,
)
from edgetwin.twin.prior import (
    N_LEARNED,
    TH_FLUX,
    THETA_NAMES,
    Donors,
    ParticlePrior,
    compose_params,
    mix_guts,
    patient_prior,
    profile_prior,
)
from edgetwin.twin.sensor_model import SensorErrorModel
from edgetwin.twin.summary import ParameterSummary, estimate
from edgetwin.twin.timeofday import DAYPARTS, N_DAYPARTS, part_segments

if TYPE_CHECKING:
    from edgetwin.twin.whatif import Scenario, WhatIfReport

__all__ = ["BasalSchedule", "EventStatus", "Twin"]

F64 = npt.NDArray[np.float64]

GRID_MIN = 30
SETTLE_MIN = 15
REPLAY_WINDOW_MIN = 12 * 60
ADOPT_MEAL_G = 20.0  # adopt() replays from before the last announced meal of this size (g) ...
ADOPT_BEFORE_MEAL_MIN = 30  # ... starting this many minutes before it
MAX_JUMP_MIN = 14 * 24 * 60
MAX_HORIZON_MIN = 24 * 60
CALIBRATION_MEMBERS = 32
TREND_WINDOW_MIN = 20  # as the linear-extrapolation baseline
FRESH_READING_MIN = 15
SUMMARY_MEMBERS = 64
CHECKPOINT_VERSION = 1


class EventStatus(StrEnum):
    """What the twin did with a reading or an input."""

    ASSIMILATED = "assimilated"  # reading used now
    OUTLIER = "outlier"  # reading used, but judged an outlier: it moved the twin very little
    RECORDED = "recorded"  # input stored; it takes effect when the twin passes its minute
    REPLAY = "replay"  # arrived for a minute already passed: replayed on the next query
    DUPLICATE = "duplicate"  # seen before (same event id, or same reading value)
    CONFLICT = "conflict"  # another reading holds this minute with a different value; first kept
    UNUSABLE = "unusable"  # error value, warm-up or sensor fault: never assimilated
    TOO_OLD = "too_old"  # before the replay window: cannot change the twin any more


@dataclass(frozen=True)
class BasalSchedule:
    """Scheduled basal (U/h) by local minute of day; ``minute_of_day_at_zero`` places twin minute 0."""

    starts_min: tuple[int, ...]
    rates_u_per_h: tuple[float, ...]
    minute_of_day_at_zero: int = 0

    def __post_init__(self) -> None:
        if not self.starts_min or self.starts_min[0] != 0 or len(self.starts_min) != len(self.rates_u_per_h):
            raise InputDataError("basal schedule must start at minute 0 of the day, one rate per start")
        if list(self.starts_min) != sorted(set(self.starts_min)):
            raise InputDataError("basal schedule start minutes must increase")
        if not 0 <= self.minute_of_day_at_zero < 1440:
            raise InputDataError("minute_of_day_at_zero must be in [0, 1440)")

    @classmethod
    def constant(cls, rate_u_per_h: float) -> BasalSchedule:
        return cls((0,), (float(rate_u_per_h),))

    @classmethod
    def from_profile(cls, profile: TherapyProfile, minute_of_day_at_zero: int = 0) -> BasalSchedule:
        return cls(
            tuple(s for s, _ in profile.basal_schedule),
            tuple(r for _, r in profile.basal_schedule),
            minute_of_day_at_zero,
        )

    def __call__(self, minutes: npt.NDArray[np.int64]) -> F64:
        mod = (np.asarray(minutes) + self.minute_of_day_at_zero) % 1440
        idx = np.searchsorted(np.array(self.starts_min), mod, side="right") - 1
        return np.asarray(self.rates_u_per_h, dtype=np.float64)[idx]

    @property
    def mean_u_per_h(self) -> float:
        ends = [*self.starts_min[1:], 1440]
        total = sum(r * (e - s) for s, e, r in zip(self.starts_min, ends, self.rates_u_per_h, strict=True))
        return total / 1440.0


class Twin:
    """A personal twin that follows its patient; see the module docstring for the API."""

    def __init__(
        self,
        prior: ParticlePrior,
        schedule: BasalSchedule,
        *,
        sensor: SensorErrorModel | None = None,
        config: FilterConfig | None = None,
        seed: int = 0,
        start_minute: int = 0,
        basal_mode: str = BasalMode.SCHEDULE,
        initial_glucose_mg_dl: float | None = None,
    ) -> None:
        if start_minute < 0 or seed < 0:
            raise InputDataError("start_minute and seed must be >= 0")
        self.prior = prior
        self.schedule = schedule
        self.sensor = sensor or SensorErrorModel.from_spec("Dexcom")
        self.config = config or FilterConfig()
        self.seed = int(seed)
        self.start_minute = int(start_minute)
        self._pf = ParticleFilter(prior, self.sensor, self.config, schedule.minute_of_day_at_zero)
        self._log = EventLog(schedule, basal_mode)
        self._state = self._pf.initial_state(
            self.start_minute, self._rng(self.start_minute, 9), initial_glucose_mg_dl
        )
        self._done = self.start_minute - 1
        self._now = self.start_minute
        self._cal = Calibrator(
            median=MedianCorrector(len(CALIBRATION_HORIZONS), prior_coef=prior.error_model_coef)
        )
        self._snapshots: dict[int, tuple[FilterState, Calibrator]] = {
            self._done: (self._state.copy(), self._cal.copy())
        }
        self._dirty: int | None = None
        self._outliers: dict[int, float] = {}
        self._counts = {"replays": 0, "late": 0, "too_old": 0, "duplicates": 0, "unusable": 0, "conflicts": 0}

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_patient(
        cls,
        params: PatientParams | str,
        *,
        basal_u_per_h: float | None = None,
        minute_of_day_at_zero: int = 0,
        **kwargs: Any,
    ) -> Twin:
        """A twin of a known (virtual) patient; the scheduled basal is the patient's own unless given.

        Keyword arguments as :class:`Twin` (sensor, config, seed, start_minute, basal_mode,
        initial_glucose_mg_dl).
        """
        pp = load_patient(params) if isinstance(params, str) else params
        rate = pp.basal_u_per_h if basal_u_per_h is None else float(basal_u_per_h)
        sched = BasalSchedule((0,), (rate,), minute_of_day_at_zero)
        return cls(patient_prior(pp), sched, **kwargs)

    @classmethod
    def from_profile(
        cls,
        profile: TherapyProfile,
        *,
        minute_of_day_at_zero: int = 0,
        exclude_donors: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> Twin:
        """A twin from a therapy profile alone (prior from the virtual population)."""
        prior = profile_prior(profile, exclude=exclude_donors)
        return cls(prior, BasalSchedule.from_profile(profile, minute_of_day_at_zero), **kwargs)

    # -- clock --------------------------------------------------------------------------------

    @property
    def basal_mode(self) -> str:
        """``"schedule"`` (told boluses and basal changes) or ``"delivered"`` (told all insulin)."""
        return str(self._log.mode)

    @property
    def minute(self) -> int:
        """The twin's "now": the latest minute it was advanced to or received a reading for."""
        return self._now

    def _rng(self, minute: int, stream: int) -> np.random.Generator:
        """The random stream for one purpose at one minute: counter-based (Philox) keyed by the
        seed, the minute and the stream, so any step can be replayed on its own."""
        # int64 viewed as uint64: the same key for minutes >= 0, and minute -1 (a twin's state
        # before its first minute, e.g. adopting a prior before any data) is a key too.
        key = np.array([self.seed, minute * 16 + stream], dtype=np.int64).view(np.uint64)
        return np.random.Generator(np.random.Philox(key=key))

    def _check_minute(self, minute: int) -> int:
        if isinstance(minute, bool) or not isinstance(minute, (int, np.integer)):
            raise InputDataError(f"minute must be an integer, got {minute!r}")
        m = int(minute)
        if m > self._now + MAX_JUMP_MIN:
            raise InputDataError(
                f"minute {m} is more than {MAX_JUMP_MIN // 1440} days after the twin's clock ({self._now}); "
                "refusing a clock jump"
            )
        return m

    def advance_to(self, minute: int) -> None:
        """Move "now" forward (never back) and settle grid steps no reading can still change."""
        m = self._check_minute(minute)
        if m <= self._now:
            return
        self._now = m
        self._sync()
        self._commit(self._now - SETTLE_MIN)

    # -- inputs -------------------------------------------------------------------------------

    @property
    def _base_key(self) -> int:
        return min(self._snapshots)

    def _late(self, minute: int, key: int) -> EventStatus | None:
        """Whether an event for ``minute`` comes too late. ``key``: the smallest "done through"
        minute that has not yet seen it (``minute`` for readings and carbs, ``minute + 1`` for
        insulin, which acts over the minute after its stamp)."""
        if minute < self.start_minute or key <= self._base_key:
            self._counts["too_old"] += 1
            return EventStatus.TOO_OLD
        if key <= self._done:
            self._counts["late"] += 1
            self._dirty = key if self._dirty is None else min(self._dirty, key)
            return EventStatus.REPLAY
        return None

    def record_insulin(
        self, minute: int, units: float, *, duration_min: int = 0, event_id: str | None = None
    ) -> EventStatus:
        """Insulin delivered from ``minute`` (U), at once or spread over ``duration_min``."""
        m = self._check_minute(minute)
        if not (isinstance(units, (int, float)) and math.isfinite(units) and 0 <= units <= 100):
            raise InputDataError(f"insulin at minute {m}: {units!r} U is not in [0, 100]")
        if not 0 <= int(duration_min) <= 24 * 60:
            raise InputDataError(f"insulin at minute {m}: duration {duration_min} min is not in [0, 1440]")
        if self._log.seen(event_id):
            self._counts["duplicates"] += 1
            return EventStatus.DUPLICATE
        late = self._late(m, m + 1) if m < self._state.minute else None
        if late is EventStatus.TOO_OLD:
            return late
        self._log.add_delivery(m, float(units), int(duration_min), event_id)
        return late or EventStatus.RECORDED

    def record_basal(
        self,
        minute: int,
        u_per_h: float | None,
        *,
        duration_min: int | None = None,
        event_id: str | None = None,
    ) -> EventStatus:
        """The basal rate in force from ``minute`` (U/h), for ``duration_min`` (then the schedule)
        or until the next change; ``None`` returns to the schedule."""
        m = self._check_minute(minute)
        if u_per_h is not None and not (
            isinstance(u_per_h, (int, float)) and math.isfinite(u_per_h) and 0 <= u_per_h <= 35
        ):
            raise InputDataError(f"basal at minute {m}: {u_per_h!r} U/h is not in [0, 35]")
        if duration_min is not None and not 0 < int(duration_min) <= 24 * 60:
            raise InputDataError(f"basal at minute {m}: duration {duration_min} min is not in (0, 1440]")
        if self._log.mode != BasalMode.SCHEDULE:
            raise InputDataError(
                "record_basal needs basal_mode 'schedule' (this twin takes delivered insulin)"
            )
        if self._log.seen(event_id):
            self._counts["duplicates"] += 1
            return EventStatus.DUPLICATE
        late = self._late(m, m + 1) if m < self._state.minute else None
        if late is EventStatus.TOO_OLD:
            return late
        self._log.add_basal(m, None if u_per_h is None else float(u_per_h), duration_min, event_id)
        return late or EventStatus.RECORDED

    def record_carbs(self, minute: int, grams: float, *, event_id: str | None = None) -> EventStatus:
        """Carbohydrate the patient announced (g), eaten from ``minute``."""
        m = self._check_minute(minute)
        if not (isinstance(grams, (int, float)) and math.isfinite(grams) and 0 <= grams <= 500):
            raise InputDataError(f"carbs at minute {m}: {grams!r} g is not in [0, 500]")
        if self._log.seen(event_id):
            self._counts["duplicates"] += 1
            return EventStatus.DUPLICATE
        if grams == 0:
            return EventStatus.RECORDED
        late = self._late(m, m)
        if late is EventStatus.TOO_OLD:
            return late
        self._log.add_carbs(m, float(grams), event_id)
        return late or EventStatus.RECORDED

    def assimilate_cgm(self, minute: int, mg_dl: float | None, *, usable: bool = True) -> EventStatus:
        """A CGM value for ``minute``. ``None``, non-finite or out-of-range values and readings
        flagged not ``usable`` (warm-up, sensor fault) are counted but never assimilated."""
        m = self._check_minute(minute)
        if (
            not usable
            or mg_dl is None
            or isinstance(mg_dl, bool)
            or not isinstance(mg_dl, (int, float))
            or not math.isfinite(mg_dl)
            or not 0 < mg_dl <= GLUCOSE_MAX_MG_DL
        ):
            self._counts["unusable"] += 1
            return EventStatus.UNUSABLE
        value = float(mg_dl)
        old = self._log.readings.get(m)
        if old is not None:
            if abs(old - value) < 0.5:
                self._counts["duplicates"] += 1
                return EventStatus.DUPLICATE
            self._counts["conflicts"] += 1
            return EventStatus.CONFLICT
        late = self._late(m, m)
        if late is EventStatus.TOO_OLD:
            return late
        self._log.add_reading(m, value)
        if late is not None:
            return late
        self._now = max(self._now, m)
        self._sync()
        self._commit(m)
        return EventStatus.OUTLIER if m in self._outliers else EventStatus.ASSIMILATED

    def assimilate_reading(self, minute: int, reading: CgmReading) -> EventStatus:
        """A typed reading (its ``usable`` flag decides) mapped to twin ``minute`` by the caller."""
        return self.assimilate_cgm(minute, reading.glucose_mg_dl, usable=reading.usable)

    # -- the filter loop ----------------------------------------------------------------------

    def _next_boundary(self, after: int) -> int:
        grid = (after // GRID_MIN + 1) * GRID_MIN
        candidates = [grid]
        for minutes in (self._log.reading_minutes, self._log.carb_minutes):
            nxt = self._log.next_after(minutes, after)
            if nxt is not None:
                candidates.append(nxt)
        return min(candidates)

    def _commit(self, upto: int) -> None:
        while True:
            b = self._next_boundary(self._done)
            if b > upto:
                return
            self._process(b)

    def _process(self, b: int) -> None:
        st = self._state
        if b > st.minute:
            self._pf.propagate(st, self._log.insulin_u(st.minute, b), self._rng(b, 0))
        y = self._log.readings.get(b)
        if y is not None:
            res: Assimilation = self._pf.assimilate(st, y)
            if self._pf.needs_resample(st):
                self._pf.resample(st, self._rng(b, 1))
            if res.outlier:
                self._outliers[b] = res.inlier_prob
            else:
                self._outliers.pop(b, None)
            self._cal.resolve(b, y)
        g = self._log.carbs.get(b)
        if g:
            self._pf.announce_carbs(st, g, self._rng(b, 2))
        self._done = b
        if b % GRID_MIN == 0:
            self._issue_calibration(b)
            self._snapshots[b] = (st.copy(), self._cal.copy())
            self._prune()

    def _prune(self) -> None:
        keys = sorted(self._snapshots)
        horizon = self._done - REPLAY_WINDOW_MIN
        drop = [k for k in keys[:-1] if k < horizon]
        # keep the newest snapshot at or before the horizon as the base
        if drop:
            drop = drop[:-1]
        for k in drop:
            del self._snapshots[k]
        base = min(self._snapshots)
        # A replay from the base snapshot propagates from minute ``base`` (its insulin included)
        # and the forecast's median correction looks back LOOKBACK_MIN from each issue minute.
        self._log.trim(base - LOOKBACK_MIN)
        self._outliers = {m: p for m, p in self._outliers.items() if m > base}

    def _sync(self) -> None:
        """Replay from the snapshot before the earliest late event, if there is one."""
        if self._dirty is None:
            return
        target = self._done
        key = max(k for k in self._snapshots if k < self._dirty)
        st, cal = self._snapshots[key]
        self._state = st.copy()
        self._cal = cal.copy()
        self._done = key
        self._dirty = None
        for k in [k for k in self._snapshots if k > key]:
            del self._snapshots[k]
        self._counts["replays"] += 1
        self._commit(target)

    def _issue_calibration(self, b: int) -> None:
        horizon = max(CALIBRATION_HORIZONS)
        ins = self._log.basal_u_per_h(b, b + horizon, planned_only=True) / 60.0
        cho = np.zeros(horizon)
        q, _ = self._member_quantiles(
            self._state, cho, ins, np.array(CALIBRATION_HORIZONS), CALIBRATION_MEMBERS, self._rng(b, 3)
        )
        self._cal.issue(b, q, self._correction_inputs(b))

    def _correction_inputs(self, minute: int) -> CorrectionInputs | None:
        """What the median correction needs to know at ``minute`` (None without a reading in the
        last 15 minutes): the latest reading, the 20-minute trend, carbs and insulin by window,
        and how far the readings moved over the last 30 and 60 minutes."""
        log = self._log
        i = bisect.bisect_right(log.reading_minutes, minute)
        recent = [m for m in log.reading_minutes[max(0, i - 8) : i] if m >= minute - TREND_WINDOW_MIN]
        if not recent or recent[-1] < minute - FRESH_READING_MIN:
            return None
        values = np.array([log.readings[m] for m in recent])
        slope = 0.0
        if len(recent) >= 2:
            t = np.array(recent, dtype=np.float64)
            t -= t.mean()
            slope = float(t @ (values - values.mean()) / (t @ t))
        start = minute - LOOKBACK_MIN
        ins = log.insulin_u(start + 1, minute + 1)
        carbs = np.zeros(LOOKBACK_MIN)
        for m in log.carb_minutes[bisect.bisect_right(log.carb_minutes, start) :]:
            if m > minute:
                break
            carbs[m - start - 1] += log.carbs[m]
        latest = float(values[-1])

        def change_since(minutes_ago: int) -> float:
            at = recent[-1] - minutes_ago
            j = bisect.bisect_right(log.reading_minutes, at)
            before = log.reading_minutes[j - 1] if j > 0 else None
            return latest - log.readings[before] if before is not None and before >= at - 4 else 0.0

        return CorrectionInputs(
            latest, slope, by_window(carbs), by_window(ins), change_since(30), change_since(60)
        )

    def _member_quantiles(
        self,
        st: FilterState,
        cho: F64,
        ins: F64,
        horizons: npt.NDArray[np.int64],
        members: int,
        rng: np.random.Generator,
    ) -> tuple[F64, F64]:
        """Uncalibrated CGM bands at ``horizons`` (10 %, mean, 90 %; :func:`cgm_bands`) and the
        members' glucose every 5 min."""
        idx = self._pf.select(st, members, rng)
        x = np.ascontiguousarray(st.x[idx])
        aux = np.ascontiguousarray(st.aux[idx])
        switches = self._switches(st, idx, cho.shape[-1])
        gsub = run_members(st.params[idx], switches, x, aux, cho, ins, stride=FORECAST_STEP_MIN)
        g = gsub[:, horizons // FORECAST_STEP_MIN]
        q = cgm_bands(g, st.bias[idx], st.bias_var, horizons.astype(float), self.sensor)
        return q, gsub

    def _switches(
        self, st: FilterState, idx: npt.NDArray[np.int64] | None, minutes: int, for_dosing: bool = False
    ) -> tuple[tuple[int, F64], ...]:
        """Parameter switches of particles ``idx`` (all if None) over the ``minutes`` after
        ``st.minute``: where insulin sensitivity has a time-of-day pattern, one per part boundary."""
        if not self.prior.si_by_part.any():
            return ()
        donor_idx = st.donor_idx if idx is None else st.donor_idx[idx]
        theta = st.theta if idx is None else st.theta[idx]
        segs = part_segments(self.schedule.minute_of_day_at_zero, st.minute, st.minute + minutes)
        return tuple(
            (a - st.minute, self._pf.params_for(donor_idx, theta, a, for_dosing=for_dosing))
            for a, _, _ in segs[1:]
        )

    def adopt(self, prior: ParticlePrior, *, lookback_min: int = 360) -> None:
        """Take a new parameter posterior (e.g. a nightly :func:`~edgetwin.twin.identify.identify`).

        Half the particles draw parameters from ``prior`` (their state estimates mapped into the
        new parameters' frame), half keep the online estimate. The change is made at a snapshot
        in the past and the readings since are replayed, so the new particles have been weighed
        against recent data before anyone forecasts from them: ``lookback_min`` back, or further
        (within the replay window) to before the last announced meal of ADOPT_MEAL_G or more,
        so that the replay holds a meal response. The replay window restarts there: data for
        earlier minutes are reported TOO_OLD afterwards.

        6 hours rather than 1: on the cohort (profile-only twin, nightly re-identification,
        three scenario seeds) the 30/60/120-min RMSE fell from 0.668/0.701/0.815 to
        0.662/0.686/0.801 x persistence; 12 hours was no better. Adopting all particles rather
        than half was worse (0.68-0.72). Back to before the last meal: at the gateway's default
        time, 03:00, six hours hold no main meal and the new particles met their first meal
        response at breakfast, in front of the forecasts; with the replay over dinner the
        30/60/120-min ratios went from 0.630/0.672/0.769 to 0.617/0.651/0.752 (three seeds,
        2026-12-07); at midnight from 0.623/0.656/0.751 to 0.618/0.651/0.751.
        """
        self._sync()
        target = self._done
        start = target - lookback_min
        log = self._log
        meal = next(
            (m for m in reversed(log.carb_minutes) if m <= target and log.carbs[m] >= ADOPT_MEAL_G), None
        )
        if meal is not None and meal > target - REPLAY_WINDOW_MIN:
            start = min(start, meal - ADOPT_BEFORE_MEAL_MIN)
        key = max(k for k in self._snapshots if k <= max(self._base_key, start))
        st, cal = self._snapshots[key]
        self._state = st.copy()
        self._cal = cal.copy()
        self._done = key
        self._pf.adopt(self._state, prior, self._rng(key, 7))
        self.prior = self._pf.prior
        self._snapshots = {key: (self._state.copy(), self._cal.copy())}
        self._log.trim(key + 1)
        self._outliers = {m: p for m, p in self._outliers.items() if m > key}
        self._commit(target)

    # -- the present --------------------------------------------------------------------------

    def _state_now(self) -> FilterState:
        """A copy of the committed state projected (noise-free) to "now"."""
        self._sync()
        st = self._state.copy()
        done = self._done
        while True:
            nxt = self._log.next_after(self._log.carb_minutes, done)
            if nxt is None or nxt > self._now:
                break
            self._pf.propagate(st, self._log.insulin_u(st.minute, nxt), self._rng(nxt, 0), noise=False)
            self._pf.announce_carbs(st, self._log.carbs[nxt], self._rng(nxt, 2))
            done = nxt
        if self._now > st.minute:
            self._pf.propagate(
                st, self._log.insulin_u(st.minute, self._now), self._rng(self._now, 0), noise=False
            )
        return st

    def _future_inputs(self, start: int, minutes: int, planned: PlannedInputs | None) -> tuple[F64, F64]:
        """Per-minute announced carbs and insulin for [start, start + minutes): what the log
        already holds for the future, the basal in force, and ``planned`` on top."""
        end = start + minutes
        cho = np.zeros(minutes)
        for m in self._log.carb_minutes:
            if start < m < end:
                cho[m - start] += self._log.carbs[m]
        ins = self._log.insulin_u(start, end)
        if planned is not None:
            planned.apply(cho, ins, self._log.basal_u_per_h(start, end))
        return cho, ins

    def ensemble(self, members: int | None = None, *, for_dosing: bool = False) -> TwinEnsemble:
        """A copy of the twin at "now": all particles with weights, or ``members`` drawn by weight.

        ``for_dosing`` (the suggestion engine's view): a time-of-day pattern of insulin sensitivity
        may make the twin more sensitive in a part of the day, never less. A pattern can be an
        artifact of the wrong donor (see :mod:`edgetwin.twin.daypart`), and a falsely "resistant"
        night would make suggestions bolder exactly when a low is least likely to be noticed.
        """
        st = self._state_now()
        if members is not None and members < 1:
            raise InputDataError("members must be >= 1")
        idx = None if members is None else self._pf.select(st, members, self._rng(st.minute, 5))

        def take(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return a.copy() if idx is None else np.ascontiguousarray(a[idx])

        if for_dosing and self._pf.si_log_at(st.minute) < 0:
            params = self._pf.params_for(take(st.donor_idx), take(st.theta), st.minute, for_dosing=True)
        else:
            params = take(st.params)
        return TwinEnsemble(
            st.minute,
            params,
            take(st.x),
            take(st.aux),
            st.weights() if idx is None else np.empty(0),
            self._switches(st, idx, MAX_HORIZON_MIN, for_dosing),
        )

    def baseline_plan(
        self, minutes: int, planned: PlannedInputs | None = None, name: str = "baseline"
    ) -> InputPlan:
        """Inputs from "now" on: the basal in force, inputs already recorded for the future, and
        ``planned``. The suggester adds its candidates to this and runs :func:`simulate_plans`."""
        if not 0 < minutes <= MAX_HORIZON_MIN:
            raise InputDataError(f"plan length must be in (0, {MAX_HORIZON_MIN}] min")
        self._sync()
        cho, ins = self._future_inputs(self._now, minutes, planned)
        return InputPlan(name, cho, ins)

    def basal_u_per_h(self, start: int, minutes: int) -> F64:
        """The basal rate (U/h) the twin assumes for each minute of [start, start + minutes)."""
        return self._log.basal_u_per_h(start, start + minutes)

    def forecast(
        self, horizon_min: int = 120, planned: PlannedInputs | None = None, *, members: int = 64
    ) -> Forecast:
        """Calibrated 10/50/90 % quantiles of the CGM every 5 min up to ``horizon_min`` from now."""
        if not 0 < horizon_min <= MAX_HORIZON_MIN:
            raise InputDataError(f"horizon must be in (0, {MAX_HORIZON_MIN}] min, got {horizon_min}")
        if not 1 <= members <= 10_000:
            raise InputDataError("members must be in [1, 10000]")
        steps = -(-int(horizon_min) // FORECAST_STEP_MIN)
        # The error model reads the twin's prediction at every calibration horizon (up to 120
        # min): the members run at least that far, so a short forecast is the start of a long one.
        run_steps = max(steps, max(CALIBRATION_HORIZONS) // FORECAST_STEP_MIN)
        st = self._state_now()
        cho, ins = self._future_inputs(st.minute, run_steps * FORECAST_STEP_MIN, planned)
        horizons = np.arange(1, run_steps + 1, dtype=np.int64) * FORECAST_STEP_MIN
        q, g = self._member_quantiles(st, cho, ins, horizons, members, self._rng(st.minute, 4))
        h = horizons.astype(float)
        at_knots = np.interp(np.array(CALIBRATION_HORIZONS, dtype=float), h, q[1])
        correction = self._cal.correction(st.minute, at_knots, self._correction_inputs(st.minute))
        q = self._cal.apply(q, h)
        shift = self._cal.shift(h, correction, q[1])
        q += shift[None, :]
        return Forecast(
            issued_minute=st.minute,
            minutes=st.minute + horizons[:steps],
            p10_mg_dl=q[0, :steps],
            p50_mg_dl=q[1, :steps],
            p90_mg_dl=q[2, :steps],
            member_glucose_mg_dl=g[:, 1 : steps + 1],
            member_weights=np.full(members, 1.0 / members),
            correction_mg_dl=shift[:steps],
        )

    def whatif(
        self,
        scenarios: Sequence[Scenario],
        *,
        horizon_min: int = 240,
        planned: PlannedInputs | None = None,
        members: int = 64,
    ) -> WhatIfReport:
        """Each scenario's interventions on top of the baseline plan, side by side with it."""
        from edgetwin.twin.whatif import evaluate

        return evaluate(self, scenarios, horizon_min=horizon_min, planned=planned, members=members)

    def glucose_now(self) -> tuple[float, float, float]:
        """(p10, p50, p90) of subcutaneous glucose now (mg/dL, no sensor error)."""
        st = self._state_now()
        q = estimate("g", "mg/dL", st.gsub_mg_dl(), st.weights())
        return q.p10, q.mean, q.p90

    def parameters(self) -> ParameterSummary:
        """The learned parameters with their posterior spread."""
        st = self._state_now()
        w = st.weights()
        n = min(SUMMARY_MEMBERS, st.size)
        idx = self._pf.select(st, n, self._rng(st.minute, 6))
        donor_idx, theta = st.donor_idx[idx], st.theta[idx]
        p = np.ascontiguousarray(compose_params(self.prior.donors, donor_idx, theta))  # day-long
        ones = np.ones(n)
        isf_day = insulin_sensitivity_mg_dl_per_u(p)
        ests = [
            estimate(
                "insulin_sensitivity_mg_dl_per_u",
                "mg/dL per U",
                isf_day,
                ones,
                "largest glucose drop per unit of insulin at basal (the model's correction factor), day-long",
            ),
            estimate(
                "carb_absorption_half_time_min",
                "min",
                absorption_half_time_min(p),
                ones,
                "time until half of a 50 g meal has reached the blood",
            ),
            estimate(
                "basal_glucose_mg_dl",
                "mg/dL",
                basal_glucose_mg_dl(p),
                ones,
                "steady glucose under the mean scheduled basal rate",
            ),
        ]
        for part, (label, _, _) in enumerate(DAYPARTS):
            si_log = float(self.prior.si_by_part[part])
            isf = isf_day
            if si_log:
                isf = insulin_sensitivity_mg_dl_per_u(
                    compose_params(self.prior.donors, donor_idx, theta, si_log=si_log)
                )
            ests.append(
                estimate(
                    f"insulin_sensitivity_mg_dl_per_u_{label.replace(' ', '_').replace('-', '_')}",
                    "mg/dL per U",
                    isf,
                    ones,
                    f"as insulin_sensitivity_mg_dl_per_u, {label} h local time "
                    + (f"({math.exp(si_log):.2f} x day-long)" if si_log else "(no pattern identified)"),
                )
            )
        for j, name in enumerate(THETA_NAMES[:N_LEARNED]):
            ests.append(
                estimate(
                    f"{name}_factor", "x prior", np.exp(st.theta[:, j]), w, "multiplier learned on the prior"
                )
            )
        ests.append(
            estimate(
                "glucose_flux_mg_kg_min",
                "mg/kg/min",
                st.theta[:, TH_FLUX],
                w,
                "glucose appearing (+) or disappearing (-) now that the model does not explain",
            )
        )
        donor_w = np.bincount(st.donor_idx, weights=w, minlength=self.prior.donors.size)
        donors = tuple(
            (self.prior.donors.names[i], float(donor_w[i]))
            for i in np.argsort(-donor_w)
            if donor_w[i] > 0.005
        )
        return ParameterSummary(
            minute=st.minute,
            estimates=tuple(ests),
            donors=donors,
            effective_particles=st.ess(),
            prior=self.prior.description,
        )

    def diagnostics(self) -> dict[str, Any]:
        """Counters a gateway logs: readings, outliers, resamples, replays, late/duplicate events."""
        self._sync()
        out: dict[str, Any] = dict(self._counts)
        out.update(self._state.stats)
        out["recent_outlier_minutes"] = sorted(self._outliers)
        out["effective_particles"] = self._state.ess()
        out["committed_minute"] = self._done
        out["calibration_low"] = self._cal.low.tolist()
        out["calibration_high"] = self._cal.high.tolist()
        out["calibration_resolved"] = self._cal.resolved
        out["correction_pairs"] = [round(float(n), 1) for n in self._cal.median.pairs]
        out["correction_prior"] = "none" if self._cal.median.prior_coef is None else "population"
        return out

    def error_model(self) -> MedianCorrector:
        """A copy of the forecast's error model as learned so far (its sufficient statistics,
        what :mod:`edgetwin.bench.error_prior` pools over the virtual population)."""
        self._sync()
        return self._cal.median.copy()

    def reading_was_outlier(self, minute: int) -> bool:
        """Whether the reading at ``minute`` (within the replay window) was judged an outlier."""
        self._sync()
        return minute in self._outliers

    # -- persistence --------------------------------------------------------------------------

    def checkpoint(self) -> bytes:
        """Everything needed to resume exactly (msgpack, versioned; about 460 kB at 1024
        particles): the current particles, the oldest snapshot of the replay window, the
        events since it (and the 4 hours before, which the forecast's error model looks back
        on) and the forecast's calibration, so late data after a restore still replay."""
        self._sync()
        base_key = self._base_key
        base_state, base_cal = self._snapshots[base_key]
        doc = {
            "version": CHECKPOINT_VERSION,
            "seed": self.seed,
            "start_minute": self.start_minute,
            "now": self._now,
            "done": self._done,
            "config": asdict(self.config),
            "sensor": asdict(self.sensor),
            "schedule": {
                "starts_min": list(self.schedule.starts_min),
                "rates_u_per_h": list(self.schedule.rates_u_per_h),
                "minute_of_day_at_zero": self.schedule.minute_of_day_at_zero,
            },
            "prior": _pack_prior(self.prior),
            "log": self._log.to_dict(),
            "state": _pack_state(self._state),
            "calibrator": self._cal.to_dict(),
            "base_key": base_key,
            "base_state": _pack_state(base_state),
            "base_calibrator": base_cal.to_dict(),
            "outliers": [[m, p] for m, p in self._outliers.items()],
            "counts": self._counts,
        }
        return msgpack.packb(doc, use_bin_type=True)

    @classmethod
    def restore(cls, data: bytes) -> Twin:
        """A twin from :meth:`checkpoint` bytes; raises InputDataError if they are not one."""
        try:
            doc = msgpack.unpackb(data, raw=False, strict_map_key=True, max_bin_len=64 * 2**20)
        except (msgpack.exceptions.ExtraData, msgpack.exceptions.UnpackException, ValueError) as exc:
            raise InputDataError(f"checkpoint is not readable: {exc}") from None
        if not isinstance(doc, dict) or doc.get("version") != CHECKPOINT_VERSION:
            got = doc.get("version") if isinstance(doc, dict) else None
            raise InputDataError(
                f"checkpoint version {got!r} is not supported (expected {CHECKPOINT_VERSION})"
            )
        try:
            prior = _unpack_prior(doc["prior"])
            sc = doc["schedule"]
            schedule = BasalSchedule(
                tuple(int(s) for s in sc["starts_min"]),
                tuple(float(r) for r in sc["rates_u_per_h"]),
                int(sc["minute_of_day_at_zero"]),
            )
            cfg = doc["config"]
            cfg["theta_walk_per_sqrt_day"] = tuple(cfg["theta_walk_per_sqrt_day"])
            # Checkpoints before the lock-step ensemble (2026-12) stored its solver tolerance.
            cfg.pop("rtol", None)
            config = FilterConfig(**cfg)
            sensor = SensorErrorModel(**doc["sensor"])
            twin = cls.__new__(cls)
            twin.prior = prior
            twin.schedule = schedule
            twin.sensor = sensor
            twin.config = config
            twin.seed = int(doc["seed"])
            twin.start_minute = int(doc["start_minute"])
            twin._pf = ParticleFilter(prior, sensor, config, schedule.minute_of_day_at_zero)
            twin._log = EventLog.from_dict(doc["log"], schedule)
            twin._state = _unpack_state(doc["state"], twin._pf)
            twin._done = int(doc["done"])
            twin._now = int(doc["now"])
            twin._cal = Calibrator.from_dict(doc["calibrator"])
            twin._snapshots = {
                int(doc["base_key"]): (
                    _unpack_state(doc["base_state"], twin._pf),
                    Calibrator.from_dict(doc["base_calibrator"]),
                )
            }
            if twin._done != int(doc["base_key"]):
                twin._snapshots[twin._done] = (twin._state.copy(), twin._cal.copy())
            twin._dirty = None
            twin._outliers = {int(m): float(p) for m, p in doc["outliers"]}
            twin._counts = {str(k): int(v) for k, v in doc["counts"].items()}
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InputDataError(f"checkpoint is malformed: {exc!r}") from None
        return twin


def _pack(a: npt.NDArray[Any]) -> dict[str, object]:
    arr = np.ascontiguousarray(a)
    kind = "<f8" if arr.dtype.kind == "f" else "<i8"
    return {"dtype": kind, "shape": list(arr.shape), "data": arr.astype(kind).tobytes()}


def _unpack(d: dict[str, Any]) -> npt.NDArray[Any]:
    if d["dtype"] not in ("<f8", "<i8"):
        raise ValueError(f"unknown array dtype {d['dtype']!r}")
    shape = tuple(int(s) for s in d["shape"])
    arr = np.frombuffer(d["data"], dtype=d["dtype"])
    if arr.size != int(np.prod(shape)):
        raise ValueError("array data does not match its shape")
    out = arr.reshape(shape).astype(np.float64 if d["dtype"] == "<f8" else np.int64)
    return np.ascontiguousarray(out)


def _pack_state(st: FilterState) -> dict[str, object]:
    return {
        "minute": st.minute,
        "donor_idx": _pack(st.donor_idx),
        "theta": _pack(st.theta),
        "x": _pack(st.x),
        "aux": _pack(st.aux),
        "bias": _pack(st.bias),
        "bias_var": st.bias_var,
        "log_w": _pack(st.log_w),
        "stats": st.stats,
    }


def _unpack_state(d: dict[str, Any], pf: ParticleFilter) -> FilterState:
    donor_idx = _unpack(d["donor_idx"])
    theta = _unpack(d["theta"])
    if donor_idx.min(initial=0) < 0 or donor_idx.max(initial=0) >= pf.prior.donors.size:
        raise ValueError("donor index out of range")
    minute = int(d["minute"])
    return FilterState(
        minute=minute,
        donor_idx=donor_idx,
        theta=theta,
        params=pf.params_for(donor_idx, theta, minute),
        x=_unpack(d["x"]),
        aux=_unpack(d["aux"]),
        bias=_unpack(d["bias"]),
        bias_var=float(d["bias_var"]),
        log_w=_unpack(d["log_w"]),
        stats={str(k): int(v) for k, v in d["stats"].items()},
    )


def _pack_prior(prior: ParticlePrior) -> dict[str, Any]:
    """A prior for a checkpoint; a mixed-gut prior as the prior it was mixed from (D, not D x D)."""
    base = prior.mixed_from if prior.mixed_from is not None else prior
    return {
        "names": list(base.donors.names),
        "vectors": _pack(base.donors.vectors),
        "weights": _pack(base.donor_weights),
        "theta_mean": _pack(base.theta_mean),
        "theta_sd": _pack(base.theta_sd),
        "description": base.description,
        "flux_walk": base.flux_walk_mg_kg_min_per_sqrt_min,
        "mixed_guts": prior.mixed_from is not None,
        "si_by_part": _pack(prior.si_by_part),
        "error_model_coef": None if prior.error_model_coef is None else _pack(prior.error_model_coef),
    }


def _unpack_prior(pr: dict[str, Any]) -> ParticlePrior:
    prior = ParticlePrior(
        donors=Donors.from_vectors(tuple(pr["names"]), _unpack(pr["vectors"])),
        donor_weights=_unpack(pr["weights"]),
        theta_mean=_unpack(pr["theta_mean"]),
        theta_sd=_unpack(pr["theta_sd"]),
        description=str(pr["description"]),
        flux_walk_mg_kg_min_per_sqrt_min=float(pr["flux_walk"]),
        # Checkpoints before insulin sensitivity by time of day (2026-12) have no pattern.
        si_by_part=_unpack(pr["si_by_part"]) if "si_by_part" in pr else np.zeros(N_DAYPARTS),
        # Checkpoints before the population error model (2026-12) have none.
        error_model_coef=_unpack(pr["error_model_coef"]) if pr.get("error_model_coef") is not None else None,
    )
    return mix_guts(prior) if pr.get("mixed_guts") else prior
