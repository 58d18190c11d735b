"""The error tree of ``sync`` (edge and cloud).

::

    SyncError                      root (an EdgeTwinError): anything sync raises on purpose
    ├── PayloadError               a batch or update that cannot be decoded: malformed, truncated,
    │   │                          oversized, unknown schema version, unknown keys (``where`` names it)
    │   └── PayloadTooLargeError   over a size limit (wire bytes, decompressed bytes, rows)
    ├── CredentialError            a credential file that is missing, malformed or too open
    ├── AuthError                  a request the cloud (or gateway) refused to trust: bad or missing
    │                              signature, stale timestamp, replayed nonce
    ├── TransportError             the cloud could not be reached or kept failing (after retries)
    │   └── RejectedError          the cloud answered 4xx: retrying the same request will not help
    └── UpdateRejectedError        a parameter update that failed verification or physiological
                                   bounds; ``problems`` lists why; nothing was adopted
"""

from __future__ import annotations

from edgetwin.errors import EdgeTwinError

__all__ = [
    "AuthError",
    "CredentialError",
    "PayloadError",
    "PayloadTooLargeError",
    "RejectedError",
    "SyncError",
    "TransportError",
    "UpdateRejectedError",
]


class SyncError(EdgeTwinError):
    """Root of sync's errors."""


class PayloadError(SyncError, ValueError):
    """A payload that cannot be decoded; ``where`` names the part (``cgm.g``, ``envelope.v``)."""

    def __init__(self, message: str, *, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.reason = message


class PayloadTooLargeError(PayloadError):
    """A payload over a size limit."""


class CredentialError(SyncError):
    """A credential file that cannot be used."""


class AuthError(SyncError):
    """Authentication failed (signature, timestamp window, replay)."""


class TransportError(SyncError):
    """The other side could not be reached, or kept failing; ``status`` is the last HTTP status."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RejectedError(TransportError):
    """A 4xx answer: the request itself is wrong (bad payload, credential, forbidden)."""


class UpdateRejectedError(SyncError):
    """A parameter update that was not adopted; ``problems`` says why."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        detail = f" ({'; '.join(self.problems)})" if self.problems else ""
        super().__init__(message + detail)
