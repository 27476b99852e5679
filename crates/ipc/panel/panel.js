// The debug panel: one live page of the whole backend. It talks to conductor only through the
// JavaScript client package (served at /panel/client/), so there is one client, not two.
// Data: services:get-all, app:health, database:status, logs:get and metrics:get at load, then
// the event stream (service:status-changed, app:health-changed, app:metrics, logs:entry, …);
// `resync` and `lagged` mean events were lost, so the snapshots are fetched again.
// DOM updates are batched into one requestAnimationFrame; the log pane keeps at most
// LOG_ROWS rows in the document whatever the stream delivers.

import { connect } from "/panel/client/index.js";

const TOKEN_KEY = "conductor.panel.token";
/** Log entries kept in memory (the tail conductor keeps per service is 10 000 by default). */
const LOG_KEEP = 10_000;
/** Log rows in the document at most: enough to scroll back, few enough to stay fast. */
const LOG_ROWS = 2_000;
/** Entries asked for once the page is up, every service merged (the first render asks LOG_ROWS). */
const LOG_LOAD = 10_000;
/** Sparkline history. */
const METRICS_SECONDS = 300;
const LEVELS = ["debug", "info", "warn", "error"];

const $ = (id) => document.getElementById(id);

/** Everything the page knows; rendering reads it, handlers write it and call `schedule`. */
const state = {
  client: undefined,
  services: new Map(), // name -> { status, startedAt, row, cells, busy, error, samples }
  order: [],
  health: undefined,
  database: undefined,
  migrationsRun: undefined,
  logs: [],
  logsReady: false,
  pendingLogs: [],
  skipped: new Map(), // file -> { serviceName, lines, file }
  dirty: { services: new Set(), structure: false, health: false, database: false, logs: false, logsRebuild: false, skipped: false },
  frame: 0,
  firstRender: false,
};

// Counters for tests and panel_figures.mjs.
window.__panelStats = { logEvents: 0, logLines: 0, skippedLines: 0, longestFrameMs: 0 };

// ---- token ---------------------------------------------------------------------------------

/** The token from `#token=…` (kept in sessionStorage, removed from the address bar). */
function takeToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const fromUrl = fragment.get("token");
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function showMessage(kind, nodes) {
  const message = $("message");
  message.replaceChildren(...nodes);
  message.dataset.kind = kind;
  message.hidden = false;
}

function notAuthorised() {
  const code = document.createElement("code");
  code.textContent = "conductor open";
  showMessage("unauthorised", ["not authorised — run ", code, " to get the panel's URL"]);
  setConnection("closed", "not connected");
  $("health").hidden = true;
  for (const id of ["services-section", "database", "logs"]) $(id).hidden = true;
}

function setConnection(kind, text) {
  const element = $("connection");
  element.dataset.connection = kind;
  element.textContent = text;
}

// ---- formatting ----------------------------------------------------------------------------

function duration(seconds) {
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${String(seconds % 60).padStart(2, "0")}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h ${String(minutes % 60).padStart(2, "0")}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

function ago(iso, now) {
  if (!iso) return "—";
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return `${duration(seconds)} ago`;
}

function bytes(value) {
  if (value === null || value === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB"];
  let unit = 0;
  let amount = value;
  while (amount >= 1024 && unit < units.length - 1) {
    amount /= 1024;
    unit += 1;
  }
  return `${amount < 10 && unit > 0 ? amount.toFixed(1) : Math.round(amount)} ${units[unit]}`;
}

function percent(value) {
  if (value === null || value === undefined) return "—";
  return `${value < 10 ? value.toFixed(1) : Math.round(value)}%`;
}

function clock(iso) {
  // HH:MM:SS.mmm of the entry, in local time.
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/** The dot's colour class and the words for a state (colour is never the only cue). */
function tone(status) {
  switch (status) {
    case "running":
      return "ok";
    case "starting":
    case "unhealthy":
    case "stopping":
      return "warn";
    case "failed":
      return "bad";
    default:
      return "off";
  }
}

// ---- scheduling ----------------------------------------------------------------------------

function schedule() {
  if (state.frame) return;
  state.frame = requestAnimationFrame(render);
}

function render() {
  state.frame = 0;
  const began = performance.now();
  const dirty = state.dirty;
  if (dirty.structure) renderStructure();
  const now = Date.now();
  for (const name of dirty.services) renderService(state.services.get(name), now);
  dirty.services.clear();
  dirty.structure = false;
  if (dirty.health) renderHealth();
  if (dirty.database) renderDatabase();
  if (dirty.skipped) renderSkipped();
  if (dirty.logsRebuild) rebuildLog();
  else if (dirty.logs) appendLog();
  dirty.health = dirty.database = dirty.skipped = dirty.logs = dirty.logsRebuild = false;
  drawSparklines();
  const spent = performance.now() - began;
  if (spent > window.__panelStats.longestFrameMs) window.__panelStats.longestFrameMs = spent;
  if (!state.firstRender && state.order.length > 0 && state.logsReady && state.health) {
    state.firstRender = true;
    document.body.dataset.ready = "true";
    window.__panelRendered = performance.now();
    window.__panelStats.firstFrameMs = window.__panelRendered - began;
    // After this frame is painted.
    setTimeout(loadFullTail, 0);
  }
}

// ---- services ------------------------------------------------------------------------------

function cell(row, field, className) {
  const td = document.createElement("td");
  td.dataset.field = field;
  if (className) td.className = className;
  row.append(td);
  return td;
}

function createRow(name) {
  const row = document.createElement("tr");
  row.dataset.service = name;
  const cells = {};
  const stateCell = cell(row, "state", "state");
  const dot = document.createElement("span");
  dot.className = "dot";
  dot.setAttribute("aria-hidden", "true");
  const stateText = document.createElement("span");
  stateText.dataset.field = "state-text";
  stateCell.append(dot, stateText);
  cells.stateText = stateText;
  const nameCell = document.createElement("th");
  nameCell.scope = "row";
  nameCell.dataset.field = "name";
  nameCell.textContent = name;
  row.append(nameCell);
  cells.port = cell(row, "port", "num");
  cells.pid = cell(row, "pid", "num");
  cells.uptime = cell(row, "uptime", "num");
  cells.restarts = cell(row, "restarts", "num");
  cells.health = cell(row, "last-health-check", "muted");
  cells.error = cell(row, "last-error", "error-text");
  for (const metric of ["cpu", "memory"]) {
    const td = cell(row, metric, "metric");
    const text = document.createElement("span");
    text.className = "metric-value";
    const canvas = document.createElement("canvas");
    canvas.className = "spark";
    canvas.width = 48;
    canvas.height = 16;
    canvas.setAttribute("aria-hidden", "true");
    td.append(text, canvas);
    cells[metric] = text;
    cells[`${metric}Spark`] = canvas;
  }
  const actionCell = cell(row, "actions", "actions");
  const actions = document.createElement("div");
  actions.className = "action-buttons";
  actionCell.append(actions);
  const buttons = {};
  for (const [action, label] of [
    ["start", "Start"],
    ["stop", "Stop"],
    ["restart", "Restart"],
  ]) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.action = action;
    button.textContent = label;
    button.setAttribute("aria-label", `${label} ${name}`);
    button.addEventListener("click", () => act(name, action));
    actions.append(button);
    buttons[action] = button;
  }
  const actionError = document.createElement("span");
  actionError.className = "action-error";
  actionError.dataset.field = "action-error";
  actionError.setAttribute("role", "status");
  // Under the buttons, as wide as they are: an error must not push the row's columns away.
  actionCell.append(actionError);
  cells.buttons = buttons;
  cells.actionError = actionError;
  return { row, cells };
}

function renderStructure() {
  const body = $("service-rows");
  const rows = [];
  for (const name of state.order) {
    const service = state.services.get(name);
    if (!service.row) Object.assign(service, createRow(name));
    rows.push(service.row);
    state.dirty.services.add(name);
  }
  body.replaceChildren(...rows);
  // The log pane's service selector follows the registry.
  const select = $("log-service");
  const chosen = select.value;
  const options = [new Option("all services", "")];
  for (const name of state.order) options.push(new Option(name, name));
  select.replaceChildren(...options);
  select.value = state.order.includes(chosen) ? chosen : "";
}

const BUSY_LABELS = { start: "Starting…", stop: "Stopping…", restart: "Restarting…" };
const LABELS = { start: "Start", stop: "Stop", restart: "Restart" };

function renderService(service, now) {
  if (!service?.row) return;
  const { status } = service;
  const { row, cells } = service;
  row.dataset.state = status.status;
  row.dataset.tone = tone(status.status);
  cells.stateText.textContent = status.status;
  cells.port.textContent = String(status.port);
  cells.pid.textContent = status.pid === null ? "—" : String(status.pid);
  renderClock(service, now);
  cells.restarts.textContent = String(status.restarts);
  cells.error.textContent = status.lastError ?? "";
  cells.error.title = status.lastError ?? "";
  cells.cpu.textContent = percent(status.cpuPercent);
  cells.memory.textContent = bytes(status.memoryBytes);
  const s = status.status;
  const enabled = {
    start: !["running", "starting", "stopping", "unhealthy"].includes(s),
    stop: ["running", "starting", "unhealthy"].includes(s),
    restart: !["stopping", "disabled"].includes(s),
  };
  for (const [action, button] of Object.entries(cells.buttons)) {
    const busy = service.busy === action;
    button.textContent = busy ? BUSY_LABELS[action] : LABELS[action];
    button.disabled = service.busy !== undefined || !enabled[action];
    if (busy) button.dataset.busy = "true";
    else delete button.dataset.busy;
  }
  cells.actionError.textContent = service.error ?? "";
  cells.actionError.title = service.error ?? "";
}

/** The ticking cells: uptime (from a start time kept here) and the last health check's age. */
function renderClock(service, now) {
  const { status, cells } = service;
  const running = status.status === "running" || status.status === "unhealthy";
  cells.uptime.textContent = running && service.startedAt !== undefined
    ? duration(Math.max(0, Math.floor((now - service.startedAt) / 1000)))
    : "—";
  cells.health.textContent = ago(status.lastHealthCheck, now);
  cells.health.title = status.lastHealthCheck ?? "";
}

/** Takes a ServiceStatus; the start time moves only when the uptime disagrees by over 2 s. */
function updateStatus(status) {
  let service = state.services.get(status.name);
  if (!service) {
    service = { status, samples: { cpu: [], memory: [] } };
    state.services.set(status.name, service);
    state.order.push(status.name);
    state.dirty.structure = true;
  }
  const now = Date.now();
  const startedAt = now - status.uptime * 1000;
  const running = status.status === "running" || status.status === "unhealthy";
  if (!running) service.startedAt = undefined;
  else if (
    service.startedAt === undefined ||
    service.status.pid !== status.pid ||
    Math.abs(service.startedAt - startedAt) > 2000
  ) {
    service.startedAt = startedAt;
  }
  service.status = status;
  state.dirty.services.add(status.name);
  schedule();
}

function setAll(statuses) {
  const names = new Set(statuses.map((status) => status.name));
  // A reload may remove services: their rows go.
  for (const name of [...state.services.keys()]) {
    if (!names.has(name)) {
      state.services.delete(name);
      state.dirty.structure = true;
    }
  }
  const order = statuses.map((status) => status.name);
  if (order.join("\n") !== state.order.join("\n")) state.dirty.structure = true;
  state.order = state.order.filter((name) => names.has(name));
  for (const status of statuses) updateStatus(status);
  state.order = order;
  schedule();
}

async function act(name, action) {
  const service = state.services.get(name);
  if (!service || service.busy) return;
  service.busy = action;
  service.error = undefined;
  state.dirty.services.add(name);
  schedule();
  try {
    const response = await state.client.invoke(`services:${action}`, { serviceName: name });
    if (response && response.success === false) service.error = `${action} failed: ${response.error ?? "no reason given"}`;
  } catch (error) {
    if (error.status === 401) return stop();
    service.error = `${action} failed: ${error.message}`;
  } finally {
    service.busy = undefined;
    state.dirty.services.add(name);
    schedule();
  }
  // Events carry the outcome; this snapshot covers any that raced the response.
  refreshServices();
}

async function refreshServices() {
  try {
    setAll(await state.client.invoke("services:get-all"));
  } catch (error) {
    if (error.status === 401) stop();
  }
}

// ---- metrics -------------------------------------------------------------------------------

function addSample(name, sample) {
  const service = state.services.get(name);
  if (!service) return;
  const t = Date.parse(sample.timestamp);
  service.samples.cpu.push([t, sample.cpuPercent]);
  service.samples.memory.push([t, sample.memoryBytes]);
  const oldest = t - METRICS_SECONDS * 1000;
  for (const series of [service.samples.cpu, service.samples.memory]) {
    let drop = 0;
    while (drop < series.length && series[drop][0] < oldest) drop += 1;
    if (drop > 0) series.splice(0, drop);
  }
  service.sparkDirty = true;
}

let sparkColour;
const scheme = matchMedia("(prefers-color-scheme: dark)");
scheme.addEventListener("change", () => {
  sparkColour = undefined;
  for (const service of state.services.values()) service.sparkDirty = true;
  schedule();
});

function drawSparklines() {
  sparkColour ??= getComputedStyle(document.documentElement).getPropertyValue("--spark").trim() || "#3b82f6";
  const ratio = window.devicePixelRatio || 1;
  for (const service of state.services.values()) {
    if (!service.sparkDirty || !service.row) continue;
    service.sparkDirty = false;
    for (const metric of ["cpu", "memory"]) {
      const canvas = service.cells[`${metric}Spark`];
      const series = service.samples[metric];
      const width = 48;
      const height = 16;
      if (canvas.width !== width * ratio) {
        canvas.width = width * ratio;
        canvas.height = height * ratio;
      }
      const context = canvas.getContext("2d");
      context.setTransform(ratio, 0, 0, ratio, 0, 0);
      context.clearRect(0, 0, width, height);
      canvas.dataset.samples = String(series.length);
      if (series.length < 2) continue;
      const first = series[0][0];
      const span = Math.max(1, series[series.length - 1][0] - first);
      let max = metric === "cpu" ? 5 : 1;
      for (const [, value] of series) if (value > max) max = value;
      context.beginPath();
      series.forEach(([t, value], index) => {
        const x = ((t - first) / span) * (width - 1) + 0.5;
        const y = height - 1.5 - (value / max) * (height - 3);
        if (index === 0) context.moveTo(x, y);
        else context.lineTo(x, y);
      });
      context.strokeStyle = sparkColour;
      context.lineWidth = 1.25;
      context.stroke();
    }
  }
}

function onMetrics(metrics) {
  for (const { serviceName, sample } of metrics.services) {
    addSample(serviceName, sample);
    const service = state.services.get(serviceName);
    if (service) {
      service.status = { ...service.status, cpuPercent: sample.cpuPercent, memoryBytes: sample.memoryBytes, processes: sample.processes };
      state.dirty.services.add(serviceName);
    }
  }
  schedule();
}

async function loadMetrics() {
  try {
    const history = await state.client.invoke("metrics:get", { seconds: METRICS_SECONDS });
    for (const { serviceName, samples } of history.services) {
      const service = state.services.get(serviceName);
      if (!service) continue;
      service.samples = { cpu: [], memory: [] };
      for (const sample of samples) addSample(serviceName, sample);
    }
    schedule();
  } catch (error) {
    if (error.status === 401) stop();
    // Metrics are an extra: the table stands without them.
  }
}

// ---- health and database -------------------------------------------------------------------

function setHealthText(kind, text) {
  const element = $("health");
  element.dataset.health = kind;
  element.textContent = text;
}

function renderHealth() {
  const { status, failing } = state.health;
  setHealthText(status, failing.length > 0 ? `${status} — failing: ${failing.join(", ")}` : status);
  $("health").dataset.failing = failing.join(",");
}

function renderDatabase() {
  const section = $("database");
  const field = (name) => section.querySelector(`[data-field="${name}"]`);
  const database = state.database;
  if (database.unavailable) {
    field("db-state").textContent = database.unavailable;
    for (const name of ["db-version", "db-migrations", "db-path"]) field(name).textContent = "—";
    return;
  }
  field("db-state").textContent = database.initialized ? "initialised" : "not initialised";
  section.dataset.initialized = String(database.initialized);
  field("db-version").textContent = database.version === null ? "none" : `V${database.version}`;
  field("db-migrations").textContent =
    state.migrationsRun !== undefined
      ? `${state.migrationsRun} at last init`
      : database.version === null
        ? "none"
        : `all up to V${database.version}`;
  field("db-path").textContent = database.path;
  field("db-path").title = database.path;
}

async function loadHealth() {
  try {
    state.health = await state.client.invoke("app:health");
    state.dirty.health = true;
    schedule();
  } catch (error) {
    if (error.status === 401) stop();
  }
}

async function loadDatabase() {
  try {
    state.database = await state.client.invoke("database:status");
  } catch (error) {
    if (error.status === 401) return stop();
    state.database = { unavailable: error.message };
  }
  state.dirty.database = true;
  schedule();
}

// ---- logs ----------------------------------------------------------------------------------

/** A level's place in LEVELS; one the page does not know counts as info (and shows as info). */
const levelRank = (level) => (LEVELS.includes(level) ? LEVELS.indexOf(level) : 1);

function logFilter() {
  const service = $("log-service").value;
  const minimum = levelRank($("log-level").value);
  const text = $("log-text").value.trim().toLowerCase();
  return (entry) =>
    (service === "" || entry.service === service) &&
    levelRank(entry.level) >= minimum &&
    (text === "" || entry.message.toLowerCase().includes(text));
}

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escape = (text) => text.replace(/[&<>"']/g, (character) => ESCAPES[character]);

/**
 * One log row as markup: thousands of rows are parsed at once far faster than they are built
 * node by node. Every text is escaped; the page's CSP forbids scripts whatever the markup says.
 */
function logRow(entry) {
  const level = LEVELS.includes(entry.level) ? entry.level : "info";
  const service = escape(entry.service);
  return (
    `<div class="log-row" data-level="${level}" data-service="${service}">` +
    `<time datetime="${escape(entry.timestamp)}">${escape(clock(entry.timestamp))}</time>` +
    `<span class="log-service">${service}</span><span class="log-level">${level}</span>` +
    `<span class="log-message">${escape(entry.message)}</span></div>`
  );
}

function keepLogs() {
  // Trim in chunks so the copy happens once per LOG_KEEP / 5 entries, not per event.
  if (state.logs.length > LOG_KEEP * 1.2) state.logs.splice(0, state.logs.length - LOG_KEEP);
}

function addLogs(entries) {
  if (!state.logsReady) {
    state.pendingLogs.push(...entries);
    return;
  }
  for (const entry of entries) state.logs.push(entry);
  if (state.liveSinceFullTail) state.liveSinceFullTail.push(...entries);
  keepLogs();
  state.pendingRender ??= [];
  for (const entry of entries) state.pendingRender.push(entry);
  if (state.pendingRender.length > LOG_ROWS * 2) state.pendingRender.splice(0, state.pendingRender.length - LOG_ROWS);
  state.dirty.logs = true;
  schedule();
}

function updateLogCount() {
  const log = $("log");
  $("log-count").textContent = `${log.childElementCount} shown of ${state.logs.length}`;
}

function scrollLog() {
  const log = $("log");
  if (!$("log-follow").checked) return;
  log.scrollTop = log.scrollHeight;
  // Rows come into view at their real height (off-screen ones are estimated): once more after
  // that layout, so following really ends at the last line.
  requestAnimationFrame(() => {
    if ($("log-follow").checked) log.scrollTop = log.scrollHeight;
  });
}

function rebuildLog() {
  state.pendingRender = [];
  const matches = logFilter();
  const rows = [];
  for (let index = state.logs.length - 1; index >= 0 && rows.length < LOG_ROWS; index -= 1) {
    const entry = state.logs[index];
    if (matches(entry)) rows.push(entry);
  }
  rows.reverse();
  $("log").innerHTML = rows.map(logRow).join("");
  if (rows.length === 0) $("log").dataset.empty = "true";
  else delete $("log").dataset.empty;
  updateLogCount();
  scrollLog();
}

function appendLog() {
  const pending = state.pendingRender ?? [];
  state.pendingRender = [];
  const matches = logFilter();
  const log = $("log");
  let fresh = pending.filter(matches);
  if (fresh.length > LOG_ROWS) fresh = fresh.slice(fresh.length - LOG_ROWS);
  if (fresh.length > 0) {
    log.insertAdjacentHTML("beforeend", fresh.map(logRow).join(""));
    delete log.dataset.empty;
    const excess = log.childElementCount - LOG_ROWS;
    if (excess > 0) {
      // One range removal, not a node at a time.
      const range = document.createRange();
      range.setStartBefore(log.firstElementChild);
      range.setEndAfter(log.children[excess - 1]);
      range.deleteContents();
    }
  }
  updateLogCount();
  scrollLog();
}

function onLogEntry(payload) {
  window.__panelStats.logEvents += 1;
  window.__panelStats.logLines += payload.entries.length;
  if (payload.entries.length > 0) addLogs(payload.entries);
  for (const skipped of payload.skipped) {
    window.__panelStats.skippedLines += skipped.lines;
    const known = state.skipped.get(skipped.file);
    if (known) known.lines += skipped.lines;
    else state.skipped.set(skipped.file, { ...skipped });
    state.dirty.skipped = true;
  }
  if (state.dirty.skipped) schedule();
}

function renderSkipped() {
  const list = $("log-skipped");
  const items = [];
  for (const { serviceName, lines, file } of state.skipped.values()) {
    const item = document.createElement("li");
    item.dataset.service = serviceName ?? "";
    const path = document.createElement("code");
    path.textContent = file;
    // Without a service: the stream fell behind and dropped lines of every service.
    const who = serviceName ? `${serviceName}: ` : "the stream fell behind: ";
    item.append(`${who}${lines.toLocaleString("en")} lines skipped — open `, path);
    items.push(item);
  }
  const dismiss = document.createElement("button");
  dismiss.type = "button";
  dismiss.className = "link";
  dismiss.textContent = "dismiss";
  dismiss.addEventListener("click", () => {
    state.skipped.clear();
    state.dirty.skipped = true;
    schedule();
  });
  if (items.length > 0) items[items.length - 1].append(" ", dismiss);
  list.replaceChildren(...items);
  list.hidden = items.length === 0;
}

/** The newest `lines` entries of every service, merged; undefined when refused. */
async function fetchTail(lines) {
  try {
    return (await state.client.invoke("logs:get", { lines })).logs;
  } catch (error) {
    if (error.status === 401) stop();
    return undefined;
  }
}

const entryKey = (entry) => `${entry.timestamp}\u0000${entry.service}\u0000${entry.message}`;

/** `tail` and the `live` lines that arrived while it was on its way, each line once. */
function mergeTail(tail, live) {
  if (live.length === 0 || tail.length === 0) return tail.concat(live);
  const since = live[0].timestamp;
  const seen = new Set();
  for (let index = tail.length - 1; index >= 0 && tail[index].timestamp >= since; index -= 1) {
    seen.add(entryKey(tail[index]));
  }
  return tail.concat(live.filter((entry) => !seen.has(entryKey(entry))));
}

/**
 * The log pane's first content: as many lines as it shows (LOG_ROWS), so the first render
 * parses a fifth of the tail; the rest follows once the page is up (`loadFullTail`).
 */
async function loadLogs() {
  const tail = await fetchTail(LOG_ROWS);
  if (stopped) return;
  state.logs = mergeTail(tail ?? [], state.pendingLogs);
  state.pendingLogs = [];
  keepLogs();
  window.__panelStats.logsLoadedAt = performance.now();
  state.logsReady = true;
  state.dirty.logsRebuild = true;
  schedule();
}

/** The whole tail (LOG_LOAD lines), for filters that reach further back than the pane shows. */
async function loadFullTail() {
  state.liveSinceFullTail = [];
  const tail = await fetchTail(LOG_LOAD);
  const live = state.liveSinceFullTail;
  state.liveSinceFullTail = undefined;
  if (!tail || stopped) return;
  window.__panelStats.fullTailAt = performance.now();
  state.logs = mergeTail(tail, live);
  keepLogs();
  const filtered = $("log-service").value !== "" || $("log-level").value !== "debug" || $("log-text").value.trim() !== "";
  // Unfiltered, the pane already shows the newest lines; a filter may now find older ones.
  if (filtered) state.dirty.logsRebuild = true;
  else updateLogCount();
  schedule();
}

function wireLogControls() {
  const rebuild = () => {
    state.dirty.logsRebuild = true;
    schedule();
  };
  $("log-service").addEventListener("change", rebuild);
  $("log-level").addEventListener("change", rebuild);
  $("log-text").addEventListener("input", rebuild);
  $("log-follow").addEventListener("change", scrollLog);
  // A resized window rewraps the lines: following stays at the last one.
  new ResizeObserver(() => scrollLog()).observe($("log"));
}

// ---- start ---------------------------------------------------------------------------------

let stopped = false;

/** The token was refused: say so and make no further request. */
function stop() {
  if (stopped) return;
  stopped = true;
  state.client?.close();
  clearInterval(state.ticker);
  notAuthorised();
}

function resync() {
  refreshServices();
  loadHealth();
  loadDatabase();
}

async function start() {
  const token = takeToken();
  if (!token) return notAuthorised();
  const client = await connect({
    url: location.origin,
    token,
    onStreamOpen: () => {
      setConnection("live", "live");
      // A stream that dropped before it saw an event id reconnects without one, and nothing
      // tells the page what it missed: every reconnection fetches the snapshots again.
      state.streamOpens = (state.streamOpens ?? 0) + 1;
      if (state.streamOpens > 1) resync();
    },
    onStreamError: () => {
      if (!stopped) setConnection("reconnecting", "reconnecting…");
    },
  });
  state.client = client;
  let statuses;
  try {
    statuses = await client.invoke("services:get-all");
  } catch (error) {
    if (error.status === 401) return stop();
    showMessage("error", [`conductor did not answer: ${error.message}. Reload the page to try again.`]);
    setConnection("closed", "not connected");
    return;
  }
  setAll(statuses);
  for (const id of ["services-section", "database", "logs"]) $(id).hidden = false;
  wireLogControls();

  client.on("service:status-changed", ({ status }) => updateStatus(status));
  client.on("service:error", ({ serviceName, error }) => {
    const service = state.services.get(serviceName);
    if (!service) return;
    service.status = { ...service.status, lastError: error };
    state.dirty.services.add(serviceName);
    schedule();
  });
  client.on("app:health-changed", (health) => {
    state.health = health;
    state.dirty.health = true;
    schedule();
  });
  client.on("app:metrics", onMetrics);
  client.on("logs:entry", onLogEntry);
  client.on("database:initialized", ({ migrationsRun }) => {
    state.migrationsRun = migrationsRun;
    loadDatabase();
  });
  client.on("app:reloaded", () => {
    refreshServices();
    loadMetrics();
  });
  // Events were lost: what the page holds may be stale, so it asks again.
  client.on("resync", resync);
  client.on("lagged", resync);

  await Promise.all([loadHealth(), loadDatabase(), loadLogs(), loadMetrics()]);

  // Uptime and health-check ages tick once a second, computed here from a start time.
  state.ticker = setInterval(() => {
    const now = Date.now();
    for (const service of state.services.values()) if (service.row) renderClock(service, now);
  }, 1000);
}

start().catch((error) => {
  showMessage("error", [`the panel failed to start: ${error.message}`]);
});
