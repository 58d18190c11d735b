"""The error tree of the HIL bench.

::

    HilError                 root of everything the bench raises on purpose (an EdgeTwinError)
    ├── ScenarioError        a scenario file that fails validation; ``key`` names the dotted key
    └── BenchError           the bench could not run a scenario (a gateway that did not start,
                             a device that could not be opened, a real device that is absent)

A scenario whose *assertions* fail is not an error: the run completes, the report says which
assertion failed and why, and ``edgetwin hil run`` exits with status 1.
"""

from __future__ import annotations

from edgetwin.errors import EdgeTwinError

__all__ = ["BenchError", "HilError", "ScenarioError"]


class HilError(EdgeTwinError):
    """Root of the bench's errors."""


class ScenarioError(HilError, ValueError):
    """A scenario value failed validation: ``key`` is its dotted path (``faults[2].minutes``)."""

    def __init__(self, key: str, problem: str, *, source: str = "") -> None:
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{key}: {problem}")
        self.key = key
        self.problem = problem
        self.source = source


class BenchError(HilError, RuntimeError):
    """The bench itself failed (not the system under test): nothing to judge."""
