"""The README flow: ``edgetwin cloud serve`` + ``add-gateway`` + ``sync`` from the gateway."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from edgetwin.cli import main
from sync.cloud.db import CloudDB

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_edge_and_cloud_together_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db_url = f"sqlite:///{tmp_path / 'cloud.db'}"
    port = _free_port()
    cred = tmp_path / "gw.cred"
    assert main(["cloud", "add-gateway", "--database-url", db_url, "--patient", "patient-001", "--gateway-id",
                 "gw-home", "--out", str(cred), "--url", f"http://127.0.0.1:{port}"]) == 0  # fmt: skip
    assert stat.S_IMODE(cred.stat().st_mode) == 0o600
    out = capsys.readouterr().out
    assert "gw-home" in out and "key" not in out.lower().replace("(mode 600)", "")
    assert main(["cloud", "add-gateway", "--database-url", db_url, "--patient", "p", "--out", str(cred)]) == 2
    server = subprocess.Popen(
        [sys.executable, "-m", "edgetwin", "cloud", "serve", "--database-url", db_url, "--port", str(port),
         "--log-level", "warning"], cwd=ROOT, env=dict(os.environ, PYTHONWARNINGS="ignore"))  # fmt: skip
    try:
        for _ in range(100):
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        store = tmp_path / "edge.db"
        assert main(["cloud", "sync", "--store", str(store), "--credential", str(cred), "--demo-day"]) == 0
        out = capsys.readouterr().out
        assert "uploaded" in out and "backlog 0" in out and "parameters up to date" in out
        assert main(["cloud", "sync", "--store", str(store), "--credential", str(cred)]) == 0
        assert "uploaded 0 records" in capsys.readouterr().out
    finally:
        server.terminate()
        server.wait(timeout=10)
    db = CloudDB(db_url)
    try:
        assert db.count("patient-001", "cgm") >= 280
    finally:
        db.close()


def test_bad_configuration_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "cloud.toml"
    cfg.write_text('[cloud]\nport = "eighty"\n')
    assert main(["cloud", "repersonalise", "--config", str(cfg)]) == 2
    assert "cloud.port" in capsys.readouterr().err
    cfg.write_text('[cloud]\nidentify = ""\n')
    assert (
        main(["cloud", "repersonalise", "--config", str(cfg), "--database-url", f"sqlite:///{tmp_path}/c.db"])
        == 2
    )
    assert "identify" in capsys.readouterr().err
