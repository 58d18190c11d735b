"""Compile every numba kernel once, so later starts load machine code from the cache.

Numba compiles on first call (seconds per kernel on a small gateway) and, with ``cache=True``,
stores the result beside the sources (or under ``NUMBA_CACHE_DIR``). Run ``edgetwin warmup``
after installing or upgrading: the gateway then starts warm. ``./dev test`` runs it before the
test suite so parallel test workers do not each compile the same kernels.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

__all__ = ["WARMUPS", "warm_up"]


def _model() -> None:
    from edgetwin.model import load_patient, new_aux, run_ensemble, steady_state
    from edgetwin.virtual.patient import VirtualPatient

    pp = load_patient("adult#001")
    cho = np.zeros(30)
    cho[1] = 10.0
    ins = np.full(30, pp.basal_u_per_h / 60.0)
    VirtualPatient(pp).run(cho, ins)
    run_ensemble(pp.vector(), np.tile(pp.state0(), (2, 1)), new_aux(2), cho, ins, stride=5)
    steady_state(pp)


def _twin() -> None:
    from edgetwin.twin import FilterConfig, Twin

    twin = Twin.from_patient("adult#001", config=FilterConfig(particles=32))
    for m in range(0, 61, 3):
        twin.assimilate_cgm(m, 140.0 + m / 6.0)
    twin.forecast(30, members=8)
    twin.parameters()


WARMUPS: list[tuple[str, Callable[[], None]]] = [("model kernels", _model), ("twin kernels", _twin)]
"""(what, function) pairs; each package with kernels adds its own entry."""


def warm_up(verbose: bool = False) -> float:
    """Run every warm-up; returns the seconds it took."""
    t0 = time.perf_counter()
    for what, fn in WARMUPS:
        t = time.perf_counter()
        fn()
        if verbose:
            print(f"  {what}: {time.perf_counter() - t:.1f} s")
    return time.perf_counter() - t0
