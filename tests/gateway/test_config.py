"""The configuration is validated at start-up; every error names the key and the problem."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from edgetwin.cli import main
from edgetwin.errors import ConfigError
from edgetwin.gateway.config import load_config, parse_config
from tests.gateway.helpers import config_dict

REPO = Path(__file__).resolve().parents[2]


def _err(tmp_path: Path, **changes: Any) -> ConfigError:
    doc = config_dict(tmp_path)
    for dotted, value in changes.items():
        table, _, key = dotted.partition("__")
        if key:
            doc.setdefault(table, {})
            if value is None:
                doc[table].pop(key, None)
            else:
                doc[table][key] = value
        elif value is None:
            doc.pop(table, None)
        else:
            doc[table] = value
    with pytest.raises(ConfigError) as info:
        parse_config(doc, source="gw.toml", base_dir=tmp_path)
    return info.value


def test_a_minimal_configuration_has_safe_defaults(tmp_path: Path) -> None:
    cfg = parse_config(config_dict(tmp_path), source="gw.toml", base_dir=tmp_path)
    assert cfg.mode == "open-loop"
    assert cfg.devices == {"cgm": "ble-sim:cgm"}
    assert cfg.db_path == tmp_path / "edgetwin.db"
    assert cfg.watchdog.no_data_alarm_min == 20.0
    assert cfg.profile.basal_at_minute(7 * 60) == 1.0
    assert cfg.sync is None


@pytest.mark.parametrize(
    ("changes", "key", "problem"),
    [
        ({"gateway__mode": "auto"}, "gateway.mode", "open-loop, closed-loop"),
        ({"gateway__data_dir": None}, "gateway.data_dir", "required"),
        ({"gateway__cycle_min": 0}, "gateway.cycle_min", "outside"),
        ({"gateway__cycel_min": 5}, "gateway.cycel_min", "unknown key"),
        ({"devices__cgm": "bel:AA:BB"}, "devices.cgm", "unknown device kind 'bel'"),
        ({"devices__cgm": "serial:ttyUSB0"}, "devices.cgm", "absolute path"),
        ({"devices__cgm": "ble-sim:pump"}, "devices.cgm", "ble-sim:cgm"),
        ({"devices__pump": "serial-sim:heart"}, "devices.pump", "serial-sim:pump"),
        ({"devices__cgm": "ble:AA:BB:CC:DD:EE:FF?kind=pump"}, "devices.cgm", "names a pump"),
        ({"devices__cgm": "serial:/dev/ttyUSB0?baud=fast"}, "devices.cgm", "baud"),
        ({"devices__cgm": "sim:cgm"}, "devices.cgm", "unknown device kind 'sim'"),
        ({"devices__cgm": None}, "devices.cgm", "required"),
        ({"devices": None}, "devices", "required"),
        ({"status__port": 70000}, "status.port", "outside"),
        ({"log__format": "xml"}, "log.format", "text, json"),
        ({"watchdog__no_data_alarm_min": 240}, "watchdog.no_data_alarm_min", "outside"),
        ({"sim__patient": "adult#099"}, "sim.patient", "adult#099"),
        ({"clock__factor": 10}, "clock.kind", "scaled"),
        ({"profile__carb_ratio_g_per_u": 1.0}, "profile.carb_ratio_g_per_u", "outside [3, 150]"),
        ({"profile__weight_kg": None}, "profile.weight_kg", "required"),
        ({"profile": None}, "profile", "required"),
        ({"limits": None}, "limits", "required"),
        ({"limits__max_bolus_u": -1}, "limits.max_bolus_u", "(0, 50]"),
        ({"limits__max_basal_u_per_h": None}, "limits.max_basal_u_per_h", "required"),
        ({"limits__mode": "closed-loop"}, "limits.mode", "disagrees"),
        ({"gateway__mode": "closed-loop"}, "gateway.mode", "needs a pump"),
        ({"sync__endpoint": "ftp://x"}, "sync.endpoint", "http"),
        ({"sync__endpoint": "http://cloud.example.org"}, "sync.endpoint", "loopback"),
        ({"bogus": {}}, "bogus", "unknown table"),
    ],
)
def test_errors_name_the_key_and_the_problem(
    tmp_path: Path, changes: dict[str, Any], key: str, problem: str
) -> None:
    err = _err(tmp_path, **changes)
    assert err.key == key
    assert problem in err.problem
    assert str(err).startswith(f"gw.toml: {key}: ")


def test_closed_loop_needs_explicit_max_iob(tmp_path: Path) -> None:
    doc = config_dict(tmp_path, gateway={"mode": "closed-loop"}, devices={"pump": "ble-sim:pump"})
    with pytest.raises(ConfigError, match=r"limits\.max_iob_u"):
        parse_config(doc)
    doc["limits"]["max_iob_u"] = 4.0
    assert parse_config(doc).closed_loop


def test_credentials_file_must_exist_and_be_private(tmp_path: Path) -> None:
    cred = tmp_path / "cred.toml"
    sync = {"endpoint": "https://cloud.example.org", "credentials_file": "cred.toml"}
    with pytest.raises(ConfigError, match=r"sync\.credentials_file: .*No such file"):
        parse_config(config_dict(tmp_path, sync=sync), base_dir=tmp_path)
    cred.write_text("secret = 'x'\n")
    os.chmod(cred, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        parse_config(config_dict(tmp_path, sync=sync), base_dir=tmp_path)
    os.chmod(cred, 0o600)
    with pytest.raises(ConfigError, match=r"sync\.credentials_file: .*cred\.toml"):
        parse_config(config_dict(tmp_path, sync=sync), base_dir=tmp_path)  # not a credential
    from sync.auth import Credential

    cred.unlink()
    Credential.issue("gw-1", "patient-1").save(cred)
    cfg = parse_config(config_dict(tmp_path, sync=sync), base_dir=tmp_path)
    assert cfg.sync is not None and cfg.sync.credentials_file == cred


def test_a_role_s_kind_is_implied_by_the_role() -> None:
    from edgetwin.gateway.config import device_name_for

    assert device_name_for("pump", "ble:AA:BB:CC:DD:EE:02") == "ble:AA:BB:CC:DD:EE:02?kind=pump"
    assert device_name_for("cgm", "serial:/dev/ttyUSB0?baud=9600") == "serial:/dev/ttyUSB0?baud=9600&kind=cgm"
    assert device_name_for("heart_rate", "ble-sim:heart") == "ble-sim:heart"


def test_malformed_toml_is_reported_with_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text("[gateway\ndata_dir = 1\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: file: not valid TOML"):
        load_config(p)


def test_config_check_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = REPO / "deploy" / "gateway.toml"
    assert main(["config", "check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "open-loop" in out and "/var/lib/edgetwin" in out
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace('mode = "open-loop"', 'mode = "auto"'))
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gateway.mode" in err and "auto" in err
