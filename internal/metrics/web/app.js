// poolmgr status page: polls api/status every second and draws the charts
// on <canvas>. No dependencies. window.poolmgrStatus exposes the last
// document and counters (used by the browser test).
"use strict";

const POLL_MS = 1000;
const HISTORY = 120; // points (seconds) shown in the charts

const state = (window.poolmgrStatus = { polls: 0, errors: 0, last: null, lastError: "" });

const $ = (id) => document.getElementById(id);
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

function fmtNum(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (digits === undefined) digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  return v.toLocaleString("en-US", { minimumFractionDigits: 0, maximumFractionDigits: digits });
}

function fmtBytes(b) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return fmtNum(b, i ? 1 : 0) + " " + u[i];
}

function fmtDuration(s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

function text(id, v) { const el = $(id); if (el) el.textContent = v; }

// niceMax rounds v up to 1, 2 or 5 × 10^k.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// drawChart draws series = [{values: [number|null], color}] over times (ms).
function drawChart(canvas, times, series, opts) {
  opts = opts || {};
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const left = 46, right = 18, top = 8, bottom = 20;
  const pw = w - left - right, ph = h - top - bottom;
  let max = opts.max || 0;
  if (!opts.max) for (const s of series) for (const v of s.values) if (v !== null && v > max) max = v;
  max = opts.max || niceMax(max * 1.1);
  if (opts.digits === 0 && !opts.max) max = Math.max(4, Math.ceil(max / 4) * 4); // whole-number ticks
  ctx.font = "11px system-ui, sans-serif";
  ctx.strokeStyle = css("--line");
  ctx.fillStyle = css("--muted");
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = top + ph - (ph * i) / 4;
    ctx.beginPath(); ctx.moveTo(left, Math.round(y) + 0.5); ctx.lineTo(left + pw, Math.round(y) + 0.5); ctx.stroke();
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    ctx.fillText(fmtNum((max * i) / 4, opts.digits), left - 6, y);
  }
  const now = times.length ? times[times.length - 1] : Date.now();
  const span = HISTORY * 1000;
  const x = (t) => left + pw - ((now - t) / span) * pw;
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  for (let s = 0; s <= HISTORY; s += 30) ctx.fillText(s ? `-${s}s` : "now", x(now - s * 1000), top + ph + 5);
  if (opts.emptyText) {
    ctx.textAlign = "center"; ctx.textBaseline = "middle"; ctx.font = "13px system-ui, sans-serif";
    ctx.fillText(opts.emptyText, left + pw / 2, top + ph / 2);
    return;
  }
  for (const s of series) {
    ctx.strokeStyle = css(s.color);
    ctx.lineWidth = 2;
    ctx.beginPath();
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) { pen = false; return; }
      const px = x(times[i]), py = top + ph - (Math.min(v, max) / max) * ph;
      if (px < left) return;
      if (pen) ctx.lineTo(px, py); else { ctx.moveTo(px, py); pen = true; }
    });
    ctx.stroke();
  }
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    if (typeof c === "object" && c !== null) { td.textContent = c.text; if (c.cls) td.className = c.cls; }
    else td.textContent = c;
    tr.appendChild(td);
  }
  return tr;
}

function render(st) {
  const r = st.rates || {};
  text("version", `v${st.version} · ${st.engine || "?"} engine · ${st.loops} loop(s)`);
  const ready = $("ready");
  ready.textContent = st.ready ? "ready" : "not ready";
  ready.className = "badge " + (st.ready ? "ok" : "bad");
  ready.title = st.ready_reason || "";
  text("uptime", fmtDuration(st.uptime_seconds));
  text("updated", new Date(st.time).toLocaleTimeString());
  text("polls", String(state.polls));

  text("clients-total", fmtNum(st.clients.total, 0));
  text("clients-active", fmtNum(st.clients.active, 0));
  text("clients-idle", fmtNum(st.clients.idle, 0));
  text("clients-waiting", fmtNum(st.clients.waiting, 0));
  text("servers-total", fmtNum(st.servers.total, 0));
  text("servers-active", fmtNum(st.servers.active, 0));
  text("servers-idle", fmtNum(st.servers.idle, 0));
  text("tps", fmtNum(r.tps || 0, 0));
  text("qps", fmtNum(r.qps || 0, 0));
  text("xacts-total", fmtNum(st.totals.transactions, 0));
  text("wait", fmtNum(r.avg_wait_ms || 0, 2) + " ms");
  text("maxwait", fmtNum(st.max_wait_ms, 1) + " ms");
  text("waiting", fmtNum(st.waiting_clients, 0));
  if (st.cache.enabled && st.cache.hit_ratio !== null) {
    text("cache", fmtNum(st.cache.hit_ratio * 100, 1) + " %");
    text("cache-sub", `${fmtNum(st.cache.hits, 0)} hits · ${fmtNum(st.cache.misses, 0)} misses`);
  } else {
    text("cache", "off");
    text("cache-sub", "query cache not active");
  }

  const h = st.history || [];
  const t = h.map((p) => p.t);
  const col = (k) => h.map((p) => p[k]);
  drawChart($("chart-clients"), t, [
    { values: col("clients_active"), color: "--c1" },
    { values: col("clients_idle"), color: "--c2" },
    { values: col("clients_waiting"), color: "--c3" },
  ], { digits: 0 });
  drawChart($("chart-servers"), t, [
    { values: col("servers_total"), color: "--c4" },
    { values: col("servers_active"), color: "--c1" },
    { values: col("servers_idle"), color: "--c2" },
  ], { digits: 0 });
  drawChart($("chart-tps"), t, [
    { values: col("qps"), color: "--c4" },
    { values: col("tps"), color: "--c1" },
  ], { digits: 0 });
  drawChart($("chart-wait"), t, [
    { values: col("max_wait_ms"), color: "--c3" },
    { values: col("avg_wait_ms"), color: "--c1" },
  ], { digits: 2 });
  drawChart($("chart-cache"), t, [{ values: col("cache_hit_ratio"), color: "--c1" }],
    st.cache.enabled ? { max: 1, digits: 2 } : { max: 1, digits: 2, emptyText: "query cache not active yet" });

  const tb = $("backends").tBodies[0];
  tb.replaceChildren(...(st.backends || []).map((b) => {
    const tr = row([b.addr, b.role, { text: b.health, cls: b.health === "up" ? "up" : b.health === "down" ? "down" : "" },
      b.lag, b.weight, b.state, { text: String(b.open), cls: "num" }, { text: String(b.active), cls: "num" },
      { text: String(b.idle), cls: "num" }]);
    tr.dataset.addr = b.addr;
    tr.dataset.role = b.role;
    return tr;
  }));

  const tt = st.totals;
  $("totals").tBodies[0].replaceChildren(
    row(["transactions", { text: fmtNum(tt.transactions, 0), cls: "num" }]),
    row(["queries", { text: fmtNum(tt.queries, 0), cls: "num" }]),
    row(["clients accepted", { text: fmtNum(tt.clients_accepted, 0), cls: "num" }]),
    row(["server logins", { text: fmtNum(tt.server_logins, 0), cls: "num" }]),
    row(["received from clients", { text: fmtBytes(tt.client_bytes), cls: "num" }]),
    row(["received from servers", { text: fmtBytes(tt.server_bytes), cls: "num" }]),
    row(["pools (paused)", { text: `${st.pools} (${st.paused_pools})`, cls: "num" }]),
  );
  const dis = Object.entries(st.disconnects || {}).sort((a, b) => b[1] - a[1]);
  $("disconnects").tBodies[0].replaceChildren(...(dis.length ? dis.map(([k, v]) => row([k, { text: fmtNum(v, 0), cls: "num" }]))
    : [row(["none yet", ""])]));
}

async function poll() {
  try {
    const resp = await fetch(`api/status?history=${HISTORY}`, { cache: "no-store" });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const st = await resp.json();
    state.polls++;
    state.last = st;
    render(st);
    document.body.dataset.polls = String(state.polls);
  } catch (e) {
    state.errors++;
    state.lastError = String(e);
    const ready = $("ready");
    ready.textContent = "unreachable";
    ready.className = "badge bad";
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
