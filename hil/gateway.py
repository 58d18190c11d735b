"""The gateway under test, run exactly as in production: in the bench's process or in its own.

Both forms run the same :class:`edgetwin.gateway.runtime.Gateway` on the same configuration file,
store, pipeline and (scaled) clock configuration that ``edgetwin run --config FILE`` uses:

* :class:`InProcessGateway`: ``Gateway(cfg)`` on the bench's event loop, with the bench's clock
  object (so a scenario can step the wall clock: ``clock_jump``) and the device sources opened by
  the bench over its simulators (the same drivers ``open_devices`` would build).
* :class:`ProcessGateway`: ``python -m edgetwin run --config FILE`` as a child process, which the
  bench can stop (SIGTERM) or kill (SIGKILL) and start again; it opens its devices itself by
  their names (serial ptys created by the bench). Its clock is anchored to the same real time as
  the bench's, so both see the same accelerated time.

Each records its lives (:class:`Life`: when it became ready and how it ended) for the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgetwin.clock import Clock
from edgetwin.gateway.config import GatewayConfig
from hil.errors import BenchError

__all__ = ["GatewayUnderTest", "InProcessGateway", "Life", "ProcessGateway"]

log = logging.getLogger("hil.gateway")

READY_TIMEOUT_S = 120.0
"""Real seconds a gateway process may take to start before the bench gives up (a bench failure,
not a verdict on the gateway: a busy machine can be slow to import numba and bumble)."""
STOP_TIMEOUT_S = 30.0
"""Real seconds a gateway process gets to exit on SIGTERM before the bench kills it."""
STOP_GRACE_S = 2.0
"""Real seconds ``Gateway.stop()`` normally needs several times over (it takes well under half a
second); at x1800 every second waited is 30 clock minutes of the scenario's timeline."""
STOP_ROUNDS = 4
GATEWAY_TASKS = ("device-", "cycle", "watchdog", "sync")
"""Names of the gateway's own tasks (``edgetwin.gateway.runtime``)."""
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Life:
    """One run of the gateway, in clock time (UTC) and world minutes."""

    started_utc: str
    started_minute: int
    ended_utc: str | None = None
    ended_minute: int | None = None
    ended_by: str = ""
    """``stop`` (SIGTERM / clean stop), ``kill`` (SIGKILL) or ``end`` (the run finished)."""
    pid: int | None = None
    stop_hung: list[str] | None = None
    """Gateway tasks that ignored the stop's cancellation and had to be cancelled again."""


class GatewayUnderTest(ABC):
    """What the bench needs from a gateway, in either form."""

    run = ""
    status_port: int | None = None

    def __init__(self, clock: Clock, minute: Callable[[], int]) -> None:
        self.clock = clock
        self._minute = minute
        self.lives: list[Life] = []

    @property
    @abstractmethod
    def alive(self) -> bool: ...

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self, why: str = "stop") -> None: ...

    async def kill(self) -> None:
        raise BenchError(f"a {self.run} gateway cannot be killed with SIGKILL")

    def jump_clock(self, seconds: float) -> None:
        raise BenchError(f"the wall clock of a {self.run} gateway cannot be stepped by the bench")

    def _born(self, pid: int | None) -> None:
        self.lives.append(Life(self.clock.now_utc().isoformat(), self._minute(), pid=pid))

    def _died(self, why: str) -> None:
        if self.lives and self.lives[-1].ended_utc is None:
            life = self.lives[-1]
            life.ended_utc = self.clock.now_utc().isoformat()
            life.ended_minute = self._minute()
            life.ended_by = why


class InProcessGateway(GatewayUnderTest):
    run = "in-process"

    def __init__(
        self,
        cfg: GatewayConfig,
        clock: Clock,
        minute: Callable[[], int],
        open_devices: Callable[[], Awaitable[Any]],
    ) -> None:
        super().__init__(clock, minute)
        self.cfg = cfg
        self._open_devices = open_devices
        self.gateway: Any = None
        self.stop_grace_s = STOP_GRACE_S
        self._log_handler: logging.Handler | None = None
        self._saved_levels: dict[str, tuple[int, bool]] = {}

    @property
    def alive(self) -> bool:
        return self.gateway is not None

    async def start(self) -> None:
        from edgetwin.gateway.logs import configure_logging
        from edgetwin.gateway.runtime import Gateway

        if self._log_handler is None:
            for name in ("edgetwin", "devices", "sync", "bumble"):
                lg = logging.getLogger(name)
                self._saved_levels[name] = (lg.level, lg.propagate)
            self._log_handler = configure_logging(self.cfg.log_format, self.cfg.log_level, self.cfg.log_file)
        devices = await self._open_devices()
        gw = Gateway(self.cfg, clock=self.clock, devices=devices)
        await gw.start()
        self.gateway = gw
        self.status_port = gw.status_port
        self._born(os.getpid())

    async def stop(self, why: str = "stop") -> None:
        """``Gateway.stop()``; if it has not returned after ``STOP_GRACE_S`` real seconds, a
        gateway task ignored its cancellation (Python 3.11's ``asyncio.wait_for`` swallows a
        cancellation that coincides with its result): the bench cancels the gateway's tasks again,
        by name, and notes it on the life (``stop_hung``) so the report shows it."""
        gw, self.gateway = self.gateway, None
        if gw is None:
            return
        stopping = asyncio.create_task(gw.stop(), name="hil-gateway-stop")
        hung: list[str] = []
        for _ in range(STOP_ROUNDS):
            await asyncio.wait({stopping}, timeout=self.stop_grace_s)
            if stopping.done():
                break
            stuck = [
                t for t in asyncio.all_tasks() if t.get_name().startswith(GATEWAY_TASKS) and not t.done()
            ]
            hung += [t.get_name() for t in stuck]
            log.warning("gateway stop hangs; cancelling %s again", [t.get_name() for t in stuck])
            for t in stuck:
                t.cancel()
        if not stopping.done():
            stopping.cancel()
            raise BenchError(
                f"the in-process gateway did not stop (tasks still running: {sorted(set(hung))})"
            )
        stopping.result()
        self._died(why)
        if hung:
            self.lives[-1].stop_hung = sorted(set(hung))

    def jump_clock(self, seconds: float) -> None:
        jump = getattr(self.clock, "jump_wall_clock", None)
        if jump is None:
            raise BenchError("this clock cannot jump")
        jump(seconds)

    def close_logging(self) -> None:
        """Take the gateway's log handler off the shared loggers (the bench process lives on)."""
        handler, self._log_handler = self._log_handler, None
        if handler is None:
            return
        for name, (level, propagate) in self._saved_levels.items():
            lg = logging.getLogger(name)
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate
        handler.close()


class ProcessGateway(GatewayUnderTest):
    run = "process"

    def __init__(
        self, config_path: Path, cfg: GatewayConfig, clock: Clock, minute: Callable[[], int]
    ) -> None:
        super().__init__(clock, minute)
        self.config_path = config_path
        self.cfg = cfg
        self.stderr_path = config_path.parent / "gateway.stderr.txt"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(REPO), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        return env

    async def start(self) -> None:
        run_file = self.cfg.data_dir / "gateway.run.json"
        self.status_port = None
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edgetwin", "run", "--config", str(self.config_path)],
                cwd=str(REPO),
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        proc = self.proc
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            doc = _read_json(run_file)
            if doc is not None and doc.get("pid") == proc.pid:
                break
            if proc.poll() is not None:
                raise BenchError(
                    f"the gateway exited with status {proc.returncode} while starting: {self._stderr_tail()}"
                )
            if time.monotonic() > deadline:
                proc.kill()
                raise BenchError(
                    f"the gateway did not start within {READY_TIMEOUT_S:.0f} s: {self._stderr_tail()}"
                )
            await asyncio.sleep(0.05)
        port = doc.get("status_port")
        self.status_port = int(port) if isinstance(port, int) else None
        self._born(proc.pid)

    async def stop(self, why: str = "stop") -> None:
        proc = self.proc
        if proc is None:
            return
        hung = False
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                code = await asyncio.to_thread(proc.wait, STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:  # as systemd would after TimeoutStopSec
                hung = True
                log.warning("gateway ignored SIGTERM for %.0f s: killed", STOP_TIMEOUT_S)
                proc.kill()
                await asyncio.to_thread(proc.wait)
            else:
                if code != 0:
                    log.warning("gateway exited with status %s on SIGTERM", code)
        self.proc = None
        self.status_port = None
        self._died(why)
        if hung:
            self.lives[-1].stop_hung = [f"SIGTERM ignored for {STOP_TIMEOUT_S:.0f} s; killed"]

    async def kill(self) -> None:
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait)
        self.proc = None
        self.status_port = None
        self._died("kill")

    def _stderr_tail(self) -> str:
        try:
            text = self.stderr_path.read_text("utf-8", errors="replace").strip()
        except OSError:
            return "(no stderr)"
        return text[-800:] or "(no stderr)"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
