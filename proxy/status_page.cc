#include "proxy/status_page.h"

namespace edge::proxy::admin {

namespace {

// Shared by both pages; {{nonce}} is filled in per response.
constexpr std::string_view kStyle = R"css(
:root { color-scheme: light dark; --bg: #f6f7f9; --fg: #1c2330; --muted: #5d6776; --card: #fff;
  --line: #d9dde3; --ok: #18794e; --warn: #a35200; --bad: #c5281c; --accent: #2456c7; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #12151b; --fg: #e4e8ee; --muted: #9aa4b2; --card: #1b2029; --line: #2d3440;
    --ok: #4cc38a; --warn: #f0a45d; --bad: #ff6b5e; --accent: #7aa2ff; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--fg); }
header { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1rem; padding: .6rem 1rem;
  background: var(--card); border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 1; }
header h1 { font-size: 1.1rem; margin: 0; }
header .spacer { flex: 1; }
main { padding: .8rem; display: grid; gap: .8rem; grid-template-columns: repeat(auto-fit, minmax(min(100%, 30rem), 1fr)); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .6rem .8rem; min-width: 0; }
section.wide { grid-column: 1 / -1; }
h2 { font-size: 1rem; margin: .2rem 0 .5rem; }
h3 { font-size: .92rem; margin: .6rem 0 .3rem; color: var(--muted); }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid var(--line); white-space: nowrap; }
td.num, th.num { text-align: right; }
td.wrap { white-space: normal; word-break: break-all; min-width: 12rem; }
th { color: var(--muted); font-weight: 600; }
.state-up, .ok { color: var(--ok); font-weight: 600; }
.state-slow_start, .state-draining { color: var(--warn); font-weight: 600; }
.state-down, .state-ejected, .bad { color: var(--bad); font-weight: 600; }
.muted { color: var(--muted); }
button, input, select { font: inherit; }
button { padding: .25rem .7rem; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg); cursor: pointer; }
button:hover { border-color: var(--accent); }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
input[type=text], input[type=password], select { padding: .3rem .4rem; border: 1px solid var(--line); border-radius: 6px;
  background: var(--bg); color: var(--fg); max-width: 100%; }
.banner { display: none; margin: .8rem .8rem 0; padding: .5rem .8rem; border-radius: 6px; background: var(--bad); color: #fff; }
.banner.shown { display: block; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(9rem, 1fr)); gap: .4rem; }
.figure { border: 1px solid var(--line); border-radius: 6px; padding: .3rem .5rem; }
.figure .label { color: var(--muted); font-size: .8rem; }
.figure .value { font-size: 1.1rem; font-variant-numeric: tabular-nums; }
.row { display: flex; flex-wrap: wrap; gap: .4rem; align-items: center; margin: .3rem 0; }
.row input[type=text] { flex: 1 1 14rem; }
.signin { max-width: 24rem; margin: 12vh auto; padding: 1.2rem; background: var(--card); border: 1px solid var(--line); border-radius: 8px; }
.signin input { width: 100%; margin: .4rem 0 .8rem; }
.message { color: var(--bad); }
)css";

constexpr std::string_view kSignIn = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>edge: sign in</title>
<style nonce="{{nonce}}">{{style}}</style>
</head>
<body>
<form class="signin" method="post" action="/login">
<h1>edge admin</h1>
<p class="message" id="message">{{message}}</p>
<label for="token">Admin token</label>
<input type="password" id="token" name="token" autocomplete="current-password" required autofocus>
<button type="submit" class="primary" id="sign-in">Sign in</button>
<p class="muted">The token is the content of the file named by <code>admin.token_file</code>.</p>
</form>
</body>
</html>
)html";

constexpr std::string_view kStatus = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<meta name="edge-csrf" content="{{csrf}}">
<title>edge status</title>
<style nonce="{{nonce}}">{{style}}</style>
</head>
<body>
<header>
<h1>edge status</h1>
<span class="muted">updated <span id="last-updated">never</span></span>
<span class="spacer"></span>
<label><input type="checkbox" id="paused"> pause</label>
<button id="sign-out">Sign out</button>
</header>
<div class="banner" id="error-banner" role="alert"></div>
<main>
<section class="wide" id="backends"><h2>Backends and servers</h2><div id="backends-body"><p class="muted">loading…</p></div></section>
<section id="queue"><h2>Edge queue</h2><div class="scroll" id="queue-body"></div></section>
<section id="workers"><h2>Workers</h2><div class="scroll" id="workers-body"></div></section>
<section class="wide" id="cache"><h2>Cache</h2><div id="cache-body"></div></section>
<section id="purge"><h2>Purge</h2>
<form id="purge-form">
<div class="row">
<select id="purge-kind" aria-label="what to purge"><option value="url">URL</option><option value="tag">tag</option></select>
<input type="text" id="purge-value" placeholder="https://example.com/path or a tag" aria-label="URL or tag" required>
</div>
<div class="row">
<label><input type="checkbox" id="purge-soft"> soft (mark stale, keep for grace)</label>
<span class="spacer"></span>
<button type="submit" class="primary" id="purge-button">Purge</button>
</div>
<p id="purge-result" class="muted"></p>
</form>
</section>
<section id="events"><h2>Recent purges and reloads</h2><div class="scroll" id="events-body"></div></section>
<section class="wide" id="top"><h2>Top URLs</h2>
<div class="row">
<label>window <select id="top-window"><option>10s</option><option selected>1m</option><option>10m</option><option>1h</option></select></label>
<label>by <select id="top-by"><option>requests</option><option>bytes</option><option>misses</option><option>backend_time</option></select></label>
<span class="muted" id="top-total"></span>
</div>
<div class="scroll" id="top-body"></div>
</section>
</main>
<script nonce="{{nonce}}">
"use strict";
(() => {
const csrf = document.querySelector('meta[name="edge-csrf"]').content;
const $ = (id) => document.getElementById(id);
const dash = "\u2013";

// Every value goes in as a text node: hosts, URLs and details come from clients.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
function replace(id, ...nodes) { $(id).replaceChildren(...nodes); }
function table(headings, rows, numeric) {
  const head = el("tr", {}, ...headings.map((h, i) => el("th", numeric && numeric[i] ? {class: "num"} : {}, h)));
  return el("div", {class: "scroll"}, el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)));
}
const isNumber = (v) => typeof v === "number" && isFinite(v);
const count = (v) => isNumber(v) ? v.toLocaleString("en") : dash;
function bytes(v) {
  if (!isNumber(v)) return dash;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; ++i; }
  return (i ? v.toFixed(1) : String(v)) + " " + units[i];
}
const ratio = (v) => isNumber(v) ? (v * 100).toFixed(1) + " %" : dash;
const millis = (v) => isNumber(v) ? (v < 10 ? v.toFixed(2) : v.toFixed(1)) + " ms" : dash;
function age(ms) {
  if (!isNumber(ms)) return dash;
  if (ms < 1000) return ms + " ms ago";
  if (ms < 120000) return (ms / 1000).toFixed(1) + " s ago";
  return Math.round(ms / 60000) + " min ago";
}
const num = (v) => el("td", {class: "num"}, v);

class HttpError extends Error {
  constructor(path, status, message) { super(path + ": " + status + (message ? " " + message : "")); this.status = status; }
}
async function call(path, options) {
  let response;
  try {
    response = await fetch(path, Object.assign({credentials: "same-origin", cache: "no-store"}, options || {}));
  } catch (e) {
    throw new HttpError(path, "unreachable", "(is edge running?)");
  }
  if (response.status === 401) {
    location.replace("/");
    throw new HttpError(path, 401, "signed out");
  }
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) throw new HttpError(path, response.status, body && body.error ? String(body.error) : "");
  return body;
}
const post = (path) => call(path, {method: "POST", headers: {"X-Edge-CSRF": csrf}});

function showError(message) {
  const banner = $("error-banner");
  banner.textContent = message || "";
  banner.classList.toggle("shown", Boolean(message));
}

function renderBackends(data) {
  const backends = (data && data.backends) || [];
  const parts = [];
  const queueRows = [];
  for (const backend of backends) {
    queueRows.push(el("tr", {}, el("td", {}, backend.name), num(count(backend.queued))));
    parts.push(el("h3", {}, backend.name + " \u00b7 " + (backend.balance || dash) + " \u00b7 queued " + count(backend.queued)));
    const rows = (backend.servers || []).map((server) => {
      const timing = server.response_ms && typeof server.response_ms === "object" ? server.response_ms : {};
      const check = server.last_check;
      const checkCell = check
        ? el("td", {class: "wrap"}, el("span", {class: check.ok ? "ok" : "bad"}, check.ok ? "ok" : "failed"),
             " " + age(check.age_ms) + (check.status ? " \u00b7 " + check.status : "") +
               (check.detail && check.detail !== String(check.status) ? " \u00b7 " + check.detail : ""))
        : el("td", {class: "muted"}, "no check yet");
      const action = (what) => el("button", {"data-action": what, onclick: () => act(backend.name, server.address, what)},
                                  what === "drain" ? "Drain" : "Enable");
      return el("tr", {"data-backend": backend.name, "data-server": server.address},
        el("td", {}, server.address),
        el("td", {class: "state state-" + server.state}, server.state),
        num(count(server.in_flight)), num(count(server.served)), num(count(server.failed)),
        num(millis(timing.p50)), num(millis(timing.p90)), num(millis(timing.p99)),
        checkCell,
        el("td", {}, server.state === "draining" ? action("enable") : action("drain")));
    });
    parts.push(table(["server", "state", "in flight", "served", "failed", "p50", "p90", "p99", "last check", ""], rows,
                     [0, 0, 1, 1, 1, 1, 1, 1, 0, 0]));
  }
  if (!backends.length) parts.push(el("p", {class: "muted"}, "no backends"));
  replace("backends-body", ...parts);
  replace("queue-body", queueRows.length
    ? table(["backend", "requests waiting for a server"], queueRows, [0, 1])
    : el("p", {class: "muted"}, "no backends"));
}

function figure(label, value) {
  return el("div", {class: "figure"}, el("div", {class: "label"}, label), el("div", {class: "value"}, value));
}

function renderStats(stats) {
  const workers = Array.isArray(stats.workers) ? stats.workers : null;
  replace("workers-body", workers
    ? table(["worker", "connections", "requests in progress", "waiting"],
            workers.map((w, i) => el("tr", {}, el("td", {}, "#" + i), num(count(w.connections)),
                                     num(count(w.requests_in_progress)), num(count(w.waiting)))), [0, 1, 1, 1])
    : table(["worker", "connections", "requests in progress", "waiting"],
            [el("tr", {}, el("td", {}, dash), num(dash), num(dash), num(dash))], [0, 1, 1, 1]));

  const store = stats.store || {};
  const totals = stats.totals || {};
  const connections = stats.connections || {};
  const parts = [el("div", {class: "figures"},
    figure("objects", count(store.objects)),
    figure("memory used", bytes(store.bytes) + " / " + bytes(store.memory)),
    figure("hit ratio", ratio(totals.hit_ratio)),
    figure("evictions", count(store.evictions)),
    figure("coalesced waits", count(totals.coalesced)),
    figure("purged", count(store.purged)),
    figure("active bans", count(store.bans)),
    figure("requests", count(connections.requests)),
    figure("upstream failures", count(connections.upstream_failures)))];
  const hosts = stats.hosts || [];
  parts.push(el("h3", {}, "per host"));
  parts.push(table(["host", "hit ratio", "hits", "misses", "passes", "stale", "coalesced", "revalidated"],
    hosts.map((h) => el("tr", {}, el("td", {}, h.host), num(ratio(h.hit_ratio)), num(count(h.hits)), num(count(h.misses)),
                        num(count(h.passes)), num(count(h.stale)), num(count(h.coalesced)), num(count(h.revalidated)))),
    [0, 1, 1, 1, 1, 1, 1, 1]));
  parts.push(el("h3", {}, "memcached tier"));
  if (stats.memcached && typeof stats.memcached === "object") {
    parts.push(el("div", {class: "figures"},
      ...Object.entries(stats.memcached).map(([name, value]) => figure(name.replace(/_/g, " "), count(value)))));
  } else {
    parts.push(el("p", {class: "muted"}, "not configured"));
  }
  replace("cache-body", ...parts);
}

function renderTop(top) {
  const rows = (top.top || []).map((entry) => el("tr", {},
    el("td", {}, entry.host), el("td", {class: "wrap"}, entry.target), num(count(entry.count)), num(count(entry.error))));
  $("top-total").textContent = "total " + count(top.total);
  replace("top-body", rows.length
    ? table(["host", "URL", "count", "error"], rows, [0, 0, 1, 1])
    : el("p", {class: "muted"}, "nothing in this window yet"));
}

function renderEvents(data) {
  const events = (data && data.events) || [];
  replace("events-body", events.length
    ? table(["when", "what", "detail"], events.map((e) => el("tr", {"data-kind": e.kind},
        el("td", {}, isNumber(e.at) ? new Date(e.at).toLocaleTimeString([], {hour12: false}) : dash),
        el("td", {}, e.kind), el("td", {class: "wrap"}, e.detail))))
    : el("p", {class: "muted"}, "none since edge started"));
}

// One refresh at a time; one asked for meanwhile (after a button) runs when it ends, so what
// the page shows is never older than the action.
let refreshing = false;
let again = false;
async function refresh() {
  if (refreshing) { again = true; return; }
  refreshing = true;
  again = false;
  try {
    const topQuery = "/top?window=" + encodeURIComponent($("top-window").value) + "&by=" + encodeURIComponent($("top-by").value);
    const [backends, stats, top, events] = await Promise.allSettled(
      [call("/backends"), call("/stats"), call(topQuery), call("/events")]);
    const failures = [];
    const use = (result, render) => {
      if (result.status !== "fulfilled") { failures.push(result.reason.message); return; }
      try { render(result.value); } catch (e) { failures.push(String(e)); }
    };
    use(backends, renderBackends);
    use(stats, renderStats);
    use(top, renderTop);
    use(events, renderEvents);
    showError(failures.length ? "Could not refresh: " + failures.join("; ") : "");
    if (failures.length < 4) $("last-updated").textContent = new Date().toLocaleTimeString([], {hour12: false});
  } finally {
    refreshing = false;
    if (again) refresh();
  }
}

async function act(backend, server, what) {
  try {
    await post("/backends/" + encodeURIComponent(backend) + "/" + encodeURIComponent(server) + "/" + what);
    showError("");
  } catch (e) {
    showError(what + " " + server + " failed: " + e.message);
  }
  refresh();
}

$("purge-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const kind = $("purge-kind").value;
  const value = $("purge-value").value.trim();
  if (!value) return;
  let path = "/purge?" + kind + "=" + encodeURIComponent(value);
  if ($("purge-soft").checked) path += "&soft=1";
  const result = $("purge-result");
  result.textContent = "purging…";
  try {
    const body = await post(path);
    result.textContent = "purged " + count(body.purged) + " object(s) for " + kind + " " + value;
  } catch (e) {
    result.textContent = "purge failed: " + e.message;
  }
  refresh();
});
$("sign-out").addEventListener("click", async () => {
  try { await post("/logout"); } catch (e) { /* signed out either way */ }
  location.replace("/");
});
$("top-window").addEventListener("change", refresh);
$("top-by").addEventListener("change", refresh);

refresh();
setInterval(() => { if (!$("paused").checked && !document.hidden) refresh(); }, 2000);
})();
</script>
</body>
</html>
)html";

void replace_all(std::string& text, std::string_view placeholder, std::string_view value) {
  for (size_t at = text.find(placeholder); at != std::string::npos; at = text.find(placeholder, at + value.size()))
    text.replace(at, placeholder.size(), value);
}

std::string fill(std::string_view page, std::string_view nonce) {
  std::string out(page);
  // The style first: it holds no placeholder, and what fills the others is escaped.
  replace_all(out, "{{style}}", kStyle);
  replace_all(out, "{{nonce}}", html_escape(nonce));
  return out;
}

}  // namespace

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out.append("&amp;"); break;
      case '<': out.append("&lt;"); break;
      case '>': out.append("&gt;"); break;
      case '"': out.append("&quot;"); break;
      case '\'': out.append("&#39;"); break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string render_sign_in_page(std::string_view message, std::string_view nonce) {
  std::string out = fill(kSignIn, nonce);
  replace_all(out, "{{message}}", html_escape(message));
  return out;
}

std::string render_status_page(std::string_view csrf, std::string_view nonce) {
  std::string out = fill(kStatus, nonce);
  replace_all(out, "{{csrf}}", html_escape(csrf));
  return out;
}

std::string page_headers(std::string_view nonce) {
  const std::string n = html_escape(nonce);
  return "Content-Security-Policy: default-src 'none'; script-src 'nonce-" + n + "'; style-src 'nonce-" + n +
         "'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
         "base-uri 'none'\r\n"
         "X-Frame-Options: DENY\r\n"
         "Referrer-Policy: same-origin\r\n"
         "X-Content-Type-Options: nosniff\r\n";
}

}  // namespace edge::proxy::admin
