// The store's page: log in, review unsure photos, keep the catalogue, watch shipments,
// confirm or dismiss machine alarms.
// Every call goes to this gateway with the session cookie and the page's header
// (edge_sync.uplink.sessions); nothing is loaded from anywhere else.
"use strict";

let products = [];

function say(text) { $("status").textContent = text; }

function showLogin(message) {
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
  $("staff-name").textContent = session.staff;
  $("edge-name").textContent = "· " + session.edge;
  document.title = "edgecore · " + session.edge;
  await loadProducts();
  await loadUnsure();
}

// -- unsure photos ----------------------------------------------------------------------

function productOptions(select, chosen) {
  select.replaceChildren(...products.map((p) => el("option", { value: p.sku, text: `${p.name} (${p.sku})` })));
  if (chosen) select.value = chosen;
}

function card(item) {
  const id = `${item.day}/${item.capture_id}`;
  const group = `guess-${item.capture_id}`;
  const guesses = item.guesses.map((g, i) => {
    const radio = el("input", { type: "radio", name: group, value: g.sku });
    if (i === 0) radio.checked = true;
    return el("label", {}, radio, ` ${g.name} (${g.sku}) · ${Math.round(g.probability * 100)} %`);
  });
  const other = el("input", { type: "radio", name: group, value: "" });
  const otherSelect = el("select", { "aria-label": "Another product" });
  productOptions(otherSelect);
  otherSelect.prepend(el("option", { value: "", text: "choose…" }));  // nothing picked until staff pick
  otherSelect.value = "";
  otherSelect.addEventListener("change", () => { other.checked = true; });
  const pick = el("input", { type: "checkbox", class: "pick", "aria-label": `Select photo ${item.capture_id}` });
  const confirm = el("button", { type: "button", class: "confirm", text: "Confirm" });
  const discard = el("button", { type: "button", text: "Discard" });
  const node = el(
    "article",
    { class: "card", "data-capture": id },
    el("img", { src: `/v1/unsure/${id}/image`, alt: `Photo taken ${item.captured_at}`, loading: "lazy" }),
    el("fieldset", {}, el("legend", { text: "Which product is this?" }), ...guesses,
      el("label", {}, other, " Another product: ", otherSelect)),
    el("p", { class: "meta", text: `model ${item.model_version} · ${item.captured_at.slice(0, 19).replace("T", " ")}` }),
    el("div", { class: "actions" }, el("label", {}, pick, " Select"), confirm, discard),
  );
  const chosen = () => {
    const checked = node.querySelector(`input[name="${group}"]:checked`);
    return checked && checked.value ? checked.value : otherSelect.value;
  };
  confirm.addEventListener("click", () => {
    if (!chosen()) { say("Choose the product first."); otherSelect.focus(); return; }
    act([item], (it) => label(it, chosen()));
  });
  discard.addEventListener("click", () => act([item], discardOne));
  node.item = item;
  return node;
}

async function label(item, sku) {
  await call("POST", "/v1/hard-examples", { day: item.day, capture_id: item.capture_id, sku });
  return `labelled ${sku}`;
}

async function discardOne(item) {
  await call("DELETE", `/v1/unsure/${item.day}/${item.capture_id}`);
  return "discarded";
}

async function act(items, action) {
  let done = 0;
  for (const item of items) {
    try {
      await action(item);
      done += 1;
      const node = document.querySelector(`[data-capture="${item.day}/${item.capture_id}"]`);
      if (node) node.remove();
    } catch (error) {
      say(`Photo ${item.capture_id}: ${error.message}`);
      return;
    }
  }
  say(`${done} photo${done === 1 ? "" : "s"} done.`);
  await loadUnsure(false);
}

async function loadUnsure(announce = true) {
  const answer = await call("GET", "/v1/unsure");
  $("cards").replaceChildren(...answer.unsure.map(card));
  const count = answer.waiting >= 1000 ? "1000+" : String(answer.waiting);  // the desk counts up to 1000
  $("waiting").textContent = `(${count})`;
  $("no-unsure").hidden = answer.waiting > 0;
  $("select-all").checked = false;
  if (announce) say(`${answer.waiting} photo${answer.waiting === 1 ? "" : "s"} to review.`);
}

function selected() {
  return [...document.querySelectorAll(".card")].filter((n) => n.querySelector(".pick").checked).map((n) => n.item);
}

// -- products and shipments --------------------------------------------------------------

async function loadProducts() {
  const catalogue = await call("GET", "/v1/catalogue");
  products = catalogue.products;
  productOptions($("bulk-sku"));
  $("product-rows").replaceChildren(...products.map((p) => {
    const edit = el("button", { type: "button", text: "Edit", "aria-label": `Edit ${p.name}` });
    edit.addEventListener("click", () => {
      $("product-sku").value = p.sku;
      $("product-name").value = p.name;
      $("product-price").value = p.price;
      $("product-name").focus();
    });
    return el("tr", {}, el("td", { text: p.sku }), el("td", { text: p.name }),
      el("td", { text: `${p.price} ${catalogue.currency}` }), el("td", {}, edit));
  }));
}

async function completeSet(sku) {
  try {
    const done = await call("POST", `/v1/sets/${encodeURIComponent(sku)}/complete`);
    await loadShipments();
    say(`Set of ${done.images} photos of ${sku} queued to ship.`);
  } catch (error) {
    say(`No set made for ${sku}: ${error.message}`);
  }
}

async function loadShipments() {
  const pending = await call("GET", "/v1/pending");
  $("loose-rows").replaceChildren(...Object.entries(pending.not_in_a_set).map(([sku, n]) => {
    const complete = el("button", { type: "button", text: "Complete set", "aria-label": `Complete the set of ${sku}` });
    complete.addEventListener("click", () => completeSet(sku));
    return el("tr", {}, el("td", { text: sku }), el("td", { text: n }), el("td", {}, complete));
  }));
  $("hard-examples").textContent = `${pending.hard_examples} labelled photo${pending.hard_examples === 1 ? "" : "s"} go with the next set.`;
  const answer = await call("GET", "/v1/shipments");
  const count = (images) => Object.values(images).reduce((a, b) => a + b, 0);
  $("queued-rows").replaceChildren(...answer.queued.map((s) => el("tr", {},
    el("td", { text: s.set_id }), el("td", { text: s.status }), el("td", { text: count(s.images) }),
    el("td", { text: s.attempts }), el("td", { text: s.last_error || "" }))));
  $("shipped-rows").replaceChildren(...answer.shipped.map((s) => el("tr", {},
    el("td", { text: s.set_id }), el("td", { text: s.version || "" }), el("td", { text: count(s.images) }),
    el("td", { text: new Date(s.created * 1000).toLocaleString() }))));
  say(`${answer.queued.length} set${answer.queued.length === 1 ? "" : "s"} queued, ${answer.shipped.length} shipped.`);
}

// -- machine alarms ---------------------------------------------------------------------

function sparkline(values, label) {
  // one sensor's readings across the window, scaled to its own range
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 200 40");
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  const known = values.filter((v) => v != null);
  const low = Math.min(...known), high = Math.max(...known);
  svg.setAttribute("aria-label", `${label}: from ${low.toFixed(2)} to ${high.toFixed(2)}`);
  const y = (v) => 36 - ((v - low) / (high - low || 1)) * 32;
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", values.map((v, i) => (v == null ? null : `${(i * 200) / Math.max(1, values.length - 1)},${y(v)}`)).filter(Boolean).join(" "));
  svg.append(line);
  return svg;
}

function alarmCard(alarm) {
  const when = new Date(alarm.window_end).toLocaleString();
  const sensors = alarm.sensors.length ? alarm.sensors : alarm.readings[0].map((_, j) => `sensor ${j + 1}`);
  const plots = sensors.map((name, j) => el("div", { class: "sensor" },
    el("span", { text: name }), sparkline(alarm.readings.map((row) => row[j]), name)));
  const confirm = el("button", { type: "button", class: "confirm", text: "Confirm fault",
    "aria-label": `Confirm the alarm of ${alarm.machine} at ${when} as a real fault` });
  const dismiss = el("button", { type: "button", text: "Dismiss",
    "aria-label": `Dismiss the alarm of ${alarm.machine} at ${when} as a false alarm` });
  const node = el("article", { class: "card alarm", "aria-label": `Alarm of ${alarm.machine} at ${when}` },
    el("h3", { text: alarm.machine }),
    el("p", { class: "meta", text: `${when} · error ${alarm.error.toFixed(3)} (threshold ${alarm.threshold.toFixed(3)})` +
      (alarm.texture_distance == null ? "" : ` · texture ${alarm.texture_distance.toFixed(2)} (threshold ${alarm.texture_threshold.toFixed(2)})`) }),
    ...plots,
    el("div", { class: "actions" }, confirm, dismiss));
  const judge = async (verdict) => {
    try {
      await call("PUT", `/v1/alarms/${encodeURIComponent(alarm.machine)}/${alarm.day}/${encodeURIComponent(alarm.window_id)}/verdict`, { verdict });
      node.remove();
      $("no-alarms").hidden = document.querySelectorAll("article.alarm").length > 0;
      say(`Alarm of ${alarm.machine} ${verdict}.`);
    } catch (error) {
      say(`Alarm of ${alarm.machine} not judged: ${error.message}`);
    }
  };
  confirm.addEventListener("click", () => judge("confirmed"));
  dismiss.addEventListener("click", () => judge("dismissed"));
  return node;
}

async function loadAlarms() {
  const answer = await call("GET", "/v1/alarms");
  $("alarm-cards").replaceChildren(...answer.alarms.map(alarmCard));
  $("no-alarms").hidden = answer.alarms.length > 0;
  say(`${answer.waiting} alarm${answer.waiting === 1 ? "" : "s"} wait for a verdict.`);
}

// -- wiring -----------------------------------------------------------------------------

function wire() {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", async () => {
      for (const other of document.querySelectorAll(".tab")) {
        other.setAttribute("aria-pressed", String(other === tab));
        $(other.dataset.section).hidden = other !== tab;
      }
      const loaders = { unsure: loadUnsure, products: loadProducts, shipments: loadShipments, machines: loadAlarms };
      try { await loaders[tab.dataset.section](); } catch (error) { say(error.message); }
    });
  }
  $("select-all").addEventListener("change", (event) => {
    for (const box of document.querySelectorAll(".pick")) box.checked = event.target.checked;
  });
  $("bulk").addEventListener("submit", (event) => {
    event.preventDefault();
    const sku = $("bulk-sku").value;
    act(selected(), (item) => label(item, sku));
  });
  $("bulk-discard").addEventListener("click", () => act(selected(), discardOne));
  $("product-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const sku = $("product-sku").value.trim().toUpperCase();
    try {
      await call("PUT", `/v1/catalogue/products/${encodeURIComponent(sku)}`,
        { name: $("product-name").value, price: $("product-price").value });
      $("product-form").reset();
      await loadProducts();
      say(`Product ${sku} saved.`);
    } catch (error) {
      say(`Product ${sku} not saved: ${error.message}`);
    }
  });
}

window.addEventListener("DOMContentLoaded", async () => {
  wire();
  await startSession(showApp, showLogin);
});
