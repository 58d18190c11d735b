"""A fault-injecting TCP proxy between the gateway and the cloud twin, on loopback.

The gateway's ``[sync] endpoint`` points at the proxy, the proxy at the real cloud service, so
network and cloud faults reach the gateway's real HTTP stack (``requests`` in its sync thread,
whether the gateway runs in the bench's process or its own) without touching its code:

* ``ok``: bytes pass both ways unchanged;
* ``outage``: the network is down — every connection is reset as soon as it opens, and open ones
  are cut when the outage starts;
* ``error``: the cloud answers every request with an HTTP 5xx (``status``) and closes;
* ``timeout``: the cloud accepts a request and never answers while the fault lasts; the
  connection is dropped when it ends (or the gateway's read timeout fires first).

Counters (``stats``) say how many connections each mode saw, for the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from http import HTTPStatus

__all__ = ["CloudProxy"]

log = logging.getLogger("hil.cloudproxy")

MODES = ("ok", "outage", "error", "timeout")
MAX_HEADER_BYTES = 64 * 1024


class CloudProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode = "ok"
        self.status = 503
        self.stats: Counter[str] = Counter()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> CloudProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._cut()
            await asyncio.gather(*self._open, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    def set_mode(self, mode: str, *, status: int = 503) -> None:
        """Switch what the next connections see; open connections are cut."""
        if mode not in MODES:
            raise ValueError(f"proxy mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode == self.mode and status == self.status:
            return
        log.info("cloud proxy: %s", mode, extra={"event": "proxy_mode", "mode": mode, "status": status})
        self.mode, self.status = mode, status
        self._cut()
        self._changed.set()
        self._changed = asyncio.Event()

    def _cut(self) -> None:
        for task in list(self._open):
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._open.add(task)
        mode = self.mode
        self.stats[mode] += 1
        try:
            if mode == "ok":
                await self._forward(reader, writer)
            elif mode == "error":
                if await _read_request(reader):
                    try:
                        reason = HTTPStatus(self.status).phrase
                    except ValueError:
                        reason = "Server Error"
                    body = b'{"error": "injected by the HIL bench"}'
                    writer.write(
                        f"HTTP/1.1 {self.status} {reason}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                        + body
                    )
                    await writer.drain()
            elif mode == "timeout":
                await _read_request(reader)
                await self._changed.wait()
            # outage: nothing — the connection is closed at once
        except (asyncio.CancelledError, ConnectionError, OSError):
            pass
        finally:
            self._open.discard(task)
            if mode == "outage" or mode == "timeout":
                writer.transport.abort()
            else:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        try:

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
                with contextlib.suppress(OSError):
                    dst.write_eof()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            up_writer.close()
            with contextlib.suppress(Exception):
                await up_writer.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> bool:
    """Read one HTTP request (headers and a Content-Length body); False if the peer went away."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return False
    if len(head) > MAX_HEADER_BYTES:
        return False
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            with contextlib.suppress(ValueError):
                length = int(value.strip())
    if length:
        try:
            await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            return False
    return True
