"""A real cloud on loopback (uvicorn + SQLite) and a fault-injecting requests adapter."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from sync.auth import Credential
from sync.cloud.app import create_app
from sync.cloud.db import CloudDB
from sync.cloud.server import ServerThread

_ids = itertools.count(1)


@dataclass
class Cloud:
    url: str
    db: CloudDB

    def add_gateway(self, patient_id: str, gateway_id: str | None = None) -> Credential:
        cred = Credential.issue(gateway_id or f"gw-{next(_ids)}", patient_id, self.url)
        self.db.add_gateway(cred.gateway_id, cred.patient_id, cred.key)
        return cred


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    db = CloudDB(f"sqlite:///{tmp_path / 'cloud.db'}")
    server = ServerThread(create_app(db)).start()
    try:
        yield Cloud(server.url, db)
    finally:
        server.stop()
        db.close()


Fault = str  # "ok" | "500" | "503" | "timeout_after" | "reset" | "down" | "duplicate"


@dataclass
class FaultAdapter(HTTPAdapter):
    """Injects network faults in front of a real HTTP exchange.

    ``plan`` is consumed one entry per request (then ``default``); ``down`` makes every request
    fail to connect. ``timeout_after`` delivers the request, then loses the answer (the server did
    the work, the client does not know); ``duplicate`` delivers it twice; ``replay_later``
    re-delivers earlier requests out of order.
    """

    plan: list[Fault] = field(default_factory=list)
    default: Fault = "ok"
    down: Callable[[], bool] = lambda: False
    sent: list[requests.PreparedRequest] = field(default_factory=list)
    faults_seen: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__()

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        fault = self.plan.pop(0) if self.plan else self.default
        if self.down():
            fault = "down"
        self.faults_seen[fault] = self.faults_seen.get(fault, 0) + 1
        if fault in ("down", "reset"):
            raise requests.ConnectionError("connection reset by peer (injected)")
        if fault in ("500", "503"):
            resp = requests.Response()
            resp.status_code = int(fault)
            resp._content = b'{"error": "injected"}'
            resp.request = request
            return resp
        self.sent.append(request.copy())
        if fault == "duplicate":
            super().send(request.copy(), *args, **kwargs)
        if fault == "replay_later" and len(self.sent) > 3:
            for old in self.sent[-4:-1][::-1]:
                super().send(old.copy(), *args, **kwargs)
        resp = super().send(request, *args, **kwargs)
        if fault == "timeout_after":
            raise requests.ReadTimeout("answer lost (injected)")
        return resp


def session_with(adapter: HTTPAdapter) -> requests.Session:
    s = requests.Session()
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s
