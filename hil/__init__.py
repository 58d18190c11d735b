"""Hardware-in-the-loop benches for EdgeTwin: the real gateway against simulated devices speaking
the real protocols, a virtual patient and the cloud twin, under one accelerated clock.

* :mod:`hil.scenario` — scenario files (TOML): patient, meals, exercise, fault timeline, assertions;
* :mod:`hil.bench` — :func:`run_scenario`, the orchestration;
* :mod:`hil.world` — the simulated world with its ground truth;
* :mod:`hil.gateway` — the gateway under test, in the bench's process or its own;
* :mod:`hil.cloudproxy` — network and cloud faults between gateway and cloud;
* :mod:`hil.results`, :mod:`hil.assertions`, :mod:`hil.report`, :mod:`hil.plots` — judging and reporting;
* ``hil/scenarios/*.toml`` — the scenario library (``edgetwin hil list``).

Run one: ``edgetwin hil run hil/scenarios/baseline-day.toml --report out/``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SCENARIO_DIR", "library"]

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"


def library() -> list[Path]:
    """The scenario files shipped with the bench, by name."""
    return sorted(SCENARIO_DIR.glob("*.toml"))
