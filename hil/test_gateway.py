"""The gateway under test: stopping an in-process gateway whose task ignores a cancellation.

Python 3.11's ``asyncio.wait_for`` returns the result instead of raising when the awaited future
completes in the same loop iteration as the cancellation, so a device task polling a serial link
can survive ``Gateway.stop()``'s cancel and keep it waiting for ever. The bench must not hang.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import pytest

from edgetwin.clock import ManualClock
from hil.gateway import InProcessGateway


class _StubbornGateway:
    """Stops the way Gateway.stop does (cancel, then await) a task that survives one cancel."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.status_port = None

    async def start(self) -> None:
        async def device() -> None:
            with contextlib.suppress(asyncio.CancelledError):  # the swallowed cancellation
                await asyncio.sleep(3600)
            await asyncio.sleep(3600)

        self.task = asyncio.create_task(device(), name="device-pump")

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.mark.asyncio
async def test_a_stop_that_hangs_is_unstuck_and_noted() -> None:
    stub = _StubbornGateway()
    await stub.start()
    gut = InProcessGateway(Any, ManualClock(datetime(2026, 3, 2, tzinfo=UTC)), lambda: 7, _never)  # type: ignore[arg-type]
    gut.stop_grace_s = 0.2
    gut.gateway = stub
    gut._born(1)
    await asyncio.wait_for(gut.stop("end"), 5.0)
    assert gut.lives[-1].stop_hung == ["device-pump"]
    assert gut.lives[-1].ended_by == "end" and stub.task is not None and stub.task.done()


async def _never() -> Any:
    raise AssertionError("not opened in this test")
