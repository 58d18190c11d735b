"""The error tree of the local store.

::

    StoreError                     root: anything the store raises on purpose (an EdgeTwinError)
    ├── StoreCorruptError          the file is not a healthy EdgeTwin database (bad header, truncated,
    │                              failed integrity check, another application's database); never
    │                              replaced silently: the operator decides (keep it, move it aside)
    ├── StoreSchemaError           the file was written by a newer EdgeTwin (schema version unknown)
    ├── StoreFullError             the disk (or the configured size limit) is full; nothing was written
    │                              by the failing call, everything stored before is kept
    ├── StoreBusyError             another process holds the write lock past the busy timeout
    ├── StoreIOError               the operating system failed a read or write (SQLITE_IOERR, ...)
    └── StoreClosedError           the store was used after ``close()``

Every error carries ``path`` (the database file). :func:`translate` maps a ``sqlite3`` exception
to this tree in one place, using the extended SQLite result code.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from edgetwin.errors import EdgeTwinError

__all__ = [
    "StoreBusyError",
    "StoreClosedError",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreIOError",
    "StoreSchemaError",
    "translate",
]


class StoreError(EdgeTwinError):
    """Root of the store's errors; ``path`` names the database file."""

    def __init__(self, message: str, *, path: str | Path = "") -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)
        self.reason = message


class StoreCorruptError(StoreError):
    """The database file is damaged, truncated or not an EdgeTwin database."""


class StoreSchemaError(StoreError):
    """The database has a schema version this EdgeTwin does not know (written by a newer one)."""

    def __init__(self, message: str, *, path: str | Path = "", found: int = 0, known: int = 0) -> None:
        super().__init__(message, path=path)
        self.found = found
        self.known = known


class StoreFullError(StoreError):
    """No space left (disk full or ``max_page_count`` reached); the failing write was rolled back."""


class StoreBusyError(StoreError):
    """The database stayed locked by another connection past the busy timeout."""


class StoreIOError(StoreError):
    """An operating-system level read or write failure."""


class StoreClosedError(StoreError):
    """The store was used after it was closed."""


# Primary SQLite result codes (the low byte of the extended code); https://sqlite.org/rescode.html
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26


_NEARLY_FULL_BYTES = 64 * 1024


def _nearly_full(directory: Path) -> bool:
    try:
        return shutil.disk_usage(directory).free < _NEARLY_FULL_BYTES
    except OSError:
        return False


def translate(exc: sqlite3.Error, path: str | Path, doing: str) -> StoreError:
    """The store error for a ``sqlite3`` exception raised while ``doing`` something."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    message = f"{doing}: {exc}"
    if primary == _SQLITE_FULL:
        return StoreFullError(f"{doing}: disk or database size limit full ({exc})", path=path)
    if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return StoreCorruptError(message, path=path)
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return StoreBusyError(message, path=path)
    if primary in (_SQLITE_IOERR, _SQLITE_CANTOPEN):
        # SQLite reports ENOSPC on its shared-memory index as an I/O error (SQLITE_IOERR_SHMSIZE);
        # when the filesystem has (almost) no room left, that is a full disk.
        if _nearly_full(Path(path).parent):
            return StoreFullError(f"{doing}: disk full ({exc})", path=path)
        return StoreIOError(message, path=path)
    return StoreError(message, path=path)
