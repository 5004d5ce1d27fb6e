// The core's status page: reads each section from /v1/status/<section> and draws it.
// Read-only; every file comes from this server (no outside scripts, fonts or charts).
"use strict";

const REFRESH_MS = 15000;
let timer = null;

function row(...cells) {
  return el("tr", {}, ...cells.map((c) => (c instanceof Node ? el("td", {}, c) : el("td", { text: c ?? "" }))));
}

const when = (value) => (value ? new Date(typeof value === "number" ? value * 1000 : value).toLocaleString() : "");
const percent = (value) => (value == null ? "" : `${(value * 100).toFixed(1)} %`);

function showLogin(message) {
  clearInterval(timer);
  $("app").hidden = true;
  $("who").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("token").focus();
}

async function showApp(session) {
  $("login").hidden = true;
  $("app").hidden = false;
  $("who").hidden = false;
  $("operator-name").textContent = session.operator;
  await refresh();
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
}

async function section(name, draw) {
  try {
    const answer = await call("GET", `/v1/status/${name}`);
    $(`${name}-error`).textContent = answer.error || "";
    draw(answer.rows);
  } catch (error) {
    $(`${name}-error`).textContent = error.message;
  }
}

function drawDatasets(datasets) {
  $("datasets-rows").replaceChildren(...datasets.flatMap((d) =>
    d.versions.map((v) => row(d.dataset, d.edge, v.version, when(v.created), String(v.images), v.source)),
  ));
}

function gate(gates) {
  const cell = el("div");
  for (const [edge, g] of Object.entries(gates || {})) {
    const verdict = el("span", { class: g.passed ? "passed" : "refused", text: g.passed ? "passed" : "refused" });
    const worst = Object.entries(g.recall || {}).sort((a, b) => a[1] - b[1])[0];
    const detail = ` ${edge}: accuracy ${percent(g.accuracy)}` + (worst ? `, lowest recall ${worst[0]} ${percent(worst[1])}` : "");
    cell.append(el("div", {}, verdict, detail, ...(g.reasons || []).map((r) => el("div", { text: `· ${r}` }))));
  }
  return cell;
}

function drawRuns(runs) {
  $("runs-rows").replaceChildren(...runs.map((r) =>
    row(r.run_key, when(r.created), r.datasets.join(", "), r.status, r.state || r.error || r.run_id || "", gate(r.gate)),
  ));
}

function svgNode(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function series(points, lines, top, unit, label) {
  // values over time, oldest on the left; one polyline per line, a grid at 0, half and top
  const svg = svgNode("svg", { class: "plot", viewBox: "0 0 520 160", role: "img", "aria-label": label });
  // by time, so an interval the store did not report (its controller down) shows as a gap in the x axis
  const times = points.map((p) => Date.parse(p.at));
  const span = times.length > 1 ? times[times.length - 1] - times[0] : 0;
  const x = (i) => 60 + (span > 0 ? ((times[i] - times[0]) * 440) / span : 220);
  const y = (v) => 140 - (Math.min(v, top) / top) * 120;
  for (const level of [0, top / 2, top]) {
    const text = svgNode("text", { x: 2, y: y(level) + 3 });
    text.textContent = `${+level.toPrecision(3)} ${unit}`;
    svg.append(svgNode("line", { x1: 60, x2: 500, y1: y(level), y2: y(level) }), text);
  }
  for (const [key, cls] of lines) {
    const drawn = points.map((p, i) => [i, p[key]]).filter(([, v]) => v != null);
    svg.append(svgNode("polyline", { class: cls, points: drawn.map(([i, v]) => `${x(i)},${y(v)}`).join(" ") }));
  }
  if (points.length) {
    for (const [i, anchor] of [[0, "start"], [points.length - 1, "end"]]) {
      const text = svgNode("text", { x: x(i), y: 156, "text-anchor": anchor });
      text.textContent = new Date(points[i].at).toLocaleTimeString();
      svg.append(text);
    }
  }
  return svg;
}

function storePlots(s) {
  const points = s.points;
  const slowest = Math.max(1, ...points.map((p) => p.p99_ms || 0));
  const latest = points[points.length - 1];
  return el("div", { class: "model" },
    el("h3", { text: `${s.edge} · latency (p50, p95, p99) and unsure rate over time` }),
    series(points, [["p50_ms", "p50"], ["p95_ms", "p95"], ["p99_ms", "p99"]], slowest, "ms",
      `Latency of ${s.edge}: ` + (latest ? `latest p50 ${latest.p50_ms ?? "none"} ms, p95 ${latest.p95_ms ?? "none"} ms, p99 ${latest.p99_ms ?? "none"} ms` : "no points yet")),
    series(points, [["unsure_rate", "unsure"]], 1, "",
      `Unsure rate of ${s.edge}: ` + (latest ? `latest ${percent(latest.unsure_rate)}` : "no points yet")),
  );
}

function drawStores(stores) {
  $("stores-rows").replaceChildren(...stores.map((s) => {
    if (s.error) return row(s.edge, s.error);
    // totals over the reported series; p95 of the newest interval that answered anything
    const sum = (key) => s.points.reduce((total, p) => total + p[key], 0);
    const predictions = sum("predictions");
    const busy = s.points.filter((p) => p.p95_ms != null).pop();
    const serving = (s.serving || "none") + (s.confirmed ? "" : " (rolling out)") + (s.pinned ? " (pinned)" : "");
    return row(s.edge, serving, s.newest || "", String(s.behind), `${when(s.reported)} (${s.age_s} s ago)`,
      String(predictions), busy ? `${busy.p95_ms} ms` : "", predictions ? percent(sum("unsure") / predictions) : "",
      String(sum("errors")));
  }));
  $("stores").replaceChildren(...stores.filter((s) => !s.error && s.points.length).map(storePlots));
}

function plot(versions) {
  // accuracy over versions, oldest on the left; a point per version
  const points = versions.filter((v) => v.accuracy != null).slice().reverse();
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "plot");
  svg.setAttribute("viewBox", "0 0 520 160");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Accuracy over versions: " + points.map((p) => `${p.version} ${percent(p.accuracy)}`).join(", "));
  const x = (i) => 40 + (points.length > 1 ? (i * 460) / (points.length - 1) : 230);
  const y = (a) => 140 - a * 120;
  for (const level of [0, 0.5, 1]) {
    const line = document.createElementNS(SVG, "line");
    for (const [k, v] of Object.entries({ x1: 40, x2: 500, y1: y(level), y2: y(level) })) line.setAttribute(k, v);
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", 2);
    label.setAttribute("y", y(level) + 3);
    label.textContent = `${level * 100} %`;
    svg.append(line, label);
  }
  const polyline = document.createElementNS(SVG, "polyline");
  polyline.setAttribute("points", points.map((p, i) => `${x(i)},${y(p.accuracy)}`).join(" "));
  svg.append(polyline);
  points.forEach((p, i) => {
    const dot = document.createElementNS(SVG, "circle");
    dot.setAttribute("cx", x(i));
    dot.setAttribute("cy", y(p.accuracy));
    dot.setAttribute("r", 3);
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", x(i) - 18);
    label.setAttribute("y", 156);
    label.textContent = p.version;
    svg.append(dot, label);
  });
  return svg;
}

function drawModels(models) {
  $("models").replaceChildren(...models.map((m) => el("div", { class: "model" },
    el("h3", { text: `${m.edge} · ${m.model}` }),
    m.versions.length ? plot(m.versions) : el("p", { text: "No version published yet." }),
    el("table", {}, el("thead", {}, row("Version", "Published", "Accuracy", "Datasets")),
      el("tbody", {}, ...m.versions.map((v) => row(v.version, when(v.created), percent(v.accuracy), v.datasets.join(", "))))),
  )));
}

function drawFleet(fleet) {
  $("fleet-note").textContent = fleet.note || "";
  $("fleet-rows").replaceChildren(...fleet.edges.map((e) =>
    row(e.edge, e.serving + (e.pinned ? " (pinned)" : ""), e.newest, e.lag_s == null ? "" : `${Math.round(e.lag_s)} s`, String(e.wave), e.held, e.error),
  ));
  $("waves-rows").replaceChildren(...fleet.waves.map((w) => row(w.release, String(w.wave), String(w.edges), String(w.serving), w.state)));
}

function drawDeadLetters(letters) {
  $("dead-letters-rows").replaceChildren(...letters.map((d) => row(when(d.timestamp / 1000), d.topic, d.reason, String(d.bytes))));
}

async function refresh() {
  await Promise.all([
    section("datasets", drawDatasets),
    section("runs", drawRuns),
    section("models", drawModels),
    section("stores", drawStores),
    section("fleet", drawFleet),
    section("dead-letters", drawDeadLetters),
  ]);
  $("status").textContent = `Read at ${new Date().toLocaleTimeString()}.`;
}

window.addEventListener("DOMContentLoaded", async () => {
  $("refresh").addEventListener("click", refresh);
  await startSession(showApp, showLogin);
});
