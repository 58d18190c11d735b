"""The error tree of the ``devices`` package.

::

    DevicesError                    root of everything ``devices`` raises on purpose (an EdgeTwinError)
    ├── DecodeError                 bytes that are not a valid record (what, field, offset, reason)
    │   ├── CrcError                an E2E-CRC or frame CRC that does not match (expected, actual)
    │   └── FrameError              a serial frame that is malformed (bad stuffing, length, type)
    ├── EncodeError                 a value that cannot be put on the wire (out of range for its field)
    ├── DeviceNameError             a device name string that cannot be parsed (``ble:...``, ``serial:...``)
    ├── DeviceUnavailableError      a device that cannot be found or reached (after the retries allowed)
    └── ProtocolError               a device that answered outside its protocol, refused an operation, or
        │                           did not answer in time (``operation``, ``code``)
        └── ResponseTimeoutError    no answer within the transport timeout

A pump command the pump did not confirm is not an error: the drivers return
``CommandResult(confirmed=False)`` with the reason.
"""

from __future__ import annotations

from edgetwin.errors import EdgeTwinError

__all__ = [
    "CrcError",
    "DecodeError",
    "DeviceNameError",
    "DeviceUnavailableError",
    "DevicesError",
    "EncodeError",
    "FrameError",
    "ProtocolError",
    "ResponseTimeoutError",
]


class DevicesError(EdgeTwinError):
    """Root of the errors of the ``devices`` package."""


class DecodeError(DevicesError, ValueError):
    """Bytes that do not form a valid record.

    ``what`` names the record (``"CGM Measurement"``), ``field`` the field being read, ``offset``
    the byte offset where decoding stopped, ``reason`` what was wrong.
    """

    def __init__(self, what: str, reason: str, *, field: str = "", offset: int | None = None) -> None:
        where = what
        if field:
            where += f".{field}"
        if offset is not None:
            where += f" @{offset}"
        super().__init__(f"{where}: {reason}")
        self.what = what
        self.field = field
        self.offset = offset
        self.reason = reason


class CrcError(DecodeError):
    """A CRC that does not match (``expected`` computed over the bytes, ``actual`` received)."""

    def __init__(self, what: str, *, expected: int, actual: int | None, offset: int | None = None) -> None:
        reason = (
            "E2E-CRC missing although the device declares E2E protection"
            if actual is None
            else f"CRC mismatch: computed 0x{expected:04X}, received 0x{actual:04X}"
        )
        super().__init__(what, reason, field="crc", offset=offset)
        self.expected = expected
        self.actual = actual


class FrameError(DecodeError):
    """A serial frame that cannot be unstuffed or parsed."""


class EncodeError(DevicesError, ValueError):
    """A value that cannot be encoded in its wire field."""


class DeviceNameError(DevicesError, ValueError):
    """A device name string that cannot be parsed."""


class DeviceUnavailableError(DevicesError, ConnectionError):
    """A device that cannot be found or reached."""


class ProtocolError(DevicesError):
    """The device answered outside its protocol or refused an operation.

    ``operation`` names what was attempted, ``code`` the device's result code when it gave one.
    """

    def __init__(self, operation: str, reason: str, *, code: int | None = None) -> None:
        super().__init__(f"{operation}: {reason}")
        self.operation = operation
        self.reason = reason
        self.code = code


class ResponseTimeoutError(ProtocolError, TimeoutError):
    """No answer within the transport timeout."""
