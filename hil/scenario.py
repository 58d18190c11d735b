"""Scenario files: what a bench run simulates, which faults it injects and what must hold.

A scenario is a TOML file, validated completely before anything starts; every problem is a
:class:`~hil.errors.ScenarioError` naming the file and the dotted key (``faults[2].minutes: must
be > 0``). The format::

    description = "One line (or a few) saying what this scenario checks."   # required
    patient = "adult#001"        # a cohort patient (edgetwin.model.cohort)
    days = 1.0                   # simulated length (or hours = 6.0; not both)
    seed = 1                     # meals, sensor noise and random faults
    mode = "open-loop"           # or "closed-loop": the gateway may command the pump
    start = "06:00"              # UTC time of day at t = 0
    speed = 1800                 # clock seconds per real second (default DEFAULT_SPEED)
    short_hours = 6              # length of the short version CI runs (`pytest hil/`)

    [gateway]
    run = "in-process"           # or "process": `edgetwin run` in its own process (needed to
                                 #   SIGKILL it); default: "process" when the timeline kills it
    no_data_alarm_min = 20       # [watchdog] no_data_alarm_min of the gateway under test
    sync_interval_min = 5        # [sync] interval_min
    checkpoint_every_min = 30    # [gateway] checkpoint_every_min

    [devices]                    # which simulated device each role is, or a real device name
    cgm = "ble-sim"              # ble-sim | serial-sim | "ble:AA:BB:.." | "serial:/dev/ttyUSB0"
    pump = "serial-sim"          # same, or "none"
    heart_rate = "ble-sim"       # ble-sim, a real "ble:..." name, or "none"

    [meals]                      # what the patient eats (edgetwin.virtual.RandomScenario)
    random = true                # the cohort's meal convention, seeded
    carb_error = 0.2             # announced = eaten × U(1 − e, 1 + e)
    p_missed_bolus = 0.1         # a main meal eaten but never announced (no bolus, no carbs)
    p_unannounced_snack = 0.3    # a snack eaten but never announced
    fixed = [{ at = "07:30", grams = 60, announced_g = 0 }]   # extra meals; announced_g 0: missed

    [[exercise]]                 # the heart-rate band reports it (the model has no exercise term)
    at = "17:00"                 # "HH:MM", "d2 HH:MM" (day 2) or "+90m" / "+1.5h" after t = 0
    minutes = 45
    heart_rate_bpm = 145

    [[faults]]                   # the fault timeline (FAULT_KINDS)
    kind = "disconnect"
    device = "cgm"               # for device faults: cgm, pump or heart_rate
    at = "+2h"
    minutes = 40                 # how long it lasts
    # kind-specific: probability (device faults, per minute), status (cloud_error: an HTTP 5xx),
    # jump_min (clock_jump), down_min (gateway_kill / gateway_restart: how long it stays down)

    [[assert]]                   # what must hold (ASSERTION_KINDS, hil.assertions); the run fails
    kind = "time_below"          #   if one does not
    below_mg_dl = 54
    max_pct = 1.0
    # known_issue = "why"        # a failure the current gateway is known to have (still a failure)

:meth:`Scenario.truncated` cuts a scenario to its first hours (the CI version), dropping timeline
entries that would start after the end.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import time
from pathlib import Path
from typing import Any

from hil.errors import ScenarioError

__all__ = [
    "ASSERTION_KINDS",
    "BENCH_FAULTS",
    "DEFAULT_SPEED",
    "DEVICE_FAULTS",
    "FAULT_KINDS",
    "AssertionSpec",
    "ExerciseBout",
    "FaultSpec",
    "FixedMeal",
    "MealPlan",
    "Scenario",
    "load_scenario",
    "parse_scenario",
    "parse_when",
]

DEFAULT_SPEED = 2400.0
"""Clock seconds per real second: a simulated day in 48 s. Measured on this 2-core machine at a load
average of 4-6 with the living twin in the gateway: at x2400 the twin's CPU bursts (0.2-0.6 s,
harmless in real time) stalled the shared event loop for 8-25 clock minutes and 5 of the 18 short
library runs failed (late back-fills, spurious no-data alarms); at x1800 all passed, twice."""

DEVICE_FAULTS: dict[str, tuple[str, ...]] = {
    # kind: roles it may apply to (the first is the default)
    "drop_notifications": ("cgm", "heart_rate", "pump"),
    "bad_crc": ("cgm", "pump"),
    "disconnect": ("cgm", "pump", "heart_rate"),
    "sensor_warmup": ("cgm",),
    "sensor_error": ("cgm",),
    "compression_low": ("cgm",),
    "pump_occlusion": ("pump",),
    "empty_reservoir": ("pump",),
    "unconfirmed_commands": ("pump",),
}
"""Faults of the simulated devices (``devices.sim.faults.Fault``), by the role they apply to."""

BENCH_FAULTS = (
    "network_outage",
    "cloud_error",
    "cloud_timeout",
    "gateway_kill",
    "gateway_restart",
    "clock_jump",
)
"""Faults the bench injects around the devices: the network to the cloud, the cloud itself, the
gateway process and its clock."""

FAULT_KINDS = (*DEVICE_FAULTS, *BENCH_FAULTS)

FAULT_HELP = {
    "drop_notifications": "live notifications lost on the air (a sensor dropout); records stay stored",
    "bad_crc": "records sent with a corrupted CRC (BLE E2E-CRC, serial frame CRC)",
    "disconnect": "the device drops the link and goes off the air (serial: unplugged)",
    "sensor_warmup": "a new sensor session starts: 2 h of warm-up without values",
    "sensor_error": "sensor malfunction: records without a value",
    "compression_low": "pressure on the sensor: falsely low readings (~48 mg/dL), no annunciation",
    "pump_occlusion": "delivery stops; the pump reports an occlusion",
    "empty_reservoir": "the reservoir runs dry; refilled by the patient when the window ends",
    "unconfirmed_commands": "the pump answers success but does not apply commands",
    "network_outage": "the cloud is unreachable (connections refused)",
    "cloud_error": "the cloud answers every request with an HTTP 5xx (status, default 503)",
    "cloud_timeout": "the cloud accepts requests and never answers while the fault lasts",
    "gateway_kill": "SIGKILL the gateway process; restarted after down_min",
    "gateway_restart": "stop the gateway cleanly (SIGTERM); started again after down_min",
    "clock_jump": "the gateway's wall clock jumps by jump_min (monotonic time does not)",
}

ASSERTION_KINDS = (
    "time_below",
    "time_in_range",
    "no_unsafe_command",
    "no_reading_lost",
    "alarm_within",
    "no_alarm",
    "pump_fault_seen_within",
    "sync_drained",
    "gateway_resumed",
    "exercise_seen",
    "unconfirmed_reported",
)

ROLES = ("cgm", "pump", "heart_rate")
SIM_KINDS = ("ble-sim", "serial-sim")
MODES = ("open-loop", "closed-loop")
RUN_MODES = ("in-process", "process")


@dataclass(frozen=True)
class FixedMeal:
    minute: int
    """Minutes after t = 0."""
    grams: float
    announced_g: float


@dataclass(frozen=True)
class MealPlan:
    random: bool = True
    carb_error: float = 0.0
    p_missed_bolus: float = 0.0
    p_unannounced_snack: float = 0.0
    fixed: tuple[FixedMeal, ...] = ()


@dataclass(frozen=True)
class ExerciseBout:
    minute: int
    minutes: int
    heart_rate_bpm: float


@dataclass(frozen=True)
class FaultSpec:
    index: int
    """Position in the file's ``[[faults]]`` list (reports and errors name it)."""
    kind: str
    minute: int
    minutes: int
    device: str | None = None
    probability: float = 1.0
    status: int = 503
    jump_min: float = 0.0
    down_min: float = 0.0

    @property
    def end_minute(self) -> int:
        return self.minute + self.minutes

    @property
    def label(self) -> str:
        where = f" {self.device}" if self.device else ""
        return f"{self.kind}{where}"


@dataclass(frozen=True)
class AssertionSpec:
    index: int
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    known_issue: str = ""
    """Set when this assertion is known to fail with the current gateway: the run still fails
    (exit 1) and the report says so; the test suite expects exactly these to fail."""

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)

    @property
    def label(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.params.items() if v != "")
        return f"{self.kind}({extra})" if extra else self.kind


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    patient: str
    hours: float
    seed: int
    mode: str
    start_minute_of_day: int
    speed: float
    short_hours: float
    run: str
    devices: Mapping[str, str]
    meals: MealPlan
    exercise: tuple[ExerciseBout, ...]
    faults: tuple[FaultSpec, ...]
    assertions: tuple[AssertionSpec, ...]
    no_data_alarm_min: float = 20.0
    sync_interval_min: float = 5.0
    checkpoint_every_min: float = 30.0
    source: str = ""

    @property
    def minutes(self) -> int:
        return int(round(self.hours * 60))

    def faults_of(self, *kinds: str) -> list[FaultSpec]:
        return [f for f in self.faults if f.kind in kinds]

    def sim_role(self, role: str) -> str | None:
        """``ble`` or ``serial`` for a simulated device, None for none or a real device."""
        name = self.devices.get(role, "none")
        return name.removesuffix("-sim") if name in SIM_KINDS else None

    def truncated(self, hours: float) -> Scenario:
        """The first ``hours`` of this scenario: timeline entries starting later are dropped,
        windows reaching past the end are kept as they are (the run ends first)."""
        if hours >= self.hours:
            return self
        end = int(round(hours * 60))
        fixed = tuple(m for m in self.meals.fixed if m.minute < end)
        return replace(
            self,
            hours=hours,
            meals=replace(self.meals, fixed=fixed),
            exercise=tuple(e for e in self.exercise if e.minute < end),
            faults=tuple(f for f in self.faults if f.minute < end),
        )

    def with_devices(self, overrides: Mapping[str, str]) -> Scenario:
        """The same scenario with some roles pointed elsewhere (``--device cgm=ble:AA:..``)."""
        devices = dict(self.devices)
        for role, name in overrides.items():
            key = f"--device {role}"
            if role not in ROLES:
                raise ScenarioError(key, f"unknown role (known: {', '.join(ROLES)})")
            devices[role] = _check_device_name(name, key, self.source, role)
        scenario = replace(self, devices=devices)
        _check_consistency(scenario, self.source)
        return scenario


# --- reading --------------------------------------------------------------------------------


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; raises ScenarioError naming the key."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise ScenarioError("file", f"cannot read: {exc.strerror}", source=str(p)) from None
    except UnicodeDecodeError as exc:
        raise ScenarioError("file", f"not UTF-8 text: {exc}", source=str(p)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError("file", f"not valid TOML: {exc}", source=str(p)) from None
    return parse_scenario(data, name=p.stem, source=str(p))


class _Table:
    """A table being validated: typed getters naming the key, unknown keys refused at the end."""

    def __init__(self, data: Any, path: str, source: str) -> None:
        self.path = path
        self.source = source
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ScenarioError(path or "file", "must be a table", source=source)
        self.data = data
        self.used: set[str] = set()

    def key(self, k: str) -> str:
        return f"{self.path}.{k}" if self.path else k

    def err(self, k: str, problem: str) -> ScenarioError:
        return ScenarioError(self.key(k), problem, source=self.source)

    def has(self, k: str) -> bool:
        return k in self.data

    def raw(self, k: str) -> Any:
        self.used.add(k)
        return self.data.get(k)

    def num(self, k: str, default: float | None, lo: float, hi: float, *, lo_open: bool = False) -> float:
        v = self.raw(k)
        if v is None:
            if default is None:
                raise self.err(k, "is required")
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.err(k, f"must be a number, got {v!r}")
        if v < lo or v > hi or (lo_open and v == lo):
            lo_s = f"({lo:g}" if lo_open else f"[{lo:g}"
            raise self.err(k, f"{v:g} is outside {lo_s}, {hi:g}]")
        return float(v)

    def int_(self, k: str, default: int, lo: int, hi: int) -> int:
        v = self.raw(k)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.err(k, f"must be an integer, got {v!r}")
        if not lo <= v <= hi:
            raise self.err(k, f"{v} is outside [{lo}, {hi}]")
        return v

    def str_(self, k: str, default: str | None, choices: tuple[str, ...] | None = None) -> str:
        v = self.raw(k)
        if v is None:
            if default is None:
                raise self.err(k, "is required")
            return default
        if not isinstance(v, str):
            raise self.err(k, f"must be a string, got {v!r}")
        if choices is not None and v not in choices:
            raise self.err(k, f"must be one of {', '.join(choices)}; got {v!r}")
        return v

    def bool_(self, k: str, default: bool) -> bool:
        v = self.raw(k)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self.err(k, f"must be true or false, got {v!r}")
        return v

    def when(self, k: str, start_minute_of_day: int) -> int:
        v = self.str_(k, None)
        try:
            return parse_when(v, start_minute_of_day)
        except ValueError as exc:
            raise self.err(k, str(exc)) from None

    def items(self, k: str) -> list[Any]:
        v = self.raw(k)
        if v is None:
            return []
        if not isinstance(v, list):
            raise self.err(k, "must be a list of tables ([[...]])")
        return v

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            known = ", ".join(sorted(self.used)) or "none"
            raise self.err(unknown[0], f"unknown key (known here: {known})")


_REL = re.compile(r"^\+\s*(\d+(?:\.\d+)?)\s*(m|min|h|d)$")
_ABS = re.compile(r"^(?:d(\d+)\s+)?(\d{1,2}):(\d{2})$")


def parse_when(text: str, start_minute_of_day: int) -> int:
    """Minutes after t = 0 for ``"+90m"``, ``"+1.5h"``, ``"+2d"``, ``"HH:MM"`` (its first
    occurrence at or after the start) or ``"dN HH:MM"`` (that time on day N, day 1 being the
    start's day, so ``"d2 03:00"`` is the first night). Raises ValueError."""
    s = text.strip()
    m = _REL.match(s)
    if m:
        n = float(m.group(1))
        scale = {"m": 1, "min": 1, "h": 60, "d": 1440}[m.group(2)]
        return int(round(n * scale))
    m = _ABS.match(s)
    if not m:
        raise ValueError(f'must be "HH:MM", "dN HH:MM" or "+90m"/"+2h"/"+1d", got {text!r}')
    hh, mm = int(m.group(2)), int(m.group(3))
    if hh > 23 or mm > 59:
        raise ValueError(f"{text!r}: not a time of day")
    tod = hh * 60 + mm
    if m.group(1) is None:
        return (tod - start_minute_of_day) % 1440
    day = int(m.group(1))
    if day < 1:
        raise ValueError(f"{text!r}: days count from d1 (the start's day)")
    minute = (day - 1) * 1440 + tod - start_minute_of_day
    if minute < 0:
        raise ValueError(
            f"{text!r} is before the start ({start_minute_of_day // 60:02d}:{start_minute_of_day % 60:02d})"
        )
    return minute


def _start(t: _Table) -> int:
    v = t.str_("start", "06:00")
    try:
        parsed = time.fromisoformat(v)
    except ValueError:
        raise t.err("start", f'must be a time of day "HH:MM" (UTC), got {v!r}') from None
    return parsed.hour * 60 + parsed.minute


def _check_device_name(name: str, key: str, source: str, role: str) -> str:
    if name == "none" or name in SIM_KINDS:
        return name
    scheme, sep, rest = name.partition(":")
    if scheme not in ("ble", "serial") or not sep or not rest:
        raise ScenarioError(
            key,
            f'must be "ble-sim", "serial-sim", "none" or a real device name ("ble:AA:BB:CC:DD:EE:FF", '
            f'"serial:/dev/ttyUSB0"), got {name!r}',
            source=source,
        )
    if scheme == "serial" and role == "heart_rate":
        raise ScenarioError(key, "heart-rate bands are Bluetooth LE only", source=source)
    return name


def parse_scenario(data: Mapping[str, Any], *, name: str = "scenario", source: str = "") -> Scenario:
    """Validate a parsed scenario mapping (see the module docstring for the format)."""
    top = _Table(data, "", source)
    description = top.str_("description", None).strip()
    if not description:
        raise top.err("description", "must say what the scenario checks")
    patient = top.str_("patient", "adult#001")
    try:
        from edgetwin.model.cohort import load_patient

        load_patient(patient)
    except Exception as exc:  # UnknownPatientError and friends: say which key
        raise top.err("patient", str(exc)) from None
    if top.has("days") and top.has("hours"):
        raise top.err("hours", "give days or hours, not both")
    if top.has("hours"):
        hours = top.num("hours", None, 0.0, 24.0 * 60, lo_open=True)
    else:
        hours = 24.0 * top.num("days", 1.0, 0.0, 60.0, lo_open=True)
    seed = top.int_("seed", 1, 0, 2**31 - 1)
    mode = top.str_("mode", "open-loop", MODES)
    start = _start(top)
    speed = top.num("speed", DEFAULT_SPEED, 1.0, 20000.0)
    short_hours = top.num("short_hours", min(6.0, hours), 0.0, 24.0 * 60, lo_open=True)

    gw = _Table(top.raw("gateway"), "gateway", source)
    run = gw.str_("run", "", RUN_MODES) if gw.has("run") else ""
    no_data = gw.num("no_data_alarm_min", 20.0, 5.0, 60.0)
    sync_interval = gw.num("sync_interval_min", 5.0, 1.0, 1440.0)
    checkpoint = gw.num("checkpoint_every_min", 30.0, 1.0, 240.0)
    gw.finish()

    dv = _Table(top.raw("devices"), "devices", source)
    devices = {
        "cgm": _check_device_name(dv.str_("cgm", "ble-sim"), "devices.cgm", source, "cgm"),
        "pump": _check_device_name(dv.str_("pump", "serial-sim"), "devices.pump", source, "pump"),
        "heart_rate": _check_device_name(
            dv.str_("heart_rate", "ble-sim"), "devices.heart_rate", source, "heart_rate"
        ),
    }
    dv.finish()
    if devices["cgm"] == "none":
        raise dv.err("cgm", "a gateway needs a glucose sensor")

    meals = _meals(top.raw("meals"), source, start)
    exercise = tuple(_exercise(i, x, source, start) for i, x in enumerate(top.items("exercise")))
    faults = tuple(_fault(i, x, source, start) for i, x in enumerate(top.items("faults")))
    assertions = tuple(_assertion(i, x, source) for i, x in enumerate(top.items("assert")))
    if not assertions:
        raise top.err("assert", "a scenario needs at least one [[assert]]")
    top.finish()

    if not run:
        run = "process" if any(f.kind == "gateway_kill" for f in faults) else "in-process"
    scenario = Scenario(
        name=name,
        description=" ".join(description.split()),
        patient=patient,
        hours=hours,
        seed=seed,
        mode=mode,
        start_minute_of_day=start,
        speed=speed,
        short_hours=min(short_hours, hours),
        run=run,
        devices=devices,
        meals=meals,
        exercise=exercise,
        faults=faults,
        assertions=assertions,
        no_data_alarm_min=no_data,
        sync_interval_min=sync_interval,
        checkpoint_every_min=checkpoint,
        source=source,
    )
    _check_consistency(scenario, source)
    return scenario


def _meals(data: Any, source: str, start: int) -> MealPlan:
    t = _Table(data, "meals", source)
    fixed: list[FixedMeal] = []
    for i, x in enumerate(t.items("fixed")):
        m = _Table(x, f"meals.fixed[{i}]", source)
        minute = m.when("at", start)
        grams = m.num("grams", None, 0.0, 300.0, lo_open=True)
        announced = m.num("announced_g", grams, 0.0, 300.0)
        m.finish()
        fixed.append(FixedMeal(minute, grams, announced))
    plan = MealPlan(
        random=t.bool_("random", True),
        carb_error=t.num("carb_error", 0.0, 0.0, 0.9),
        p_missed_bolus=t.num("p_missed_bolus", 0.0, 0.0, 1.0),
        p_unannounced_snack=t.num("p_unannounced_snack", 0.0, 0.0, 1.0),
        fixed=tuple(sorted(fixed, key=lambda f: f.minute)),
    )
    t.finish()
    return plan


def _exercise(i: int, data: Any, source: str, start: int) -> ExerciseBout:
    t = _Table(data, f"exercise[{i}]", source)
    bout = ExerciseBout(
        minute=t.when("at", start),
        minutes=int(t.num("minutes", None, 1.0, 600.0)),
        heart_rate_bpm=t.num("heart_rate_bpm", 140.0, 80.0, 220.0),
    )
    t.finish()
    return bout


def _fault(i: int, data: Any, source: str, start: int) -> FaultSpec:
    t = _Table(data, f"faults[{i}]", source)
    kind = t.str_("kind", None, FAULT_KINDS)
    minute = t.when("at", start)
    if kind == "clock_jump":  # minutes: until NTP steps it back (0: it stays)
        minutes = int(round(t.num("minutes", 0.0, 0.0, 60 * 24 * 14)))
    elif kind in ("gateway_kill", "gateway_restart"):  # instantaneous; down_min says how long
        minutes = 1
    else:
        minutes = int(round(t.num("minutes", 120.0 if kind == "sensor_warmup" else None, 1.0, 60 * 24 * 14)))
    device: str | None = None
    probability = 1.0
    status = 503
    jump = down = 0.0
    if kind in DEVICE_FAULTS:
        allowed = DEVICE_FAULTS[kind]
        device = t.str_("device", allowed[0], allowed)
        probability = t.num("probability", 1.0, 0.0, 1.0, lo_open=True)
    if kind == "cloud_error":
        status = t.int_("status", 503, 500, 599)
    if kind == "clock_jump":
        jump = t.num("jump_min", None, -7 * 1440.0, 7 * 1440.0)
        if jump == 0:
            raise t.err("jump_min", "must not be 0")
    if kind in ("gateway_kill", "gateway_restart"):
        down = t.num("down_min", 5.0 if kind == "gateway_kill" else 1.0, 0.0, 24 * 60.0)
    t.finish()
    return FaultSpec(i, kind, minute, minutes, device, probability, status, jump, down)


_ASSERTION_KEYS: dict[str, dict[str, Callable[[_Table, str], Any]]] = {
    "time_below": {
        "below_mg_dl": lambda t, k: t.num(k, 54.0, 20.0, 100.0),
        "max_pct": lambda t, k: t.num(k, 1.0, 0.0, 100.0),
        "of": lambda t, k: t.str_(k, "true", ("true", "cgm")),
    },
    "time_in_range": {
        "low_mg_dl": lambda t, k: t.num(k, 70.0, 40.0, 200.0),
        "high_mg_dl": lambda t, k: t.num(k, 180.0, 100.0, 400.0),
        "min_pct": lambda t, k: t.num(k, None, 0.0, 100.0),
        "of": lambda t, k: t.str_(k, "true", ("true", "cgm")),
    },
    "no_unsafe_command": {},
    "no_reading_lost": {
        "cloud": lambda t, k: t.bool_(k, True),
    },
    "alarm_within": {
        "alarm": lambda t, k: t.str_(k, None),
        "fault": lambda t, k: t.str_(k, None, FAULT_KINDS),
        "minutes": lambda t, k: t.num(k, None, 1.0, 24 * 60.0),
        "device": lambda t, k: t.str_(k, "", ("", *ROLES)),
    },
    "no_alarm": {
        "alarm": lambda t, k: t.str_(k, None),
        "outside_faults": lambda t, k: t.bool_(k, False),
    },
    "pump_fault_seen_within": {
        "fault": lambda t, k: t.str_(k, None, ("pump_occlusion", "empty_reservoir")),
        "minutes": lambda t, k: t.num(k, None, 1.0, 24 * 60.0),
    },
    "sync_drained": {},
    "gateway_resumed": {},
    "unconfirmed_reported": {},
    "exercise_seen": {
        "min_bpm": lambda t, k: t.num(k, 100.0, 60.0, 220.0),
    },
}


def _assertion(i: int, data: Any, source: str) -> AssertionSpec:
    t = _Table(data, f"assert[{i}]", source)
    kind = t.str_("kind", None, ASSERTION_KINDS)
    params = {k: get(t, k) for k, get in _ASSERTION_KEYS[kind].items()}
    known = t.str_("known_issue", "").strip()
    t.finish()
    return AssertionSpec(i, kind, params, " ".join(known.split()))


def _check_consistency(s: Scenario, source: str) -> None:
    """Rules across tables: what each fault and assertion needs from the devices and gateway."""

    def err(key: str, problem: str) -> ScenarioError:
        return ScenarioError(key, problem, source=source)

    if s.mode == "closed-loop" and s.devices.get("pump", "none") == "none":
        raise err("mode", "closed-loop needs a pump in [devices]")
    process = s.run == "process"
    if process:
        for role, name in s.devices.items():
            if name == "ble-sim":
                raise err(
                    f"devices.{role}",
                    "a gateway in its own process cannot reach the in-process virtual radio; use "
                    '"serial-sim" (or "none" for the heart-rate band), or gateway.run = "in-process"',
                )
    for f in s.faults:
        key = f"faults[{f.index}]"
        if f.kind in DEVICE_FAULTS:
            assert f.device is not None
            name = s.devices.get(f.device, "none")
            if name not in SIM_KINDS:
                raise err(
                    f"{key}.device", f"{f.kind} needs a simulated {f.device} (devices.{f.device} is {name!r})"
                )
            if f.kind == "drop_notifications" and name != "ble-sim":
                raise err(
                    f"{key}.kind", f"drop_notifications is a radio fault: devices.{f.device} must be ble-sim"
                )
            if f.kind == "bad_crc" and f.device == "pump" and name != "serial-sim":
                raise err(f"{key}.device", "bad_crc on the pump is simulated on its serial link only")
        if f.kind == "gateway_kill" and not process:
            raise err(f"{key}.kind", 'gateway_kill needs gateway.run = "process" (a SIGKILL needs a process)')
        if f.kind == "clock_jump" and process:
            raise err(
                f"{key}.kind",
                'clock_jump is injected into the in-process gateway\'s clock: gateway.run = "in-process"',
            )
    for a in s.assertions:
        key = f"assert[{a.index}]"
        if a.kind == "alarm_within" and not [
            f for f in s.faults_of(a.get("fault")) if not a.get("device") or f.device == a.get("device")
        ]:
            where = f" on {a.get('device')}" if a.get("device") else ""
            raise err(f"{key}.fault", f"no [[faults]] of kind {a.get('fault')!r}{where} to measure from")
        if a.kind == "pump_fault_seen_within" and not s.faults_of(a.get("fault")):
            raise err(f"{key}.fault", f"no [[faults]] of kind {a.get('fault')!r} to measure from")
        if a.kind == "exercise_seen" and (not s.exercise or s.devices.get("heart_rate", "none") == "none"):
            raise err(key, "exercise_seen needs [[exercise]] and a heart-rate band")
        if a.kind == "gateway_resumed" and not s.faults_of("gateway_kill", "gateway_restart"):
            raise err(key, "gateway_resumed needs a gateway_kill or gateway_restart in [[faults]]")
