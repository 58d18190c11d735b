"""A pyserial port entering asyncio at one choke point.

A reader thread blocks in ``serial.read`` and hands every chunk to the event loop with
``call_soon_threadsafe``; writes go through ``asyncio.to_thread``. An unplugged device shows up as
``SerialException``/``OSError`` (or, on some drivers, as reads that return nothing while the port
reports readiness, which pyserial also raises as ``SerialException``): the port then sets ``lost``
and the owner reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

import serial

from devices.errors import DeviceUnavailableError

__all__ = ["SerialPort"]

log = logging.getLogger(__name__)


class SerialPort:
    def __init__(self, path: str, baudrate: int = 115200) -> None:
        self.path = path
        self.baudrate = baudrate
        self._serial: serial.Serial | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.lost: asyncio.Event = asyncio.Event()

    async def open(self, on_data: Callable[[bytes], None]) -> None:
        loop = asyncio.get_running_loop()
        try:
            ser = await asyncio.to_thread(serial.Serial, self.path, self.baudrate, timeout=0.05)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceUnavailableError(f"cannot open {self.path}: {exc}") from None
        self._serial = ser
        self._stop.clear()
        self.lost = asyncio.Event()
        lost = self.lost

        def reader() -> None:
            while not self._stop.is_set():
                try:
                    data = ser.read(1)  # returns on the first byte (or the 50 ms timeout) ...
                    if data and ser.in_waiting:
                        data += ser.read(ser.in_waiting)  # ... then takes what else is there
                except (serial.SerialException, OSError, TypeError) as exc:
                    if not self._stop.is_set():
                        log.info("%s: port lost (%s)", self.path, exc)
                        loop.call_soon_threadsafe(lost.set)
                    return
                if data:
                    loop.call_soon_threadsafe(on_data, data)

        self._thread = threading.Thread(target=reader, name=f"serial-reader {self.path}", daemon=True)
        self._thread.start()

    async def write(self, data: bytes) -> None:
        ser = self._serial
        if ser is None or self.lost.is_set():
            raise DeviceUnavailableError(f"{self.path} is not open")
        try:
            await asyncio.to_thread(ser.write, data)
        except (serial.SerialException, OSError, TypeError) as exc:
            # TypeError: pyserial's file descriptor went to None under us (the port was closed
            # by a reconnect while this write was in flight), as the reader thread also sees.
            self.lost.set()
            raise DeviceUnavailableError(f"{self.path}: write failed: {exc}") from None

    async def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 1.0)
            self._thread = None
        if self._serial is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._serial.close()
            self._serial = None
