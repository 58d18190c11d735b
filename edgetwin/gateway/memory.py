"""Give back the memory start-up needed and steady state does not (Linux; elsewhere a no-op).

Loading the numba kernels runs LLVM's start-up code, which maps tens of MB of the ~180 MB
``libllvmlite.so`` into the process, and leaves freed heap that glibc keeps. Neither is touched
again once every kernel is loaded. After the first decision cycle the gateway daemon:

- returns free heap to the system (``malloc_trim(0)``), and
- drops its mappings of the LLVM library's *clean, read-only* pages (``madvise(MADV_DONTNEED)``
  on read-only mappings that hold no private page, checked in ``/proc/self/smaps``): the pages
  stay in the page cache and come back on the next touch (a minor fault) exactly as they were,
  so a kernel compiled later still works; they just stop counting as the gateway's resident memory.
  Writable mappings and any mapping holding a private (relocated) page are never touched.

Figures: ``edgetwin bench gateway`` (resident memory of the daemon in steady state).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import logging
import sys
from pathlib import Path

__all__ = ["clean_ranges", "release_startup_memory", "resident_mb"]

log = logging.getLogger(__name__)

MADV_DONTNEED = 4  # include/uapi/asm-generic/mman-common.h
COLD_LIBRARIES = ("libllvmlite",)


def resident_mb() -> float | None:
    """This process's resident set (VmRSS) in MB, or None where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def clean_ranges(smaps_text: str, names: tuple[str, ...]) -> list[tuple[int, int]]:
    """(start, length) of the named libraries' mappings that are read-only and hold no private
    (anonymous, copy-on-write) page: dropping those loses nothing, the file has every byte."""
    out: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    for line in smaps_text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
            current = None
            if len(parts) >= 6 and "w" not in parts[1] and any(n in Path(parts[5]).name for n in names):
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                current = (lo, hi - lo)
        elif current is not None and parts[0] == "Anonymous:":
            if int(parts[1]) == 0:
                out.append(current)
            current = None
    return out


def release_startup_memory() -> dict[str, float]:
    """Trim the heap and page out cold library code; returns {'before_mb', 'after_mb'} (0 when unknown)."""
    before = resident_mb() or 0.0
    gc.collect()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        with contextlib.suppress(AttributeError):  # musl has no malloc_trim
            libc.malloc_trim(0)
        try:
            ranges = clean_ranges(Path("/proc/self/smaps").read_text(), COLD_LIBRARIES)
        except OSError:
            ranges = []
        madvise = libc.madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        for start, length in ranges:
            if madvise(start, length, MADV_DONTNEED) != 0:
                log.debug("madvise(DONTNEED) refused: errno %d", ctypes.get_errno())
                break
    after = resident_mb() or 0.0
    return {"before_mb": before, "after_mb": after}
