from __future__ import annotations

import json

import pytest

from devices.errors import DeviceNameError
from devices.names import parse_name
from edgetwin.cli import main


def test_decode_prints_json_and_rejects_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "decode", "cgm-measurement", "0A 01 70 00 A0 05 F4 FF 1B 8F"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["glucose_mg_dl"] == 112.0 and record["time_offset_min"] == 1440 and record["e2e"] is True
    assert main(["devices", "decode", "heart-rate", "16483303"]) == 0
    assert json.loads(capsys.readouterr().out)["heart_rate_bpm"] == 72
    assert main(["devices", "decode", "cgm-measurement", "0A017000A005F4FF1B8E"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CRC mismatch" in err
    assert main(["devices", "decode", "ids-status", "zz"]) == 2


@pytest.mark.parametrize(
    ("name", "scheme", "kind"),
    [
        ("ble:AA:BB:CC:DD:EE:FF", "ble", "cgm"),
        ("ble:AA:BB:CC:DD:EE:FF?kind=pump", "ble", "pump"),
        ("ble-sim:heart", "ble-sim", "heart"),
        ("serial:/dev/ttyUSB0?baud=115200", "serial", "cgm"),
        ("serial-sim:pump", "serial-sim", "pump"),
    ],
)
def test_device_names(name: str, scheme: str, kind: str) -> None:
    n = parse_name(name)
    assert (n.scheme, n.kind) == (scheme, kind)


@pytest.mark.parametrize(
    "name", ["cgm", "bt:x", "ble-sim:toaster", "serial:/dev/x?baud=fast", "serial-sim:heart"]
)
def test_bad_device_names(name: str) -> None:
    with pytest.raises(DeviceNameError):
        parse_name(name)
