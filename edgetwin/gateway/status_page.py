"""The status page's HTML: one self-contained document (inline CSS, inline script, SVG chart).

The script fetches ``/api/status`` every 10 s and draws: the glucose of the last 6 h as dots,
the target range (70–180 mg/dL) shaded, the forecast's 10–90 % band and its median, the current
value with its trend arrow, the last suggestion and its reason, alarms (an urgent one flashes),
and device, sync and storage health. No external resource is loaded.
"""

from __future__ import annotations

__all__ = ["PAGE_HTML"]

PAGE_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>EdgeTwin</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }
 header { display: flex; align-items: baseline; gap: 1.2rem; padding: 0.8rem 1.2rem; background: #fff;
          border-bottom: 1px solid #dde1e7; }
 #glucose { font-size: 3rem; font-weight: 700; }
 #glucose small { font-size: 1rem; font-weight: 400; color: #5b6475; }
 #trend { font-size: 2.4rem; }
 #age { color: #5b6475; }
 main { display: grid; grid-template-columns: minmax(0, 3fr) minmax(16rem, 1fr); gap: 1rem; padding: 1rem 1.2rem; }
 section { background: #fff; border: 1px solid #dde1e7; border-radius: 8px; padding: 0.8rem 1rem; }
 h2 { font-size: 0.95rem; margin: 0 0 0.5rem; color: #5b6475; text-transform: uppercase; letter-spacing: .04em; }
 #alarms div { padding: 0.6rem 0.8rem; border-radius: 6px; margin-bottom: 0.4rem; font-weight: 600; }
 .urgent { background: #c62828; color: #fff; animation: flash 1s steps(2) infinite; }
 .warning { background: #ffb300; color: #1d2330; }
 .info { background: #e3f2fd; }
 @keyframes flash { 50% { background: #8e0000; } }
 .ok { color: #2e7d32; } .bad { color: #c62828; } .meh { color: #b26a00; }
 table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
 td { padding: 0.15rem 0.3rem; border-bottom: 1px solid #eef0f3; }
 svg { width: 100%; height: auto; }
 .reading { fill: #1d2330; } .low { fill: #c62828; } .high { fill: #b26a00; }
 #forecast-band { fill: #5c6bc0; fill-opacity: 0.22; stroke: none; }
 #forecast-median { fill: none; stroke: #3949ab; stroke-width: 2; stroke-dasharray: 5 3; }
 .grid { stroke: #e3e6eb; } .axis { font-size: 11px; fill: #5b6475; }
 #reason { white-space: pre-wrap; }
 footer { padding: 0 1.2rem 1rem; color: #5b6475; font-size: 0.8rem; }
</style>
</head>
<body>
<header>
 <div id="glucose">--<small> mg/dL</small></div>
 <div id="trend" aria-label="trend"></div>
 <div id="age">waiting for the gateway…</div>
 <div id="mode"></div>
</header>
<div id="alarms" style="padding: 0.6rem 1.2rem 0"></div>
<main>
 <section>
  <h2>Glucose and forecast</h2>
  <svg id="chart" viewBox="0 0 800 320" role="img" aria-label="glucose chart"></svg>
  <div id="forecast-note" class="axis"></div>
 </section>
 <div>
  <section>
   <h2>Last suggestion</h2>
   <div id="suggestion-kind">none yet</div>
   <div id="suggestion-gate" class="axis"></div>
   <p id="reason"></p>
  </section>
  <section style="margin-top: 1rem">
   <h2>Devices</h2>
   <table id="devices"></table>
  </section>
  <section style="margin-top: 1rem">
   <h2>Cloud sync and storage</h2>
   <div id="sync"></div>
   <div id="store"></div>
  </section>
 </div>
</main>
<footer id="footer">EdgeTwin research software — not a medical device.</footer>
<script>
"use strict";
const W = 800, H = 320, L = 40, R = 10, T = 10, B = 24, YMIN = 40, YMAX = 400;
const NS = "http://www.w3.org/2000/svg";
function el(tag, attrs, parent) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function text(id, s) { document.getElementById(id).textContent = s; }
function hhmm(iso) { const d = new Date(iso); return d.toISOString().slice(11, 16); }
function draw(doc) {
  const svg = document.getElementById("chart");
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const now = Date.parse(doc.time_utc);
  const t0 = now - 6 * 3600e3, t1 = now + 2 * 3600e3;
  const x = t => L + (t - t0) / (t1 - t0) * (W - L - R);
  const y = g => T + (1 - (Math.min(Math.max(g, YMIN), YMAX) - YMIN) / (YMAX - YMIN)) * (H - T - B);
  el("rect", {x: L, y: y(180), width: W - L - R, height: y(70) - y(180), fill: "#e8f5e9"}, svg);
  for (const g of [54, 70, 180, 250, 400]) {
    el("line", {x1: L, x2: W - R, y1: y(g), y2: y(g), class: "grid"}, svg);
    el("text", {x: 4, y: y(g) + 4, class: "axis"}, svg).textContent = g;
  }
  for (let h = -6; h <= 2; h += 2) {
    const tx = now + h * 3600e3;
    el("line", {x1: x(tx), x2: x(tx), y1: T, y2: H - B, class: "grid"}, svg);
    const anchor = h === 2 ? "end" : "middle";
    el("text", {x: x(tx), y: H - 6, class: "axis", "text-anchor": anchor}, svg).textContent = h === 0 ? "now" : hhmm(new Date(tx).toISOString());
  }
  const fc = doc.forecast;
  if (fc && fc.points.length) {
    const pts = fc.points.filter(p => p.p10_mg_dl !== null && p.p90_mg_dl !== null);
    const up = pts.map(p => `${x(Date.parse(p.time_utc)).toFixed(1)},${y(p.p90_mg_dl).toFixed(1)}`);
    const lo = pts.slice().reverse().map(p => `${x(Date.parse(p.time_utc)).toFixed(1)},${y(p.p10_mg_dl).toFixed(1)}`);
    el("path", {id: "forecast-band", d: "M" + up.concat(lo).join(" L") + " Z"}, svg);
    el("path", {id: "forecast-median", d: "M" + pts.map(p => `${x(Date.parse(p.time_utc)).toFixed(1)},${y(p.p50_mg_dl).toFixed(1)}`).join(" L")}, svg);
    text("forecast-note", `Forecast (${fc.model}): shaded band = 80 % of expected outcomes, dashed = most likely.`);
  } else {
    text("forecast-note", "No forecast yet.");
  }
  for (const p of doc.history) {
    const t = Date.parse(p.time_utc);
    if (t < t0) continue;
    const cls = p.mg_dl < 70 ? "reading low" : p.mg_dl > 180 ? "reading high" : "reading";
    el("circle", {cx: x(t).toFixed(1), cy: y(p.mg_dl).toFixed(1), r: 3, class: cls}, svg);
  }
}
function render(doc) {
  const g = doc.glucose;
  const gEl = document.getElementById("glucose");
  gEl.firstChild.nodeValue = g ? String(Math.round(g.mg_dl)) : "--";
  text("trend", g ? g.trend_arrow : "");
  text("age", g ? `${g.age_min.toFixed(0)} min ago` : "no reading yet");
  text("mode", doc.mode);
  const al = document.getElementById("alarms");
  al.replaceChildren(...doc.alarms.map(a => {
    const d = document.createElement("div");
    d.className = a.severity; d.textContent = a.message; d.dataset.kind = a.kind;
    return d;
  }));
  const s = doc.suggestion;
  if (s) {
    text("suggestion-kind", s.summary || s.kind);
    const gate = {accepted: "passed the safety check", clamped: "limited by the safety check",
                  refused: "stopped by the safety check"}[s.gate] || "";
    const act = s.sent_to_pump ? " · sent to the pump" : s.needs_confirmation ? " · needs your confirmation" : "";
    text("suggestion-gate", `${hhmm(s.created_utc)} UTC · ${gate}${act}`);
    text("reason", s.reason || "");
  } else {
    text("suggestion-gate", "");
    text("suggestion-kind", doc.suggestions.available ? "none yet" : "suggestions are off");
    text("reason", doc.suggestions.detail || "");
  }
  const dev = document.getElementById("devices");
  dev.replaceChildren(...doc.devices.map(d => {
    const tr = document.createElement("tr");
    const cls = d.state === "ok" ? "ok" : d.state === "error" ? "bad" : "meh";
    for (const [v, c] of [[d.role, ""], [d.name, ""], [d.state, cls], [`${d.records} records`, ""]]) {
      const td = document.createElement("td"); td.textContent = v; if (c) td.className = c; tr.appendChild(td);
    }
    return tr;
  }));
  const sy = doc.sync;
  text("sync", `sync: ${sy.state}${sy.backlog !== null && sy.backlog !== undefined ? `, ${sy.backlog} records waiting` : ""}${sy.detail ? " — " + sy.detail : ""}`);
  document.getElementById("sync").className = sy.state === "ok" ? "ok" : sy.state === "off" ? "" : "meh";
  text("store", `storage: ${doc.store.state}${doc.store.detail ? " — " + doc.store.detail : ""}`);
  document.getElementById("store").className = doc.store.state === "ok" ? "ok" : "bad";
  draw(doc);
  document.body.dataset.updated = doc.time_utc;
}
async function refresh() {
  try {
    const r = await fetch("/api/status", {cache: "no-store"});
    render(await r.json());
  } catch (e) {
    text("age", "cannot reach the gateway: " + e);
    document.body.dataset.error = String(e);
  }
}
refresh();
setInterval(refresh, 10000);
</script>
</body>
</html>
"""
