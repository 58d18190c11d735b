"""The status page and its JSON endpoint, over real HTTP on 127.0.0.1 — and in a real browser."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from edgetwin.clock import ScaledClock
from edgetwin.gateway import Gateway
from edgetwin.gateway.devices import OpenedDevices
from edgetwin.gateway.status import trend_arrow
from tests.gateway.helpers import START, ScriptedCgm, make_config
from tests.gateway.trend_twin import TrendTwinFactory

BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


async def _running(tmp_path: Path, values: list[float], minutes: float = 45) -> tuple[Gateway, ScaledClock]:
    clock = ScaledClock(START, 3000.0)
    src = ScriptedCgm(clock, values=values)
    gw = Gateway(
        make_config(tmp_path),
        clock=clock,
        devices=OpenedDevices(sources={"cgm": src}),
        twin_factory=TrendTwinFactory(),  # a forecast whose direction the test can know
    )
    await gw.start()
    await asyncio.sleep(minutes * 60 / clock.factor)
    return gw, clock


def test_trend_arrows() -> None:
    assert [trend_arrow(v) for v in (3.5, 2.5, 1.5, 0.0, -1.5, -2.5, -3.5)] == list("⇈↑↗→↘↓⇊")
    assert trend_arrow(None) == ""


@pytest.mark.asyncio
async def test_json_endpoint_reports_glucose_forecast_and_health(tmp_path: Path) -> None:
    rising = [100.0 + 20 * i for i in range(40)]
    gw, _ = await _running(tmp_path, rising)
    try:
        assert gw.status_port
        status, headers, body = await asyncio.to_thread(_get, gw.status_port, "/api/status")
        assert status == 200 and headers["Content-Type"] == "application/json"
        doc: dict[str, Any] = json.loads(body)
        g = doc["glucose"]
        assert g["mg_dl"] >= 140 and g["trend_arrow"] == "⇈"  # 20 mg/dL per 5 min = 4/min
        assert len(doc["history"]) >= 5
        pts = doc["forecast"]["points"]
        assert len(pts) == 24 and all(p["p10_mg_dl"] <= p["p50_mg_dl"] <= p["p90_mg_dl"] for p in pts)
        assert pts[-1]["p50_mg_dl"] > g["mg_dl"]  # a rising trend forecasts higher
        assert doc["devices"][0]["state"] == "ok" and doc["devices"][0]["records"] >= 5
        assert doc["sync"]["state"] == "off" and doc["sync"]["backlog"] > 0
        assert doc["store"]["state"] == "ok"
        assert doc["mode"] == "open-loop"
        status, _, body = await asyncio.to_thread(_get, gw.status_port, "/healthz")
        assert status == 200 and json.loads(body)["ok"] is True
        status, _, _ = await asyncio.to_thread(_get, gw.status_port, "/nope")
        assert status == 404
        status, headers, page = await asyncio.to_thread(_get, gw.status_port, "/")
        assert status == 200 and b"<svg" in page
        assert b"http://" not in page.replace(
            b"http://www.w3.org/2000/svg", b""
        )  # nothing fetched from outside
    finally:
        await gw.stop()


def _browser() -> str | None:
    for path in (os.environ.get("EDGETWIN_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if path and Path(path).exists():
            return path
    return None


@pytest.mark.asyncio
async def test_the_page_renders_in_a_real_headless_browser(tmp_path: Path) -> None:
    exe = _browser()
    if exe is None:
        pytest.skip("no Chromium found (apt-get install chromium; .ci/run installs it)")
    playwright = pytest.importorskip("playwright.async_api", reason="playwright is a dev dependency")
    falling = [max(40.0, 400.0 - 10 * i) for i in range(100)]
    async with playwright.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=exe, args=BROWSER_FLAGS)
        gw, _ = await _running(tmp_path, falling)
        try:
            try:
                page = await browser.new_page()
                requests: list[str] = []
                page.on("request", lambda r: requests.append(r.url))
                await page.goto(f"http://127.0.0.1:{gw.status_port}/")
                await page.wait_for_selector("body[data-updated]", timeout=10_000)
                value = int((await page.inner_text("#glucose")).split()[0])
                assert 40 < value < 400
                assert (await page.inner_text("#trend")) in "⇈↑↗→↘↓⇊"
                assert "min ago" in await page.inner_text("#age")
                dots = await page.locator("svg#chart circle.reading").count()
                assert dots >= 5
                band = await page.get_attribute("#forecast-band", "d")
                assert band is not None and band.startswith("M") and band.endswith("Z")
                assert await page.locator("#forecast-median").count() == 1
                devices = await page.inner_text("#devices")
                assert "test:cgm" in devices and "ok" in devices
                assert "suggestions are off" in await page.inner_text("#suggestion-kind")
                assert "sync: off" in await page.inner_text("#sync")
                await page.screenshot(path=str(tmp_path / "status.png"))
                assert all(u.startswith(f"http://127.0.0.1:{gw.status_port}/") for u in requests)
            finally:
                await gw.stop()
        finally:
            await browser.close()
