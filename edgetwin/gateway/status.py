"""The patient's status page and its JSON endpoint, served on 127.0.0.1 only.

* ``GET /`` — the page (:mod:`edgetwin.gateway.status_page`): current glucose and trend, a chart
  of the last hours with the forecast band, the last suggestion with its reason, alarms, device
  and sync health. Everything is inline (no CDN): the gateway works offline.
* ``GET /api/status`` — the same as JSON (:func:`status_document`; ``schema`` 1). Keys: ``time_utc``,
  ``mode``, ``glucose`` (``mg_dl``, ``time_utc``, ``age_min``, ``trend_mg_dl_per_min``,
  ``trend_arrow``), ``history`` (``time_utc``, ``mg_dl``), ``forecast`` (``issued_utc``, ``model``,
  ``points``: ``time_utc``, ``p10_mg_dl``, ``p50_mg_dl``, ``p90_mg_dl``), ``suggestion``,
  ``suggestions`` (whether this build suggests), ``alarms``, ``devices``, ``sync``, ``store``,
  ``twin``, ``cycles``.
* ``GET /healthz`` — ``{"ok": bool}``: 200 while no urgent alarm is active, 503 otherwise.

A tiny HTTP/1.1 server on asyncio streams (GET only, one request per connection): the page is
for one patient on the same machine, so it needs no framework.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from datetime import datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from edgetwin.gateway.status_page import PAGE_HTML

if TYPE_CHECKING:
    from edgetwin.gateway.runtime import Gateway

__all__ = ["serve_status", "status_document", "trend_arrow"]

log = logging.getLogger("edgetwin.gateway.status")

SCHEMA = 1
MAX_REQUEST_BYTES = 8192


def trend_arrow(mg_dl_per_min: float | None) -> str:
    if mg_dl_per_min is None or not math.isfinite(mg_dl_per_min):
        return ""
    for limit, arrow in ((3.0, "⇈"), (2.0, "↑"), (1.0, "↗"), (-1.0, "→"), (-2.0, "↘"), (-3.0, "↓")):
        if mg_dl_per_min >= limit:
            return arrow
    return "⇊"


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _finite(x: float) -> float | None:
    return round(float(x), 1) if math.isfinite(float(x)) else None


async def status_document(gw: Gateway) -> dict[str, Any]:
    """Everything the page shows, as plain JSON-able data."""
    st = gw.state
    now = gw.clock.now_utc()
    glucose: dict[str, Any] | None = None
    r = st.latest
    if r is not None and r.glucose_mg_dl is not None:
        mg_dl = r.glucose_mg_dl
        trend = r.trend_mg_dl_per_min
        if trend is None and len(st.history) >= 2:
            (t0, g0), (t1, g1) = st.history[-2], st.history[-1]
            dt = (t1 - t0).total_seconds() / 60.0
            trend = (g1 - g0) / dt if 0 < dt <= 15 else None
        glucose = {
            "mg_dl": round(mg_dl, 1),
            "time_utc": r.time_utc.isoformat(),
            "age_min": round((now - r.time_utc).total_seconds() / 60.0, 1),
            "trend_mg_dl_per_min": None if trend is None else round(trend, 2),
            "trend_arrow": trend_arrow(trend),
            "device_id": r.device_id,
        }
    forecast: dict[str, Any] | None = None
    fc, mm = st.forecast, gw.minutes
    if fc is not None and mm is not None:
        forecast = {
            "issued_utc": _iso(st.forecast_issued_utc),
            "model": gw.twin_factory.description,
            "points": [
                {
                    "time_utc": mm.time(int(m)).isoformat(),
                    "p10_mg_dl": _finite(lo),
                    "p50_mg_dl": _finite(mid),
                    "p90_mg_dl": _finite(hi),
                }
                for m, lo, mid, hi in zip(fc.minutes, fc.p10_mg_dl, fc.p50_mg_dl, fc.p90_mg_dl, strict=True)
            ],
        }
    backlog: int | None = None
    if gw.store is not None:
        with contextlib.suppress(Exception):
            backlog = await gw.store.call(lambda s: s.outbox_backlog())
    cycles = gw.cycles
    return {
        "schema": SCHEMA,
        "time_utc": now.isoformat(),
        "started_utc": _iso(st.started_utc),
        "mode": gw.cfg.mode,
        "glucose": glucose,
        "history": [{"time_utc": t.isoformat(), "mg_dl": round(g, 1)} for t, g in st.history],
        "forecast": forecast,
        "suggestion": st.suggestion,
        "suggestions": gw.suggestions_status(),
        "alarms": gw.alarms.snapshot(),
        "devices": [h.as_dict() for h in gw.health.values()],
        "sync": {**st.sync, "backlog": backlog},
        "store": {"state": st.store_state, "detail": st.store_error, "path": str(gw.cfg.db_path)},
        "twin": {
            "model": gw.twin_factory.description,
            "minute": None if gw.twin is None else gw.twin.minute,
            "checkpoint_utc": _iso(st.checkpoint_utc),
            "restored_from_utc": _iso(st.restored_from_utc),
            "replayed_records": st.replayed,
            "personalised": st.personalise,
        },
        "clock": {"factor": gw.clock.factor, "wall_clock_jumps": st.clock_jumps},
        "cycles": {
            "count": cycles.count,
            "cpu_ms_last": round(cycles.cpu_s_last * 1e3, 2),
            "cpu_ms_mean": round(cycles.cpu_s_total * 1e3 / cycles.count, 2) if cycles.count else None,
        },
    }


async def serve_status(gw: Gateway, port: int) -> tuple[asyncio.AbstractServer, int]:
    """Serve the page on 127.0.0.1:``port`` (0: any free port); returns (server, port)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(_serve_one(gw, reader, writer), timeout=10.0)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except Exception:
            log.exception("status page request failed", extra={"event": "status_error"})
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host="127.0.0.1", port=port, limit=MAX_REQUEST_BYTES)
    bound = server.sockets[0].getsockname()[1]
    return server, int(bound)


async def _serve_one(gw: Gateway, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = request_line.split(" ")
    if len(parts) != 3:
        _respond(writer, HTTPStatus.BAD_REQUEST, b"bad request\n", "text/plain")
        return
    method, target, _ = parts
    path = target.split("?", 1)[0]
    if method not in ("GET", "HEAD"):
        _respond(writer, HTTPStatus.METHOD_NOT_ALLOWED, b"GET only\n", "text/plain", head_only=False)
        return
    head_only = method == "HEAD"
    if path == "/":
        _respond(writer, HTTPStatus.OK, PAGE_HTML.encode(), "text/html; charset=utf-8", head_only=head_only)
    elif path == "/api/status":
        doc = await status_document(gw)
        body = json.dumps(doc, ensure_ascii=False, allow_nan=False).encode()
        _respond(writer, HTTPStatus.OK, body, "application/json", head_only=head_only)
    elif path == "/healthz":
        urgent = any(a["severity"] == "urgent" for a in gw.alarms.snapshot())
        body = json.dumps({"ok": not urgent, "alarms": len(gw.alarms.active)}).encode()
        code = HTTPStatus.SERVICE_UNAVAILABLE if urgent else HTTPStatus.OK
        _respond(writer, code, body, "application/json", head_only=head_only)
    else:
        _respond(writer, HTTPStatus.NOT_FOUND, b"not found\n", "text/plain", head_only=head_only)
    await writer.drain()


def _respond(
    writer: asyncio.StreamWriter, code: HTTPStatus, body: bytes, ctype: str, *, head_only: bool = False
) -> None:
    headers = [
        f"HTTP/1.1 {code.value} {code.phrase}",
        f"Content-Type: {ctype}",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-store",
        "Connection: close",
        "X-Content-Type-Options: nosniff",
        "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:",
    ]
    writer.write(("\r\n".join(headers) + "\r\n\r\n").encode("latin-1"))
    if not head_only:
        writer.write(body)
