"""A local Nightscout contract fake (Starlette), implementing the documented semantics we rely on.

* v1 ``POST /api/v1/{entries,treatments,devicestatus}`` (JSON array), ``api-secret`` = SHA-1 of
  the secret; entries deduplicate on (type, date), treatments on (created_at, eventType), as
  Nightscout's v1 upserts do. ``GET /api/v1/entries.json?count=N`` newest first.
* v2 ``GET /api/v2/authorization/request/{access_token}`` → ``{"token": JWT}``.
* v3 ``POST /api/v3/{collection}``: requires ``date`` and ``app``; a known ``identifier`` is a
  deduplication (200, ``isDeduplication``), else 201. ``GET /api/v3/{collection}/history/{ms}``:
  documents modified after ``ms``, oldest modification first.
* Faults: ``fail_next`` answers that many requests with 503; ``lose_next`` stores the document
  and then answers 504, as a reverse proxy does when the app finished after its timeout (the
  client cannot know the upload happened).
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

COLLECTIONS = ("entries", "treatments", "devicestatus")


class NightscoutFake:
    def __init__(
        self, api_secret: str = "0123456789abcdef", access_token: str = "edgetwin-1234567890abcdef"
    ) -> None:
        self.secret_sha1 = hashlib.sha1(api_secret.encode()).hexdigest()
        self.access_token = access_token
        self.jwts: set[str] = set()
        self.docs: dict[str, list[dict[str, Any]]] = {c: [] for c in COLLECTIONS}
        self.fail_next = 0
        self.lose_next = 0
        self.requests = 0
        self._clock = itertools.count(int(time.time() * 1000))
        self.app = Starlette(routes=[
            Route("/api/v1/{col}", self.v1_post, methods=["POST"]),
            Route("/api/v1/entries.json", self.v1_entries, methods=["GET"]),
            Route("/api/v2/authorization/request/{token}", self.v2_auth, methods=["GET"]),
            Route("/api/v3/{col}", self.v3_post, methods=["POST"]),
            Route("/api/v3/{col}/history/{since}", self.v3_history, methods=["GET"]),
        ])  # fmt: skip

    def _fault(self) -> Response | None:
        self.requests += 1
        if self.fail_next > 0:
            self.fail_next -= 1
            return JSONResponse({"status": 503, "message": "injected"}, status_code=503)
        return None

    def _store(self, col: str, doc: dict[str, Any]) -> bool:
        """Insert or deduplicate; True when new."""
        docs = self.docs[col]
        if "identifier" in doc:
            same = [d for d in docs if d.get("identifier") == doc["identifier"]]
        elif col == "entries":
            same = [d for d in docs if d.get("type") == doc.get("type") and d.get("date") == doc.get("date")]
        elif col == "treatments":
            same = [d for d in docs if d.get("created_at") == doc.get("created_at")
                    and d.get("eventType") == doc.get("eventType")]  # fmt: skip
        else:
            same = []
        stamp = next(self._clock)
        if same:
            same[0].update(doc, srvModified=stamp)
            return False
        docs.append({**doc, "srvCreated": stamp, "srvModified": stamp})
        return True

    def _lost(self) -> bool:
        if self.lose_next > 0:
            self.lose_next -= 1
            return True
        return False

    async def v1_post(self, request: Request) -> Response:
        fault = self._fault()
        if fault:
            return fault
        if request.headers.get("api-secret") != self.secret_sha1:
            return JSONResponse({"status": 401, "message": "Unauthorized"}, status_code=401)
        col = request.path_params["col"]
        if col not in COLLECTIONS:
            return JSONResponse({"status": 404}, status_code=404)
        body = await request.json()
        if not isinstance(body, list):
            body = [body]
        for doc in body:
            self._store(col, dict(doc))
        if self._lost():
            return JSONResponse({"status": 504}, status_code=504)
        return JSONResponse(body)

    async def v1_entries(self, request: Request) -> Response:
        count = int(request.query_params.get("count", 10))
        return JSONResponse(sorted(self.docs["entries"], key=lambda d: -d["date"])[:count])

    async def v2_auth(self, request: Request) -> Response:
        if request.path_params["token"] != self.access_token:
            return JSONResponse({"status": 401}, status_code=401)
        jwt = secrets.token_hex(16)
        self.jwts.add(jwt)
        return JSONResponse({"token": jwt, "iat": 0, "exp": 0})

    async def v3_post(self, request: Request) -> Response:
        fault = self._fault()
        if fault:
            return fault
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.jwts:
            return JSONResponse({"status": 401}, status_code=401)
        col = request.path_params["col"]
        doc = await request.json()
        if col not in COLLECTIONS or not isinstance(doc, dict) or "date" not in doc or "app" not in doc:
            return JSONResponse({"status": 400, "message": "Bad or missing date/app"}, status_code=400)
        new = self._store(col, doc)
        if self._lost():
            return JSONResponse({"status": 504}, status_code=504)
        status = 201 if new else 200
        return JSONResponse({"status": status, "identifier": doc.get("identifier"), "isDeduplication": not new},
                            status_code=status)  # fmt: skip

    async def v3_history(self, request: Request) -> Response:
        since = int(request.path_params["since"])
        col = request.path_params["col"]
        docs = sorted(
            (d for d in self.docs.get(col, []) if d["srvModified"] > since), key=lambda d: d["srvModified"]
        )
        return JSONResponse({"status": 200, "result": docs})
