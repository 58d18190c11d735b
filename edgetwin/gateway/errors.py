"""The error tree of the gateway runtime.

::

    GatewayError                   root of everything the runtime raises on purpose (an EdgeTwinError)
    ├── GatewayLockedError         another gateway already runs on this data directory
    ├── DeviceOpenError            a device name string that no installed driver can open
    └── StartupError               the gateway cannot start (its store is corrupt or full, a
                                   port is taken, ...); ``cause`` holds the underlying error

Configuration problems are :class:`edgetwin.errors.ConfigError` (the key is named); store
problems keep their own tree (:mod:`edgetwin.store.errors`) and reach the operator unchanged
inside :class:`StartupError` so that, for instance, a corrupt database is reported, never replaced.
"""

from __future__ import annotations

from edgetwin.errors import EdgeTwinError

__all__ = ["DeviceOpenError", "GatewayError", "GatewayLockedError", "StartupError"]


class GatewayError(EdgeTwinError):
    """Root of the gateway runtime's errors."""


class GatewayLockedError(GatewayError):
    """Another gateway process holds the data directory's lock."""


class DeviceOpenError(GatewayError):
    """A configured device could not be opened (unknown kind, driver not installed)."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"device {name!r}: {problem}")
        self.name = name
        self.problem = problem


class StartupError(GatewayError):
    """The gateway could not start; ``cause`` is the underlying error (often a StoreError)."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause
