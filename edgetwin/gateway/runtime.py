"""The gateway daemon: devices → durable store → twin → forecast → suggestion → safety gate →
output → sync outbox, on one asyncio loop.

Start-up (:meth:`Gateway.start`): lock the data directory (one gateway per store), open the store
(a corrupt, truncated or newer database stops the start with the store's own error, and the file
is left untouched), restore the twin from its newest checkpoint and replay the readings and
treatments stored after it (the twin ignores what it has already seen), open the devices, start
the tasks, serve the status page, tell systemd we are ready.

Tasks:

* one per device (:meth:`Gateway._device_task`): ``async for record in source.records(resume)``
  where ``resume`` comes from the store, so a restarted gateway asks the device for exactly what
  it does not have. Each record is stored first; only with the store's Ack is the device told
  (``acknowledge``) and the twin updated. A failed write (disk full, I/O error) raises an alarm,
  acknowledges nothing and reconnects later from the store's resume point: the device keeps what
  was not stored.
* the cycle (:meth:`Gateway._cycle`): on a new live CGM reading (but not sooner than
  ``cycle_min`` after the last one, less 30 s) and at least every ``cycle_min``: advance the
  twin, forecast, decide (suggestion → safety gate → output), and checkpoint the twin every
  ``checkpoint_every_min``.
* the watchdog (:mod:`edgetwin.gateway.watchdog`): restarts stalled device tasks, sounds the
  no-glucose and pump alarms, watches the wall clock, pings systemd.
* sync (when configured) and the status page (:mod:`edgetwin.gateway.status`).

Every interval is measured on the clock's monotonic time; stamps come from ``now_utc()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgpack

from edgetwin.clock import Clock
from edgetwin.errors import EdgeTwinError, InputDataError
from edgetwin.gateway import systemd
from edgetwin.gateway.alarms import AlarmCenter, CommandNotifier, LogNotifier
from edgetwin.gateway.config import GatewayConfig
from edgetwin.gateway.devices import OpenedDevices, open_devices
from edgetwin.gateway.errors import GatewayLockedError, StartupError
from edgetwin.gateway.ports import DeviceSource, ForecastBand, Notifier, ResumePoint, TwinFactory, TwinPort
from edgetwin.gateway.pumpalarms import check_pump_status
from edgetwin.gateway.snapshot import CHECKPOINT_PREFIX, feed_record, load_twin
from edgetwin.gateway.timekeeping import (
    FUTURE_TOLERANCE_S,
    SKEW_WARN_S,
    GatewayTime,
    MinuteMap,
    clock_from_config,
    device_skew_s,
)
from edgetwin.messages import CarbEntry, CgmReading, HeartRateReading, InsulinDelivery, PumpStatus
from edgetwin.store import AsyncStore, StoreError, StoreFullError, TwinCheckpoint
from edgetwin.timeutil import to_epoch_ms

if TYPE_CHECKING:
    from edgetwin.gateway.decide import DecisionStage
    from edgetwin.gateway.personalise_stage import PersonaliseStage
    from edgetwin.gateway.sync_stage import SyncStage

__all__ = ["DeviceHealth", "Gateway", "default_twin_factory"]

log = logging.getLogger("edgetwin.gateway")

HISTORY_WINDOW = timedelta(hours=6)
RESUME_WINDOW = timedelta(days=2)
"""How far back the store is searched for a device's newest record on (re)connection."""
MIN_STALL_REAL_S = 30.0
"""A device is restarted for silence no sooner than this many real seconds (drivers' own
connection timeouts are real seconds: 10 s for BLE I/O)."""
WATCHED_ROLES = ("cgm", "pump", "heart_rate", "meter")
"""Device roles whose silence the watchdog treats as a stall (not the patient's own entries)."""
FORECAST_HORIZON_MIN = 120
STORE_RETRY_S = 60.0
CYCLE_SLACK_S = 30.0
"""A reading arriving this close to a full cycle after the last decision starts the next one."""


def default_twin_factory(cfg: GatewayConfig | None = None) -> TwinFactory:
    """The living twin (:mod:`edgetwin.gateway.living_twin`); it takes the pump's delivery
    reports when a pump is configured, the scheduled basal otherwise."""
    from edgetwin.gateway.living_twin import LivingTwinFactory

    return LivingTwinFactory(delivered_insulin=cfg is not None and "pump" in cfg.devices)


@dataclass
class DeviceHealth:
    role: str
    name: str
    device_id: str
    state: str = "starting"
    records: int = 0
    duplicates: int = 0
    rejected: int = 0
    restarts: int = 0
    errors: int = 0
    last_record_mono: float | None = None
    last_record_utc: datetime | None = None
    clock_skew_s: float | None = None
    last_error: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "role": self.role,
            "name": self.name,
            "device_id": self.device_id,
            "state": self.state,
            "records": self.records,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "restarts": self.restarts,
            "errors": self.errors,
            "last_record_utc": None if self.last_record_utc is None else self.last_record_utc.isoformat(),
            "clock_skew_s": None if self.clock_skew_s is None else round(self.clock_skew_s, 1),
            "last_error": self.last_error,
        }


@dataclass
class CycleStats:
    count: int = 0
    cpu_s_total: float = 0.0
    cpu_s_last: float = 0.0
    wall_s_last: float = 0.0


def _log_rejected(record: object, exc: InputDataError, *, replay: bool) -> None:
    log.warning(
        "the twin rejected a record: %s",
        exc,
        extra={"event": "twin_rejected", "record": type(record).__name__, "replay": replay},
    )


STOP_ROUND_S = 1.0
"""Real seconds a stop waits for cancelled tasks before cancelling the stragglers again."""
STOP_ROUNDS = 5


async def cancel_and_wait(tasks: list[asyncio.Task[None]]) -> list[str]:
    """Cancel ``tasks`` and wait for them to end; returns the names of any that would not.

    A task can swallow one cancellation (on Python 3.11 ``asyncio.wait_for`` returns its result
    instead of raising when the awaited future completes in the same loop iteration as the
    cancel), so the stragglers are cancelled again each round; a stop never waits for ever and
    the final checkpoint is still written."""
    pending = {t for t in tasks if not t.done()}
    for t in pending:
        t.cancel()
    for _ in range(STOP_ROUNDS):
        if not pending:
            break
        _, pending = await asyncio.wait(pending, timeout=STOP_ROUND_S)
        for t in pending:
            log.warning("task %s ignored its cancellation; cancelling again", t.get_name(),
                        extra={"event": "stop_straggler", "task": t.get_name()})  # fmt: skip
            t.cancel()
    for t in tasks:
        if t.done() and not t.cancelled():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                t.result()  # retrieve it: an error at stop is not worth a "never retrieved" warning
    stuck = sorted(t.get_name() for t in pending)
    if stuck:
        log.error(
            "tasks still running after the stop: %s", stuck, extra={"event": "stop_stuck", "tasks": stuck}
        )
    return stuck


@dataclass
class GatewayState:
    """What the status page shows; updated by the pipeline."""

    started_utc: datetime | None = None
    history: deque[tuple[datetime, float]] = field(default_factory=lambda: deque(maxlen=600))
    latest: CgmReading | None = None
    forecast: ForecastBand | None = None
    forecast_issued_utc: datetime | None = None
    suggestion: dict[str, Any] | None = None
    checkpoint_utc: datetime | None = None
    restored_from_utc: datetime | None = None
    replayed: int = 0
    store_state: str = "ok"
    store_error: str = ""
    sync: dict[str, Any] = field(default_factory=lambda: {"state": "off"})
    personalise: dict[str, Any] = field(default_factory=lambda: {"state": "off"})
    clock_jumps: int = 0


def contiguous_resume(readings: list[CgmReading]) -> ResumePoint:
    """Where a device should resume: after the end of the first unbroken run of sequence numbers
    the store holds (not after the newest: a live reading stored while a back-fill was cut short
    would otherwise hide the hole behind it). A device that numbers with gaps of its own just
    re-sends a little, which the store recognises."""
    seqs = sorted({r.sequence for r in readings if r.sequence is not None})
    if not seqs:
        newest = max(readings, key=lambda r: r.time_utc, default=None)
        return ResumePoint(None if newest is None else newest.time_utc, None)
    last = seqs[0]
    for s in seqs[1:]:
        if s != last + 1:
            break
        last = s
    at = next(r.time_utc for r in readings if r.sequence == last)
    return ResumePoint(at, last)


class Gateway:
    """The running gateway. ``async with Gateway(cfg) as gw: await gw.wait()`` or ``await gw.run()``."""

    def __init__(
        self,
        cfg: GatewayConfig,
        *,
        clock: Clock | None = None,
        devices: OpenedDevices | None = None,
        twin_factory: TwinFactory | None = None,
        notifiers: list[Notifier] | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock = GatewayTime(clock or clock_from_config(cfg.clock))
        """The gateway's time: the wall clock with its jumps absorbed (timekeeping.GatewayTime)."""
        self._devices_given = devices
        self.devices = devices or OpenedDevices()
        self.twin_factory = twin_factory or default_twin_factory(cfg)
        extra: list[Notifier] = [CommandNotifier(cfg.notify_command)] if cfg.notify_command else []
        self.alarms = AlarmCenter(
            self.clock,
            [LogNotifier(), *extra, *(notifiers or [])],
            self._store_alarm,
            cfg.watchdog.alarm_repeat_min,
        )
        self.state = GatewayState()
        self.health: dict[str, DeviceHealth] = {}
        self.cycles = CycleStats()
        self.store: AsyncStore | None = None
        self.twin: TwinPort | None = None
        self.minutes: MinuteMap | None = None
        self.guard = self.clock.guard
        self.status_port: int | None = None
        self._lock_fd: int | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._device_tasks: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._last_checkpoint_mono: float | None = None
        self._last_fresh_cgm_mono: float | None = None
        self._last_pump_mono: float | None = None
        self._last_cycle_mono: float | None = None
        self._started_mono = 0.0
        self._status_server: asyncio.AbstractServer | None = None
        self.on_cycle: list[Callable[[Gateway], None]] = []
        self.min_stall_real_s = MIN_STALL_REAL_S
        self.sync: SyncStage | None = None
        self.personaliser: PersonaliseStage | None = None
        self.decider: DecisionStage | None = None

    # --- life cycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run(self) -> None:
        """Start, run until :meth:`request_stop` (or SIGTERM/SIGINT in ``edgetwin run``), stop."""
        await self.start()
        try:
            await self._stopping.wait()
        finally:
            await self.stop()

    def request_stop(self) -> None:
        self._stopping.set()

    async def wait(self) -> None:
        await self._stopping.wait()

    async def start(self) -> None:
        cfg = self.cfg
        self._started_mono = self.clock.monotonic()
        self.state.started_utc = self.clock.now_utc()
        try:
            cfg.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(
                f"cannot create the data directory {cfg.data_dir}: {exc.strerror}", exc
            ) from exc
        self._lock()
        try:
            await self._open_store()
            await self._restore_twin()
            self.decider = self._make_decider()
            await self._load_status_history()
            if self._devices_given is None:
                self.devices = await open_devices(cfg, self.clock)
        except BaseException:
            await self.devices.aclose()
            await self._close_store()
            self._unlock()
            raise
        try:
            await self._start_tasks()
        except BaseException as exc:
            await self.stop()
            if isinstance(exc, OSError):
                raise StartupError(
                    f"cannot serve the status page on 127.0.0.1:{cfg.status_port}: {exc.strerror}", exc
                ) from exc
            raise
        self._write_run_file()
        systemd.notify("READY=1")
        log.info(
            "gateway started",
            extra={
                "event": "started",
                "mode": cfg.mode,
                "devices": dict(cfg.devices),
                "twin": self.twin_factory.description,
                "status_port": self.status_port,
                "replayed": self.state.replayed,
            },
        )

    async def _start_tasks(self) -> None:
        cfg = self.cfg
        self._started_mono = self.clock.monotonic()  # silence is measured from here, not from before start-up
        for role, src in self.devices.sources.items():
            self.health[role] = DeviceHealth(role, src.name, src.device_id)
            self._device_tasks[role] = asyncio.create_task(self._device_task(src), name=f"device-{role}")
        from edgetwin.gateway.watchdog import Watchdog

        self.watchdog = Watchdog(self)
        self._tasks["cycle"] = asyncio.create_task(self._cycle_loop(), name="cycle")
        self._tasks["watchdog"] = asyncio.create_task(self.watchdog.run(), name="watchdog")
        sync_task = await self._start_sync()
        if sync_task is not None:
            self._tasks["sync"] = sync_task
        if cfg.personalise_at and hasattr(self.twin, "adopt"):
            from edgetwin.gateway.personalise_stage import PersonaliseStage

            self.personaliser = PersonaliseStage(self, cfg.personalise_at)
            self.state.personalise = self.personaliser.state
            self._tasks["personalise"] = asyncio.create_task(self.personaliser.run(), name="personalise")
        if cfg.status_enabled:
            from edgetwin.gateway.status import serve_status

            self._status_server, self.status_port = await serve_status(self, cfg.status_port)

    async def stop(self) -> None:
        """Stop tasks, save a last checkpoint, close the store, release the lock."""
        systemd.notify("STOPPING=1")
        self._stopping.set()
        await cancel_and_wait([*self._device_tasks.values(), *self._tasks.values()])
        self._device_tasks.clear()
        self._tasks.clear()
        if self._status_server is not None:
            self._status_server.close()
            with contextlib.suppress(Exception):
                await self._status_server.wait_closed()
            self._status_server = None
        for src in self.devices.sources.values():
            with contextlib.suppress(Exception):
                await src.aclose()
        await self.devices.aclose()
        if self.store is not None and self.twin is not None:
            try:
                await self.checkpoint()
            except (StoreError, EdgeTwinError) as exc:
                log.error("final checkpoint failed: %s", exc, extra={"event": "checkpoint_failed"})
        await self._close_store()
        (self.cfg.data_dir / "gateway.run.json").unlink(missing_ok=True)
        self._unlock()
        log.info("gateway stopped", extra={"event": "stopped"})

    def _lock(self) -> None:
        path = self.cfg.data_dir / "gateway.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise GatewayLockedError(f"another gateway is running on {self.cfg.data_dir}") from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _write_run_file(self) -> None:
        doc = {
            "pid": os.getpid(),
            "status_port": self.status_port,
            "started_utc": self.state.started_utc.isoformat() if self.state.started_utc else None,
            "config": self.cfg.source,
        }
        path = self.cfg.data_dir / "gateway.run.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc), "utf-8")
        os.replace(tmp, path)

    async def _open_store(self) -> None:
        cap = int(self.cfg.max_store_mb * 2**20) if self.cfg.max_store_mb else None
        try:
            self.store = await AsyncStore.open(self.cfg.db_path, clock=self.clock, max_size_bytes=cap)
        except StoreError as exc:
            log.critical(
                "cannot open the store: %s",
                exc,
                extra={"event": "store_open_failed", "kind": type(exc).__name__},
            )
            raise StartupError(
                f"cannot open the store: {exc} (the file was left exactly as it is; "
                "see the install notes on damaged stores)",
                exc,
            ) from exc

    async def _close_store(self) -> None:
        if self.store is not None:
            with contextlib.suppress(Exception):
                await self.store.aclose()
            self.store = None

    async def _store_alarm(self, alarm: Any) -> object:
        if self.store is None:
            return None
        return await self.store.add(alarm)

    # --- twin: restore, replay, checkpoint ------------------------------------------------------

    @property
    def checkpoint_format(self) -> str:
        return CHECKPOINT_PREFIX + self.twin_factory.format

    async def _restore_twin(self) -> None:
        assert self.store is not None
        now = self.clock.now_utc()
        factory, profile = self.twin_factory, self.cfg.profile

        def rejected(record: object, exc: InputDataError) -> None:
            _log_rejected(record, exc, replay=True)

        snap = await self.store.call(lambda s: load_twin(s, factory, profile, now, rejected))
        self.twin, self.minutes = snap.twin, snap.minutes
        if snap.checkpoint is not None:
            self.state.restored_from_utc = snap.checkpoint.time_utc
        self.state.replayed = snap.replayed
        self._last_checkpoint_mono = self.clock.monotonic()
        log.info(
            "twin ready",
            extra={
                "event": "twin_ready",
                "restored_from": None if snap.checkpoint is None else snap.checkpoint.time_utc.isoformat(),
                "replayed": snap.replayed,
                "twin_minute": snap.twin.minute,
            },
        )

    def _to_twin(self, record: object, event_id: str, *, replay: bool = False) -> None:
        twin, mm = self.twin, self.minutes
        assert twin is not None and mm is not None
        try:
            feed_record(twin, mm, record, event_id)
        except InputDataError as exc:
            _log_rejected(record, exc, replay=replay)

    async def checkpoint(self) -> None:
        """Save the twin (and the UTC ↔ minute anchor) durably in the store."""
        assert self.store is not None and self.twin is not None and self.minutes is not None
        blob = msgpack.packb(
            {"anchor_ms": to_epoch_ms(self.minutes.anchor_utc), "twin": self.twin.checkpoint()},
            use_bin_type=True,
        )
        summary: dict[str, float] = {"twin_minute": float(self.twin.minute)}
        if self.state.latest is not None and self.state.latest.glucose_mg_dl is not None:
            summary["glucose_mg_dl"] = float(self.state.latest.glucose_mg_dl)
        fc = self.state.forecast
        if fc is not None:
            for h in (30, 60):
                idx = [i for i, m in enumerate(fc.minutes) if int(m) - fc.issued_minute == h]
                if idx:
                    i = idx[0]
                    summary[f"pred_{h}_mg_dl"] = float(fc.p50_mg_dl[i])
                    summary[f"pred_{h}_p10_mg_dl"] = float(fc.p10_mg_dl[i])
                    summary[f"pred_{h}_p90_mg_dl"] = float(fc.p90_mg_dl[i])
        cp = TwinCheckpoint(
            self.clock.now_utc(), self.checkpoint_format, self.twin_factory.version, blob, summary
        )
        await self.store.call(lambda s: s.save_checkpoint(cp))
        self._last_checkpoint_mono = self.clock.monotonic()
        self.state.checkpoint_utc = cp.time_utc
        log.debug("twin checkpointed", extra={"event": "checkpoint", "bytes": len(blob)})

    async def _load_status_history(self) -> None:
        assert self.store is not None
        now = self.clock.now_utc()
        readings = await self.store.call(
            lambda s: s.cgm_between(now - HISTORY_WINDOW, now + timedelta(hours=1))
        )
        for r in readings:
            if r.usable and r.glucose_mg_dl is not None:
                self.state.history.append((r.time_utc, r.glucose_mg_dl))
                self.state.latest = r

    # --- devices ----------------------------------------------------------------------------

    async def _resume_point(self, src: DeviceSource) -> ResumePoint:
        assert self.store is not None
        now = self.clock.now_utc()
        window = (now - RESUME_WINDOW, now + timedelta(days=1))
        if src.role == "cgm":
            readings = await self.store.call(lambda s: s.cgm_between(*window, device_id=src.device_id))
            return contiguous_resume(readings)
        if src.role == "pump":
            got = await self.store.call(lambda s: s.insulin_between(*window))
            seqs = [d.sequence for d in got if d.device_id == src.device_id and d.sequence is not None]
            last = max((d.time_utc for d in got if d.device_id == src.device_id), default=None)
            return ResumePoint(last, max(seqs) if seqs else None)
        if src.role == "patient":
            carbs = await self.store.call(lambda s: s.carbs_between(*window))
            return ResumePoint(max((c.time_utc for c in carbs if c.source == "patient"), default=None), None)
        return ResumePoint()

    async def _device_task(self, src: DeviceSource) -> None:
        """Read one device for the gateway's life; reconnect (from the store) after any failure."""
        h = self.health[src.role]
        backoff = 5.0
        while not self._stopping.is_set():
            try:
                resume = await self._resume_point(src)
                h.state = "connecting" if src.role in WATCHED_ROLES else "listening"
                async for record in src.records(resume):
                    h.state = "ok"
                    h.last_record_mono = self.clock.monotonic()
                    if not await self._handle(src, record):
                        break
                    backoff = 5.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                h.errors += 1
                h.last_error = f"{type(exc).__name__}: {exc}"
                h.state = "error"
                log.exception(
                    "device %s failed; reconnecting",
                    src.name,
                    extra={"event": "device_error", "device": src.name},
                )
            await self.clock.sleep(backoff)
            backoff = min(backoff * 2, 300.0)

    async def _handle(self, src: DeviceSource, record: object) -> bool:
        """Store ``record`` durably, acknowledge it, feed the pipeline. False: the store failed
        (nothing acknowledged; the device task reconnects later from the store's resume point)."""
        assert self.store is not None
        h = self.health[src.role]
        try:
            ack = await self.store.add(record)
        except StoreFullError as exc:
            self.state.store_state, self.state.store_error = "full", str(exc)
            h.state = "waiting for storage"
            await self.alarms.raise_alarm(
                "storage_full",
                "The gateway's storage is full: new readings are NOT being saved. Free space on the "
                "gateway (data already stored is kept).",
            )
            await self.clock.sleep(STORE_RETRY_S)
            return False
        except StoreError as exc:
            self.state.store_state, self.state.store_error = "error", str(exc)
            h.state = "waiting for storage"
            await self.alarms.raise_alarm("storage_failed", f"The gateway cannot save data: {exc}")
            await self.clock.sleep(STORE_RETRY_S)
            return False
        except (TypeError, ValueError) as exc:
            h.rejected += 1
            log.warning(
                "rejected a record from %s: %s",
                src.name,
                exc,
                extra={"event": "record_rejected", "device": src.name},
            )
            return True
        if self.state.store_state != "ok":
            self.state.store_state, self.state.store_error = "ok", ""
            await self.alarms.resolve("storage_full", "Storage has room again; readings are saved.")
            await self.alarms.resolve("storage_failed", "The gateway saves data again.")
        await src.acknowledge(record, ack)
        h.records += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "record acknowledged",
                extra={
                    "event": "acknowledged",
                    "device": src.device_id,
                    "table": ack.table,
                    "row_id": ack.row_id,
                    "sequence": getattr(record, "sequence", None),
                    "duplicate": ack.duplicate,
                },
            )
        if ack.duplicate:
            h.duplicates += 1
            if ack.conflicting:
                log.warning(
                    "a device re-sent a record with a different value; the stored one is kept",
                    extra={"event": "conflicting_duplicate", "device": src.name, "table": ack.table},
                )
            return True
        event_id = f"{ack.table}:{ack.row_id}"
        if isinstance(record, CgmReading):
            await self._on_cgm(src, record, event_id)
        elif isinstance(record, (InsulinDelivery, CarbEntry)):
            self._to_twin(record, event_id)
        elif isinstance(record, PumpStatus):
            self._last_pump_mono = self.clock.monotonic()
            await check_pump_status(self.alarms, record, self.cfg.watchdog, self.clock.now_utc())
        elif isinstance(record, HeartRateReading):
            pass
        return True

    async def _on_cgm(self, src: DeviceSource, r: CgmReading, event_id: str) -> None:
        h = self.health[src.role]
        if not r.backfilled:
            self.clock.witness(r.time_utc)  # a device confirming a new wall time makes it taken
        now = self.clock.now_utc()
        h.last_record_utc = r.time_utc
        skew = device_skew_s(r.time_utc, now)
        if not r.backfilled:
            h.clock_skew_s = skew
            if abs(skew) > SKEW_WARN_S:
                log.warning(
                    "device clock differs from the gateway's by %+.0f s",
                    skew,
                    extra={"event": "device_clock_skew", "device": src.name, "skew_s": skew},
                )
        if skew > FUTURE_TOLERANCE_S:
            await self.alarms.raise_alarm(
                f"device_clock_{src.role}",
                f"The {src.role} reports times {skew / 60:.0f} min in the future: its clock or the "
                "gateway's is wrong. Its readings are saved but not used.",
                "warning",
            )
            return
        if not r.backfilled and abs(skew) <= SKEW_WARN_S:
            await self.alarms.resolve(f"device_clock_{src.role}", f"The {src.role} clock agrees again.")
        self._to_twin(r, event_id)
        if r.usable and r.glucose_mg_dl is not None:
            if self.state.latest is None or r.time_utc >= self.state.latest.time_utc:
                self.state.latest = r
            self.state.history.append((r.time_utc, r.glucose_mg_dl))
            if (now - r.time_utc) <= timedelta(minutes=self.cfg.watchdog.no_data_alarm_min / 2):
                self._last_fresh_cgm_mono = self.clock.monotonic()
        if not r.backfilled:
            self._wake.set()

    # --- the cycle ----------------------------------------------------------------------------

    async def _cycle_loop(self) -> None:
        while True:
            sleeper = asyncio.create_task(self.clock.sleep(self.cfg.cycle_min * 60.0))
            waiter = asyncio.create_task(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waiter.cancel()
            self._wake.clear()
            if self._last_cycle_mono is not None:
                # At most one decision per cycle: a 1- or 3-minute sensor does not multiply the work.
                gap = (
                    self.cfg.cycle_min * 60.0
                    - CYCLE_SLACK_S
                    - (self.clock.monotonic() - self._last_cycle_mono)
                )
                if gap > 0:
                    await self.clock.sleep(gap)
            try:
                await self._cycle()
            except (StoreError, EdgeTwinError) as exc:
                log.error("cycle failed: %s", exc, extra={"event": "cycle_failed"})

    async def _cycle(self) -> None:
        """One decision cycle: advance, forecast, decide, output, checkpoint when due."""
        assert self.twin is not None and self.minutes is not None
        cpu0, wall0 = time.process_time(), time.perf_counter()
        self._last_cycle_mono = self.clock.monotonic()
        now = self.clock.now_utc()
        self.twin.advance_to(self.minutes.minute(now))
        try:
            self.state.forecast = self.twin.forecast(FORECAST_HORIZON_MIN)
            self.state.forecast_issued_utc = now
        except InputDataError as exc:
            log.debug("no forecast: %s", exc, extra={"event": "no_forecast"})
        if self.decider is not None:
            try:
                await self.decider.decide(now)
            except (StoreError, EdgeTwinError, ValueError) as exc:
                # Nothing reaches the pump from a failed decision; a temp basal ends by itself.
                log.error("decision failed: %s", exc, extra={"event": "decision_failed"})
        due = self._last_checkpoint_mono is None or (
            self.clock.monotonic() - self._last_checkpoint_mono >= self.cfg.checkpoint_every_min * 60.0
        )
        if due:
            await self.checkpoint()
        cpu = time.process_time() - cpu0
        self.cycles.count += 1
        self.cycles.cpu_s_last = cpu
        self.cycles.cpu_s_total += cpu
        self.cycles.wall_s_last = time.perf_counter() - wall0
        for cb in self.on_cycle:
            cb(self)

    # --- sync ---------------------------------------------------------------------------------

    async def _start_sync(self) -> asyncio.Task[None] | None:
        if self.cfg.sync is None:
            self.state.sync = {"state": "off", "detail": "no [sync] endpoint configured; data stays local"}
            return None
        from edgetwin.gateway.sync_stage import SyncStage

        try:
            self.sync = SyncStage(self, self.cfg.sync)
        except ImportError:
            self.state.sync = {
                "state": "unavailable",
                "detail": "this build has no sync package; data stays queued",
            }
            log.error("sync is configured but not installed", extra={"event": "sync_unavailable"})
            return None
        except EdgeTwinError as exc:  # an unreadable or too open credential file
            raise StartupError(f"sync: {exc}", exc) from exc
        self.state.sync = self.sync.state
        return asyncio.create_task(self.sync.run(), name="sync")

    # --- helpers for status/watchdog ------------------------------------------------------------

    def seconds_since_fresh_glucose(self) -> float:
        ref = self._last_fresh_cgm_mono if self._last_fresh_cgm_mono is not None else self._started_mono
        return self.clock.monotonic() - ref

    def never_had_fresh_glucose(self) -> bool:
        return self._last_fresh_cgm_mono is None

    def seconds_since_pump(self) -> float | None:
        if "pump" not in self.devices.sources:
            return None
        ref = self._last_pump_mono if self._last_pump_mono is not None else self._started_mono
        return self.clock.monotonic() - ref

    async def restart_device(self, role: str, why: str) -> None:
        """Cancel and restart one device task (the watchdog's remedy for a stall)."""
        task = self._device_tasks.get(role)
        src = self.devices.sources[role]
        h = self.health[role]
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await src.aclose()
        h.restarts += 1
        h.state = "restarting"
        h.last_record_mono = self.clock.monotonic()
        log.warning(
            "restarting device task %s: %s",
            src.name,
            why,
            extra={"event": "device_restart", "device": src.name},
        )
        if not self._stopping.is_set():
            self._device_tasks[role] = asyncio.create_task(self._device_task(src), name=f"device-{role}")

    def suggestions_status(self) -> dict[str, object]:
        if self.decider is not None:
            return {"available": True, "detail": f"{self.cfg.mode}: every suggestion passes the safety gate"}
        if self.cfg.limits.safety is None:
            detail = "this build has no suggestion engine and safety gate: glucose and forecasts only"
        else:
            detail = "suggestions need the living twin, which this build does not have"
        return {"available": False, "detail": detail}

    def _make_decider(self) -> DecisionStage | None:
        if self.cfg.limits.safety is None or not hasattr(self.twin, "ensemble"):
            return None
        try:
            from edgetwin.gateway.decide import DecisionStage
        except ImportError:
            return None
        return DecisionStage(self, self.cfg.limits.safety)

    def uptime_s(self) -> float:
        return self.clock.monotonic() - self._started_mono
