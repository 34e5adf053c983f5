// Fills the status page from the server-sent events on /api/events; no
// reloads, no external scripts.
"use strict";

const HISTORY = 120;
const rates = [];
// States each sensor has been seen in since the page loaded, oldest first.
const history = new Map();
let previous = null;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function duration(seconds) {
  if (!seconds) return "–";
  if (seconds < 120) return seconds + " s";
  if (seconds < 7200) return Math.round(seconds / 60) + " min";
  return Math.round(seconds / 3600) + " h";
}

function fillTable(id, rows, columns, emptyText) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  if (rows.length === 0) {
    const tr = el("tr");
    const td = el("td", emptyText, "empty");
    td.colSpan = columns;
    tr.append(td);
    body.append(tr);
    return;
  }
  for (const cells of rows) {
    const tr = el("tr");
    tr.append(...cells);
    body.append(tr);
  }
}

function renderSensors(sensors) {
  document.getElementById("sensor-count").textContent = "(" + sensors.length + ")";
  const rows = sensors.map((s) => {
    const state = el("td", s.state, "state " + s.state);
    const period = s.state === "asleep" || s.state === "awake"
      ? "sleep " + duration(s.sleep_seconds)
      : "keep-alive " + duration(s.keep_alive_seconds);
    const topics = s.topics.map((t) => t.id + "=" + t.name).join(", ") || "–";
    const tr = [
      el("td", s.client_id), el("td", s.address), state,
      el("td", Math.round(s.last_seen_seconds) + " s ago"), el("td", period),
      el("td", s.buffered), el("td", topics),
    ];
    return tr;
  });
  fillTable("sensors", rows, 7, "no sensors");
  const tbody = document.querySelector("#sensors tbody");
  sensors.forEach((s, i) => {
    const seen = history.get(s.client_id) || [];
    if (seen[seen.length - 1] !== s.state) seen.push(s.state);
    history.set(s.client_id, seen);
    const tr = tbody.children[i];
    if (tr) {
      tr.dataset.clientId = s.client_id;
      tr.dataset.state = s.state;
      tr.dataset.history = seen.join(" ");
    }
  });
}

function renderClients(clients) {
  const mqtt = clients.filter((c) => c.protocol !== "mqtt-sn");
  document.getElementById("client-count").textContent = "(" + mqtt.length + ")";
  const rows = mqtt.map((c) => [
    el("td", c.client_id), el("td", c.protocol), el("td", c.connected ? "yes" : "no"),
    el("td", c.subscriptions), el("td", c.queued), el("td", c.inflight),
  ]);
  fillTable("clients", rows, 6, "no MQTT clients");
}

// PUBLISHes from MQTT clients and sensors alike reach the core, so its
// counters are the message rate; gateway datagrams would add pings and acks.
function totals(st) {
  return {
    t: performance.now() / 1000,
    in: st.broker.messages_received,
    out: st.broker.messages_sent,
  };
}

function renderChart(st) {
  const now = totals(st);
  if (previous) {
    const dt = Math.max(now.t - previous.t, 0.001);
    rates.push({ in: (now.in - previous.in) / dt, out: (now.out - previous.out) / dt });
    if (rates.length > HISTORY) rates.shift();
  }
  previous = now;
  const max = Math.max(1, ...rates.map((r) => Math.max(r.in, r.out)));
  const points = (key) => rates
    .map((r, i) => {
      const x = (600 * (i + HISTORY - rates.length)) / (HISTORY - 1);
      const y = 115 - (110 * r[key]) / max;
      return x.toFixed(1) + "," + y.toFixed(1);
    })
    .join(" ");
  document.getElementById("rate-in").setAttribute("points", points("in"));
  document.getElementById("rate-out").setAttribute("points", points("out"));
  const last = rates[rates.length - 1];
  document.getElementById("rate-now").textContent = last
    ? " now: " + last.in.toFixed(1) + " in, " + last.out.toFixed(1) + " out (max " + max.toFixed(1) + ")"
    : "";
}

function render(st) {
  const b = st.broker;
  document.getElementById("summary").textContent =
    "v" + st.version + " · up " + duration(st.uptime_seconds) + " · " + b.clients_connected +
    " connected · " + b.subscriptions + " subscriptions" +
    (st.rss_bytes ? " · RSS " + (st.rss_bytes / 1048576).toFixed(1) + " MiB" : "");
  renderSensors(st.sensors);
  renderClients(st.clients);
  renderChart(st);
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

function connect() {
  const badge = document.getElementById("conn");
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => {
    badge.textContent = "live";
    badge.className = "badge on";
  });
  source.addEventListener("error", () => {
    badge.textContent = "reconnecting…";
    badge.className = "badge off";
  });
  source.addEventListener("status", (ev) => render(JSON.parse(ev.data)));
}

connect();
