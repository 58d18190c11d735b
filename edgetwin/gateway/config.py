"""The gateway's configuration file (TOML), validated completely at start-up.

Every problem is a :class:`~edgetwin.errors.ConfigError` naming the file, the dotted key and
what is wrong with it (``gateway.toml: devices.cgm: unknown device kind 'bel' ...``); a gateway
with a bad configuration never starts. ``edgetwin config check FILE`` runs the same checks.

The format (every table but ``[profile]``, ``[limits]`` and ``[devices]`` is optional)::

    [gateway]
    data_dir = "/var/lib/edgetwin"   # the store, checkpoints, lock and run files
    mode = "open-loop"               # or "closed-loop": the gateway may command the pump
    cycle_min = 5                    # decide at least this often (and on every new reading)
    checkpoint_every_min = 30        # save the twin this often (and at shutdown)
    max_store_mb = 0                 # cap the database size (0: only the disk limits it)
    personalise_at = "03:00"         # nightly batch personalisation, local time ("" = off)

    [log]
    format = "text"                  # or "json" (one JSON object per line)
    level = "info"                   # debug, info, warning, error
    file = ""                        # empty: standard error (journald under systemd)

    [status]
    enabled = true
    port = 8473                      # served on 127.0.0.1 only; 0 picks a free port

    [watchdog]
    no_data_alarm_min = 20           # no glucose for this long: urgent alarm, repeated
    alarm_repeat_min = 5             # an unresolved alarm sounds again this often
    device_stall_min = 15            # a device task silent this long is restarted
    pump_silent_alarm_min = 20       # (with a pump) no pump status for this long: alarm
    reservoir_low_u = 10             # (with a pump) reservoir below this many units: warning

    [devices]                        # devices by name string (devices.names)
    cgm = "ble:AA:BB:CC:DD:EE:01"    # required; or "serial:/dev/ttyUSB0?baud=115200", "ble-sim:cgm"
    pump = "ble:AA:BB:CC:DD:EE:02"   # optional; "serial:...", "ble-sim:pump", "serial-sim:pump"
    heart_rate = ""                  # optional heart-rate band
    meter = ""                       # optional blood-glucose meter

    [sim]                            # the simulated body behind ble-sim: and serial-sim: devices
    patient = "adult#001"
    seed = 0
    sensor = "Dexcom"
    announce_meals = true            # the simulated patient enters the carbs of the meals they bolus

    [clock]                          # benches and demos only; a gateway runs on real time
    kind = "real"                    # or "scaled"
    factor = 1.0                     # scaled: clock seconds per real second
    start_utc = "2026-01-01T06:00:00Z"   # scaled: clock time at anchor_utc
    anchor_utc = "2026-01-01T06:00:00Z"  # scaled: the real time that maps to start_utc

    [sync]                           # optional: the cloud twin
    endpoint = "https://cloud.example.org"
    credentials_file = "/etc/edgetwin/credentials.toml"   # must not be readable by others
    interval_min = 5

    [notify]
    command = ""                     # optional program run with each alarm's text

    [profile]                        # the therapy profile (edgetwin.therapy, same keys)
    [limits]                         # the safety limits

Relative paths are taken relative to the configuration file's folder.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgetwin.errors import ConfigError
from edgetwin.therapy import TherapyProfile

__all__ = [
    "DEVICE_KINDS",
    "ClockConfig",
    "GatewayConfig",
    "LimitsConfig",
    "SimConfig",
    "SyncConfig",
    "WatchdogConfig",
    "load_config",
    "parse_config",
]

DEVICE_ROLES = ("cgm", "pump", "heart_rate", "meter")
ROLE_KINDS = {"cgm": "cgm", "pump": "pump", "heart_rate": "heart", "meter": "meter"}
"""Each role's device kind in ``devices.names`` terms."""
DEVICE_KINDS = ("ble", "ble-sim", "serial", "serial-sim")
"""Device name schemes: ``ble:ADDRESS``, ``serial:/dev/PATH?baud=N`` (real devices), ``ble-sim:KIND``
and ``serial-sim:KIND`` (simulated devices on the virtual radio / a pty, started by the gateway)."""

MODES = ("open-loop", "closed-loop")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class WatchdogConfig:
    no_data_alarm_min: float = 20.0
    alarm_repeat_min: float = 5.0
    device_stall_min: float = 15.0
    pump_silent_alarm_min: float = 20.0
    reservoir_low_u: float = 10.0
    """Reservoir (U) below which the patient is warned; an empty one (or an occlusion) is urgent."""


@dataclass(frozen=True)
class SimConfig:
    patient: str = "adult#001"
    seed: int = 0
    sensor: str = "Dexcom"
    announce_meals: bool = True


@dataclass(frozen=True)
class ClockConfig:
    kind: str = "real"
    factor: float = 1.0
    start_utc: datetime | None = None
    anchor_utc: datetime | None = None


@dataclass(frozen=True)
class SyncConfig:
    endpoint: str
    credentials_file: Path
    interval_min: float = 5.0


@dataclass(frozen=True)
class LimitsConfig:
    """The ``[limits]`` table as the gateway checks it (required pump maxima, positive numbers).

    The table is kept whole in ``table``: the safety gate validates every rule of it.
    """

    max_basal_u_per_h: float
    max_bolus_u: float
    table: Mapping[str, Any] = field(default_factory=dict)
    safety: Any = None
    """The safety gate's validated :class:`edgetwin.safety.SafetyLimits` (None in a build without
    the safety package: then the gateway makes no suggestions)."""


@dataclass(frozen=True)
class GatewayConfig:
    source: str
    data_dir: Path
    profile: TherapyProfile
    limits: LimitsConfig
    devices: Mapping[str, str]
    mode: str = "open-loop"
    cycle_min: float = 5.0
    checkpoint_every_min: float = 30.0
    max_store_mb: float = 0.0
    log_format: str = "text"
    log_level: str = "info"
    log_file: Path | None = None
    status_enabled: bool = True
    status_port: int = 8473
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    clock: ClockConfig = field(default_factory=ClockConfig)
    sync: SyncConfig | None = None
    notify_command: str = ""
    personalise_at: str = "03:00"
    """Local time (profile time zone) of the nightly batch personalisation; "" = off."""

    @property
    def db_path(self) -> Path:
        return self.data_dir / "edgetwin.db"

    @property
    def closed_loop(self) -> bool:
        return self.mode == "closed-loop"


# --- reading -------------------------------------------------------------------------------


def load_config(path: str | os.PathLike[str]) -> GatewayConfig:
    """Read and validate a configuration file; raises ConfigError naming the key."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise ConfigError("file", f"cannot read: {exc.strerror}", source=str(p)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError("file", f"not UTF-8 text: {exc}", source=str(p)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("file", f"not valid TOML: {exc}", source=str(p)) from None
    return parse_config(data, source=str(p), base_dir=p.resolve().parent)


_TABLES = {
    "gateway",
    "log",
    "status",
    "watchdog",
    "devices",
    "sim",
    "clock",
    "sync",
    "notify",
    "profile",
    "limits",
}


class _Table:
    """A TOML table being validated: typed getters that name the key, unknown-key detection."""

    def __init__(self, data: Any, name: str, source: str, *, required: bool = False) -> None:
        self.name = name
        self.source = source
        if data is None:
            if required:
                raise ConfigError(name, "this table is required", source=source)
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(name, "must be a table", source=source)
        self.data = data
        self.used: set[str] = set()

    def err(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.name}.{key}", problem, source=self.source)

    def _get(self, key: str) -> Any:
        self.used.add(key)
        return self.data.get(key)

    def num(self, key: str, default: float, lo: float, hi: float) -> float:
        v = self._get(key)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.err(key, f"must be a number, got {v!r}")
        if not lo <= v <= hi:
            raise self.err(key, f"{v:g} is outside [{lo:g}, {hi:g}]")
        return float(v)

    def int_(self, key: str, default: int, lo: int, hi: int) -> int:
        v = self._get(key)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.err(key, f"must be an integer, got {v!r}")
        if not lo <= v <= hi:
            raise self.err(key, f"{v} is outside [{lo}, {hi}]")
        return int(v)

    def str_(self, key: str, default: str, choices: tuple[str, ...] | None = None) -> str:
        v = self._get(key)
        if v is None:
            return default
        if not isinstance(v, str):
            raise self.err(key, f"must be a string, got {v!r}")
        if choices is not None and v not in choices:
            raise self.err(key, f"must be one of {', '.join(choices)}; got {v!r}")
        return v

    def bool_(self, key: str, default: bool) -> bool:
        v = self._get(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self.err(key, f"must be true or false, got {v!r}")
        return v

    def time(self, key: str) -> datetime | None:
        v = self._get(key)
        if v is None:
            return None
        if isinstance(v, str):
            try:
                v = datetime.fromisoformat(v.replace("Z", "+00:00"))
            except ValueError:
                raise self.err(key, f'must be an ISO time like "2026-01-01T06:00:00Z", got {v!r}') from None
        if not isinstance(v, datetime):
            raise self.err(key, f"must be a date-time, got {v!r}")
        if v.tzinfo is None:
            raise self.err(key, "needs a time zone (end it with Z for UTC)")
        return v.astimezone(UTC)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.err(unknown[0], f"unknown key (known: {', '.join(sorted(self.used))})")


def _is_hhmm(value: str) -> bool:
    hh, sep, mm = value.partition(":")
    return bool(sep) and hh.isdigit() and mm.isdigit() and len(mm) == 2 and int(hh) < 24 and int(mm) < 60


def _path(value: str, base_dir: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base_dir / p


def parse_config(data: Mapping[str, Any], *, source: str = "", base_dir: Path | None = None) -> GatewayConfig:
    """Validate a parsed configuration mapping (see the module docstring for the format)."""
    base = base_dir or Path.cwd()
    for key in data:
        if key not in _TABLES:
            raise ConfigError(str(key), f"unknown table (known: {', '.join(sorted(_TABLES))})", source=source)

    gw = _Table(data.get("gateway"), "gateway", source)
    data_dir_s = gw.str_("data_dir", "")
    if not data_dir_s:
        raise gw.err("data_dir", "is required (where the store lives, e.g. /var/lib/edgetwin)")
    data_dir = _path(data_dir_s, base)
    mode = gw.str_("mode", "open-loop", MODES)
    cycle_min = gw.num("cycle_min", 5.0, 1.0, 15.0)
    checkpoint_every_min = gw.num("checkpoint_every_min", 30.0, 1.0, 240.0)
    max_store_mb = gw.num("max_store_mb", 0.0, 0.0, 1_000_000.0)
    if 0 < max_store_mb < 1:
        raise gw.err("max_store_mb", "must be 0 (no cap) or at least 1")
    personalise_at = gw.str_("personalise_at", "03:00")
    if personalise_at and not _is_hhmm(personalise_at):
        raise gw.err("personalise_at", f'must be a local time "HH:MM" or "" (off), got {personalise_at!r}')
    gw.finish()

    lg = _Table(data.get("log"), "log", source)
    log_format = lg.str_("format", "text", LOG_FORMATS)
    log_level = lg.str_("level", "info", LOG_LEVELS)
    log_file_s = lg.str_("file", "")
    lg.finish()

    st = _Table(data.get("status"), "status", source)
    status_enabled = st.bool_("enabled", True)
    status_port = st.int_("port", 8473, 0, 65535)
    st.finish()

    wd = _Table(data.get("watchdog"), "watchdog", source)
    watchdog = WatchdogConfig(
        no_data_alarm_min=wd.num("no_data_alarm_min", 20.0, 5.0, 60.0),
        alarm_repeat_min=wd.num("alarm_repeat_min", 5.0, 1.0, 30.0),
        device_stall_min=wd.num("device_stall_min", 15.0, 2.0, 120.0),
        pump_silent_alarm_min=wd.num("pump_silent_alarm_min", 20.0, 5.0, 120.0),
        reservoir_low_u=wd.num("reservoir_low_u", 10.0, 0.0, 100.0),
    )
    wd.finish()

    dv = _Table(data.get("devices"), "devices", source, required=True)
    devices: dict[str, str] = {}
    for role in DEVICE_ROLES:
        name = dv.str_(role, "")
        if name:
            _check_device_name(name, role, dv)
            devices[role] = name
    dv.finish()
    if "cgm" not in devices:
        raise dv.err("cgm", 'is required: the glucose sensor, e.g. "ble:AA:BB:CC:DD:EE:FF" or "ble-sim:cgm"')

    sm = _Table(data.get("sim"), "sim", source)
    sim = SimConfig(
        patient=sm.str_("patient", "adult#001"),
        seed=sm.int_("seed", 0, 0, 2**31 - 1),
        sensor=sm.str_("sensor", "Dexcom"),
        announce_meals=sm.bool_("announce_meals", True),
    )
    sm.finish()
    if any(n.split(":", 1)[0].endswith("-sim") for n in devices.values()):
        _check_sim(sim, sm)

    ck = _Table(data.get("clock"), "clock", source)
    kind = ck.str_("kind", "real", ("real", "scaled"))
    clock = ClockConfig(
        kind=kind,
        factor=ck.num("factor", 1.0, 1e-3, 1e5),
        start_utc=ck.time("start_utc"),
        anchor_utc=ck.time("anchor_utc"),
    )
    ck.finish()
    if kind == "real" and (clock.factor != 1.0 or clock.start_utc or clock.anchor_utc):
        raise ck.err("kind", 'factor, start_utc and anchor_utc apply only to kind = "scaled"')

    sync = _parse_sync(data.get("sync"), source, base)

    nt = _Table(data.get("notify"), "notify", source)
    notify_command = nt.str_("command", "")
    nt.finish()

    prof = data.get("profile")
    if prof is None:
        raise ConfigError("profile", "this table is required (the therapy profile)", source=source)
    if not isinstance(prof, Mapping):
        raise ConfigError("profile", "must be a table", source=source)
    try:
        profile = TherapyProfile.from_mapping(prof)
    except ConfigError as exc:
        raise ConfigError(f"profile.{exc.key}", exc.problem, source=source) from None

    if mode == "closed-loop" and "pump" not in devices:
        raise ConfigError("gateway.mode", "closed-loop needs a pump in [devices]", source=source)
    limits = _parse_limits(data.get("limits"), source, mode)

    return GatewayConfig(
        source=source,
        data_dir=data_dir,
        profile=profile,
        limits=limits,
        devices=devices,
        mode=mode,
        cycle_min=cycle_min,
        checkpoint_every_min=checkpoint_every_min,
        max_store_mb=max_store_mb,
        log_format=log_format,
        log_level=log_level,
        log_file=_path(log_file_s, base) if log_file_s else None,
        status_enabled=status_enabled,
        status_port=status_port,
        watchdog=watchdog,
        sim=sim,
        clock=clock,
        sync=sync,
        notify_command=notify_command,
        personalise_at=personalise_at,
    )


def device_name_for(role: str, name: str) -> str:
    """``name`` with the role's kind made explicit (``ble:ADDR`` for a pump → ``ble:ADDR?kind=pump``)."""
    scheme = name.split(":", 1)[0]
    if scheme in ("ble", "serial") and "kind=" not in name.partition("?")[2]:
        return f"{name}{'&' if '?' in name else '?'}kind={ROLE_KINDS[role]}"
    return name


def _check_device_name(name: str, role: str, table: _Table) -> None:
    kind, sep, rest = name.partition(":")
    if not sep or not rest:
        raise table.err(role, f'must look like "KIND:WHERE" (e.g. "ble:AA:BB:CC:DD:EE:FF"), got {name!r}')
    if kind not in DEVICE_KINDS:
        raise table.err(role, f"unknown device kind {kind!r} (known: {', '.join(DEVICE_KINDS)})")
    want = ROLE_KINDS[role]
    if kind in ("ble-sim", "serial-sim") and rest.split("?")[0] != want:
        raise table.err(role, f"a simulated {role} is named {kind}:{want}, got {name!r}")
    if kind == "serial" and not rest.split("?")[0].startswith("/"):
        raise table.err(role, f"a serial device needs an absolute path (serial:/dev/ttyUSB0), got {name!r}")
    try:
        from devices.errors import DeviceNameError
        from devices.names import parse_name
    except ImportError:
        return  # no drivers in this build: the gateway refuses to open the device at start-up
    try:
        parsed = parse_name(device_name_for(role, name))
    except DeviceNameError as exc:
        raise table.err(role, str(exc)) from None
    if parsed.kind != want:
        raise table.err(role, f"{name!r} names a {parsed.kind}, but this is the {role}")


def _check_sim(sim: SimConfig, table: _Table) -> None:
    from edgetwin.errors import UnknownPatientError
    from edgetwin.model.cohort import load_patient, load_sensor

    try:
        load_patient(sim.patient)
    except UnknownPatientError as exc:
        raise table.err("patient", str(exc)) from None
    try:
        load_sensor(sim.sensor)
    except UnknownPatientError as exc:
        raise table.err("sensor", str(exc)) from None


def _parse_sync(data: Any, source: str, base: Path) -> SyncConfig | None:
    if data is None:
        return None
    sy = _Table(data, "sync", source)
    endpoint = sy.str_("endpoint", "")
    cred = sy.str_("credentials_file", "")
    interval = sy.num("interval_min", 5.0, 1.0, 1440.0)
    sy.finish()
    if not endpoint:
        raise sy.err("endpoint", "is required in [sync] (remove the table to run offline)")
    if not endpoint.startswith(("https://", "http://")):
        raise sy.err("endpoint", f"must be an http(s) URL, got {endpoint!r}")
    if endpoint.startswith("http://") and not _is_loopback_url(endpoint):
        raise sy.err("endpoint", "plain http is allowed only on loopback; use https")
    if not cred:
        raise sy.err("credentials_file", "is required with an endpoint")
    cred_path = _path(cred, base)
    try:
        st = cred_path.stat()
    except OSError as exc:
        raise sy.err("credentials_file", f"{cred_path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise sy.err("credentials_file", f"{cred_path} is not a regular file")
    if st.st_mode & 0o077:
        raise sy.err(
            "credentials_file",
            f"{cred_path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}); chmod 600 it",
        )
    try:
        from sync.auth import Credential
        from sync.errors import CredentialError
    except ImportError:
        pass  # no sync package in this build: the gateway says so at start-up and keeps data queued
    else:
        try:
            Credential.load(cred_path)
        except CredentialError as exc:
            raise sy.err("credentials_file", str(exc)) from None
    return SyncConfig(endpoint=endpoint.rstrip("/"), credentials_file=cred_path, interval_min=interval)


def _is_loopback_url(url: str) -> bool:
    host = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _parse_limits(data: Any, source: str, mode: str) -> LimitsConfig:
    if data is None:
        raise ConfigError("limits", "this table is required (the safety limits)", source=source)
    if not isinstance(data, Mapping):
        raise ConfigError("limits", "must be a table", source=source)
    table = dict(data)
    if "mode" in table and table["mode"] != mode:
        raise ConfigError(
            "limits.mode",
            f"{table['mode']!r} disagrees with gateway.mode {mode!r}; set it once",
            source=source,
        )
    values: dict[str, float] = {}
    for key in ("max_basal_u_per_h", "max_bolus_u"):
        v = table.get(key)
        if v is None:
            raise ConfigError(f"limits.{key}", "is required", source=source)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 50:
            raise ConfigError(f"limits.{key}", f"must be a number in (0, 50], got {v!r}", source=source)
        values[key] = float(v)
    if mode == "closed-loop" and "max_iob_u" not in table:
        raise ConfigError("limits.max_iob_u", "must be set explicitly for closed-loop mode", source=source)
    try:
        from edgetwin.safety.limits import SafetyLimits
    except ImportError:
        return LimitsConfig(values["max_basal_u_per_h"], values["max_bolus_u"], table)
    try:
        safety = SafetyLimits.from_mapping({**table, "mode": mode})
    except ConfigError as exc:
        raise ConfigError(f"limits.{exc.key}", exc.problem, source=source) from None
    return LimitsConfig(values["max_basal_u_per_h"], values["max_bolus_u"], table, safety)
