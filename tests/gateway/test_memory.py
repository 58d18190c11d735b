"""The daemon's memory release: only clean read-only library pages are dropped, and kernels keep
working (and compiling) after it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from edgetwin.gateway.memory import clean_ranges

SMAPS = """\
7f0000000000-7f0000100000 r--p 00000000 08:01 42    /venv/llvmlite/binding/libllvmlite.so
Rss:                1024 kB
Anonymous:             0 kB
VmFlags: rd mr mw me sd
7f0000100000-7f0000300000 r-xp 00100000 08:01 42    /venv/llvmlite/binding/libllvmlite.so
Rss:                2048 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me sd
7f0000300000-7f0000310000 r--p 00300000 08:01 42    /venv/llvmlite/binding/libllvmlite.so
Rss:                  64 kB
Anonymous:            64 kB
VmFlags: rd mr mw me ac sd
7f0000310000-7f0000320000 rw-p 00310000 08:01 42    /venv/llvmlite/binding/libllvmlite.so
Rss:                  64 kB
Anonymous:             0 kB
VmFlags: rd wr mr mw me ac sd
7f0000400000-7f0000500000 r-xp 00000000 08:01 43    /usr/lib/libsqlite3.so.0
Rss:                 512 kB
Anonymous:             0 kB
7f0000500000-7f0000600000 rw-p 00000000 00:00 0
Rss:                 512 kB
Anonymous:           512 kB
"""


def test_only_clean_read_only_mappings_of_the_named_library_are_chosen() -> None:
    ranges = clean_ranges(SMAPS, ("libllvmlite",))
    # the relocated (anonymous) read-only part, the writable part, other libraries and anonymous
    # memory are all left alone
    assert ranges == [(0x7F0000000000, 0x100000), (0x7F0000100000, 0x200000)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc and madvise")
def test_kernels_run_and_compile_after_the_release() -> None:
    code = textwrap.dedent(
        """
        import numpy as np
        from numba import njit
        from edgetwin.gateway.memory import release_startup_memory

        @njit(cache=False)
        def total(x):
            return x.sum() * 2.0

        assert total(np.arange(4.0)) == 12.0
        mem = release_startup_memory()
        assert mem["after_mb"] < mem["before_mb"], mem
        assert total(np.arange(5.0)) == 20.0  # compiled code still runs

        @njit(cache=False)
        def other(x):
            return (x * x).sum()

        assert other(np.arange(3.0)) == 5.0  # and LLVM still compiles
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
