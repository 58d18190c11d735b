"""The bench: one scenario through the real gateway, with simulated devices, a virtual patient and
the cloud twin, under one accelerated clock.

:func:`run_scenario` (what ``edgetwin hil run`` calls):

1. writes an ordinary gateway configuration (``run/gateway.toml``: the scenario's patient profile
   and limits, a scaled clock anchored to real time, the cloud twin's endpoint) and starts the
   cloud twin on loopback (``sync.cloud``), behind a fault-injecting proxy
   (:mod:`hil.cloudproxy`);
2. starts the world (:class:`hil.world.BenchWorld`: the virtual patient with the scenario's meals
   and exercise) and its devices — GATT peripherals on the virtual radio (``ble-sim``) and serial
   simulators on ptys (``serial-sim``) — and the gateway (:mod:`hil.gateway`), in the bench's
   process or as ``edgetwin run`` in its own (when the scenario kills it);
3. plays the fault timeline (device faults through the world's fault schedule; network, cloud,
   gateway and clock faults by the bench) while observing the gateway through its status
   endpoint (forecast bands, alarms, sync state);
4. at the end lets everything recover and *drains*: waits (in clock time, bounded by
   ``drain_max_h``) until every reading the sensor produced is in the store and in the cloud;
5. stops the gateway, collects what happened from the store, the cloud, the world and the log
   (:mod:`hil.results`), judges the assertions (:mod:`hil.assertions`) and writes the report
   (:mod:`hil.report`): ``report.json``, ``report.md``, ``overview.png``.

Nothing here is timed in real seconds except guards against a bench that hangs; every judgement
is on clock time and on data.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from edgetwin.clock import Clock
from edgetwin.gateway.config import GatewayConfig, load_config
from edgetwin.gateway.timekeeping import clock_from_config
from edgetwin.virtual.scenario import MealEvent, RandomScenario
from hil.clock import GovernedClock, Governor
from hil.cloudproxy import CloudProxy
from hil.errors import BenchError
from hil.gateway import GatewayUnderTest, InProcessGateway, ProcessGateway
from hil.scenario import DEVICE_FAULTS, FaultSpec, Scenario
from hil.world import RESERVOIR_CHANGE_U, BenchWorld

__all__ = ["START_DATE", "BenchOptions", "BenchResult", "ForecastSnapshot", "Observations", "run_scenario"]

log = logging.getLogger("hil.bench")

START_DATE = date(2026, 3, 2)
"""Every run starts on this (UTC) date, so reports of the same scenario line up."""
DRAIN_MAX_H = 24.0
"""How long (clock hours) the bench waits after the end for readings to reach store and cloud.
Long because the sync client's retries sleep in real seconds (a round of six attempts can take
half a minute), which the accelerated clock turns into hours (measured: up to 8 h at x2400 after
an hour of cloud errors). The bench stops waiting as soon as everything has arrived."""
POLL_REAL_S = 0.2
RECEIVE_LIMIT_MIN = 180
RECEIVE_LIMIT_REAL_S = 90.0
START_FACTOR = 60.0
"""Clock speed while the in-process gateway starts and connects (a clock minute per real second):
its real seconds of loading and connecting would be clock hours at full speed."""
STALL_PROBE_S = 0.1
STALL_REAL_S = 120.0
"""A world that has not advanced a minute in this many real seconds is broken (a bench failure)."""
ROLE_FAULT_NAMES = {
    "ble-sim": {"cgm": "cgm", "pump": "pump", "heart_rate": "heart"},
    "serial-sim": {"cgm": "serial-cgm", "pump": "serial-pump"},
}
LINK_FAULTS = ("drop_notifications", "bad_crc", "disconnect")
PROXY_PRIORITY = ("network_outage", "cloud_timeout", "cloud_error")


@dataclass
class BenchOptions:
    out_dir: Path
    speed: float | None = None
    """Override the scenario's clock speed."""
    hours: float | None = None
    """Cut the scenario to its first hours (the CI versions)."""
    drain_max_h: float = DRAIN_MAX_H
    plots: bool = True
    progress: Callable[[float, str], None] | None = None
    """Called about every poll with (fraction done, one line of state)."""


@dataclass
class ForecastSnapshot:
    issued_utc: datetime
    minute: int
    points: list[tuple[datetime, float | None, float | None, float | None]]
    """(time, p10, p50, p90) in mg/dL."""


@dataclass
class Observations:
    """What the bench saw while the scenario ran (beyond what the store and cloud keep)."""

    forecasts: list[ForecastSnapshot] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    fault_log: list[dict[str, Any]] = field(default_factory=list)
    status_errors: int = 0
    last_status: dict[str, Any] | None = None
    drain: dict[str, Any] = field(default_factory=dict)
    end_minute: int = 0
    gateway_ready_minute: int | None = None
    stalls: list[dict[str, Any]] = field(default_factory=list)
    """Moments the bench's event loop did not run for ``STALL_PROBE_S`` or more real seconds (a
    busy machine): world minute, real seconds, and the clock minutes that makes."""
    max_loop_lag_s: float = 0.0
    timeline_from_minute: int | None = None
    """The world minute from which faults were injected (the gateway was receiving)."""
    effective_speed: float | None = None
    """Clock seconds per real second over the scenario (below the target when the bench slowed)."""
    speed_changes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class BenchResult:
    scenario: Scenario
    passed: bool
    report: dict[str, Any]
    out_dir: Path
    wall_s: float
    data: Any = None
    """The collected :class:`hil.results.RunData` (None when the run did not complete)."""

    @property
    def report_md(self) -> Path:
        return self.out_dir / "report.md"

    @property
    def report_json(self) -> Path:
        return self.out_dir / "report.json"

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [a for a in self.report["assertions"] if a["outcome"] == "fail"]


async def run_scenario(scenario: Scenario, options: BenchOptions) -> BenchResult:
    """Run ``scenario`` and write its report into ``options.out_dir``."""
    if options.hours is not None:
        scenario = scenario.truncated(options.hours)
    return await _Bench(scenario, options).run()


class _Bench:
    def __init__(self, scenario: Scenario, options: BenchOptions) -> None:
        self.s = scenario
        self.o = options
        self.real_devices = {
            r: n for r, n in scenario.devices.items() if n not in ("ble-sim", "serial-sim", "none")
        }
        # Real devices live in real time: the whole bench then runs at x1.
        self.speed = 1.0 if self.real_devices else (options.speed or scenario.speed)
        self.out = options.out_dir
        self.run_dir = self.out / "run"
        self.obs = Observations()
        self.world: BenchWorld | None = None
        self.sim_bench: Any = None
        self.serial_sims: dict[str, Any] = {}
        self.sim_paths: dict[str, str] = {}
        self.gateway: GatewayUnderTest | None = None
        self.cloud: Any = None
        self.proxy: CloudProxy | None = None
        self.clock: Clock | None = None
        self.cfg: GatewayConfig | None = None
        self.meals: list[MealEvent] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._world_task: asyncio.Task[None] | None = None
        self._restarting = False
        self.governor: Governor | None = None
        self._entries: dict[int, dict[str, Any]] = {}
        self._proxy_faults: set[int] = set()
        self._gateway_lock = asyncio.Lock()

    # --- the run ------------------------------------------------------------------------------

    async def run(self) -> BenchResult:
        from hil.assertions import evaluate
        from hil.report import write_report
        from hil.results import collect

        t0 = time.perf_counter()
        self._prepare_dirs()
        if self.real_devices:
            await check_hardware(self.real_devices)
        warm_up(self.s)
        self.meals = plan_meals(self.s)
        data = None
        try:
            await self._start_cloud()
            cfg_path = self._write_config()
            self.cfg = load_config(cfg_path)
            anchored = clock_from_config(self.cfg.clock)
            if self.s.run == "process" or self.real_devices:
                self.clock = anchored  # a gateway process keeps its configuration's fixed factor
            else:
                self.clock = GovernedClock(anchored.now_utc(), self.speed)
                self.governor = Governor(self.clock, self.speed)
                self.governor.hold(START_FACTOR, 0, "starting the gateway")
            if self.s.run == "process":
                self.gateway = ProcessGateway(cfg_path, self.cfg, self.clock, self._minute)
                await self.gateway.start()
                await self._start_world()
            else:
                await self._start_world()
                self.gateway = InProcessGateway(
                    self.cfg, self.clock, self._minute, self._open_gateway_devices
                )
                await self.gateway.start()
            self.obs.gateway_ready_minute = self._minute()
            self._tasks.append(asyncio.create_task(self._observe(), name="hil-observe"))
            self._tasks.append(asyncio.create_task(self._probe_lag(), name="hil-lag-probe"))
            self.obs.timeline_from_minute = await self._receiving()
            if self.governor is not None:
                self.governor.release(self._minute())
            self._tasks.append(asyncio.create_task(self._timeline(), name="hil-timeline"))
            await self._until_end()
            await self._drain()
            await self.gateway.stop("end")
            await self._stop_tasks()
            assert self.world is not None
            data = collect(self.s, self.cfg, self.world, self.obs, self.cloud, self.gateway, self.proxy)
        finally:
            await self._shutdown()
        results = evaluate(self.s, data)
        wall = time.perf_counter() - t0
        report = write_report(
            self.s, data, results, self.out, wall_s=wall, speed=self.speed, plots=self.o.plots
        )
        passed = all(r.outcome != "fail" for r in results)
        return BenchResult(self.s, passed, report, self.out, wall, data)

    def _prepare_dirs(self) -> None:
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        for name in ("report.json", "report.md", "overview.png"):
            (self.out / name).unlink(missing_ok=True)
        self.run_dir.mkdir(parents=True)

    def _minute(self) -> int:
        return 0 if self.world is None else self.world.minute

    async def _until_end(self) -> None:
        assert self.world is not None
        end = self.s.minutes
        t0, m0 = time.perf_counter(), self.world.minute
        seen, since = self.world.minute, time.monotonic()
        while self.world.minute < end:
            self._check_tasks()
            if self.world.minute != seen:
                seen, since = self.world.minute, time.monotonic()
            elif time.monotonic() - since > STALL_REAL_S:
                raise BenchError(
                    f"the simulated world stopped at minute {seen} for {STALL_REAL_S:.0f} s of real time"
                )
            if self.o.progress is not None:
                self.o.progress(self.world.minute / end, self._state_line())
            await asyncio.sleep(POLL_REAL_S)
        self.obs.end_minute = end
        real = time.perf_counter() - t0
        self.obs.effective_speed = round((end - m0) * 60.0 / real, 1) if real > 0 else None
        self.obs.speed_changes = list(self.governor.changes) if self.governor is not None else []
        if self.o.progress is not None:
            self.o.progress(1.0, self._state_line())

    def _check_tasks(self) -> None:
        world_task = self._world_task
        if world_task is not None and world_task.done():
            exc = None if world_task.cancelled() else world_task.exception()
            raise BenchError(f"the simulated world stopped: {exc!r}") from exc
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise BenchError(
                    f"bench task {task.get_name()} failed: {task.exception()!r}"
                ) from task.exception()

    def _state_line(self) -> str:
        st = self.obs.last_status or {}
        g = (st.get("glucose") or {}).get("mg_dl")
        alarms = [a.get("kind") for a in st.get("alarms", [])]
        active = [
            f["label"]
            for f in self.obs.fault_log
            if f.get("ended_minute") is None and f.get("started_minute") is not None
        ]
        parts = [f"glucose {g:.0f} mg/dL" if isinstance(g, (int, float)) else "glucose --"]
        if alarms:
            parts.append("alarms: " + ", ".join(str(a) for a in alarms))
        if active:
            parts.append("faults: " + ", ".join(active))
        if self.gateway is not None and not self.gateway.alive:
            parts.append("gateway DOWN")
        return "  ".join(parts)

    # --- set-up -------------------------------------------------------------------------------

    async def _start_cloud(self) -> None:
        from edgetwin.gateway.demo import LocalCloud

        self.cloud = await asyncio.to_thread(LocalCloud.start, self.run_dir)
        host, port = self.cloud.server.host, self.cloud.server.port
        self.proxy = await CloudProxy(host, port).start()

    def _device_name(self, role: str) -> str:
        name = self.s.devices.get(role, "none")
        kind = {"cgm": "cgm", "pump": "pump", "heart_rate": "heart"}[role]
        if name == "ble-sim":
            return f"ble-sim:{kind}"
        if name == "serial-sim":
            if self.s.run == "process":
                return f"serial:{self._pty_path(role)}"
            return f"serial-sim:{kind}"
        return name

    def _pty_path(self, role: str) -> str:
        return str(self.run_dir / ("ttyCGM" if role == "cgm" else "ttyPUMP"))

    def _write_config(self) -> Path:
        from edgetwin.model.cohort import load_patient, load_therapy

        s = self.s
        pp = load_patient(s.patient)
        th = load_therapy(s.patient)
        basal = max(0.05, round(pp.basal_u_per_h / 0.05) * 0.05)
        start = datetime.combine(START_DATE, datetime.min.time(), UTC) + timedelta(
            minutes=s.start_minute_of_day
        )
        anchor = datetime.now(UTC)
        devices = "\n".join(
            f'{role} = "{self._device_name(role)}"' for role in ("cgm", "pump", "heart_rate")
            if s.devices.get(role, "none") != "none"
        )  # fmt: skip
        limits = {
            "max_basal_u_per_h": round(max(3.0, 4 * basal), 2),
            "max_bolus_u": 10.0,
            **({"max_iob_u": 8.0} if s.mode == "closed-loop" else {}),
        }
        limit_lines = "\n".join(f"{k} = {_toml(v)}" for k, v in limits.items())
        sim_table = ""
        if any(
            n.startswith(("ble-sim:", "serial-sim:"))
            for n in map(self._device_name, ("cgm", "pump", "heart_rate"))
        ):
            sim_table = f'\n[sim]\npatient = "{s.patient}"\nseed = {s.seed}\nannounce_meals = true\n'
        text = f"""# Written by the EdgeTwin HIL bench for scenario {s.name!r}: an ordinary gateway configuration
[gateway]
data_dir = "data"
mode = "{s.mode}"
cycle_min = 5
checkpoint_every_min = {s.checkpoint_every_min:g}

[log]
format = "json"
level = "info"
file = "gateway.log.jsonl"

[status]
enabled = true
port = 0

[watchdog]
no_data_alarm_min = {s.no_data_alarm_min:g}

[devices]
{devices}
{sim_table}
[clock]
kind = "scaled"
factor = {self.speed:g}
start_utc = "{start.isoformat()}"
anchor_utc = "{anchor.isoformat()}"

[sync]
endpoint = "{self.proxy.url if self.proxy else ""}"
credentials_file = "{self.cloud.credential_file.name}"
interval_min = {s.sync_interval_min:g}

[profile]
weight_kg = {pp.BW:.1f}
carb_ratio_g_per_u = {th.carb_ratio_g_per_u:.1f}
correction_factor_mg_dl_per_u = {th.correction_factor_mg_dl_per_u:.1f}
target_mg_dl = 110
insulin_duration_h = 5
basal = {basal:.2f}

[limits]
{limit_lines}
"""
        path = self.run_dir / "gateway.toml"
        path.write_text(text, "utf-8")
        return path

    async def _start_world(self) -> None:
        assert self.clock is not None
        s = self.s
        world = BenchWorld(self.clock, patient=s.patient, seed=s.seed, meals=self.meals, exercise=s.exercise)
        self.world = world
        ble = tuple(
            {"cgm": "cgm", "pump": "pump", "heart_rate": "heart"}[role]
            for role in ("cgm", "pump", "heart_rate")
            if s.devices.get(role) == "ble-sim"
        )
        if ble:
            from devices.sim.bench import SimBench

            self.sim_bench = SimBench(self.clock, kinds=ble, world=world, run_world=False)
            await self.sim_bench.start()
        for role in ("cgm", "pump"):
            if s.devices.get(role) == "serial-sim":
                from devices.sim.serial_devices import SimSerialCgmReceiver, SimSerialPumpBridge

                cls = SimSerialCgmReceiver if role == "cgm" else SimSerialPumpBridge
                sim = cls(world, path=self._pty_path(role))
                await sim.start()
                self.serial_sims[role] = sim
                self.sim_paths[role] = sim.path
        self._world_task = world.start()

    def _fault_device(self, f: FaultSpec) -> str:
        assert f.device is not None
        if f.kind in LINK_FAULTS:
            return ROLE_FAULT_NAMES[self.s.devices[f.device]][f.device]
        return "cgm" if f.device == "cgm" else "pump"

    async def _open_gateway_devices(self) -> Any:
        """The gateway's device sources over the bench's simulators: the drivers
        ``edgetwin.gateway.devices.open_devices`` builds for the same names."""
        from devices.names import open_device
        from edgetwin.gateway.config import ROLE_KINDS, device_name_for
        from edgetwin.gateway.devices import DriverPumpControl, DriverSource, OpenedDevices, PatientInputs

        assert self.cfg is not None and self.clock is not None
        clock, bench, paths = self.clock, self.sim_bench, self.sim_paths
        out = OpenedDevices(world=self.world)
        for role, name in self.cfg.devices.items():
            full = device_name_for(role, name)

            def make(full: str = full) -> Any:
                return open_device(full, clock=clock, sim=bench, sim_paths=paths)

            ble = name.startswith("ble")
            src = DriverSource(name, role, make, fresh_per_connection=(ROLE_KINDS[role] != "pump" and ble))
            out.sources[role] = src
            if role == "pump":
                out.pump_control = DriverPumpControl(src)
        if self.cfg.sim.announce_meals and self.world is not None:
            out.sources["patient"] = PatientInputs(self.world, self.meals)
        return out

    # --- the timeline -------------------------------------------------------------------------

    async def _timeline(self) -> None:
        """Play the faults, each in its own task, relative to a gateway that is up: nothing is
        injected before the gateway has stored a live glucose reading (a slow start on a busy
        machine would otherwise change what a scenario tests); a fault planned earlier starts
        then, keeping its length. The applied windows (``fault_log``) are what assertions judge."""
        assert self.world is not None
        for f in self.s.faults:
            self._entries[f.index] = {"index": f.index, "kind": f.kind, "label": f.label, "device": f.device,
                                      "planned_minute": f.minute, "planned_minutes": f.minutes,
                                      "started_minute": None, "ended_minute": None}  # fmt: skip
            self.obs.fault_log.append(self._entries[f.index])
        if not self.s.faults:
            return
        ready = self.obs.timeline_from_minute or 0
        await asyncio.gather(*(self._play(f, max(f.minute, ready)) for f in self.s.faults))

    async def _receiving(self) -> int:
        """The world minute at which the gateway first showed a live glucose reading (or, with no
        CGM data at all, after ``RECEIVE_LIMIT_MIN`` or ``RECEIVE_LIMIT_REAL_S``)."""
        assert self.world is not None
        deadline = time.monotonic() + RECEIVE_LIMIT_REAL_S
        while self.world.minute < RECEIVE_LIMIT_MIN and time.monotonic() < deadline:
            self._check_tasks()
            glucose = (self.obs.last_status or {}).get("glucose")
            if glucose and glucose.get("age_min") is not None and glucose["age_min"] <= 10:
                break
            await asyncio.sleep(POLL_REAL_S / 2)
        return self.world.minute

    def _mark(self, f: FaultSpec, edge: str, minute: int | None = None) -> None:
        assert self.world is not None
        entry, m = self._entries[f.index], self.world.minute if minute is None else minute
        entry[f"{edge}_minute"] = m
        entry[f"{edge}_utc"] = self.world.time_at(m).isoformat()

    async def _play(self, f: FaultSpec, at: int) -> None:
        assert self.world is not None
        world = self.world
        await world.wait_minute(at)
        if f.kind in ("gateway_kill", "gateway_restart"):
            async with self._gateway_lock:  # one stop or kill at a time
                self._mark(f, "started")
                await self._gateway_down(f)
                self._mark(f, "ended")
            return
        # The world has already simulated this minute: a device fault's window opens with the
        # next one (a window starting now would never "start" for the devices, and a sensor
        # change keys on its first minute).
        start = world.minute + (1 if f.kind in DEVICE_FAULTS else 0)
        self._mark(f, "started", start)
        if f.kind in DEVICE_FAULTS:
            world.faults.add(
                f.kind, start, start + f.minutes, device=self._fault_device(f), probability=f.probability
            )
        elif f.kind in PROXY_PRIORITY:
            self._proxy_faults.add(f.index)
            self._apply_proxy()
        elif f.kind == "clock_jump":
            self._jump(f.jump_min)
            if f.minutes == 0:  # it stays
                self._mark(f, "ended")
                return
        await world.wait_minute(start + f.minutes)
        if f.kind in DEVICE_FAULTS:
            self._device_fault_end(f)
        elif f.kind in PROXY_PRIORITY:
            self._proxy_faults.discard(f.index)
            self._apply_proxy()
        elif f.kind == "clock_jump":
            self._jump(-f.jump_min)  # NTP steps it back
        self._mark(f, "ended")

    def _device_fault_end(self, f: FaultSpec) -> None:
        if f.kind == "empty_reservoir" and self.world is not None:
            self.world.pump.refill(RESERVOIR_CHANGE_U)  # the patient changes the reservoir

    def _apply_proxy(self) -> None:
        """Set the proxy from every network/cloud fault active now (outage > timeout > error)."""
        assert self.proxy is not None
        active = [f for f in self.s.faults if f.index in self._proxy_faults]
        for kind, mode in zip(PROXY_PRIORITY, ("outage", "timeout", "error"), strict=True):
            chosen = [f for f in active if f.kind == kind]
            if chosen:
                self.proxy.set_mode(mode, status=chosen[0].status)
                return
        self.proxy.set_mode("ok")

    def _jump(self, minutes: float) -> None:
        assert self.gateway is not None
        self.gateway.jump_clock(minutes * 60.0)

    async def _gateway_down(self, f: FaultSpec) -> None:
        assert self.gateway is not None and self.clock is not None
        self._restarting = True
        try:
            if f.kind == "gateway_kill":
                await self.gateway.kill()
            else:
                await self.gateway.stop("stop")
            await self.clock.sleep(f.down_min * 60.0)
            if self.governor is not None:
                self.governor.hold(START_FACTOR, self._minute(), "restarting the gateway")
            try:
                await self.gateway.start()
            finally:
                if self.governor is not None:
                    self.governor.release(self._minute())
        finally:
            self._restarting = False

    # --- observing ----------------------------------------------------------------------------

    async def _observe(self) -> None:
        last_issue = None
        while True:
            await asyncio.sleep(POLL_REAL_S)
            gw = self.gateway
            if gw is None or not gw.alive or gw.status_port is None:
                continue
            try:
                doc = await fetch_status(gw.status_port)
            except (OSError, ValueError, asyncio.IncompleteReadError, TimeoutError):
                self.obs.status_errors += 1
                continue
            self.obs.last_status = doc
            minute = self._minute()
            fc = doc.get("forecast")
            if fc and fc.get("issued_utc") and fc["issued_utc"] != last_issue:
                last_issue = fc["issued_utc"]
                points = [
                    (datetime.fromisoformat(p["time_utc"]), p["p10_mg_dl"], p["p50_mg_dl"], p["p90_mg_dl"])
                    for p in fc.get("points", [])
                ]
                issued = datetime.fromisoformat(fc["issued_utc"])
                self.obs.forecasts.append(ForecastSnapshot(issued, minute, points))
            sync = doc.get("sync") or {}
            self.obs.samples.append(
                {
                    "minute": minute,
                    "time_utc": doc.get("time_utc"),
                    "glucose_mg_dl": (doc.get("glucose") or {}).get("mg_dl"),
                    "alarms": [a.get("kind") for a in doc.get("alarms", [])],
                    "sync_state": sync.get("state"),
                    "backlog": sync.get("backlog"),
                }
            )

    async def _probe_lag(self) -> None:
        """Measure how late the event loop wakes up: on an accelerated clock, a machine that
        stalls the bench for half a second is 20 clock minutes without data."""
        step = 0.02
        while True:
            t = time.perf_counter()
            await asyncio.sleep(step)
            lag = time.perf_counter() - t - step
            self.obs.max_loop_lag_s = max(self.obs.max_loop_lag_s, lag)
            factor = self.clock.factor if self.clock is not None else self.speed
            if lag >= STALL_PROBE_S:
                self.obs.stalls.append(
                    {
                        "minute": self._minute(),
                        "real_s": round(lag, 3),
                        "clock_min": round(lag * factor / 60.0, 1),
                    }
                )
            if self.governor is not None:
                self.governor.on_lag(lag, self._minute())

    # --- the end ------------------------------------------------------------------------------

    async def _drain(self) -> None:
        """Let everything recover, then wait until every reading is in the store and the cloud."""
        from hil.results import missing_readings

        assert self.world is not None and self.clock is not None and self.gateway is not None
        for task in self._tasks:
            if task.get_name() == "hil-timeline" and not task.done():
                while self._restarting and not task.done():  # let a gateway restart finish
                    self._check_tasks()
                    await asyncio.sleep(POLL_REAL_S)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self.world.faults.clear()
        if self.proxy is not None:
            self.proxy.set_mode("ok")
        if not self.gateway.alive:
            await self.gateway.start()
        t0_mono = self.clock.monotonic()
        limit_s = self.o.drain_max_h * 3600.0
        checks = 0
        missing: dict[str, int] = {}
        while True:
            checks += 1
            assert self.cfg is not None
            missing = await asyncio.to_thread(
                missing_readings, self.s, self.cfg, self.world, self.obs.end_minute, self.cloud
            )
            waited = self.clock.monotonic() - t0_mono
            if not any(missing.values()) or waited >= limit_s:
                break
            await asyncio.sleep(4 * POLL_REAL_S)
        self.obs.drain = {
            "clock_min": round((self.clock.monotonic() - t0_mono) / 60.0, 1),
            "limit_clock_min": round(limit_s / 60.0, 1),
            "complete": not any(missing.values()),
            "missing_at_end": missing,
            "checks": checks,
        }

    async def _stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _shutdown(self) -> None:
        await self._stop_tasks()
        if self.gateway is not None:
            with contextlib.suppress(Exception):
                if self.gateway.alive:
                    await self.gateway.stop("end")
            if isinstance(self.gateway, InProcessGateway):
                self.gateway.close_logging()
        for sim in self.serial_sims.values():
            with contextlib.suppress(Exception):
                await sim.stop()
        if self.sim_bench is not None:
            with contextlib.suppress(Exception):
                await self.sim_bench.stop()
        if self.world is not None:
            await self.world.stop()
        if self.proxy is not None:
            await self.proxy.stop()
        if self.cloud is not None:
            await asyncio.to_thread(self.cloud.stop)


def _toml(v: Any) -> str:
    return json.dumps(v)


def plan_meals(s: Scenario) -> list[MealEvent]:
    """The scenario's meals in world minutes (t = 0 at ``start``): the cohort's random days
    (with their counting errors, missed boluses and unannounced snacks) plus the fixed meals."""
    out: list[MealEvent] = []
    days = int(math.ceil((s.start_minute_of_day + s.minutes) / 1440.0)) + 1
    if s.meals.random:
        rs = RandomScenario(s.seed, s.meals.carb_error, s.meals.p_missed_bolus, s.meals.p_unannounced_snack)
        for m in rs.meals(days):
            minute = m.minute - s.start_minute_of_day
            if 0 < minute < s.minutes:
                out.append(MealEvent(minute, m.eaten_g, m.announced_g))
    for f in s.meals.fixed:
        if 0 < f.minute < s.minutes:
            out.append(MealEvent(f.minute, f.grams, round(f.announced_g)))
    return sorted(out, key=lambda m: m.minute)


def warm_up(s: Scenario) -> None:
    """Load the compiled model kernels (and the radio's stack) before the accelerated clock starts."""
    from edgetwin.model.cohort import load_patient
    from edgetwin.virtual.patient import VirtualPatient
    from edgetwin.warmup import warm_up as warm_kernels

    warm_kernels()  # every numba kernel the gateway's stages use (from the cache when warm)
    VirtualPatient(load_patient(s.patient)).step(0.0, 0.0)
    # Import what the gateway and the simulators load on start-up now: at x1800 every real
    # second of importing is 30 simulated minutes.
    modules = [
        "edgetwin.gateway.runtime", "edgetwin.gateway.decide", "edgetwin.gateway.living_twin", "edgetwin.gateway.status", "edgetwin.gateway.watchdog",
        "edgetwin.gateway.trendtwin", "edgetwin.gateway.sync_stage", "edgetwin.store",
        "sync.uploader", "sync.downlink", "sync.transport", "sync.auth", "requests",
        "devices.serial.drivers", "devices.sim.serial_devices",
    ]  # fmt: skip
    if "ble-sim" in s.devices.values():
        modules += [
            "bumble.device",
            "devices.sim.bench",
            "devices.ble.cgm",
            "devices.ble.pump",
            "devices.ble.body",
        ]
    for name in modules:
        with contextlib.suppress(ImportError):  # stages this build does not have
            importlib.import_module(name)


async def check_hardware(devices: dict[str, str], scan_s: float = 10.0) -> None:
    """Refuse to start when a real device is absent: a serial port that does not exist, a BLE
    address not advertising within ``scan_s`` (BenchError, before anything starts)."""
    for role, name in devices.items():
        scheme, _, rest = name.partition(":")
        target = rest.partition("?")[0]
        if scheme == "serial":
            if not Path(target).exists():
                raise BenchError(f"{role}: serial port {target} is not there (is the device plugged in?)")
            continue
        try:
            from bleak import BleakScanner

            found = await BleakScanner.find_device_by_address(target, timeout=scan_s)
        except Exception as exc:  # no adapter, no BlueZ, no permission: all mean "cannot run"
            raise BenchError(f"{role}: cannot scan for {target}: {exc}") from exc
        if found is None:
            raise BenchError(f"{role}: no Bluetooth LE device {target} advertising within {scan_s:g} s")


async def fetch_status(port: int, timeout_s: float = 5.0) -> dict[str, Any]:
    """``GET /api/status`` from the gateway's local status server."""

    async def get() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    raw = await asyncio.wait_for(get(), timeout_s)
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ValueError(f"status endpoint answered {head[:40]!r}")
    doc = json.loads(body)
    if not isinstance(doc, dict):
        raise ValueError("status endpoint did not return an object")
    return doc
