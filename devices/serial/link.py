"""A reliable message link over a byte stream: sequence numbers, ACK/NAK, retransmission.

Stop-and-wait: ``send(payload)`` puts a DATA frame with the next sequence number on the wire and
waits (real seconds: the wire's pace) for its ACK, resending on NAK or timeout up to ``retries``
times (``ResponseTimeoutError`` after). Received DATA frames are ACKed; a repeat of the last
delivered sequence number is ACKed again but not delivered twice; a corrupt frame is answered with
a NAK so the peer resends at once. Delivered payloads wait in ``inbox``.

The link is I/O-agnostic: the owner feeds received bytes to ``feed_data`` (on the event loop) and
gives a ``write`` coroutine for outgoing bytes. Both the pyserial driver and the pty simulators use it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from devices.errors import ResponseTimeoutError
from devices.serial.framing import Frame, FrameKind, Framer

__all__ = ["MessageLink"]

log = logging.getLogger(__name__)


class MessageLink:
    def __init__(
        self,
        write: Callable[[bytes], Awaitable[None]],
        *,
        ack_timeout_s: float = 0.5,
        retries: int = 4,
        name: str = "link",
    ) -> None:
        self._write = write
        self.ack_timeout_s = ack_timeout_s
        self.retries = retries
        self.name = name
        self.framer = Framer()
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._tx_seq = 0
        self._rx_last: int | None = None
        self._ack: asyncio.Future[bool] | None = None  # True on ACK, False on NAK
        self._send_lock = asyncio.Lock()
        self.retransmissions = 0
        self.bad_frames = 0

    def feed_data(self, data: bytes) -> None:
        for frame in self.framer.feed_data(data):
            self._on_frame(frame)
        errors = self.framer.take_errors()
        if errors:
            self.bad_frames += len(errors)
            log.info("%s: %d bad frame(s) (%s), NAK", self.name, len(errors), errors[0])
            asyncio.get_running_loop().create_task(self._send_control(FrameKind.NAK, self._expected()))

    def _expected(self) -> int:
        return 0 if self._rx_last is None else (self._rx_last + 1) & 0xFF

    def _on_frame(self, frame: Frame) -> None:
        if frame.kind is FrameKind.DATA:
            if frame.seq == self._rx_last:
                pass  # our ACK was lost: acknowledge again, do not deliver twice
            else:
                self._rx_last = frame.seq
                self.inbox.put_nowait(frame.payload)
            asyncio.get_running_loop().create_task(self._send_control(FrameKind.ACK, frame.seq))
        elif self._ack is not None and not self._ack.done() and frame.seq == self._tx_seq:
            self._ack.set_result(frame.kind is FrameKind.ACK)
        elif frame.kind is FrameKind.NAK and self._ack is not None and not self._ack.done():
            self._ack.set_result(False)

    async def _send_control(self, kind: FrameKind, seq: int) -> None:
        try:
            await self._write(bytes(Frame(kind, seq)))
        except OSError as exc:
            log.debug("%s: could not send %s: %s", self.name, kind.name, exc)

    async def send(self, payload: bytes) -> None:
        async with self._send_lock:
            self._tx_seq = (self._tx_seq + 1) & 0xFF
            data = bytes(Frame(FrameKind.DATA, self._tx_seq, payload))
            for attempt in range(self.retries + 1):
                self._ack = asyncio.get_running_loop().create_future()
                if attempt:
                    self.retransmissions += 1
                await self._write(data)
                try:
                    if await asyncio.wait_for(self._ack, self.ack_timeout_s):
                        return
                except TimeoutError:
                    pass
            raise ResponseTimeoutError(f"{self.name} send", f"no ACK after {self.retries + 1} attempts")

    async def receive(self, timeout_s: float | None = None) -> bytes:
        try:
            return await asyncio.wait_for(self.inbox.get(), timeout_s)
        except TimeoutError:
            raise ResponseTimeoutError(f"{self.name} receive", f"nothing within {timeout_s} s") from None
