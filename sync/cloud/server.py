"""Running the cloud service: in the foreground (``edgetwin cloud serve``) or in a background
thread on loopback (tests, benchmarks, the demo)."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

__all__ = ["ServerThread", "serve"]


def serve(app: Any, host: str, port: int, *, log_level: str = "info") -> None:
    """Serve until interrupted. TLS is terminated by a reverse proxy in front (documented)."""
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, server_header=False)


class ServerThread:
    """A uvicorn server on ``127.0.0.1`` with an OS-chosen port, in a daemon thread."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                lifespan="off", server_header=False)  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="edgetwin-cloud", daemon=True)
        self.port = 0
        self.host = host

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the cloud server did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
