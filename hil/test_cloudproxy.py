"""The fault proxy, with a real HTTP client (requests) and a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from hil.cloudproxy import CloudProxy


class _Echo(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def upstream() -> Iterator[tuple[str, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _post(url: str, body: bytes = b"batch", timeout: float = 5.0) -> int | str:
    try:
        with requests.Session() as s:
            return s.post(url + "/v1/batches", data=body, timeout=timeout).status_code
    except requests.Timeout:
        return "timeout"
    except requests.ConnectionError:
        return "connection error"


@pytest.mark.asyncio
async def test_modes(upstream: tuple[str, int]) -> None:
    proxy = await CloudProxy(*upstream).start()
    try:
        assert await asyncio.to_thread(_post, proxy.url) == 200
        proxy.set_mode("error", status=503)
        assert await asyncio.to_thread(_post, proxy.url) == 503
        proxy.set_mode("outage")
        assert await asyncio.to_thread(_post, proxy.url) == "connection error"
        proxy.set_mode("timeout")
        assert await asyncio.to_thread(_post, proxy.url, b"x", 0.5) == "timeout"
        proxy.set_mode("ok")
        assert await asyncio.to_thread(_post, proxy.url, b"y" * 200_000) == 200
        assert proxy.stats == {"ok": 2, "error": 1, "outage": 1, "timeout": 1}
    finally:
        await proxy.stop()


@pytest.mark.asyncio
async def test_a_hung_request_is_dropped_when_the_fault_ends(upstream: tuple[str, int]) -> None:
    proxy = await CloudProxy(*upstream).start()
    try:
        proxy.set_mode("timeout")
        pending = asyncio.create_task(asyncio.to_thread(_post, proxy.url, b"x", 30.0))
        while proxy.stats["timeout"] == 0:
            await asyncio.sleep(0.02)
        proxy.set_mode("ok")
        assert await pending == "connection error"  # not an answer: the client retries
        assert await asyncio.to_thread(_post, proxy.url) == 200
    finally:
        await proxy.stop()


@pytest.mark.asyncio
async def test_open_connections_are_cut_when_the_network_goes(upstream: tuple[str, int]) -> None:
    proxy = await CloudProxy(*upstream).start()
    try:
        with requests.Session() as s:  # keeps its connection alive between requests
            r = await asyncio.to_thread(s.post, proxy.url + "/a", data=b"1", timeout=5)
            assert r.status_code == 200
            proxy.set_mode("outage")
            with pytest.raises(requests.ConnectionError):
                await asyncio.to_thread(s.post, proxy.url + "/b", data=b"2", timeout=5)
    finally:
        await proxy.stop()


def test_unknown_mode() -> None:
    proxy = CloudProxy("127.0.0.1", 1)
    with pytest.raises(ValueError):
        proxy.set_mode("flaky")
