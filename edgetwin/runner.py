"""Job runners: run one function over many items, locally or on an existing distributed engine.

Used by the cloud's re-personalisation jobs and by virtual-cohort trials, so both scale the same
way. A runner is chosen by a configuration string:

* ``local`` or ``local:N``: a process pool on this machine (the default);
* ``dask://HOST:PORT``: a running Dask scheduler (needs ``dask[distributed]``);
* ``ray`` or ``ray://HOST:PORT``: a Ray cluster (needs ``ray``).

Every runner's ``map(fn, items)`` returns, per item, the result or the exception it raised: one
failing item never takes the others down.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Protocol

from edgetwin.errors import ConfigError

__all__ = ["DaskRunner", "JobRunner", "LocalRunner", "RayRunner", "make_runner"]


class JobRunner(Protocol):
    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """Per item, ``fn(item)`` or the exception it raised (never raises for one item)."""
        ...

    def close(self) -> None: ...


def _capture(fn: Callable[[Any], Any], item: Any) -> Any:
    try:
        return fn(item)
    except Exception as exc:
        return exc


class LocalRunner:
    """A process pool (or threads, for functions that cannot be pickled) on this machine."""

    def __init__(self, max_workers: int | None = None, *, processes: bool = True) -> None:
        self._pool: Executor = (
            ProcessPoolExecutor(max_workers=max_workers)
            if processes
            else ThreadPoolExecutor(max_workers=max_workers)
        )

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        futures = [self._pool.submit(_capture, fn, item) for item in items]
        out = []
        for f in futures:
            try:
                out.append(f.result())
            except Exception as exc:  # the worker itself died (pickling, crash)
                out.append(exc)
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class DaskRunner:
    def __init__(self, address: str) -> None:
        try:
            from dask.distributed import Client
        except ImportError as exc:
            raise ConfigError("runner", "dask:// needs dask[distributed] installed") from exc
        self._client = Client(address)

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        futures = self._client.map(_capture, [fn] * len(items), list(items), pure=False)
        return list(self._client.gather(futures))

    def close(self) -> None:
        self._client.close()


class RayRunner:
    def __init__(self, address: str | None) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ConfigError("runner", "ray needs ray installed") from exc
        self._ray = ray
        ray.init(address=address, ignore_reinit_error=True)
        self._remote = ray.remote(_capture)

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return list(self._ray.get([self._remote.remote(fn, item) for item in items]))

    def close(self) -> None:
        self._ray.shutdown()


def make_runner(spec: str = "local") -> JobRunner:
    """A runner from its configuration string (see the module docstring)."""
    if spec == "local" or spec.startswith("local:"):
        try:
            n = int(spec.split(":", 1)[1]) if ":" in spec else None
        except ValueError:
            raise ConfigError("runner", f"local:N needs a number of workers, got {spec!r}") from None
        if n is not None and n < 1:
            raise ConfigError("runner", "local:N needs N >= 1")
        return LocalRunner(n)
    if spec.startswith("dask://"):
        return DaskRunner("tcp://" + spec[len("dask://") :])
    if spec == "ray" or spec.startswith("ray://"):
        return RayRunner(None if spec == "ray" else spec)
    raise ConfigError(
        "runner", f"unknown job runner {spec!r} (local, local:N, dask://HOST:PORT, ray, ray://HOST:PORT)"
    )
