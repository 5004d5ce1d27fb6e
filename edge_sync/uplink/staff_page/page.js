// What every edgecore page shares (the store's and the core's): element lookup, building the
// DOM without ever parsing markup, and calls on the session cookie with the page's header
// (edge_sync.uplink.sessions).  Each page's own script defines showLogin(message).
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

async function call(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { "X-Edgecore-Page": "1" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401 && path !== "/v1/session") showLogin("Your session has ended: log in again.");
  if (!response.ok) {
    let reason = response.statusText;
    try { reason = (await response.json()).reason || reason; } catch (e) { /* not JSON */ }
    throw new Error(reason);
  }
  return response.status === 204 ? null : response.json();
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

// Log in with a token, log out, and open the page on a session the browser still holds:
// each page passes its showApp(session) and showLogin(message).
async function startSession(showApp, showLogin) {
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const session = await call("POST", "/v1/session", { token: $("token").value });
      $("token").value = "";
      await showApp(session);
    } catch (error) {
      $("login-error").textContent = `Not logged in: ${error.message}`;
    }
  });
  $("logout").addEventListener("click", async () => {
    await call("DELETE", "/v1/session");
    showLogin("Logged out.");
  });
  try {
    await showApp(await call("GET", "/v1/session"));
  } catch (error) {
    showLogin("");
  }
}
