"""Upload to Nightscout (API v1 or v3) from the gateway's store.

* v1: ``POST /api/v1/{entries,treatments,devicestatus}`` with a JSON array, authenticated by the
  ``api-secret`` header (SHA-1 hex of the site's API_SECRET, as Nightscout expects).
* v3: ``POST /api/v3/{collection}`` one document at a time with a locally computed
  ``identifier`` (see :mod:`sync.nightscout.documents`), authenticated by a bearer JWT obtained
  from ``/api/v2/authorization/request/{access token}``. A repeated upload deduplicates on the
  identifier (Nightscout answers 200 instead of 201).

:class:`NightscoutUploader` keeps its own progress per table by row id in the store's sync state
(``ns:cgm`` ...), advanced only after Nightscout accepted the documents; records whose origin is
``nightscout`` are never sent back. Retries and TLS rules are those of :mod:`sync.transport`.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import urlparse

import requests

from edgetwin.messages import PumpStatus, Suggestion
from edgetwin.store import Store
from sync.errors import RejectedError, SyncError, TransportError
from sync.nightscout.documents import devicestatus, entry, treatment
from sync.transport import RetryPolicy, _loopback

__all__ = ["NightscoutClient", "NightscoutReport", "NightscoutUploader"]

log = logging.getLogger("edgetwin.nightscout")
_RETRY = {408, 429, 500, 502, 503, 504}


class NightscoutClient:
    def __init__(
        self,
        base_url: str,
        session: requests.Session,
        *,
        api: Literal["v1", "v3"] = "v3",
        api_secret: str | None = None,
        access_token: str | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        parsed = urlparse(base_url)
        if parsed.scheme not in ("https", "http") or not parsed.hostname:
            raise SyncError(f"Nightscout URL must be https://host, got {base_url!r}")
        if parsed.scheme == "http" and not _loopback(parsed.hostname):
            raise SyncError(f"refusing plain HTTP to {parsed.hostname}: use https")
        if api == "v1" and not api_secret:
            raise SyncError("Nightscout API v1 needs api_secret")
        if api == "v3" and not access_token:
            raise SyncError("Nightscout API v3 needs an access_token")
        self.base_url = base_url.rstrip("/")
        self.api = api
        self._session = session
        self._secret_sha1 = hashlib.sha1(api_secret.encode()).hexdigest() if api_secret else ""
        self._token = access_token or ""
        self._jwt = ""
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()

    def _call(self, method: str, path: str, json_body: Any = None) -> requests.Response:
        attempt = 0
        renewed = False
        while True:
            headers = {"Accept": "application/json"}
            if self.api == "v1":
                headers["api-secret"] = self._secret_sha1
            elif not path.startswith("/api/v2/authorization"):
                if not self._jwt:
                    self._jwt = self._fetch_jwt()
                headers["Authorization"] = f"Bearer {self._jwt}"
            status: int | None = None
            try:
                resp = self._session.request(method, self.base_url + path, json=json_body, headers=headers,
                                             timeout=(self._retry.connect_timeout_s, self._retry.read_timeout_s),
                                             verify=True, allow_redirects=False)  # fmt: skip
            except (requests.ConnectionError, requests.Timeout) as exc:
                log.info("Nightscout unreachable (%s)", type(exc).__name__)
            else:
                status = resp.status_code
                if status < 300:
                    return resp
                if status == 401 and self.api == "v3" and not renewed:
                    self._jwt, renewed = "", True  # token expired: fetch a new one once
                    continue
                if status not in _RETRY:
                    raise RejectedError(f"Nightscout refused {method} {path}: {status}", status=status)
            attempt += 1
            if attempt >= self._retry.max_attempts:
                raise TransportError(f"Nightscout not reachable after {attempt} attempts", status=status)
            self._sleep(self._retry.delay(attempt, self._rng))

    def _fetch_jwt(self) -> str:
        resp = self._call("GET", f"/api/v2/authorization/request/{self._token}")
        token = resp.json().get("token")
        if not isinstance(token, str) or not token:
            raise RejectedError("Nightscout did not issue a token", status=resp.status_code)
        return token

    def upload(self, collection: str, docs: list[dict[str, Any]]) -> int:
        """Upload documents; returns how many Nightscout reported as new (v3) or accepted (v1)."""
        if not docs:
            return 0
        if self.api == "v1":
            self._call("POST", f"/api/v1/{collection}", docs)
            return len(docs)
        created = 0
        for doc in docs:
            v3 = {**doc, "app": "edgetwin"}
            resp = self._call("POST", f"/api/v3/{collection}", v3)
            created += resp.status_code == 201
        return created


@dataclass(frozen=True)
class NightscoutReport:
    entries: int = 0
    treatments: int = 0
    devicestatus: int = 0
    skipped_from_nightscout: int = 0
    error: str = ""


class NightscoutUploader:
    """Everything new in the store → Nightscout, in bounded chunks, resumable."""

    def __init__(
        self, store: Store, client: NightscoutClient, *, chunk: int = 200, gateway: str = "edgetwin"
    ) -> None:
        self._store = store
        self._client = client
        self.chunk = chunk
        self.gateway = gateway

    def _docs(self, kind: str, items: list[Any]) -> tuple[list[dict[str, Any]], int]:
        docs: list[dict[str, Any]] = []
        skipped = 0
        for it in items:
            if it.origin == "nightscout":
                skipped += 1
                continue
            if kind in ("cgm", "meter"):
                doc = entry(it.record)
                if doc is not None:
                    docs.append(doc)
            elif kind in ("insulin", "carbs"):
                docs.append(treatment(it.record))
            else:
                t = it.record.time_utc
                near = self._store.suggestions_between(t, t + timedelta(milliseconds=1))
                pumps = self._store.pump_status_between(
                    t - timedelta(minutes=5), t + timedelta(milliseconds=1)
                )
                sug: Suggestion | None = near[-1][1] if near else None
                pump: PumpStatus | None = pumps[-1] if pumps else None
                docs.append(devicestatus(it.record, sug, pump, self.gateway))
        return docs, skipped

    def sync_once(self) -> NightscoutReport:
        counts = {"entries": 0, "treatments": 0, "devicestatus": 0}
        skipped = 0
        for kind, collection in (("cgm", "entries"), ("meter", "entries"), ("insulin", "treatments"),
                                 ("carbs", "treatments"), ("checkpoint", "devicestatus")):  # fmt: skip
            key = f"ns:{kind}"
            while True:
                cursor = self._store.sync_value(key)
                items = self._store.records_after(kind, cursor, self.chunk)
                if not items:
                    break
                docs, sk = self._docs(kind, items)
                try:
                    self._client.upload(collection, docs)
                except (TransportError, RejectedError) as exc:
                    return self._report(counts, skipped, str(exc))
                self._store.set_sync_value(key, items[-1].row_id)
                counts[collection] += len(docs)
                skipped += sk
        return self._report(counts, skipped, "")

    @staticmethod
    def _report(counts: dict[str, int], skipped: int, error: str) -> NightscoutReport:
        return NightscoutReport(
            counts["entries"], counts["treatments"], counts["devicestatus"], skipped, error
        )
