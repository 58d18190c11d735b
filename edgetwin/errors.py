"""The error tree of the ``edgetwin`` core.

::

    EdgeTwinError                  root of everything the core raises on purpose
    ├── UnknownPatientError        a patient, cohort group, sensor or pump name that is not known
    ├── InputDataError             malformed or out-of-range input data (file, row, column named)
    ├── ConfigError                a configuration or profile value that fails validation (key named)
    └── ModelError                 a numerical problem (non-finite state, failed steady state)

Devices, sync and the gateway have their own roots; they never raise these for their own faults.
"""

from __future__ import annotations

__all__ = ["ConfigError", "EdgeTwinError", "InputDataError", "ModelError", "UnknownPatientError"]


class EdgeTwinError(Exception):
    """Root of the core's errors."""


class UnknownPatientError(EdgeTwinError, LookupError):
    """A patient, cohort group, sensor or pump name that is not in the shipped data."""


class InputDataError(EdgeTwinError, ValueError):
    """Bad input data. ``where`` names the source (file, row, column) when known."""

    def __init__(self, message: str, *, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.reason = message


class ConfigError(EdgeTwinError, ValueError):
    """A configuration or profile value failed validation; ``key`` is its dotted path."""

    def __init__(self, key: str, problem: str, *, source: str = "") -> None:
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{key}: {problem}")
        self.key = key
        self.problem = problem
        self.source = source


class ModelError(EdgeTwinError, ArithmeticError):
    """A numerical failure in the model (non-finite state, steady state not found)."""
