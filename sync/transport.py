"""HTTP to the cloud with an injected ``requests.Session``: signing, retries, clock skew.

* TLS: certificates are always verified (``verify=True`` or a CA bundle path for a private
  cloud); plain ``http://`` is refused except to a loopback address (tests, a local demo).
* Retries: connection errors, timeouts, resets, 408/429/5xx are retried with exponential backoff
  and full jitter (``uniform(0, min(cap, base * 2**attempt))``, honouring ``Retry-After``) up to
  ``max_attempts``; then :class:`~sync.errors.TransportError`. Any other 4xx is
  :class:`~sync.errors.RejectedError` at once (repeating it cannot help).
* Clock skew: a 401 carrying ``X-EdgeTwin-Server-Time`` for a stale timestamp sets an offset
  from the server's clock and the request is re-signed once; the gateway's own clock is never
  changed.

Blocking: call it from a worker thread (``asyncio.to_thread``), never on the event loop.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlparse

import requests

from sync.auth import HEADER_SERVER_TIME, Credential, sign_request
from sync.errors import RejectedError, SyncError, TransportError

__all__ = ["CloudClient", "RetryPolicy"]

log = logging.getLogger("edgetwin.sync")

_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_s: float = 0.5
    cap_s: float = 300.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.cap_s, self.base_s * 2**attempt))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class CloudClient:
    """Signed requests to one cloud for one gateway."""

    def __init__(
        self,
        credential: Credential,
        session: requests.Session,
        *,
        base_url: str | None = None,
        ca_bundle: str | None = None,
        retry: RetryPolicy | None = None,
        now_ms: Callable[[], int] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        url = (base_url or credential.url).rstrip("/")
        parsed = urlparse(url)
        if parsed.scheme not in ("https", "http") or not parsed.hostname:
            raise SyncError(f"cloud URL must be https://host[:port], got {url!r}")
        if parsed.scheme == "http" and not _loopback(parsed.hostname):
            raise SyncError(f"refusing plain HTTP to {parsed.hostname}: use https (TLS is verified)")
        self.base_url = url
        self._cred = credential
        self._session = session
        self._verify: str | bool = ca_bundle or True
        self._retry = retry or RetryPolicy()
        self._now_ms = now_ms or (lambda: int(time.time() * 1000))
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.skew_ms = 0
        """Server clock minus ours, learnt from a rejected stale timestamp."""

    @property
    def credential(self) -> Credential:
        return self._cred

    @property
    def gateway_id(self) -> str:
        return self._cred.gateway_id

    @property
    def patient_id(self) -> str:
        return self._cred.patient_id

    def _send(self, method: str, path: str, body: bytes) -> requests.Response:
        headers = sign_request(self._cred, method, path, body, now_ms=self._now_ms() + self.skew_ms)
        if body:
            headers["Content-Type"] = "application/msgpack"
        return self._session.request(
            method,
            self.base_url + path,
            data=body or None,
            headers=headers,
            timeout=(self._retry.connect_timeout_s, self._retry.read_timeout_s),
            verify=self._verify,
            allow_redirects=False,
        )

    def request(
        self, method: str, path: str, body: bytes = b"", query: dict[str, Any] | None = None
    ) -> requests.Response:
        """Send with retries; returns a 2xx response or raises TransportError / RejectedError."""
        if query:
            path = f"{path}?{urlencode(query)}"
        attempt = 0
        skew_fixed = False
        last_status: int | None = None
        while True:
            retry_after: float | None = None
            try:
                resp = self._send(method, path, body)
            except (requests.ConnectionError, requests.Timeout) as exc:
                log.info("cloud unreachable (%s), attempt %d", type(exc).__name__, attempt + 1)
            else:
                last_status = resp.status_code
                if resp.status_code < 300:
                    return resp
                stale = resp.status_code == 401 and not skew_fixed and HEADER_SERVER_TIME in resp.headers
                if stale and self._learn_skew(resp):
                    skew_fixed = True
                    continue
                if resp.status_code not in _RETRY_STATUS:
                    raise RejectedError(f"cloud refused {method} {path.split('?')[0]}: {resp.status_code} {_reason(resp)}",
                                        status=resp.status_code)  # fmt: skip
                retry_after = _retry_after(resp)
                log.info("cloud answered %d, attempt %d", resp.status_code, attempt + 1)
            attempt += 1
            if attempt >= self._retry.max_attempts:
                raise TransportError(f"cloud not reachable after {attempt} attempts", status=last_status)
            delay = self._retry.delay(attempt, self._rng)
            if retry_after is not None:
                delay = max(delay, min(retry_after, self._retry.cap_s))
            self._sleep(delay)

    def _learn_skew(self, resp: requests.Response) -> bool:
        try:
            server_ms = int(resp.headers[HEADER_SERVER_TIME])
        except ValueError:
            return False
        skew = server_ms - self._now_ms()
        if abs(skew - self.skew_ms) < 1000:
            return False  # not a clock problem: the credential itself is wrong
        log.warning("gateway clock differs from the cloud's by %.1f s; compensating", skew / 1000)
        self.skew_ms = skew
        return True

    def post_batch(self, batch: bytes) -> dict[str, Any]:
        data: dict[str, Any] = self.request("POST", "/v1/batches", batch).json()
        return data

    def get_params(self, after_version: int) -> bytes | None:
        resp = self.request("GET", f"/v1/patients/{self.patient_id}/params", query={"after": after_version})
        return None if resp.status_code == 204 else resp.content

    def history(
        self, kind: str, start_ms: int, end_ms: int, patient_id: str | None = None
    ) -> list[dict[str, Any]]:
        resp = self.request(
            "GET",
            f"/v1/patients/{patient_id or self.patient_id}/history",
            query={"kind": kind, "start_ms": start_ms, "end_ms": end_ms},
        )
        records: list[dict[str, Any]] = resp.json()["records"]
        return records


def _reason(resp: requests.Response) -> str:
    try:
        return str(resp.json().get("error", ""))[:200]
    except ValueError:
        return ""


def _retry_after(resp: requests.Response) -> float | None:
    raw = resp.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None
