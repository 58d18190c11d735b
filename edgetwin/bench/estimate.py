"""``edgetwin bench estimate``: the living twin on the virtual cohort.

Data: every cohort patient (or ``--patients N`` spread over the cohort) lives ``--days`` days
under the reference basal-bolus controller with random meals (the cohort convention), carb
counts off by up to +-30 %, half of the snacks unannounced, Dexcom CGM noise
(:mod:`edgetwin.virtual`), and treats lows as people do: 15 g of carbohydrate, unannounced,
when the CGM reads below 70 mg/dL. The twins see only what a gateway sees: CGM readings,
announced carbs and delivered insulin.

Figures:

* **forecasts** issued every 30 min (after the first 3 h) at 30/60/120 min, each from data up to
  its issue minute, for the known-patient twin and the profile-only twin (the patient's therapy
  settings; the patient itself is left out of the population it is built from, and out of the
  population's forecast-error model its error model starts from, which was fitted on other
  scenario seeds, see :mod:`edgetwin.bench.error_prior`; learned online and re-identified every
  24 h), next to persistence and linear extrapolation on the same rows.
  RMSE against the true (subcutaneous) glucose, which is what is forecast, and against the CGM
  readings, which carry the sensor's own unforecastable error (the "floor" row: a perfect
  glucose forecast scored against the readings); 80 % band coverage of the readings.
* **parameter recovery** of the profile-only twin after 1, 3 and 7 days: insulin sensitivity
  (model correction factor) and carb-absorption half-time against the patient's true values,
  and how often the twin's 10-90 % range holds the truth.
* **cost** of one CGM update (estimation + 120-min forecast with uncertainty), single-threaded,
  next to one bare 120-min model run; batch personalisation time for 7 and 14 days of data
  next to the online filter over the same data.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["add_arguments", "run"]

HORIZONS = (30, 60, 120)
EVERY_MIN = 30
DAY_CURVE_HORIZON_MIN = 30
"""The horizon of the learning curve: the forecast error day by day as the twin sees more data."""
FIRST_ISSUE_MIN = 180


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patients", type=int, default=30, help="cohort patients (spread over the 30)")
    p.add_argument("--days", type=int, default=7, help="simulated days per patient")
    p.add_argument("--seed", type=int, default=1, help="seed of meals and sensor noise")
    p.add_argument(
        "--seeds",
        type=_seed_list,
        default=None,
        help="comma-separated scenario seeds (e.g. 1,2,3): the forecast and recovery figures pool "
        "every patient under each seed and print each seed's ratios too (replaces --seed there)",
    )
    p.add_argument("--timing-patients", type=int, default=3, help="patients timed for cost figures")
    p.add_argument(
        "--batch-days", type=int, default=14, help="longest history timed for batch personalisation"
    )
    p.add_argument("--particles", type=int, default=None, help="filter particles (default 1024)")
    p.add_argument("--workers", type=int, default=2, help="patients replayed in parallel (1 thread each)")
    p.add_argument(
        "--daypart-patients",
        type=int,
        default=30,
        help="patients (spread over the cohort) for insulin sensitivity by time of day; 0 skips it",
    )
    p.add_argument("--daypart-days", type=int, default=14, help="days of history for time of day")


def _seed_list(text: str) -> list[int]:
    """``--seeds``: distinct non-negative integers separated by commas (argparse type)."""
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated integers expected, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"distinct non-negative integers expected, got {text!r}")
    return seeds


def _seeds(args: argparse.Namespace) -> list[int]:
    """The scenario seeds of the forecast replay: ``--seeds`` if given, else ``--seed``."""
    return list(args.seeds) if getattr(args, "seeds", None) else [int(args.seed)]


def _patients(n: int) -> list[str]:
    from edgetwin.model import cohort_names

    names = cohort_names()
    n = max(1, min(n, len(names)))
    picks = np.unique(np.linspace(0, len(names) - 1, n).round().astype(int))
    return [names[i] for i in picks]


RESCUE_BELOW_MG_DL = 70.0
RESCUE_G = 15.0
RESCUE_EVERY_MIN = 15


@dataclass(frozen=True)
class _Trace:
    gsub_mg_dl: np.ndarray  # minutes + 1
    cgm_mg_dl: np.ndarray  # minutes + 1, NaN between samples
    announced_cho_g: np.ndarray  # minutes
    eaten_cho_g: np.ndarray  # minutes
    insulin_u: np.ndarray  # minutes
    rescues: int


def _simulate(
    name: str, days: int, seed: int, isf_by_part: tuple[float, ...] | None = None
) -> tuple[Any, Any, _Trace]:
    """A closed loop like :func:`edgetwin.virtual.environment.run_closed_loop` (same patient,
    sensor, pump and basal-bolus controller), plus what people on insulin do: below 70 mg/dL on
    the CGM they eat 15 g of fast carbohydrate, at most every 15 minutes, and announce nothing
    (the "rule of 15"). Without it some children's over-counted meals drive the model to zero
    glucose, where it stays.

    ``isf_by_part``: the patient's insulin sensitivity in each 6-h part of the day (minute 0 is
    midnight) as multipliers of the cohort value, basal steady state kept (a diurnal patient for
    the time-of-day identification); None keeps the cohort patient as it is."""
    from edgetwin.model import load_patient, load_therapy
    from edgetwin.model.params import X_GS
    from edgetwin.virtual.controller import BasalBolusController, Observation
    from edgetwin.virtual.patient import VirtualPatient
    from edgetwin.virtual.pump import VirtualPump
    from edgetwin.virtual.scenario import RandomScenario
    from edgetwin.virtual.sensor import CgmSensor

    pp = load_patient(name)
    th = load_therapy(name)
    minutes = days * 1440 + 1  # one minute more, so a forecast is issued at the end of day `days`
    eaten = np.zeros(minutes)
    announced = np.zeros(minutes)
    for meal in RandomScenario(seed, carb_error=0.3, p_unannounced_snack=0.5).meals(days):
        eaten[meal.minute] += meal.eaten_g
        announced[meal.minute] += meal.announced_g
    ctrl = BasalBolusController(pp.basal_u_per_h, th.carb_ratio_g_per_u, th.correction_factor_mg_dl_per_u)
    sensor = CgmSensor("Dexcom", seed=seed)
    pump = VirtualPump()
    patient = VirtualPatient(pp)
    from edgetwin.twin.timeofday import DAYPART_MIN, part_at

    by_part = None if isf_by_part is None else _diurnal_vectors(pp, isf_by_part)
    gsub = np.empty(minutes + 1)
    cgm = np.full(minutes + 1, np.nan)
    insulin = np.zeros(minutes)
    period = int(sensor.sample_time_min)
    basal, delivered, told = 0.0, 0.0, 0.0
    last_cgm: float | None = None
    last_rescue, rescues = -RESCUE_EVERY_MIN, 0
    for k in range(minutes + 1):
        gsub[k] = patient.state[X_GS] / pp.Vg
        reading = sensor.measure(k, gsub[k])
        if reading is not None:
            cgm[k] = last_cgm = reading
        if k == minutes:
            break
        if by_part is not None and k % DAYPART_MIN == 0:
            patient.use_parameter_vector(by_part[part_at(0, k)])
        if reading is not None and reading < RESCUE_BELOW_MG_DL and k - last_rescue >= RESCUE_EVERY_MIN:
            eaten[k] += RESCUE_G
            last_rescue = k
            rescues += 1
        told += announced[k]
        bolus = 0.0
        if k % period == 0 or announced[k] > 0:
            action = ctrl.act(Observation(k, reading if reading is not None else last_cgm, told, delivered))
            basal, bolus, told, delivered = action.basal_u_per_h, action.bolus_u, 0.0, 0.0
        insulin[k] = pump.minute_insulin_u(basal, bolus)
        delivered += insulin[k]
        patient.step(eaten[k], insulin[k])
    return pp, th, _Trace(gsub, cgm, announced, eaten, insulin, rescues)


def _diurnal_vectors(pp: Any, isf_by_part: tuple[float, ...]) -> np.ndarray:
    """(P, 32): the patient with its insulin sensitivity scaled in each part of the day."""
    from edgetwin.twin.daypart import params_by_part
    from edgetwin.twin.prior import N_THETA, Donors

    donors = Donors.from_vectors((pp.name,), pp.vector()[None, :])
    deltas = np.log(np.asarray(isf_by_part, dtype=np.float64))[None, :]
    return params_by_part(donors, 0, np.zeros(N_THETA), deltas)[:, 0]


def _profile(pp: Any, th: Any) -> Any:
    from edgetwin.therapy import TherapyProfile

    return TherapyProfile(
        weight_kg=pp.BW,
        basal_schedule=((0, round(pp.basal_u_per_h, 2)),),
        carb_ratio_g_per_u=th.carb_ratio_g_per_u,
        correction_factor_mg_dl_per_u=th.correction_factor_mg_dl_per_u,
        age_years=th.age_years,
        total_daily_insulin_u=th.total_daily_insulin_u,
    )


def _history(trace: Any) -> Any:
    from edgetwin.twin.history import History

    return History(trace.cgm_mg_dl[:-1].copy(), trace.announced_cho_g.copy(), trace.insulin_u.copy())


def _first_reading(cgm: np.ndarray) -> float:
    return float(cgm[np.isfinite(cgm)][0])


def _config(args: argparse.Namespace) -> Any:
    from edgetwin.twin.filter import FilterConfig

    return FilterConfig() if args.particles is None else FilterConfig(particles=args.particles)


def _rmse(e: list[float]) -> float:
    return float(np.sqrt(np.mean(np.square(e)))) if e else math.nan


def _profile_twin(i: int, pp: Any, th: Any, hist: Any, config: Any) -> tuple[Any, Any]:
    """The profile-only twin of cohort patient ``pp`` (its therapy settings, the patient left
    out of the population) and the nightly personalisation that drives it over ``hist``."""
    from edgetwin.twin.history import NightlyPersonaliser
    from edgetwin.twin.prior import profile_prior
    from edgetwin.twin.twin import BasalSchedule, Twin

    prior = profile_prior(_profile(pp, th), exclude=(pp.name,))
    twin = Twin(
        prior,
        BasalSchedule.constant(round(pp.basal_u_per_h, 2)),
        basal_mode="delivered",
        config=config,
        initial_glucose_mg_dl=_first_reading(hist.cgm_mg_dl),
        seed=i,
    )
    return twin, NightlyPersonaliser(prior, hist)


def _replay_patient(job: tuple[int, str, int, int, int | None]) -> dict[str, Any]:
    """Simulate one patient and replay it through both twins (runs in a worker process)."""
    import numba

    from edgetwin.twin.filter import FilterConfig
    from edgetwin.twin.history import backtest
    from edgetwin.twin.indices import absorption_half_time_min, insulin_sensitivity_mg_dl_per_u
    from edgetwin.twin.twin import Twin

    i, name, days, seed, particles = job
    numba.set_num_threads(1)
    t0 = time.perf_counter()
    config = FilterConfig() if particles is None else FilterConfig(particles=particles)
    pp, th, trace = _simulate(name, days, seed)
    hist = _history(trace)
    truth = trace.gsub_mg_dl
    g0 = _first_reading(hist.cgm_mg_dl)
    known = Twin.from_patient(pp, basal_mode="delivered", config=config, initial_glucose_mg_dl=g0, seed=i)
    rows_k = backtest(known, hist, EVERY_MIN, HORIZONS, first_issue_min=FIRST_ISSUE_MIN)

    prof_twin, nightly = _profile_twin(i, pp, th, hist, config)
    true_isf = float(insulin_sensitivity_mg_dl_per_u(pp.vector()[None, :])[0])
    true_t50 = float(absorption_half_time_min(pp.vector()[None, :])[0])
    recovery: dict[int, tuple[float, bool, float, bool]] = {}

    def before_issue(twin: Twin, t: int) -> None:
        nightly(twin, t)
        if t % 1440 == 0 and t // 1440 in (1, 3, 7):
            s = twin.parameters()
            e = s["insulin_sensitivity_mg_dl_per_u"]
            a = s["carb_absorption_half_time_min"]
            recovery[t // 1440] = (
                e.mean / true_isf - 1.0,
                e.p10 <= true_isf <= e.p90,
                a.mean / true_t50 - 1.0,
                a.p10 <= true_t50 <= a.p90,
            )

    rows_p = backtest(
        prof_twin, hist, EVERY_MIN, HORIZONS, first_issue_min=FIRST_ISSUE_MIN, before_issue=before_issue
    )
    err: dict[str, dict[int, list[float]]] = {}
    cover: dict[str, dict[int, list[bool]]] = {k: {h: [] for h in HORIZONS} for k in ("known", "profile")}

    by_day: dict[str, dict[int, list[float]]] = {}

    def add(kind: str, h: int, e: float) -> None:
        err.setdefault(kind, {hh: [] for hh in HORIZONS})[h].append(float(e))

    for kind, rows in (("known", rows_k), ("profile", rows_p)):
        for r in rows:
            at = r.issued_minute + r.horizon_min
            if at >= hist.minutes:
                continue
            add(f"{kind}/truth", r.horizon_min, r.p50_mg_dl - truth[at])
            add(f"{kind}_uncorrected/truth", r.horizon_min, r.p50_mg_dl - r.correction_mg_dl - truth[at])
            if r.horizon_min == DAY_CURVE_HORIZON_MIN:
                day = r.issued_minute // 1440 + 1
                by_day.setdefault(kind, {}).setdefault(day, []).append(float(r.p50_mg_dl - truth[at]))
                if kind == "known":
                    err_p = float(r.persistence_mg_dl - truth[at])
                    by_day.setdefault("persistence", {}).setdefault(day, []).append(err_p)
            if kind == "known":
                add("persistence/truth", r.horizon_min, r.persistence_mg_dl - truth[at])
                add("linear/truth", r.horizon_min, r.linear_mg_dl - truth[at])
            if math.isfinite(r.actual_mg_dl):
                add(f"{kind}/cgm", r.horizon_min, r.p50_mg_dl - r.actual_mg_dl)
                cover[kind][r.horizon_min].append(r.p10_mg_dl <= r.actual_mg_dl <= r.p90_mg_dl)
                if kind == "known":
                    add("persistence/cgm", r.horizon_min, r.persistence_mg_dl - r.actual_mg_dl)
                    add("linear/cgm", r.horizon_min, r.linear_mg_dl - r.actual_mg_dl)
                    add("floor/cgm", r.horizon_min, truth[at] - r.actual_mg_dl)
    return {
        "name": name,
        "seed": seed,
        "err": err,
        "by_day": by_day,
        "cover": cover,
        "recovery": recovery,
        "rescues": trace.rescues,
        "seconds": time.perf_counter() - t0,
    }


_SPAWN = multiprocessing.get_context("spawn")
"""Workers start fresh: a process that has run the model multi-threaded (OpenMP) cannot fork."""

DAYPART_PATTERN_LOG_SD = 0.3
FALSE_PATTERN_LOG = math.log(1.15)


def _daypart_patient(job: tuple[int, str, int, int]) -> dict[str, Any]:
    """One patient, ``days`` days, with a random time-of-day pattern of insulin sensitivity and
    without: the batch identification and the per-part estimates (runs in a worker process)."""
    import numba

    from edgetwin.twin.daypart import identify_dayparts
    from edgetwin.twin.identify import identify
    from edgetwin.twin.prior import profile_prior

    _, name, days, seed = job
    numba.set_num_threads(1)
    rng = np.random.default_rng([seed, 77])
    pattern = np.exp(DAYPART_PATTERN_LOG_SD * rng.standard_normal(4))
    res: dict[str, Any] = {"name": name, "pattern": pattern.tolist()}
    for kind, pat in (("diurnal", tuple(pattern)), ("flat", None)):
        pp, th, trace = _simulate(name, days, seed, pat)
        hist = _history(trace)
        ident = identify(profile_prior(_profile(pp, th), exclude=(name,)), hist)
        ds = identify_dayparts(ident, hist, 0)
        res[kind] = [(p.multiplier, p.p10, p.p90, p.identified) for p in ds.parts]
    return res


def _daypart_section(args: argparse.Namespace) -> dict[str, Any]:
    """Recovery of insulin sensitivity by time of day, and patterns claimed where there are none."""
    from concurrent.futures import ProcessPoolExecutor

    names = _patients(args.daypart_patients)
    jobs = [(i, name, args.daypart_days, args.seed * 1000 + 900 + i) for i, name in enumerate(names)]
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=_SPAWN) as pool:
        results = list(pool.map(_daypart_patient, jobs))
    n_parts = 4 * len(results)
    found = covered = 0
    err_fit: list[float] = []
    err_flat: list[float] = []
    false_found = 0
    worst = 1.0
    for r in results:
        true_log = np.log(np.asarray(r["pattern"]))
        true_rel = true_log - true_log.mean()  # the estimates are relative to the day's mean
        for p, (mult, lo, hi, ok) in enumerate(r["diurnal"]):
            if ok:
                found += 1
                covered += int(lo <= math.exp(true_rel[p]) <= hi)
                err_fit.append(abs(math.log(mult) - true_rel[p]))
                err_flat.append(abs(true_rel[p]))
        for mult, _lo, _hi, ok in r["flat"]:
            if ok and abs(math.log(mult)) > FALSE_PATTERN_LOG:
                false_found += 1
            if ok and abs(math.log(mult)) > abs(math.log(worst)):
                worst = mult
    out: dict[str, Any] = {
        "daypart_patients": len(results),
        "daypart_days": args.daypart_days,
        "daypart_identified_fraction": found / n_parts,
        "daypart_interval_covers": covered / found if found else math.nan,
        "daypart_log_error_median": statistics.median(err_fit) if err_fit else math.nan,
        "daypart_log_error_flat_median": statistics.median(err_flat) if err_flat else math.nan,
        "daypart_false_pattern_fraction": false_found / n_parts,
        "daypart_flat_worst_multiplier": worst,
    }
    print()
    print(
        f"Insulin sensitivity by time of day ({len(results)} patients x {args.daypart_days} days, profile-only "
        f"batch; each patient once with a random pattern, log-sd {DAYPART_PATTERN_LOG_SD}, and once without):"
    )
    print(
        f"  with a pattern: {100 * out['daypart_identified_fraction']:.0f} % of parts identified; their 10-90 % "
        f"range holds the true multiplier for {100 * out['daypart_interval_covers']:.0f} %; |error| median "
        f"{out['daypart_log_error_median']:.3f} log units (a flat profile's: {out['daypart_log_error_flat_median']:.3f})"
    )
    print(
        f"  without: {100 * out['daypart_false_pattern_fraction']:.0f} % of parts claimed a pattern beyond "
        f"0.87-1.15x (most extreme identified part {worst:.2f}x; the dosing view ignores parts below 1x)"
    )
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from concurrent.futures import ProcessPoolExecutor

    import numba

    from edgetwin.model.ensemble import new_aux, run_ensemble
    from edgetwin.twin.history import feed
    from edgetwin.twin.identify import identify
    from edgetwin.twin.indices import insulin_sensitivity_mg_dl_per_u
    from edgetwin.twin.prior import profile_prior
    from edgetwin.twin.twin import BasalSchedule, Twin

    if args.days < 1 or args.patients < 1 or args.workers < 1:
        raise ValueError("--days, --patients and --workers must be >= 1")
    names = _patients(args.patients)
    config = _config(args)
    seeds = _seeds(args)
    t_start = time.perf_counter()
    print(
        f"edgetwin bench estimate: {len(names)} virtual patients x {args.days} days, basal-bolus therapy, "
        "random meals with +-30 % carb counts, half the snacks unannounced, lows treated with 15 g "
        "unannounced, Dexcom noise"
    )
    jobs = [(i, name, args.days, s * 1000 + i, args.particles) for s in seeds for i, name in enumerate(names)]
    by_seed: dict[int, dict[str, list[float]]] = {s: {} for s in seeds}
    err: dict[str, dict[int, list[float]]] = {}
    cover: dict[str, dict[int, list[bool]]] = {k: {h: [] for h in HORIZONS} for k in ("known", "profile")}
    recovery: dict[int, list[tuple[float, bool, float, bool]]] = {}
    by_day: dict[str, dict[int, list[float]]] = {}
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=_SPAWN) as pool:
        for res in pool.map(_replay_patient, jobs):
            for key, by_h in res["err"].items():
                for h, es in by_h.items():
                    err.setdefault(key, {hh: [] for hh in HORIZONS})[h].extend(es)
            for kind, days_e in res["by_day"].items():
                for day, es in days_e.items():
                    by_day.setdefault(kind, {}).setdefault(day, []).extend(es)
            for kind, by_h in res["cover"].items():
                for h, cs in by_h.items():
                    cover[kind][h].extend(cs)
            for d, rec in res["recovery"].items():
                recovery.setdefault(d, []).append(rec)
            for key in ("known/truth", "profile/truth", "persistence/truth"):
                by_seed[res["seed"] // 1000].setdefault(key, []).extend(res["err"][key][30])
            k30 = _rmse(res["err"]["known/truth"][30])
            p30 = _rmse(res["err"]["profile/truth"][30])
            q30 = _rmse(res["err"]["persistence/truth"][30])
            tag = f" (seed {res['seed'] // 1000})" if len(seeds) > 1 else ""
            print(
                f"  {res['name'] + tag:<15} {res['seconds']:6.1f} s   30-min RMSE vs truth: known twin {k30:5.1f}, "
                f"profile twin {p30:5.1f}, persistence {q30:5.1f}; {res['rescues']} lows treated",
                flush=True,
            )
    check_days = [d for d in (1, 3, 7) if d <= args.days]

    out: dict[str, Any] = {"bench": "estimate", "patients": len(names), "days": args.days, "seeds": seeds}
    print()
    print("Forecast RMSE (mg/dL), forecasts every 30 min, each from data up to its issue minute:")
    print(f"{'predictor':<30}{'target':<8}" + "".join(f"{h:>8} min" for h in HORIZONS))
    for kind in (
        "known",
        "profile",
        "known_uncorrected",
        "profile_uncorrected",
        "persistence",
        "linear",
        "floor",
    ):
        for against in ("truth", "cgm"):
            key = f"{kind}/{against}"
            if key not in err:
                continue
            label = {
                "known": "twin, known patient",
                "profile": "twin, profile only",
                "known_uncorrected": "  without error model",
                "profile_uncorrected": "  without error model",
                "persistence": "persistence (baseline)",
                "linear": "linear extrap. (baseline)",
                "floor": "perfect glucose (floor)",
            }[kind]
            vals = [_rmse(err[key][h]) for h in HORIZONS]
            print(f"{label:<30}{against:<8}" + "".join(f"{v:12.1f}" for v in vals))
            for h, v in zip(HORIZONS, vals, strict=True):
                out[f"rmse_{h}_{kind}_{against}"] = v
    for kind in ("known", "profile", "known_uncorrected", "profile_uncorrected"):
        for h in HORIZONS:
            for against in ("truth", "cgm"):  # the rows without the error model: truth only
                if f"rmse_{h}_{kind}_{against}" in out:
                    out[f"ratio_{h}_{kind}_vs_persistence_{against}"] = (
                        out[f"rmse_{h}_{kind}_{against}"] / out[f"rmse_{h}_persistence_{against}"]
                    )
    print("RMSE / persistence RMSE:")
    for kind in ("known", "profile"):
        print(
            f"  {kind:<8} vs truth, without the learned error model "
            + "  ".join(
                f"{h} min {out[f'ratio_{h}_{kind}_uncorrected_vs_persistence_truth']:.2f}" for h in HORIZONS
            )
        )
    for kind in ("known", "profile"):
        print(
            f"  {kind:<8} vs truth "
            + "  ".join(f"{h} min {out[f'ratio_{h}_{kind}_vs_persistence_truth']:.2f}" for h in HORIZONS)
            + "   | vs CGM "
            + "  ".join(f"{h} min {out[f'ratio_{h}_{kind}_vs_persistence_cgm']:.2f}" for h in HORIZONS)
        )
    # Each seed is one draw of meals, noise and the filter's randomness: a single seed's 30-min
    # ratio moves by about 0.01 between such draws (README), the pooled one much less.
    for kind in ("known", "profile"):
        ratios = [_rmse(by_seed[s][f"{kind}/truth"]) / _rmse(by_seed[s]["persistence/truth"]) for s in seeds]
        out[f"ratio_30_{kind}_by_seed"] = ratios
        if len(seeds) > 1:
            print(
                f"  {kind:<8} vs truth, 30 min, by scenario seed "
                + "  ".join(f"{s}: {r:.3f}" for s, r in zip(seeds, ratios, strict=True))
            )
    days_seen = sorted(by_day.get("persistence", {}))
    print(f"{DAY_CURVE_HORIZON_MIN}-min RMSE / persistence by day of data (does the twin learn?):")
    for kind in ("known", "profile"):
        ratios = [
            _rmse(by_day[kind][d]) / _rmse(by_day["persistence"][d])
            for d in days_seen
            if d in by_day.get(kind, {})
        ]
        print(
            f"  {kind:<8} " + "  ".join(f"day {d} {r:.2f}" for d, r in zip(days_seen, ratios, strict=False))
        )
        out[f"ratio_{DAY_CURVE_HORIZON_MIN}_{kind}_by_day"] = ratios
    # Later days can simply be harder (more lows treated, bigger meals): the profile twin's error
    # relative to the known twin's on the same day is what shows how much it has learned.
    gap = [
        _rmse(by_day["profile"][d]) / _rmse(by_day["known"][d])
        for d in days_seen
        if d in by_day.get("profile", {}) and d in by_day.get("known", {})
    ]
    print("  profile / known " + "  ".join(f"day {d} {g:.2f}" for d, g in zip(days_seen, gap, strict=False)))
    out[f"rmse_{DAY_CURVE_HORIZON_MIN}_profile_over_known_by_day"] = gap
    print("80 % band coverage of the CGM readings (target 75-85 %):")
    for kind in ("known", "profile"):
        covs = [100.0 * float(np.mean(cover[kind][h])) if cover[kind][h] else math.nan for h in HORIZONS]
        print(f"  {kind:<8} " + "  ".join(f"{h} min {c:5.1f} %" for h, c in zip(HORIZONS, covs, strict=True)))
        for h, c in zip(HORIZONS, covs, strict=True):
            out[f"coverage_{h}_{kind}_pct"] = c

    print()
    print("Parameter recovery, profile-only twin (patient left out of the population), |error| median:")
    for d in check_days:
        rec = recovery.get(d, [])
        if not rec:
            continue
        isf_err = [abs(r[0]) for r in rec]
        t50_err = [abs(r[2]) for r in rec]
        within = float(np.mean([e <= 0.2 for e in isf_err]))
        out[f"isf_error_day{d}_median"] = statistics.median(isf_err)
        out[f"isf_within_20pct_day{d}"] = within
        out[f"isf_interval_covers_day{d}"] = float(np.mean([r[1] for r in rec]))
        out[f"t50_error_day{d}_median"] = statistics.median(t50_err)
        out[f"t50_interval_covers_day{d}"] = float(np.mean([r[3] for r in rec]))
        print(
            f"  after {d} day(s): insulin sensitivity {100 * statistics.median(isf_err):5.1f} % "
            f"({100 * within:.0f} % of patients within 20 %, 10-90 % range holds truth for "
            f"{100 * out[f'isf_interval_covers_day{d}']:.0f} %); carb absorption half-time "
            f"{100 * statistics.median(t50_err):5.1f} % (range holds truth for {100 * out[f't50_interval_covers_day{d}']:.0f} %)"
        )

    if args.daypart_patients > 0:
        out.update(_daypart_section(args))

    # -- cost per CGM update, single-threaded -------------------------------------------------
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        upd_cpu: list[float] = []
        upd_wall: list[float] = []
        bare: list[float] = []
        for j, name in enumerate(names[: max(1, args.timing_patients)]):
            pp, th, trace = _simulate(name, 2, args.seed * 1000 + 500 + j)
            hist = _history(trace)
            twin = Twin.from_patient(
                pp,
                basal_mode="delivered",
                config=config,
                initial_glucose_mg_dl=_first_reading(hist.cgm_mg_dl),
            )
            feed(twin, hist, 0, 1439)
            twin.forecast(120)
            for m in range(1440, hist.minutes):
                twin.record_insulin(m, float(hist.insulin_u[m]))
                if hist.cho_g[m] > 0:
                    twin.record_carbs(m, float(hist.cho_g[m]))
                y = hist.cgm_mg_dl[m]
                if math.isfinite(y):
                    c0, w0 = time.process_time(), time.perf_counter()
                    twin.assimilate_cgm(m, float(y))
                    twin.forecast(120)
                    upd_cpu.append(time.process_time() - c0)
                    upd_wall.append(time.perf_counter() - w0)
            p = pp.vector()
            ins = np.full(120, pp.basal_u_per_h / 60.0)
            for _ in range(50):
                x = pp.state0()[None, :].copy()
                c0 = time.process_time()
                run_ensemble(p, x, new_aux(1), np.zeros(120), ins, stride=5)
                bare.append(time.process_time() - c0)
    finally:
        numba.set_num_threads(threads)
    ms_cpu = 1e3 * float(np.mean(upd_cpu))
    out["update_ms_cpu_mean"] = ms_cpu
    out["update_ms_cpu_p95"] = 1e3 * float(np.percentile(upd_cpu, 95))
    out["update_ms_wall_mean"] = 1e3 * float(np.mean(upd_wall))
    out["bare_model_run_ms"] = 1e3 * float(np.median(bare))
    out["particles"] = config.particles
    print()
    print(
        f"Cost per CGM update (estimation with {config.particles} particles + 120-min forecast, 64 members), 1 thread:"
    )
    print(
        f"  {ms_cpu:.2f} ms CPU mean, {out['update_ms_cpu_p95']:.2f} ms p95, {out['update_ms_wall_mean']:.2f} ms wall "
        f"({len(upd_cpu)} updates); one bare 120-min model run: {out['bare_model_run_ms']:.3f} ms"
    )

    # -- batch personalisation time -----------------------------------------------------------
    batch_days = sorted({d for d in (7, args.batch_days) if d >= 1})
    times: dict[int, list[float]] = {d: [] for d in batch_days}
    online: dict[int, list[float]] = {d: [] for d in batch_days}
    isf_batch: dict[int, list[float]] = {d: [] for d in batch_days}
    for j, name in enumerate(names[: max(1, args.timing_patients)]):
        pp, th, trace = _simulate(name, max(batch_days), args.seed * 1000 + 700 + j)
        hist = _history(trace)
        prior = profile_prior(_profile(pp, th), exclude=(name,))
        true_isf = float(insulin_sensitivity_mg_dl_per_u(pp.vector()[None, :])[0])
        for d in batch_days:
            ident = identify(prior, hist, end=d * 1440)
            times[d].append(ident.seconds)
            tw = Twin(ident.posterior, BasalSchedule.constant(pp.basal_u_per_h), config=config)
            isf_batch[d].append(tw.parameters()["insulin_sensitivity_mg_dl_per_u"].mean / true_isf - 1.0)
            w0 = time.perf_counter()
            tw_on = Twin(
                prior, BasalSchedule.constant(pp.basal_u_per_h), basal_mode="delivered", config=config
            )
            feed(tw_on, hist, 0, d * 1440 - 1)
            online[d].append(time.perf_counter() - w0)
    print()
    print(
        f"Batch personalisation (population search on the ensemble kernel, {numba.get_num_threads()} threads):"
    )
    for d in batch_days:
        out[f"batch_{d}d_s"] = float(np.mean(times[d]))
        out[f"batch_{d}d_isf_error_median"] = statistics.median(abs(e) for e in isf_batch[d])
        out[f"online_filter_{d}d_s"] = float(np.mean(online[d]))
        print(
            f"  {d:2d} days: {out[f'batch_{d}d_s']:5.1f} s (insulin sensitivity |error| median "
            f"{100 * out[f'batch_{d}d_isf_error_median']:.0f} %); the online filter over the same data: "
            f"{out[f'online_filter_{d}d_s']:5.1f} s"
        )

    targets = {
        "rmse30_known_le_0.6x_persistence_truth": out["ratio_30_known_vs_persistence_truth"] <= 0.6,
        "rmse30_profile_le_0.6x_persistence_truth": out["ratio_30_profile_vs_persistence_truth"] <= 0.6,
        "coverage_75_85_known": all(75 <= out[f"coverage_{h}_known_pct"] <= 85 for h in HORIZONS),
        "coverage_75_85_profile": all(75 <= out[f"coverage_{h}_profile_pct"] <= 85 for h in HORIZONS),
        "update_le_10ms": ms_cpu <= 10.0,
    }
    if f"isf_error_day{max(check_days)}_median" in out and max(check_days) >= 7:
        targets["isf_within_20pct_day7_median"] = out["isf_error_day7_median"] <= 0.2
    if f"batch_{args.batch_days}d_s" in out and args.batch_days >= 14:
        targets["batch_14d_le_60s"] = out["batch_14d_s"] <= 60.0
    out["targets"] = targets
    out["seconds"] = time.perf_counter() - t_start
    print()
    print("Targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in targets.items()))
    return out
