"""CRC-16/MCRF4XX, the E2E-CRC of the Bluetooth health profiles (and our serial frame check).

Polynomial 0x1021 processed reflected (0x8408), init 0xFFFF, reflected in and out, xorout 0.
Check value: ``crc16_mcrf4xx(b"123456789") == 0x6F91``. Sent little-endian.
"""

from __future__ import annotations

__all__ = ["crc16_mcrf4xx"]


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc16_mcrf4xx(data: bytes | bytearray | memoryview, crc: int = 0xFFFF) -> int:
    """The CRC of ``data``; pass a previous result as ``crc`` to continue over more bytes."""
    for byte in bytes(data):
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc
