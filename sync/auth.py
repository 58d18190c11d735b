"""Per-gateway credentials and HMAC request signing with replay protection.

Each gateway holds its own secret key, issued by ``edgetwin cloud add-gateway``. A request is
signed over its method, path, timestamp, nonce and the SHA-256 of its body::

    X-EdgeTwin-Gateway:   gw-7f3a
    X-EdgeTwin-Timestamp: 1709272800000          (the gateway's UTC ms, corrected for skew)
    X-EdgeTwin-Nonce:     32 hex characters, never reused
    X-EdgeTwin-Signature: hex HMAC-SHA256(key, "METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nSHA256(BODY)")

The server accepts a timestamp within :data:`SKEW_WINDOW_S` of its own clock and each nonce once
inside that window (:class:`NonceCache`), so a captured request cannot be replayed. A rejected
stale timestamp comes back with ``X-EdgeTwin-Server-Time`` so the gateway can correct its offset
(clock-skew tolerance without trusting the gateway's clock).

Credential files are JSON with mode 0600 (owner only); a looser file is refused. The key never
appears in ``repr``, logs or error messages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sync.errors import AuthError, CredentialError

__all__ = [
    "HEADER_GATEWAY",
    "HEADER_NONCE",
    "HEADER_SERVER_TIME",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "SKEW_WINDOW_S",
    "Credential",
    "NonceCache",
    "sign_request",
    "verify_signature",
]

HEADER_GATEWAY = "X-EdgeTwin-Gateway"
HEADER_TIMESTAMP = "X-EdgeTwin-Timestamp"
HEADER_NONCE = "X-EdgeTwin-Nonce"
HEADER_SIGNATURE = "X-EdgeTwin-Signature"
HEADER_SERVER_TIME = "X-EdgeTwin-Server-Time"
SKEW_WINDOW_S = 300.0
KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class Credential:
    """A gateway's identity and secret; ``url`` is the cloud it talks to."""

    gateway_id: str
    patient_id: str
    key: bytes = field(repr=False)
    url: str = ""

    def __post_init__(self) -> None:
        if not self.gateway_id or not self.patient_id:
            raise CredentialError("a credential needs gateway_id and patient_id")
        if len(self.key) < 16:
            raise CredentialError("a credential key must be at least 16 bytes")

    @classmethod
    def issue(cls, gateway_id: str, patient_id: str, url: str = "") -> Credential:
        return cls(gateway_id, patient_id, secrets.token_bytes(KEY_BYTES), url)

    def to_json(self) -> str:
        return json.dumps(
            {
                "gateway_id": self.gateway_id,
                "patient_id": self.patient_id,
                "key": base64.b64encode(self.key).decode(),
                "url": self.url,
            },
            indent=2,
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the credential owner-only (0600), atomically; never world-readable even briefly."""
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.to_json() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Credential:
        p = Path(path)
        try:
            st = p.stat()
        except OSError as exc:
            raise CredentialError(f"{p}: cannot read the credential file ({exc.strerror})") from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CredentialError(
                f"{p}: credential file is readable by others (mode {stat.S_IMODE(st.st_mode):o}); chmod 600 it"
            )
        try:
            data = json.loads(p.read_text())
            key = base64.b64decode(data["key"], validate=True)
            return cls(str(data["gateway_id"]), str(data["patient_id"]), key, str(data.get("url", "")))
        except (ValueError, KeyError, TypeError) as exc:
            raise CredentialError(f"{p}: malformed credential file ({type(exc).__name__})") from None


def _message(method: str, path: str, timestamp_ms: int, nonce: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{path}\n{timestamp_ms}\n{nonce}\n{digest}".encode()


def sign_request(cred: Credential, method: str, path: str, body: bytes, *, now_ms: int) -> dict[str, str]:
    """The authentication headers for one request (a fresh nonce each call)."""
    nonce = secrets.token_hex(16)
    sig = hmac.new(cred.key, _message(method, path, now_ms, nonce, body), hashlib.sha256).hexdigest()
    return {
        HEADER_GATEWAY: cred.gateway_id,
        HEADER_TIMESTAMP: str(now_ms),
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: sig,
    }


class KeyLookup(Protocol):
    """Gateway id → secret key (None when unknown or revoked)."""

    def get(self, gateway_id: str, /) -> bytes | None: ...


class NonceCache:
    """Nonces seen within the skew window; bounded (oldest evicted past ``max_entries``).

    Eviction cannot open a replay hole as long as ``max_entries`` exceeds the requests one
    server accepts per window; past that, the oldest nonces are also past the window in practice.
    """

    def __init__(self, window_s: float = SKEW_WINDOW_S, max_entries: int = 2_000_000) -> None:
        self._window = window_s
        self._max = max_entries
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def check_and_add(self, gateway_id: str, nonce: str, now_s: float | None = None) -> bool:
        """True if the nonce is fresh (and remember it); False for a replay."""
        now = time.monotonic() if now_s is None else now_s
        key = (gateway_id, nonce)
        with self._lock:
            while self._seen:
                oldest_key, expiry = next(iter(self._seen.items()))
                if expiry > now and len(self._seen) < self._max:
                    break
                del self._seen[oldest_key]
            if key in self._seen:
                return False
            self._seen[key] = now + 2 * self._window
            return True


def verify_signature(
    headers: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    key_for: KeyLookup,
    *,
    now_ms: int,
    nonces: NonceCache,
    window_s: float = SKEW_WINDOW_S,
) -> str:
    """Check a request's signature; returns the gateway id or raises :class:`AuthError`.

    ``key_for`` maps gateway id → key (a dict, or any object with ``get``). Checks run
    signature-first so an attacker learns nothing about nonces from an unsigned request.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    gw = lower.get(HEADER_GATEWAY.lower())
    ts = lower.get(HEADER_TIMESTAMP.lower())
    nonce = lower.get(HEADER_NONCE.lower())
    sig = lower.get(HEADER_SIGNATURE.lower())
    if not gw or not ts or not nonce or not sig:
        raise AuthError("missing authentication headers")
    if len(nonce) != 32 or len(sig) != 64 or len(gw) > 64:
        raise AuthError("malformed authentication headers")
    try:
        ts_ms = int(ts)
    except ValueError:
        raise AuthError("malformed timestamp") from None
    key = key_for.get(gw)
    if key is None:
        hmac.compare_digest(sig, "0" * 64)  # same work for unknown gateways
        raise AuthError("unknown gateway or bad signature")
    expected = hmac.new(key, _message(method, path, ts_ms, nonce, body), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(sig, expected):
        raise AuthError("unknown gateway or bad signature")
    if abs(now_ms - ts_ms) > window_s * 1000:
        raise AuthError("timestamp outside the allowed clock skew")
    if not nonces.check_and_add(gw, nonce):
        raise AuthError("replayed request (nonce already used)")
    return gw
