"""The cloud on PostgreSQL: a throwaway server is started for the test when one can be.

Skipped (with the reason) when PostgreSQL's ``initdb``/``pg_ctl`` or the ``psycopg`` package are
missing, or the server cannot be started here.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from edgetwin.store import Store
from sync.auth import Credential
from sync.cloud.app import create_app
from sync.cloud.db import CloudDB
from sync.cloud.server import ServerThread
from sync.codec import encode_batch
from sync.transport import CloudClient
from sync.uploader import Uploader
from tests.sync.records import day_records


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    pytest.importorskip("psycopg", reason="PostgreSQL tests need the psycopg package")
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
    base = Path(tempfile.mkdtemp(prefix="edgetwin-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        os.chown(base, pw.pw_uid, pw.pw_gid)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        done = subprocess.run(_as_postgres([initdb, "-D", str(data), "-U", "edgetwin", "--auth=trust"]),
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"initdb failed here: {done.stderr.strip()[:200]}")
        opts = f"-p {port} -k {base} -h 127.0.0.1"
        done = subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w",
                                            "start"]), capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"PostgreSQL did not start here: {done.stderr.strip()[:200]}")
        try:
            yield f"postgresql://edgetwin@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(
                _as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]), capture_output=True
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_ingest_exactly_once_and_history_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    db = CloudDB(postgres_url)
    server = ServerThread(create_app(db)).start()
    try:
        cred = Credential.issue(f"gw-pg-{time.time_ns()}", "patient-pg", server.url)
        db.add_gateway(cred.gateway_id, cred.patient_id, cred.key)
        client = CloudClient(cred, requests.Session())
        with Store.open(tmp_path / "edge.db") as store:
            for r in day_records(hours=4):
                store.add(r)
            uploader = Uploader(store, client, max_items=50)
            while uploader.sync_once().backlog:
                pass
            counts = store.counts()
        # A retried batch (same gateway, sequence) is a duplicate, not a second copy.
        again = client.post_batch(encode_batch(cred.gateway_id, 1, 0, []))
        assert again["duplicate"] is True
        assert db.count("patient-pg", "cgm") == counts["cgm"] == 48
        assert len(client.history("cgm", 0, 2**62)) == 48
        version = db.add_param_update("patient-pg", {"BW": 70.0}, "test", 0)
        assert db.latest_param_update("patient-pg").version == version  # type: ignore[union-attr]
        db.record_job("j1", "patient-pg", 0, None, "running")
        db.record_job("j1", "patient-pg", 0, 1, "published")
        assert db.jobs("patient-pg") == [("j1", "published", "")]
    finally:
        server.stop()
        db.close()
