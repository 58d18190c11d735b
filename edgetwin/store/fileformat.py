"""Checks on the database file before SQLite touches it.

SQLite happily opens a zero-length file as a new, empty database, and reads past the end of a
truncated one as zeros; both would hide lost data. So before opening we check the 100-byte header
(https://sqlite.org/fileformat.html, section 1.3) and the file's size against it.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from edgetwin.store.errors import StoreCorruptError

__all__ = ["SQLITE_MAGIC", "check_header"]

SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100


def _wal_has_frames(path: Path) -> bool:
    wal = path.with_name(path.name + "-wal")
    try:
        return wal.stat().st_size > 32  # a WAL header is 32 bytes; frames follow it
    except FileNotFoundError:
        return False


def check_header(path: Path) -> None:
    """Raise :class:`StoreCorruptError` unless ``path`` looks like a whole SQLite database.

    With a write-ahead log holding frames (a crash before checkpoint), the main file may
    legitimately lag behind the header's page count, so the size checks are left to SQLite's
    recovery and the integrity check that follows.
    """
    size = path.stat().st_size
    if size == 0:
        raise StoreCorruptError("the database file is empty (truncated?); not replacing it", path=path)
    if size < _HEADER_SIZE:
        raise StoreCorruptError(f"the database file is truncated ({size} bytes, header needs 100)", path=path)
    with open(path, "rb") as fh:
        header = fh.read(_HEADER_SIZE)
    if header[:16] != SQLITE_MAGIC:
        raise StoreCorruptError("not an SQLite database (bad header)", path=path)
    (raw_page_size,) = struct.unpack(">H", header[16:18])
    page_size = 65536 if raw_page_size == 1 else raw_page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise StoreCorruptError(f"invalid page size {raw_page_size} in the header", path=path)
    if _wal_has_frames(path):
        return
    if size % page_size:
        raise StoreCorruptError(
            f"the database file is truncated ({size} bytes is not a whole number of {page_size}-byte pages)",
            path=path,
        )
    change_counter, n_pages = struct.unpack(">II", header[24:32])
    (valid_for,) = struct.unpack(">I", header[92:96])
    if n_pages and change_counter == valid_for and size < n_pages * page_size:
        raise StoreCorruptError(
            f"the database file is truncated ({size // page_size} of {n_pages} pages present)", path=path
        )


def fsync_dir(path: Path) -> None:
    """Make a rename or file creation inside ``path`` durable (POSIX)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
