// Strata operator page. Everything on it comes from the /v1 API, with the key the operator typed
// in: the key lives in this tab's sessionStorage only, travels only in the Authorization header
// (never in a URL) and is never logged. Views are addressed by the URL fragment:
//   #/runs?status=&workflow_run_id=&created_after=&created_before=&cursor=   runs, newest first
//   #/runs/<id>                                   one run, its events live (server-sent events)
//   #/sessions?status=&workflow_run_id=&cursor=   runtime sessions
//   #/workflow-runs/<id>                          a workflow run's sessions and runs
// The page is built with DOM calls and textContent only: API data never becomes markup.
"use strict";

const KEY_STORAGE = "strata.apiKey";
const RUN_STATUSES = ["queued", "running", "cancelling", "succeeded", "paused", "failed", "cancelled"];
const TERMINAL_STATUSES = new Set(["succeeded", "paused", "failed", "cancelled"]);
const TERMINAL_EVENTS = new Set(["run_succeeded", "run_paused", "run_failed", "run_cancelled"]);
const PAGE_SIZE = 25;
const REFRESH_MS = 3000;
const RECONNECT_MAX_MS = 10000;
const EVENT_DATA_CHARS = 240;  // longer event data is folded (the whole JSON one click away)

// --- small helpers ------------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

const pad = (n) => String(n).padStart(2, "0");

function formatTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function formatDuration(fromIso, toIso) {
  if (!fromIso || !toIso) return "—";
  const seconds = (new Date(toIso) - new Date(fromIso)) / 1000;
  return seconds < 60 ? `${seconds.toFixed(2)} s` : `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

// <input type="datetime-local"> shows local time; the API and the URL carry ISO 8601 in UTC.
function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function fromLocalInput(value) {
  return value ? new Date(value).toISOString() : "";
}

const shortId = (id) => (id ? String(id).slice(-12) : "—");
const statusBadge = (status) => h("span", { class: `status status-${status}` }, status);
const runLink = (id) => (id ? h("a", { href: `#/runs/${encodeURIComponent(id)}`, title: id }, shortId(id)) : "—");
const json = (value) => JSON.stringify(value, null, 2);

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

function hashFor(path, params) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v)).toString();
  return `#${path}${query ? `?${query}` : ""}`;
}

// --- the API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }

  describe() {
    const head = this.status ? `${this.status} ${this.code}: ${this.message}` : this.message;
    const fields = (this.details.errors || []).map((e) => `${(e.loc || []).join(".")}: ${e.msg}`);
    return fields.length ? `${head} (${fields.join("; ")})` : head;
  }
}

async function errorOf(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  const error = (body && body.error) || {};
  return new ApiError(response.status, error.code || `http_${response.status}`,
    error.message || response.statusText, error.details);
}

function apiUrl(path, query = {}) {
  const url = new URL(path, document.baseURI);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.append(name, value);
  }
  return url;
}

const apiKey = () => sessionStorage.getItem(KEY_STORAGE);

async function call(path, { method = "GET", query, body, signal, headers = {} } = {}) {
  const init = {
    method,
    signal,
    cache: "no-store",
    headers: { Authorization: `Bearer ${apiKey()}`, Accept: "application/json", ...headers },
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(apiUrl(path, query), init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network_error", "The server cannot be reached.");
  }
  if (!response.ok) throw await errorOf(response);
  return init.headers.Accept === "application/json" ? response.json() : response;
}

// --- views: the frame ---------------------------------------------------------------------------

let leaving = [];  // what the view on screen must stop when another one replaces it
const onLeave = (stop) => leaving.push(stop);

function route() {
  for (const stop of leaving.splice(0)) stop();
  const main = document.getElementById("main");
  main.replaceChildren();
  const nav = document.getElementById("nav");
  if (!apiKey()) {
    nav.hidden = true;
    return loginView(main);
  }
  nav.hidden = false;
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  for (const link of nav.querySelectorAll("a[data-view]")) {
    link.classList.toggle("current", link.dataset.view === (parts[0] || "runs"));
  }
  if (parts[0] === "runs" && parts[1]) return runView(main, parts[1]);
  if (parts[0] === "sessions") return sessionsView(main, params);
  if (parts[0] === "workflow-runs" && parts[1]) return workflowRunView(main, parts[1]);
  return runsView(main, params);
}

function signOut(message) {
  sessionStorage.removeItem(KEY_STORAGE);
  route();
  if (message) document.getElementById("login-error").textContent = message;
}

// Shows an error where the data would be; a refused key sends the operator back to the key form.
function showError(holder, error) {
  if (error.name === "AbortError") return;
  if (error.status === 401) {
    signOut(`The server refused the key (${error.code}). Enter a valid key.`);
    return;
  }
  holder.replaceChildren(h("p", { class: "error", role: "alert" }, error.describe ? error.describe() : String(error)));
}

// Calls `load` now and every REFRESH_MS while the view is on screen (never two at once).
function keepFresh(load) {
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try { await load(); } finally { busy = false; }
  };
  tick();
  const timer = setInterval(tick, REFRESH_MS);
  onLeave(() => clearInterval(timer));
}

function loginView(main) {
  const input = h("input", { id: "api-key", type: "password", autocomplete: "off", required: true, placeholder: "sk-strata-…" });
  const problem = h("p", { id: "login-error", class: "error", role: "alert" });
  const form = h("form", { id: "login", class: "card narrow" },
    h("h1", {}, "Sign in"),
    h("p", {}, "Paste an API key of your tenant. It stays in this browser tab (session storage) and is sent only to this server."),
    h("label", { for: "api-key" }, "API key"), input,
    h("button", { type: "submit" }, "Sign in"), problem);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, input.value.trim());
    try {
      await call("v1/runs", { query: { limit: 1 } });
      input.value = "";
      route();
    } catch (error) {
      sessionStorage.removeItem(KEY_STORAGE);
      problem.textContent = error.status === 401 ? `This key was refused (${error.code}).` : error.describe();
    }
  });
  main.append(form);
  input.focus();
}

// --- runs ---------------------------------------------------------------------------------------

function runsTable(runs, emptyText) {
  if (!runs.length) return h("p", { class: "empty" }, emptyText);
  return h("table", { class: "runs" },
    h("thead", {}, h("tr", {}, ["Run", "Status", "Purpose", "Created", "Started", "Took", "Error"].map((t) => h("th", {}, t)))),
    h("tbody", {}, runs.map((run) => h("tr", { "data-run-id": run.id },
      h("td", {}, runLink(run.id)),
      h("td", {}, statusBadge(run.status)),
      h("td", {}, run.purpose),
      h("td", {}, formatTime(run.created_at)),
      h("td", {}, formatTime(run.started_at)),
      h("td", {}, formatDuration(run.started_at, run.finished_at)),
      h("td", { class: "clip" }, run.error_type || "")))));
}

function runsView(main, params) {
  const filters = {
    status: params.get("status") || "",
    workflow_run_id: params.get("workflow_run_id") || "",
    created_after: params.get("created_after") || "",
    created_before: params.get("created_before") || "",
  };
  const cursor = params.get("cursor") || "";
  const status = h("select", { id: "filter-status", name: "status" },
    h("option", { value: "" }, "any status"),
    RUN_STATUSES.map((s) => h("option", { value: s, selected: s === filters.status }, s)));
  const workflowRun = h("input", { id: "filter-workflow-run", name: "workflow_run_id", maxlength: 64, value: filters.workflow_run_id, placeholder: "any" });
  const after = h("input", { id: "filter-created-after", type: "datetime-local", value: toLocalInput(filters.created_after) });
  const before = h("input", { id: "filter-created-before", type: "datetime-local", value: toLocalInput(filters.created_before) });
  const form = h("form", { id: "run-filters", class: "filters" },
    h("label", {}, "Status ", status),
    h("label", {}, "Workflow run ", workflowRun),
    h("label", {}, "Created after ", after),
    h("label", {}, "Created before ", before),
    h("button", { type: "submit" }, "Apply"),
    h("a", { href: "#/runs", class: "button quiet" }, "Clear"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = hashFor("/runs", {
      status: status.value,
      workflow_run_id: workflowRun.value.trim(),
      created_after: fromLocalInput(after.value),
      created_before: fromLocalInput(before.value),
    });
  });
  const listing = h("div", { id: "runs-list" }, h("p", { class: "empty" }, "Loading runs…"));
  const pager = h("div", { class: "pager" });
  const filtered = Object.values(filters).some(Boolean);
  main.append(h("h1", {}, "Runs"), form, listing, pager);
  keepFresh(async () => {
    try {
      const page = await call("v1/runs", { query: { ...filters, cursor, limit: PAGE_SIZE } });
      listing.replaceChildren(runsTable(page.items, cursor
        ? "No older runs."
        : filtered ? "No runs match these filters." : "No runs yet: runs posted to POST /v1/runs show up here."));
      pager.replaceChildren(
        cursor ? h("a", { href: hashFor("/runs", filters), class: "button quiet" }, "« Newest") : "",
        page.next_cursor ? h("a", { id: "older-runs", href: hashFor("/runs", { ...filters, cursor: page.next_cursor }), class: "button quiet" }, "Older »") : "");
    } catch (error) {
      showError(listing, error);
      pager.replaceChildren();
    }
  });
}

function definitions(id, pairs) {
  return h("dl", { id, class: "facts" }, pairs.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value ?? "—")]));
}

function runView(main, runId) {
  const stop = new AbortController();
  onLeave(() => stop.abort());
  const path = `v1/runs/${encodeURIComponent(runId)}`;
  const title = h("h1", {}, "Run ", h("code", {}, runId), " ");
  const statusHolder = h("span", { id: "run-status" });
  const cancel = h("button", { id: "cancel-run", type: "button", class: "danger", hidden: true }, "Cancel run");
  const notice = h("p", { id: "run-notice", role: "status" });
  const facts = h("div", { class: "columns" });
  const result = h("section", { id: "run-result", class: "card" });
  const snapshot = h("section", { id: "run-snapshot", class: "card" });
  const streamState = h("span", { id: "stream-state", class: "stream" }, "connecting…");
  const eventRows = h("tbody", { id: "event-rows" });
  const noEvents = h("p", { id: "no-events", class: "empty" }, "No events yet.");
  const eventsTable = h("table", { class: "events", hidden: true },
    h("thead", {}, h("tr", {}, ["#", "Time", "Type", "Data"].map((t) => h("th", {}, t)))), eventRows);
  title.append(statusHolder);
  main.append(title, h("div", { class: "actions" }, cancel, notice), facts, result, snapshot,
    h("section", { class: "card" }, h("h2", {}, "Events ", streamState), noEvents, eventsTable));

  let run = null;
  const paint = () => {
    statusHolder.replaceChildren(statusBadge(run.status));
    cancel.hidden = TERMINAL_STATUSES.has(run.status) || run.status === "cancelling";
    facts.replaceChildren(
      definitions("run-state", [
        ["Status", run.status], ["Purpose", run.purpose], ["Attempt", `${run.attempt} of ${run.max_attempts}`],
        ["Session", run.session_id ? h("code", {}, run.session_id) : "—"],
        ["Idempotency key", run.idempotency_key], ["Cancel reason", run.cancel_reason],
        ["Metadata", Object.keys(run.metadata || {}).length ? h("code", {}, JSON.stringify(run.metadata)) : "—"]]),
      definitions("run-timings", [
        ["Created", formatTime(run.created_at)], ["Queued", formatTime(run.queued_at)],
        ["Started", formatTime(run.started_at)], ["Finished", formatTime(run.finished_at)],
        ["Waited", formatDuration(run.queued_at, run.started_at)], ["Ran", formatDuration(run.started_at, run.finished_at)],
        ["Usage", run.usage ? `${run.usage.requests} requests, ${run.usage.total_tokens} tokens, ${run.usage.tool_calls} tool calls` : "—"]]));
    if (run.error || run.error_type) {
      result.replaceChildren(h("h2", {}, "Error"),
        h("p", { class: "error" }, `${run.error_type || "error"}${run.reason ? ` (${run.reason})` : ""}: ${run.error || ""}`));
    } else if (run.deferred_tool_call) {
      result.replaceChildren(h("h2", {}, "Waiting for a tool result"), h("pre", {}, json(run.deferred_tool_call)));
    } else if (run.status === "succeeded") {
      result.replaceChildren(h("h2", {}, "Output"), h("pre", { id: "run-output" }, json(run.output)));
    } else {
      result.replaceChildren(h("h2", {}, "Output"), h("p", { class: "empty" }, "No output yet: the run has not ended."));
    }
    snapshot.replaceChildren(h("h2", {}, "Session snapshot"), run.session_snapshot
      ? h("pre", {}, json(run.session_snapshot))
      : h("p", { class: "empty" }, TERMINAL_STATUSES.has(run.status)
        ? "No snapshot: the run ended without one." : "No snapshot yet: it is written when the run ends."));
  };
  const refresh = async () => {  // the error, if the run could not be read
    try {
      run = await call(path, { signal: stop.signal });
      paint();
      return null;
    } catch (error) {
      showError(facts, error);
      return error;
    }
  };
  cancel.addEventListener("click", async () => {
    if (!confirm("Cancel this run? Its layers exit and it ends cancelled.")) return;
    cancel.disabled = true;
    try {
      run = await call(`${path}/cancel`, { method: "POST", body: { reason: "cancelled from the operator page" } });
      paint();
      notice.textContent = "Cancel requested.";
    } catch (error) {
      showError(notice, error);
    } finally {
      cancel.disabled = false;
    }
  });

  const addEvent = (event) => {
    noEvents.hidden = true;
    eventsTable.hidden = false;
    const data = event.type === "agent_message_delta" ? event.data.delta : JSON.stringify(event.data);
    const shown = data.length <= EVENT_DATA_CHARS ? data
      : h("details", {}, h("summary", {}, `${data.slice(0, EVENT_DATA_CHARS)}…`), h("pre", {}, json(event.data)));
    eventRows.append(h("tr", { "data-seq": event.seq, "data-type": event.type },
      h("td", {}, event.seq), h("td", {}, formatTime(event.created_at)),
      h("td", {}, h("code", {}, event.type)), h("td", { class: "data" }, shown)));
    if (event.type.startsWith("run_")) refresh();
  };
  const showStreamState = (state, error) => {
    streamState.className = `stream stream-${state}`;
    streamState.textContent = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…", ended: "ended" }[state] || "stopped";
    if (error) {
      noEvents.hidden = false;
      showError(noEvents, error);
    }
  };
  refresh().then((error) => {
    if (error && error.status === 404) {
      streamState.textContent = "";
      noEvents.textContent = "No events: there is no such run.";
      return;
    }
    followEvents(runId, stop.signal, addEvent, showStreamState);
  });
}

// --- server-sent events over fetch --------------------------------------------------------------
// EventSource cannot send an Authorization header, so the stream is read with fetch() and parsed
// here. After a dropped connection it reconnects with Last-Event-ID (the last seq received), so
// no event is missed or shown twice; it stops after the run's terminal event.

function sseParser(onFrame) {
  let buffer = "";
  let data = [];
  let type = "";
  let id = "";
  return (chunk) => {
    buffer += chunk;
    const end = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;  // maybe half of \r\n
    const lines = buffer.slice(0, end).split(/\r\n|\r|\n/);
    buffer = lines.pop() + buffer.slice(end);
    for (const line of lines) {
      if (line === "") {
        if (data.length) onFrame({ id, type: type || "message", data: data.join("\n") });
        data = [];
        type = "";
        continue;
      }
      if (line.startsWith(":")) continue;  // a comment (keep-alive)
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") data.push(value);
      else if (field === "event") type = value;
      else if (field === "id") id = value;
    }
  };
}

async function followEvents(runId, signal, onEvent, onState) {
  let last = 0;
  let delay = 500;
  let ended = false;
  const receive = (frame) => {
    const event = JSON.parse(frame.data);
    if (event.seq <= last) return;
    last = event.seq;
    delay = 500;
    onEvent(event);
    if (TERMINAL_EVENTS.has(event.type)) ended = true;
  };
  while (!signal.aborted) {
    onState(last ? "reconnecting" : "connecting");
    try {
      const response = await call(`v1/runs/${encodeURIComponent(runId)}/events/stream`, {
        signal,
        headers: { Accept: "text/event-stream", ...(last ? { "Last-Event-ID": String(last) } : {}) },
      });
      onState("live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      const parse = sseParser(receive);
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parse(value);
      }
      if (ended) return onState("ended");
    } catch (error) {
      if (signal.aborted) return;
      if (error.status && error.status < 500 && error.status !== 429) return onState("stopped", error);
    }
    onState("reconnecting");
    await sleep(delay, signal);
    delay = Math.min(delay * 2, RECONNECT_MAX_MS);
  }
}

// --- sessions -----------------------------------------------------------------------------------

function sessionsTable(sessions, emptyText, reload, notice) {
  if (!sessions.length) return h("p", { class: "empty" }, emptyText);
  const retire = async (session, button) => {
    if (!confirm(`Retire session ${session.id}? Its layers release their resources; it cannot resume.`)) return;
    button.disabled = true;
    notice.textContent = "Retiring…";
    try {
      const answer = await call(`v1/sessions/${encodeURIComponent(session.id)}/retire`, { method: "POST", body: { wait_seconds: 10 } });
      const report = answer.reports[0];
      notice.textContent = `Session ${shortId(report.session_id)}: ${report.result}${report.reason ? ` (${report.reason})` : ""}.`;
      await reload();
    } catch (error) {
      showError(notice, error);
      button.disabled = false;
    }
  };
  return h("table", { class: "sessions" },
    h("thead", {}, h("tr", {}, ["Session", "Status", "Workflow run", "Node", "Agent", "Run in flight", "Last run", "Updated", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, sessions.map((session) => {
      const button = h("button", { type: "button", class: "danger small retire", hidden: session.status !== "active" }, "Retire");
      button.addEventListener("click", () => retire(session, button));
      return h("tr", { "data-session-id": session.id },
        h("td", {}, h("code", { title: session.id }, shortId(session.id))),
        h("td", {}, statusBadge(session.status)),
        h("td", {}, h("a", { href: `#/workflow-runs/${encodeURIComponent(session.workflow_run_id)}` }, session.workflow_run_id)),
        h("td", {}, session.node_id), h("td", {}, session.agent_id),
        h("td", {}, runLink(session.current_run_id)), h("td", {}, runLink(session.backend_run_id)),
        h("td", {}, formatTime(session.updated_at)), h("td", {}, button));
    })));
}

function sessionsView(main, params) {
  const filters = { status: params.get("status") || "", workflow_run_id: params.get("workflow_run_id") || "" };
  const cursor = params.get("cursor") || "";
  const status = h("select", { id: "filter-session-status" },
    h("option", { value: "" }, "any status"),
    ["active", "cleaned"].map((s) => h("option", { value: s, selected: s === filters.status }, s)));
  const workflowRun = h("input", { id: "filter-session-workflow-run", maxlength: 64, value: filters.workflow_run_id, placeholder: "any" });
  const form = h("form", { class: "filters" },
    h("label", {}, "Status ", status), h("label", {}, "Workflow run ", workflowRun),
    h("button", { type: "submit" }, "Apply"), h("a", { href: "#/sessions", class: "button quiet" }, "Clear"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = hashFor("/sessions", { status: status.value, workflow_run_id: workflowRun.value.trim() });
  });
  const notice = h("p", { id: "sessions-notice", role: "status" });
  const listing = h("div", { id: "sessions-list" }, h("p", { class: "empty" }, "Loading sessions…"));
  const pager = h("div", { class: "pager" });
  main.append(h("h1", {}, "Runtime sessions"), form, notice, listing, pager);
  const load = async () => {
    try {
      const page = await call("v1/sessions", { query: { ...filters, cursor, limit: PAGE_SIZE } });
      listing.replaceChildren(sessionsTable(page.items,
        Object.values(filters).some(Boolean) || cursor ? "No sessions match." : "No runtime sessions yet: runs that name a session scope create them.",
        load, notice));
      pager.replaceChildren(
        cursor ? h("a", { href: hashFor("/sessions", filters), class: "button quiet" }, "« Newest") : "",
        page.next_cursor ? h("a", { href: hashFor("/sessions", { ...filters, cursor: page.next_cursor }), class: "button quiet" }, "Older »") : "");
    } catch (error) {
      showError(listing, error);
    }
  };
  keepFresh(load);
}

// --- workflow runs ------------------------------------------------------------------------------

function workflowRunView(main, workflowRunId) {
  const notice = h("p", { id: "workflow-notice", role: "status" });
  const sessions = h("div", { id: "workflow-sessions" }, h("p", { class: "empty" }, "Loading sessions…"));
  const runs = h("div", { id: "workflow-runs" }, h("p", { class: "empty" }, "Loading runs…"));
  main.append(h("h1", {}, "Workflow run ", h("code", {}, workflowRunId)), notice,
    h("section", { class: "card" }, h("h2", {}, "Sessions"), sessions),
    h("section", { class: "card" }, h("h2", {}, "Runs"), runs));
  const load = async () => {
    const query = { workflow_run_id: workflowRunId, limit: 100 };
    const [sessionPage, runPage] = await Promise.allSettled([
      call("v1/sessions", { query }), call("v1/runs", { query })]);
    if (sessionPage.status === "fulfilled") {
      sessions.replaceChildren(sessionsTable(sessionPage.value.items, "No sessions in this workflow run.", load, notice));
    } else showError(sessions, sessionPage.reason);
    if (runPage.status === "fulfilled") {
      runs.replaceChildren(runsTable(runPage.value.items, "No runs in this workflow run."),
        runPage.value.next_cursor ? h("p", {}, h("a", { href: hashFor("/runs", { workflow_run_id: workflowRunId }) }, "All runs of this workflow run »")) : "");
    } else showError(runs, runPage.reason);
  };
  keepFresh(load);
}

// --- start --------------------------------------------------------------------------------------

document.getElementById("sign-out").addEventListener("click", () => signOut());
document.getElementById("workflow-run-jump").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = document.getElementById("workflow-run-jump-id").value.trim();
  if (id) location.hash = `#/workflow-runs/${encodeURIComponent(id)}`;
});
window.addEventListener("hashchange", route);
route();
