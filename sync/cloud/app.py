"""The cloud HTTP service (Starlette on uvicorn).

Endpoints (all but ``/health`` signed per :mod:`sync.auth`):

* ``GET  /health`` — ``{"status": "ok", "database": "sqlite"|"postgresql", "time_ms": ...}``
* ``POST /v1/batches`` — a batch (:mod:`sync.codec`) → ``{"acked": seq, "duplicate": bool,
  "new": n, "duplicates": n}``; stored exactly once per (gateway, seq) and per record identity.
* ``GET  /v1/patients/{patient}/history?kind=cgm&start_ms=&end_ms=&limit=`` — JSON records.
* ``GET  /v1/patients/{patient}/params?after=N`` — the newest signed parameter update (msgpack,
  :mod:`sync.downlink`) if newer than ``N``, else 204.

Status codes: 400 malformed payload or query, 401 missing/bad credential, stale timestamp or
replay (with ``X-EdgeTwin-Server-Time``), 403 a gateway touching another patient's data or
another gateway's batch, 404 unknown route, 413 payload too large, 503 database failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sync.auth import HEADER_SERVER_TIME, NonceCache, verify_signature
from sync.cloud.db import CloudDB, GatewayInfo
from sync.codec import KINDS, MAX_WIRE_BYTES, decode_batch
from sync.downlink import ParamUpdate, encode_update
from sync.errors import AuthError, PayloadError, PayloadTooLargeError, SyncError

__all__ = ["create_app"]

log = logging.getLogger("edgetwin.cloud")


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Keys:
    """Gateway lookups with a short cache (revocation takes effect within ``ttl_s``)."""

    def __init__(self, db: CloudDB, ttl_s: float = 10.0) -> None:
        self._db = db
        self._ttl = ttl_s
        self._cache: dict[str, tuple[float, GatewayInfo | None]] = {}

    def info(self, gateway_id: str) -> GatewayInfo | None:
        now = time.monotonic()
        hit = self._cache.get(gateway_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        info = self._db.gateway(gateway_id)
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[gateway_id] = (now + self._ttl, info)
        return info

    def get(self, gateway_id: str) -> bytes | None:
        info = self.info(gateway_id)
        return None if info is None or info.revoked else info.key


def create_app(
    db: CloudDB, *, now_ms: Callable[[], int] | None = None, nonces: NonceCache | None = None
) -> Starlette:
    clock = now_ms or (lambda: int(time.time() * 1000))
    replay = nonces or NonceCache()
    keys = _Keys(db)

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_WIRE_BYTES):
            raise _HTTPError(413, "payload too large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_WIRE_BYTES:
                raise _HTTPError(413, "payload too large")
            chunks.append(chunk)
        return b"".join(chunks)

    def authenticate(request: Request, body: bytes) -> GatewayInfo:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            gw = verify_signature(
                request.headers, request.method, path, body, keys, now_ms=clock(), nonces=replay
            )
        except AuthError as exc:
            raise _HTTPError(401, str(exc)) from None
        info = keys.info(gw)
        assert info is not None
        return info

    def own_patient(info: GatewayInfo, patient: str) -> None:
        if patient != info.patient_id:
            log.warning("gateway %s asked for another patient's data", info.gateway_id)
            raise _HTTPError(403, "this gateway may only access its own patient")

    async def health(request: Request) -> Response:
        try:
            await asyncio.to_thread(db.patients)
        except Exception as exc:  # report, don't crash: health must answer
            return JSONResponse({"status": "error", "database": db.kind, "detail": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok", "database": db.kind, "time_ms": clock()})

    async def ingest(request: Request) -> Response:
        body = await read_body(request)
        info = authenticate(request, body)
        try:
            batch = decode_batch(body) if len(body) < 65536 else await asyncio.to_thread(decode_batch, body)
        except PayloadTooLargeError as exc:
            raise _HTTPError(413, str(exc)) from None
        except PayloadError as exc:
            raise _HTTPError(400, str(exc)) from None
        if batch.gateway_id != info.gateway_id:
            raise _HTTPError(403, "a gateway may only upload its own batches")
        try:
            result = await asyncio.wrap_future(db.submit(db.ingest_fn(batch, info.patient_id, clock())))
        except SyncError as exc:
            log.error("ingest failed: %s", exc)
            raise _HTTPError(503, "database unavailable") from None
        return JSONResponse(
            {"acked": result.batch_seq, "duplicate": result.duplicate_batch, "new": result.new,
             "duplicates": result.duplicate_records}
        )  # fmt: skip

    def _int_arg(request: Request, name: str, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise _HTTPError(400, f"{name} must be an integer") from None

    async def history(request: Request) -> Response:
        info = authenticate(request, await read_body(request))
        own_patient(info, request.path_params["patient"])
        kind = request.query_params.get("kind", "cgm")
        if kind not in KINDS:
            raise _HTTPError(400, f"unknown kind {kind!r}")
        start = _int_arg(request, "start_ms", 0)
        end = _int_arg(request, "end_ms", 2**62)
        limit = max(1, min(_int_arg(request, "limit", 10_000), 100_000))
        rows = await asyncio.to_thread(db.history, info.patient_id, kind, start, end, limit)
        return JSONResponse({"patient": info.patient_id, "kind": kind, "records": rows})

    async def params(request: Request) -> Response:
        info = authenticate(request, await read_body(request))
        own_patient(info, request.path_params["patient"])
        after = _int_arg(request, "after", 0)
        latest = await asyncio.to_thread(db.latest_param_update, info.patient_id)
        if latest is None or latest.version <= after:
            return Response(status_code=204)
        update = ParamUpdate(
            latest.patient_id, latest.version, latest.created_ms, latest.params, latest.basis
        )
        return Response(encode_update(update, info.key), media_type="application/msgpack")

    def wrap(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                response: Response = await handler(request)
                return response
            except _HTTPError as exc:
                headers = {HEADER_SERVER_TIME: str(clock())} if exc.status == 401 else None
                return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)

        return endpoint

    routes = [
        Route("/health", wrap(health), methods=["GET"]),
        Route("/v1/batches", wrap(ingest), methods=["POST"]),
        Route("/v1/patients/{patient}/history", wrap(history), methods=["GET"]),
        Route("/v1/patients/{patient}/params", wrap(params), methods=["GET"]),
    ]
    return Starlette(routes=routes)
