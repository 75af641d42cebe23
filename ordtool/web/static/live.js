// The live orders page. It loads the newest orders once (GET /orders), then changes only when
// an event arrives on the WebSocket: order.created adds a row, order.status_changed updates one.
// The API key stays in sessionStorage (this tab); the socket is opened with a one-time ticket.
"use strict";

(() => {
  const KEY_STORAGE = "ordtool.apiKey";
  const FIRST_LOAD = 100;      // orders fetched once on load, and asked for again on reconnect
  const MAX_ROWS = 500;        // the table keeps the newest ones
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 5000;
  const MAX_QUANTITY = 10000;
  const MAX_ID = 9223372036854775807n;
  const SKU_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._\-/]*$/;
  const MAX_SKU_LENGTH = 64;
  const FIELDS = ["customer_id", "sku", "quantity"];
  const TERMINAL = new Set(["COMPLETED", "FAILED"]);

  const $ = (id) => document.getElementById(id);
  const orders = new Map();    // id -> order data, as in the event envelopes
  const rows = new Map();      // id -> <tr>
  let apiKey = sessionStorage.getItem(KEY_STORAGE) || "";
  let socket = null;
  let attempt = 0;
  let everConnected = false;
  let loadedList = false;
  let retryTimer = null;
  let filter = "";
  let pending = [];            // events waiting for the next render
  let flushTimer = null;

  // ---- connection state -------------------------------------------------------------------

  function setConnection(state, text) {
    const box = $("connection");
    box.dataset.state = state;
    $("connection-text").textContent = text || state;
  }

  function authHeaders(extra) {
    return Object.assign({ Authorization: `Bearer ${apiKey}` }, extra || {});
  }

  async function problemText(response) {
    try {
      const body = await response.json();
      return body.detail || body.title || `HTTP ${response.status}`;
    } catch (_) {
      return `HTTP ${response.status}`;
    }
  }

  function keyRejected(message) {
    // A rejected key never gets better by retrying: ask for another one.
    clearTimeout(retryTimer);
    apiKey = "";
    sessionStorage.removeItem(KEY_STORAGE);
    setConnection("offline", "key rejected");
    showKeyPanel(message);
  }

  async function connect() {
    clearTimeout(retryTimer);
    setConnection(everConnected ? "reconnecting" : "connecting");
    let ticket;
    try {
      const response = await fetch("/ws-ticket", { method: "POST", headers: authHeaders() });
      if (response.status === 401 || response.status === 403) {
        keyRejected(await problemText(response));
        return;
      }
      if (!response.ok) throw new Error(await problemText(response));
      ticket = (await response.json()).ticket;
    } catch (_) {
      scheduleReconnect();
      return;
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const catchUp = everConnected ? `&snapshot=${FIRST_LOAD}` : "";
    const url = `${scheme}//${location.host}/ws/orders?ticket=${encodeURIComponent(ticket)}${catchUp}`;
    const ws = new WebSocket(url);
    socket = ws;
    ws.onopen = () => {
      attempt = 0;
      everConnected = true;
      setConnection("live");
      if (!loadedList) loadList();
    };
    ws.onmessage = (message) => receive(message.data);
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    if (!apiKey) return;
    setConnection("reconnecting");
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
    attempt += 1;
    const delay = ceiling / 2 + Math.random() * ceiling / 2;   // jitter: replicas restart together
    retryTimer = setTimeout(connect, delay);
  }

  // The one request to /orders: after it, only the socket changes the table.
  async function loadList() {
    loadedList = true;
    try {
      const response = await fetch(`/orders?limit=${FIRST_LOAD}`, { headers: authHeaders() });
      if (!response.ok) {
        showListStatus(`Could not load orders: ${await problemText(response)}`);
        return;
      }
      const body = await response.json();
      const items = Array.isArray(body) ? body : body.items || [];
      items.forEach((order) => upsert(order, ""));
      afterRender();
    } catch (_) {
      showListStatus("Could not load orders: the service did not answer.");
    }
  }

  // ---- events -----------------------------------------------------------------------------

  function receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch (_) {
      return;
    }
    pending.push(message);
    if (flushTimer === null) flushTimer = setTimeout(flush, 30);   // one render per burst
  }

  function flush() {
    flushTimer = null;
    const batch = pending;
    pending = [];
    for (const message of batch) {
      if (message.type === "snapshot") {
        (message.orders || []).forEach((order) => upsert(order, ""));
      } else if (message.type === "order.created") {
        upsert(message.data, "fresh");
      } else if (message.type === "order.status_changed") {
        upsert(message.data, "changed");
      }
    }
    afterRender();
  }

  function upsert(order, highlight) {
    if (!order || typeof order.id !== "number") return;
    const known = orders.get(order.id);
    // Events can arrive twice or out of turn; a finished order never goes back to PENDING.
    if (known && TERMINAL.has(known.status) && !TERMINAL.has(order.status)) return;
    if (known && known.status === order.status) return;
    orders.set(order.id, order);
    const row = rows.get(order.id) || insertRow(order.id);
    fillRow(row, order);
    if (highlight && !(known && highlight === "fresh")) flash(row, known ? "changed" : highlight);
  }

  function insertRow(id) {
    const row = document.createElement("tr");
    row.dataset.id = String(id);
    // Newest first: before the first row with a smaller id.
    let before = null;
    for (const other of $("order-rows").children) {
      if (Number(other.dataset.id) < id) { before = other; break; }
    }
    $("order-rows").insertBefore(row, before);
    rows.set(id, row);
    return row;
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function fillRow(row, order) {
    const badge = document.createElement("span");
    badge.className = `badge badge-${order.status}`;
    badge.textContent = order.status;
    const status = document.createElement("td");
    status.appendChild(badge);
    row.dataset.status = order.status;
    row.replaceChildren(
      cell(String(order.id), "num"),
      cell(String(order.customer_id), "num"),
      cell(order.sku),
      cell(String(order.quantity), "num"),
      status,
      cell(shortTime(order.created_at), "time"),
      cell(shortTime(order.updated_at), "time"),
    );
    row.hidden = Boolean(filter) && order.status !== filter;
  }

  function flash(row, className) {
    row.classList.remove("fresh", "changed");
    void row.offsetWidth;  // restart the animation
    row.classList.add(className);
  }

  function shortTime(iso) {
    // 2026-12-03T17:25:29.123456Z -> 2026-12-03 17:25:29
    return typeof iso === "string" ? iso.replace("T", " ").replace(/(\.\d+)?Z$/, "") : "";
  }

  function afterRender() {
    trimRows();
    updateCounts();
  }

  function trimRows() {
    if (orders.size <= MAX_ROWS) return;
    const ids = [...orders.keys()].sort((a, b) => a - b);
    for (const id of ids.slice(0, orders.size - MAX_ROWS)) {
      orders.delete(id);
      rows.get(id).remove();
      rows.delete(id);
    }
  }

  function updateCounts() {
    const counts = { "": orders.size, PENDING: 0, COMPLETED: 0, FAILED: 0 };
    for (const order of orders.values()) counts[order.status] = (counts[order.status] || 0) + 1;
    document.querySelectorAll("[data-count]").forEach((span) => {
      span.textContent = String(counts[span.dataset.count] || 0);
    });
    const visible = filter ? counts[filter] || 0 : orders.size;
    $("empty").hidden = visible > 0;
  }

  function setFilter(status) {
    filter = status;
    document.querySelectorAll(".filter").forEach((button) => {
      button.setAttribute("aria-pressed", String(button.dataset.filter === status));
    });
    for (const [id, row] of rows) row.hidden = Boolean(filter) && orders.get(id).status !== filter;
    updateCounts();
  }

  function showListStatus(text) {
    $("list-status").textContent = text;
    $("list-status").hidden = !text;
  }

  // ---- the order form ---------------------------------------------------------------------

  function validateOrder(values) {
    const errors = {};
    const customer = values.customer_id;
    if (!customer) {
      errors.customer_id = "Enter the customer's id.";
    } else if (!/^\d+$/.test(customer) || BigInt(customer) < 1n || BigInt(customer) > MAX_ID) {
      errors.customer_id = "Customer id must be digits only: a whole number of 1 or more.";
    }
    if (!values.sku) {
      errors.sku = "Enter a SKU, e.g. BOOK-42.";
    } else if (values.sku.length > MAX_SKU_LENGTH) {
      errors.sku = `SKU must be at most ${MAX_SKU_LENGTH} characters.`;
    } else if (!SKU_PATTERN.test(values.sku)) {
      errors.sku = "SKU must start with a letter or digit and use only letters, digits and . _ - /";
    }
    const quantity = values.quantity;
    if (!quantity) {
      errors.quantity = "Enter a quantity.";
    } else if (!/^\d+$/.test(quantity) || Number(quantity) < 1 || Number(quantity) > MAX_QUANTITY) {
      errors.quantity = `Quantity must be a whole number from 1 to ${MAX_QUANTITY}.`;
    }
    return errors;
  }

  function showFieldErrors(errors) {
    for (const field of FIELDS) {
      const message = errors[field] || "";
      $(`${field}-error`).textContent = message;
      $(field).setAttribute("aria-invalid", String(Boolean(message)));
    }
  }

  function setFormStatus(text, kind) {
    const status = $("form-status");
    status.textContent = text;
    status.className = `form-status ${kind || ""}`;
  }

  // Which field a server message is about: the problem's own field list when it has one,
  // else the field its words name.
  function fieldErrorsFromProblem(problem) {
    const errors = {};
    const listed = Array.isArray(problem.errors) ? problem.errors : [];
    for (const item of listed) {
      const where = item.field || (Array.isArray(item.loc) ? item.loc[item.loc.length - 1] : "");
      const field = fieldNamed(String(where)) || fieldNamed(String(item.message || item.msg || ""));
      if (field) errors[field] = item.message || item.msg || item.detail;
    }
    if (Object.keys(errors).length) return errors;
    const detail = String(problem.detail || problem.title || "");
    const title = String(problem.title || "");
    if (/unknown customer/i.test(title)) return { customer_id: detail };
    for (const part of detail.split("; ")) {
      const field = fieldNamed(part);
      if (field && !errors[field]) errors[field] = part;
    }
    return errors;
  }

  function fieldNamed(text) {
    if (/customer/i.test(text)) return "customer_id";
    if (/quantity/i.test(text)) return "quantity";
    if (/sku/i.test(text)) return "sku";
    return null;
  }

  function newIdempotencyKey() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function submitOrder(event) {
    event.preventDefault();
    const values = {};
    for (const field of FIELDS) values[field] = $(field).value.trim();
    const errors = validateOrder(values);
    showFieldErrors(errors);
    setFormStatus("");
    if (Object.keys(errors).length) return;   // nothing is sent until the input is right

    const customer = Number(values.customer_id);
    const body = {
      customer_id: Number.isSafeInteger(customer) ? customer : values.customer_id,
      sku: values.sku,
      quantity: Number(values.quantity),
    };
    const button = $("place-order");
    button.disabled = true;
    try {
      const response = await fetch("/orders", {
        method: "POST",
        headers: authHeaders({ "Content-Type": "application/json", "Idempotency-Key": newIdempotencyKey() }),
        body: JSON.stringify(body),
      });
      const answer = await response.json().catch(() => ({}));
      if (response.ok) {
        const stale = answer.customer_check === "stale" ? " (customer accepted from cache)" : "";
        setFormStatus(`Order #${answer.id} placed${stale}.`, "ok");
        $("sku").value = "";
        $("quantity").value = "";
        return;
      }
      const fieldErrors = response.status === 422 ? fieldErrorsFromProblem(answer) : {};
      showFieldErrors(fieldErrors);
      if (!Object.keys(fieldErrors).length) {
        setFormStatus(answer.detail || answer.title || `The service answered ${response.status}.`, "error");
      }
    } catch (_) {
      setFormStatus("The service did not answer; try again.", "error");
    } finally {
      button.disabled = false;
    }
  }

  // ---- key handling and start-up ----------------------------------------------------------

  function showKeyPanel(message) {
    $("workspace").hidden = true;
    $("forget-key").hidden = true;
    $("key-panel").hidden = false;
    $("api-key-error").textContent = message || "";
    $("api-key").focus();
  }

  function start() {
    $("key-panel").hidden = true;
    $("workspace").hidden = false;
    $("forget-key").hidden = false;
    connect();
  }

  function forgetKey() {
    apiKey = "";
    sessionStorage.removeItem(KEY_STORAGE);
    clearTimeout(retryTimer);
    if (socket) {
      const open = socket;
      socket = null;
      open.close();
    }
    setConnection("idle", "not connected");
    showKeyPanel("");
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("api-key").value.trim();
      if (!key) {
        $("api-key-error").textContent = "Paste an API key first.";
        return;
      }
      apiKey = key;
      sessionStorage.setItem(KEY_STORAGE, key);
      $("api-key").value = "";
      start();
    });
    $("forget-key").addEventListener("click", forgetKey);
    $("order-form").addEventListener("submit", submitOrder);
    document.querySelectorAll(".filter").forEach((button) => {
      button.addEventListener("click", () => setFilter(button.dataset.filter));
    });
    if (apiKey) start(); else showKeyPanel("");
  });
})();
