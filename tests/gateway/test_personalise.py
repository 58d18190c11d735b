"""The gateway's nightly batch personalisation: at the configured local time the living twin is
re-identified from the stored history and adopts the result; too little data is a logged skip."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from edgetwin.clock import ScaledClock
from edgetwin.errors import ConfigError
from edgetwin.gateway import Gateway
from edgetwin.gateway.devices import OpenedDevices
from edgetwin.gateway.personalise_stage import next_local_time, stored_history
from edgetwin.gateway.timekeeping import MinuteMap
from edgetwin.messages import CarbEntry, CgmReading, InsulinDelivery, InsulinKind
from edgetwin.store import Store
from edgetwin.therapy import TherapyProfile
from tests.gateway.helpers import START, ScriptedCgm, make_config

pytest.importorskip("edgetwin.twin.twin", reason="the living twin is not in this build")

FAST = 3000.0


def _prefill(db: Path, hours: int) -> None:
    """``hours`` of a virtual patient's CGM, insulin (5-min blocks) and carbs before START."""
    from edgetwin.bench.estimate import _simulate

    _, _, trace = _simulate("adult#001", -(-hours // 24), 5)
    t0 = START - timedelta(hours=hours)
    n = hours * 60
    with Store.open(db) as s:
        for k in range(n):
            t = t0 + timedelta(minutes=k)
            g = trace.cgm_mg_dl[k]
            if np.isfinite(g):
                s.add(CgmReading(t, float(round(g)), "pre-cgm", sequence=k // 5))
            if trace.announced_cho_g[k] > 0:
                s.add(CarbEntry(t, float(trace.announced_cho_g[k])))
            if k % 5 == 0:
                units = float(trace.insulin_u[k : k + 5].sum())
                s.add(InsulinDelivery(t, round(units, 3), InsulinKind.BASAL, "pre-pump", 5.0, k // 5))


async def _until(cond, timeout_s: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def _gateway(tmp_path: Path, clock: ScaledClock, at: str) -> Gateway:
    cfg = make_config(tmp_path, gateway={"personalise_at": at})
    return Gateway(cfg, clock=clock, devices=OpenedDevices(sources={"cgm": ScriptedCgm(clock)}))


@pytest.mark.asyncio
async def test_the_twin_is_personalised_at_the_configured_local_time(tmp_path: Path) -> None:
    _prefill(tmp_path / "edgetwin.db", 30)
    clock = ScaledClock(START, FAST)
    async with _gateway(tmp_path, clock, "03:00") as gw:  # never personalised: catches up at start
        assert gw.personaliser is not None
        await _until(lambda: gw.personaliser is not None and gw.personaliser.state["state"] != "waiting")
        state = dict(gw.personaliser.state)
        assert state["state"] == "ok", state
        assert gw.personaliser.runs == 1
        assert "readings" in state["detail"] and "by time of day" in state["detail"]
        assert "personalised from 1." in gw.twin.prior.description  # type: ignore[union-attr]
        assert gw.state.personalise is gw.personaliser.state  # on the status page
        assert gw.twin.forecast(60) is not None  # type: ignore[union-attr]
        last = gw.personaliser.last_success()
        assert last is not None and START <= last < START + timedelta(hours=2)
        next_utc = datetime.fromisoformat(gw.personaliser.state["next_utc"])
        assert next_utc.hour == 3 and next_utc.minute == 0 and next_utc > last  # then every night
    # A restart the same day does not run it again before the night.
    clock2 = ScaledClock(START + timedelta(hours=3), FAST)
    async with _gateway(tmp_path, clock2, "03:00") as gw2:
        assert gw2.personaliser is not None
        assert datetime.fromisoformat(gw2.personaliser.state["next_utc"]).hour == 3
        assert gw2.personaliser.runs == 0


@pytest.mark.asyncio
async def test_less_than_a_day_of_data_is_skipped_not_failed(tmp_path: Path) -> None:
    _prefill(tmp_path / "edgetwin.db", 6)
    clock = ScaledClock(START, FAST)
    async with _gateway(tmp_path, clock, "03:00") as gw:
        assert gw.personaliser is not None
        await _until(lambda: gw.personaliser is not None and gw.personaliser.state["state"] != "waiting")
        assert gw.personaliser.state["state"] == "skipped"
        assert gw.personaliser.state["detail"] == "less than a day of data"
        assert gw.personaliser.runs == 0
        assert "personalised" not in gw.twin.prior.description  # type: ignore[union-attr]


def test_off_and_malformed_times(tmp_path: Path) -> None:
    assert make_config(tmp_path, gateway={"personalise_at": ""}).personalise_at == ""
    assert make_config(tmp_path).personalise_at == "03:00"
    for bad in ("3", "25:00", "03:60", "3:5", 300):
        with pytest.raises(ConfigError, match="personalise_at"):
            make_config(tmp_path, gateway={"personalise_at": bad})


def test_the_next_run_is_on_the_local_clock() -> None:
    # 03:00 in Berlin is 02:00 UTC in winter and 01:00 UTC in summer.
    assert next_local_time(datetime(2026, 1, 1, 12, 0, tzinfo=UTC), "03:00", "Europe/Berlin") == datetime(
        2026, 1, 2, 2, 0, tzinfo=UTC
    )
    assert next_local_time(datetime(2026, 7, 1, 0, 30, tzinfo=UTC), "03:00", "Europe/Berlin") == datetime(
        2026, 7, 1, 1, 0, tzinfo=UTC
    )
    at = datetime(2026, 7, 1, 1, 0, tzinfo=UTC)
    assert next_local_time(at, "03:00", "Europe/Berlin") == at + timedelta(days=1)  # strictly after


def test_stored_history_maps_records_to_minutes_and_adds_an_assumed_basal(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    t0 = START - timedelta(hours=30)
    with Store.open(db) as s:
        for k in range(0, 30 * 60, 5):
            s.add(CgmReading(t0 + timedelta(minutes=k), 120.0, "cgm", sequence=k))
        s.add(CgmReading(t0 + timedelta(minutes=7), None, "cgm", sequence=100_000))  # a sensor error
        s.add(InsulinDelivery(t0 + timedelta(minutes=60), 4.0, InsulinKind.BOLUS, "pump"))
        s.add(CarbEntry(t0 + timedelta(minutes=60), 50.0))
    profile = TherapyProfile(weight_kg=70.0, basal_schedule=((0, 1.2),), carb_ratio_g_per_u=10.0,
                             correction_factor_mg_dl_per_u=40.0, timezone="Europe/Berlin")  # fmt: skip
    mm = MinuteMap(t0 - timedelta(minutes=100))
    with Store.open(db, readonly=True) as s:
        got = stored_history(s, mm, profile, START, lambda first, n: np.full(n, 0.02))
        assert stored_history(s, mm, profile, t0 + timedelta(hours=12)) is None  # under a day
    assert got is not None
    h = got.history
    assert h.minutes == 30 * 60 and got.twin_minute_at_start == 100
    assert got.minute_of_day_at_zero == (t0.hour + 1) * 60  # local (CET) time of history minute 0
    assert np.isfinite(h.cgm_mg_dl).sum() == 360 and np.isnan(h.cgm_mg_dl[7])
    assert h.cho_g[60] == 50.0 and h.cho_g.sum() == 50.0
    assert h.insulin_u[60] == pytest.approx(4.02)
    assert h.insulin_u.sum() == pytest.approx(4.0 + 0.02 * 30 * 60)
