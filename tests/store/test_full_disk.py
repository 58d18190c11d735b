"""A full disk is reported (StoreFullError) and everything stored before is kept."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgetwin.store import Ack, Store, StoreFullError
from tests.store.helpers import at, cgm


def _fill(store: Store, limit: int = 100_000) -> list[Ack]:
    acks: list[Ack] = []
    with pytest.raises(StoreFullError):
        for i in range(limit):
            acks.append(store.add_cgm(cgm(i)))
    return acks


def _check_kept(path: Path, acked: int) -> None:
    with Store.open(path, integrity="full") as again:
        got = again.cgm_between(at(0), at(5 * (acked + 10)))
        assert [r.sequence for r in got] == [5 * i for i in range(acked)]


def test_size_limit_reached_keeps_stored_data(tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    with Store.open(path, max_size_bytes=96 * 1024) as store:
        acks = _fill(store)
        assert len(acks) > 50
        # Still readable after the failure; the failing reading was not stored.
        assert store.counts()["cgm"] == len(acks)
        assert store.latest_cgm() == cgm(len(acks) - 1)
        with pytest.raises(StoreFullError, match="full"):
            store.add_cgm(cgm(len(acks)))
    _check_kept(path, len(acks))
    with Store.open(path) as bigger:  # space freed (limit lifted): writing goes on
        assert not bigger.add_cgm(cgm(len(acks))).duplicate


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB filesystem (tmpfs), mounted for the test; needs root and mount rights."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root; the size-limit test covers the logic")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_creating_on_a_full_filesystem_leaves_nothing_behind(tiny_tmpfs: Path) -> None:
    ballast = tiny_tmpfs / "ballast"
    ballast.write_bytes(b"x" * (1024 * 1024 - 16 * 1024))
    with pytest.raises(StoreFullError):
        Store.open(tiny_tmpfs / "edge.db")
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) == ["ballast"]


def test_a_really_full_filesystem_keeps_stored_data(tiny_tmpfs: Path, tmp_path: Path) -> None:
    path = tiny_tmpfs / "edge.db"
    store = Store.open(path)
    try:
        acks = _fill(store)
        assert len(acks) > 20
        assert store.counts()["cgm"] == len(acks)
    finally:
        store.close()
    # Copy out what is on the full filesystem and check it there (reopening needs a little space).
    copy = tmp_path / "copy.db"
    for suffix in ("", "-wal"):
        src = path.with_name(path.name + suffix)
        if src.exists():
            shutil.copyfile(src, copy.with_name(copy.name + suffix))
    _check_kept(copy, len(acks))
