// FaDO's web console: a client of the same /api everyone else uses. It
// keeps no state of its own; the admin token lives in sessionStorage for the
// browser session only. Pages are built with DOM calls (never innerHTML), so
// names and keys from the catalog are always shown as text.

const TOKEN_KEY = "fado.token";
const PAGE = 100;

// ---- DOM ------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const main = () => document.getElementById("main");

function show(...nodes) {
  const m = main();
  m.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
  const heading = m.querySelector("h1");
  if (heading) document.title = `${heading.textContent} · FaDO console`;
}

function toast(text) {
  const t = document.getElementById("toast");
  t.textContent = text;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.textContent = ""), 4000);
}

function state(s) {
  return h("span", { class: `state-${s}` }, s);
}

function when(t) {
  return t ? new Date(t).toLocaleString() : "—";
}

function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

// ---- the API ----------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || "http_error";
    this.field = e.field || null;
  }
}

const token = () => sessionStorage.getItem(TOKEN_KEY);

async function api(method, path, body) {
  const headers = { authorization: `Bearer ${token()}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (r.status === 401 && location.hash !== "#/signin") {
    sessionStorage.removeItem(TOKEN_KEY);
    signin("The admin token was refused; sign in again.");
    throw new ApiError(401, await r.json().catch(() => null));
  }
  if (r.status === 204) return null;
  const type = r.headers.get("content-type") || "";
  const data = type.includes("json") ? await r.json().catch(() => null) : await r.text();
  if (!r.ok) throw new ApiError(r.status, typeof data === "object" ? data : null);
  return data;
}

const seg = (s) => encodeURIComponent(s);
const keyPath = (k) => k.split("/").map(encodeURIComponent).join("/");

/// One page of a list: `{items, next_cursor}`.
function page(path, params = {}, cursor = null) {
  const q = new URLSearchParams({ limit: String(PAGE), ...params });
  for (const [k, v] of [...q.entries()]) if (v === "") q.delete(k);
  if (cursor) q.set("cursor", cursor);
  return api("GET", `${path}?${q}`);
}

/// Every item of a small list (names for select boxes), a page at a time.
async function all(path, max = 5000) {
  const out = [];
  let cursor = null;
  do {
    const p = await page(path, { limit: "1000" }, cursor);
    out.push(...p.items);
    cursor = p.next_cursor;
  } while (cursor && out.length < max);
  return out;
}

// ---- forms -------------------------------------------------------------------

// A field: {name, label, type: text|number|select|checkbox|list|password,
// options, hint, value, required}. `list` fields take comma-separated values.
function form({ fields, submit, onsubmit, extra = [] }) {
  const f = h("form", { class: "panel", novalidate: true });
  const banner = h("div", { role: "alert" });
  const inputs = {};
  for (const d of fields) {
    const id = `f-${d.name}-${Math.random().toString(36).slice(2, 8)}`;
    let input;
    if (d.type === "select") {
      input = h(
        "select",
        { id, name: d.name },
        (d.options || []).map(([v, label]) =>
          h("option", { value: v, selected: String(d.value ?? "") === String(v) }, label),
        ),
      );
    } else if (d.type === "checkbox") {
      input = h("input", { id, name: d.name, type: "checkbox", checked: !!d.value });
    } else {
      const v = Array.isArray(d.value) ? d.value.join(", ") : d.value ?? "";
      input = h("input", {
        id,
        name: d.name,
        type: d.type === "number" ? "number" : d.type === "password" ? "password" : "text",
        value: v,
        autocomplete: d.type === "password" ? "new-password" : "off",
        "aria-describedby": `${id}-err`,
      });
    }
    const err = h("div", { class: "error", id: `${id}-err` });
    inputs[d.name] = { d, input, err, wrap: null };
    const wrap = h(
      "div",
      { class: "field" },
      h("label", { for: id }, d.label, d.required ? " *" : "", d.hint ? h("span", { class: "hint" }, ` — ${d.hint}`) : ""),
      input,
      err,
    );
    inputs[d.name].wrap = wrap;
    f.append(wrap);
  }
  f.append(...extra, h("div", {}, h("button", { type: "submit" }, submit)), banner);
  const clear = () => {
    banner.replaceChildren();
    for (const i of Object.values(inputs)) {
      i.err.textContent = "";
      i.wrap.classList.remove("invalid");
      i.input.removeAttribute("aria-invalid");
    }
  };
  const values = () => {
    const out = {};
    for (const [name, { d, input }] of Object.entries(inputs)) {
      if (d.type === "checkbox") out[name] = input.checked;
      else if (d.type === "list") {
        out[name] = input.value.split(",").map((s) => s.trim()).filter(Boolean);
      } else if (d.type === "number") {
        out[name] = input.value === "" ? undefined : Number(input.value);
      } else out[name] = input.value;
    }
    return out;
  };
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clear();
    const button = f.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await onsubmit(values());
    } catch (e) {
      showError(e, inputs, banner);
    } finally {
      button.disabled = false;
    }
  });
  return f;
}

/// Shows an API error next to the field it names (`zones[1]` → `zones`),
/// or above the form.
function showError(e, inputs, banner) {
  const base = e.field ? e.field.replace(/\[\d+\]$/, "") : null;
  const target = base && inputs[base];
  if (target) {
    target.err.textContent = `${e.field}: ${e.message}`;
    target.wrap.classList.add("invalid");
    target.input.setAttribute("aria-invalid", "true");
    target.input.focus();
  } else {
    banner.replaceChildren(h("div", { class: "banner bad" }, e.message || String(e)));
  }
}

function errorBanner(e) {
  return h("div", { class: "banner bad", role: "alert" }, e.message || String(e));
}

/// Drops empty optional strings so PATCH leaves those fields alone.
function compact(v, keep = []) {
  const out = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === undefined) continue;
    if (x === "" && !keep.includes(k)) continue;
    out[k] = x;
  }
  return out;
}

// ---- lists -----------------------------------------------------------------

/// A table over a paginated list: the first page now, more on demand.
function pagedTable({ path, params = {}, columns, empty }) {
  const body = h("tbody");
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
  const status = h("p", { class: "muted", role: "status" });
  let cursor = null;
  const load = async () => {
    more.disabled = true;
    try {
      const p = await page(path, params, cursor);
      for (const item of p.items) {
        body.append(h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(item)))));
      }
      cursor = p.next_cursor;
      more.hidden = !cursor;
      status.textContent = body.children.length ? `${body.children.length} shown` : empty;
    } catch (e) {
      status.replaceChildren(errorBanner(e));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener("click", load);
  load();
  return h(
    "div",
    {},
    h("table", {}, h("thead", {}, h("tr", {}, columns.map(([t]) => h("th", { scope: "col" }, t)))), body),
    status,
    more,
  );
}

function confirmDelete(what, run) {
  return h(
    "button",
    {
      type: "button",
      class: "danger",
      onclick: async () => {
        if (!confirm(`Delete ${what}?`)) return;
        try {
          await run();
          toast(`Deleted ${what}`);
          route();
        } catch (e) {
          alert(e.message);
        }
      },
    },
    "Delete",
  );
}

// ---- sign-in ---------------------------------------------------------------

function signin(message) {
  document.getElementById("nav").hidden = true;
  const input = h("input", { id: "token", type: "password", autocomplete: "current-password", required: true });
  const err = h("div", { class: "error", id: "token-err", role: "alert" }, message || "");
  const f = h(
    "form",
    { class: "panel", "aria-labelledby": "signin-title" },
    h("div", { class: "field" }, h("label", { for: "token" }, "Admin token"), input, err),
    h("button", { type: "submit" }, "Sign in"),
  );
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    const r = await fetch("/api/resources", { headers: { authorization: `Bearer ${input.value}` } });
    if (r.status === 401) {
      err.textContent = "That is not the admin token. It is the admin_token variable of the application (./infra/up prints it).";
      input.focus();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, input.value);
    if (location.hash === "#/signin") location.hash = "#/";
    else route();
  });
  show(
    h("h1", { id: "signin-title" }, "Sign in"),
    h("p", {}, "The console uses FaDO's API with the admin token. It is kept for this browser session only."),
    f,
  );
  input.focus();
}

// ---- dashboard ---------------------------------------------------------------

/// Sums a Prometheus counter's samples by one label.
function metricBy(text, name, label) {
  const out = new Map();
  const re = new RegExp(`^${name}\\{([^}]*)\\} ([0-9.eE+-]+)$`, "gm");
  for (const m of text.matchAll(re)) {
    const labels = Object.fromEntries([...m[1].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    const k = labels[label] ?? "";
    out.set(k, (out.get(k) || 0) + Number(m[2]));
  }
  return out;
}

function metricPairs(text, name) {
  const out = [];
  const re = new RegExp(`^${name}\\{bucket="((?:[^"\\\\]|\\\\.)*)",upstream="((?:[^"\\\\]|\\\\.)*)"\\} ([0-9.eE+-]+)$`, "gm");
  for (const m of text.matchAll(re)) out.push({ bucket: m[1], upstream: m[2], n: Number(m[3]) });
  return out;
}

async function dashboard() {
  const body = h("div", { "aria-live": "polite" });
  show(h("h1", {}, "Dashboard"), h("p", { class: "muted" }, "Updated every 5 seconds."), body);
  let previous = null;
  const tick = async () => {
    if (!body.isConnected) return;
    try {
      const [s, metrics] = await Promise.all([api("GET", "/api/resources"), api("GET", "/api/metrics").catch(() => "")]);
      const requests = [...metricBy(metrics, "fado_router_requests_total", "bucket").values()].reduce((a, b) => a + b, 0);
      const errors = [...metricBy(metrics, "fado_router_errors_total", "bucket").values()].reduce((a, b) => a + b, 0);
      const sum = [...metricBy(metrics, "fado_router_request_duration_seconds_sum", "bucket").values()].reduce((a, b) => a + b, 0);
      const count = [...metricBy(metrics, "fado_router_request_duration_seconds_count", "bucket").values()].reduce((a, b) => a + b, 0);
      const now = Date.now();
      let rate = "—";
      if (previous && now > previous.at) rate = (((requests - previous.requests) * 1000) / (now - previous.at)).toFixed(1);
      previous = { at: now, requests };
      const health = (m) => Object.entries(m).map(([k, n]) => h("div", {}, state(k), ` ${n}`));
      const backlog = (s.jobs.queued || 0) + (s.jobs.running || 0);
      const lag = s.planner.catalog_generation - s.planner.planned_generation;
      body.replaceChildren(
        h(
          "div",
          { class: "cards" },
          card(s.clusters, "clusters", "#/clusters"),
          card(Object.values(s.faas_deployments).reduce((a, b) => a + b, 0), "FaaS deployments", "#/faas", health(s.faas_deployments)),
          card(Object.values(s.storage_deployments).reduce((a, b) => a + b, 0), "storage deployments", "#/storage", health(s.storage_deployments)),
          card(s.buckets.total, "buckets", "#/buckets", s.buckets.under_replicated ? h("div", { class: "state-failed" }, `${s.buckets.under_replicated} under-replicated`) : null),
          card(s.objects.count, "objects", null, h("div", { class: "muted" }, bytes(s.objects.bytes))),
          card(Object.values(s.replicas).reduce((a, b) => a + b, 0), "replicas", "#/buckets", health(s.replicas)),
          card(backlog, "replication jobs waiting or running", "#/jobs?state=queued",
            h("div", { class: "muted" }, `lag: ${s.replication_lag.objects} object(s), ${bytes(s.replication_lag.bytes)}`,
              s.replication_lag.oldest ? `, oldest queued ${when(s.replication_lag.oldest)}` : "")),
          card(s.jobs.dead || 0, "dead jobs", "#/jobs?state=dead"),
          card(requests, "invocations routed", "#/routes", h("div", { class: "muted" }, `${rate}/s now, ${errors} errors, ${count ? ((sum / count) * 1000).toFixed(1) : "—"} ms mean`)),
        ),
        h("h2", {}, "Planner"),
        h("p", {}, lag > 0 ? `${lag} catalog change(s) not planned yet.` : "Caught up with the catalog.", ` Route table version ${s.planner.routes_version}, planned ${when(s.planner.planned_at)}.`),
        h("h2", {}, "Under-replicated buckets"),
        s.under_replicated_buckets.length
          ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "bucket"), h("th", {}, "target"), h("th", {}, "short by"))),
              h("tbody", {}, s.under_replicated_buckets.map((b) => h("tr", {}, h("td", {}, h("a", { href: `#/buckets/${seg(b.bucket)}` }, b.bucket)), h("td", {}, b.target_replicas), h("td", {}, b.shortfall)))))
          : h("p", { class: "muted" }, "None."),
        h("h2", {}, "Newest dead jobs"),
        s.dead_jobs.length
          ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "job"), h("th", {}, "kind"), h("th", {}, "bucket"), h("th", {}, "last error"))),
              h("tbody", {}, s.dead_jobs.map((j) => h("tr", {}, h("td", {}, j.id), h("td", {}, j.kind), h("td", {}, j.bucket), h("td", {}, j.last_error || "")))))
          : h("p", { class: "muted" }, "None."),
      );
    } catch (e) {
      if (e.status !== 401) body.replaceChildren(errorBanner(e));
    }
    setTimeout(tick, 5000);
  };
  tick();
}

function card(n, what, href, extra) {
  const inner = [h("div", { class: "n" }, n), h("div", { class: "what" }, what), extra];
  return h("div", { class: "card" }, href ? h("a", { href }, inner) : inner);
}

// ---- clusters, FaaS and storage deployments ---------------------------------------

const clusterFields = (c = {}) => [
  { name: "name", label: "Name", value: c.name, required: true, hint: "lowercase letters, digits and '-'" },
  { name: "zones", label: "Zones", type: "list", value: c.zones, hint: "comma-separated" },
];

async function clusters() {
  show(
    h("h1", {}, "Clusters"),
    pagedTable({
      path: "/api/clusters",
      empty: "No clusters yet.",
      columns: [
        ["name", (c) => h("a", { href: `#/clusters/${seg(c.name)}` }, c.name)],
        ["zones", (c) => c.zones.join(", ")],
        ["created", (c) => when(c.created_at)],
      ],
    }),
    h("h2", {}, "New cluster"),
    form({
      fields: clusterFields(),
      submit: "Create cluster",
      onsubmit: async (v) => {
        const c = await api("POST", "/api/clusters", v);
        toast(`Created cluster ${c.name}`);
        location.hash = `#/clusters/${seg(c.name)}`;
      },
    }),
  );
}

async function cluster(name) {
  const c = await api("GET", `/api/clusters/${seg(name)}`);
  show(
    h("h1", {}, `Cluster ${c.name}`),
    h("p", {}, "Zones: ", c.zones.join(", ") || "none"),
    h("h2", {}, "Change"),
    form({
      fields: clusterFields(c),
      submit: "Save",
      onsubmit: async (v) => {
        const u = await api("PATCH", `/api/clusters/${c.id}`, v);
        toast("Saved");
        location.hash = `#/clusters/${seg(u.name)}`;
        route();
      },
    }),
    confirmDelete(`cluster ${c.name}`, () => api("DELETE", `/api/clusters/${c.id}`)),
  );
}

const PLATFORMS = ["openfaas", "spin", "knative", "lambda", "other"];

async function faasFields(f = {}) {
  const cs = await all("/api/clusters");
  return [
    { name: "name", label: "Name", value: f.name, required: true },
    { name: "cluster", label: "Cluster", type: "select", value: f.cluster, options: [["", "—"], ...cs.map((c) => [c.name, c.name])], required: true },
    { name: "platform", label: "Platform", type: "select", value: f.platform || "openfaas", options: PLATFORMS.map((p) => [p, p]) },
    { name: "base_url", label: "Base URL", value: f.base_url, required: true, hint: "http(s)://host[:port][/path]" },
    { name: "path_template", label: "Path template", value: f.path_template, hint: "empty: the platform's usual one, with {function}" },
    { name: "labels", label: "Labels", type: "list", value: f.labels },
    { name: "timeout_ms", label: "Timeout (ms)", type: "number", value: f.timeout_ms },
  ];
}

async function faasList() {
  show(
    h("h1", {}, "FaaS deployments"),
    pagedTable({
      path: "/api/faas-deployments",
      empty: "No FaaS deployments yet.",
      columns: [
        ["name", (f) => h("a", { href: `#/faas/${seg(f.name)}` }, f.name)],
        ["cluster", (f) => f.cluster],
        ["platform", (f) => f.platform],
        ["invokes", (f) => h("span", { class: "mono" }, f.base_url + f.path_template)],
        ["labels", (f) => f.labels.join(", ")],
        ["health", (f) => h("span", { title: f.health_detail || "" }, state(f.health))],
      ],
    }),
    h("h2", {}, "New FaaS deployment"),
    form({
      fields: await faasFields(),
      submit: "Create FaaS deployment",
      onsubmit: async (v) => {
        const f = await api("POST", "/api/faas-deployments", compact(v));
        toast(`Created FaaS deployment ${f.name}`);
        location.hash = `#/faas/${seg(f.name)}`;
      },
    }),
  );
}

async function faasItem(name) {
  const f = await api("GET", `/api/faas-deployments/${seg(name)}`);
  show(
    h("h1", {}, `FaaS deployment ${f.name}`),
    h("p", {}, "Health: ", state(f.health), f.health_detail ? ` (${f.health_detail})` : "", `, checked ${when(f.health_checked_at)}`),
    h("h2", {}, "Change"),
    form({
      fields: await faasFields(f),
      submit: "Save",
      onsubmit: async (v) => {
        const u = await api("PATCH", `/api/faas-deployments/${f.id}`, compact(v, ["path_template"]));
        toast("Saved");
        location.hash = `#/faas/${seg(u.name)}`;
        route();
      },
    }),
    confirmDelete(`FaaS deployment ${f.name}`, () => api("DELETE", `/api/faas-deployments/${f.id}`)),
  );
}

async function storageFields(s = {}, creating = true) {
  const cs = await all("/api/clusters");
  return [
    { name: "name", label: "Name", value: s.name, required: true },
    { name: "cluster", label: "Cluster", type: "select", value: s.cluster, options: [["", "—"], ...cs.map((c) => [c.name, c.name])], required: true },
    { name: "endpoint", label: "Endpoint", value: s.endpoint, required: true, hint: "the S3 service's URL" },
    { name: "region", label: "Region", value: s.region, hint: "empty: the one the check finds" },
    { name: "path_style", label: "Path-style addressing", type: "checkbox", value: s.path_style ?? true },
    { name: "access_key", label: "Access key", value: s.access_key, required: creating },
    { name: "secret_key", label: "Secret key", type: "password", required: creating, hint: creating ? "stored encrypted, never shown again" : "leave empty to keep it" },
    { name: "notify_token", label: "Notify token", type: "password", hint: "optional; at least 16 characters" },
    { name: "verify", label: "Check the endpoint and credentials before saving", type: "checkbox", value: true },
  ];
}

async function storageList() {
  show(
    h("h1", {}, "Storage deployments"),
    pagedTable({
      path: "/api/storage-deployments",
      empty: "No storage deployments yet.",
      columns: [
        ["name", (s) => h("a", { href: `#/storage/${seg(s.name)}` }, s.name)],
        ["cluster", (s) => s.cluster],
        ["endpoint", (s) => h("span", { class: "mono" }, s.endpoint)],
        ["region", (s) => s.region],
        ["health", (s) => h("span", { title: s.health_detail || "" }, state(s.health))],
      ],
    }),
    h("h2", {}, "New storage deployment"),
    form({
      fields: await storageFields(),
      submit: "Create storage deployment",
      onsubmit: async (v) => {
        const verify = v.verify;
        delete v.verify;
        const s = await api("POST", `/api/storage-deployments?verify=${verify}`, compact(v));
        toast(`Created storage deployment ${s.name}`);
        location.hash = `#/storage/${seg(s.name)}`;
      },
    }),
  );
}

async function storageItem(name) {
  const s = await api("GET", `/api/storage-deployments/${seg(name)}`);
  show(
    h("h1", {}, `Storage deployment ${s.name}`),
    h("p", {}, "Health: ", state(s.health), s.health_detail ? ` (${s.health_detail})` : "", `, checked ${when(s.health_checked_at)}. Notifications ${s.notifications ? "on" : "off"}.`),
    h("h2", {}, "Change"),
    form({
      fields: await storageFields(s, false),
      submit: "Save",
      onsubmit: async (v) => {
        const verify = v.verify;
        delete v.verify;
        const u = await api("PATCH", `/api/storage-deployments/${s.id}?verify=${verify}`, compact(v));
        toast("Saved");
        location.hash = `#/storage/${seg(u.name)}`;
        route();
      },
    }),
    confirmDelete(`storage deployment ${s.name}`, () => api("DELETE", `/api/storage-deployments/${s.id}`)),
  );
}

// ---- buckets -------------------------------------------------------------------

async function buckets(params) {
  const prefix = params.get("prefix") || "";
  const under = params.get("under_replicated") === "true";
  const storage = await all("/api/storage-deployments");
  const filter = h(
    "form",
    { class: "row", role: "search" },
    h("div", { class: "field" }, h("label", { for: "bucket-prefix" }, "Name starts with"), h("input", { id: "bucket-prefix", name: "prefix", value: prefix })),
    h("div", { class: "field" }, h("label", { for: "bucket-under" }, "Under-replicated only"), h("input", { id: "bucket-under", name: "under", type: "checkbox", checked: under })),
    h("button", { type: "submit", class: "secondary" }, "Filter"),
  );
  filter.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    if (filter.prefix.value) q.set("prefix", filter.prefix.value);
    if (filter.under.checked) q.set("under_replicated", "true");
    location.hash = `#/buckets?${q}`;
  });
  show(
    h("h1", {}, "Buckets"),
    filter,
    pagedTable({
      path: "/api/buckets",
      params: { prefix, under_replicated: under ? "true" : "" },
      empty: "No buckets.",
      columns: [
        ["name", (b) => h("a", { href: `#/buckets/${seg(b.name)}` }, b.name)],
        ["master", (b) => `${b.master_storage} (${b.master_cluster})`],
        ["zones", (b) => b.allowed_zones.join(", ") || "anywhere"],
        ["replicas", (b) => `${b.replicas.filter((r) => r.state === "ready").length}/${b.target_replicas} ready`],
        ["objects", (b) => `${b.object_count} (${bytes(b.total_bytes)})`],
        ["notes", (b) => (b.under_replicated ? h("span", { class: "state-failed" }, b.plan_notes.join("; ") || "under-replicated") : "")],
      ],
    }),
    h("h2", {}, "New bucket"),
    form({
      fields: [
        { name: "name", label: "Name", required: true, hint: "S3 bucket naming rules" },
        { name: "master_storage", label: "Master storage", type: "select", required: true, options: [["", "—"], ...storage.map((s) => [s.name, `${s.name} (${s.cluster})`])] },
        { name: "allowed_zones", label: "Allowed zones", type: "list", hint: "empty: anywhere" },
        { name: "target_replicas", label: "Replicas besides the master", type: "number", value: 0 },
      ],
      submit: "Create bucket",
      onsubmit: async (v) => {
        const b = await api("POST", "/api/buckets", compact(v));
        toast(`Created bucket ${b.name}`);
        location.hash = `#/buckets/${seg(b.name)}`;
      },
    }),
  );
}

async function bucket(name) {
  const b = await api("GET", `/api/buckets/${seg(name)}`);
  const [storage, faas, metrics] = await Promise.all([
    all("/api/storage-deployments"),
    all("/api/faas-deployments"),
    api("GET", "/api/metrics").catch(() => ""),
  ]);
  const storageName = (id) => (storage.find((s) => s.id === id) || { name: String(id) }).name;
  const faasName = (id) => (faas.find((f) => f.id === id) || { name: String(id) }).name;
  const went = metricPairs(metrics, "fado_router_requests_total").filter((p) => p.bucket.split(",").includes(b.name));
  show(
    h("h1", {}, `Bucket ${b.name}`),
    b.under_replicated ? h("div", { class: "banner bad" }, `Short of ${b.replica_shortfall} replica(s): ${b.plan_notes.join("; ")}`) : null,
    h("p", {}, `Master copy on ${b.master_storage} (cluster ${b.master_cluster}). ${b.object_count} object(s), ${bytes(b.total_bytes)}.`),
    h("h2", {}, "Replicas"),
    b.replicas.length
      ? h("table", {}, h("thead", {}, h("tr", {}, ["storage", "cluster", "state", "lag", "behind since", "last sync", "last error"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", { id: "replicas" }, b.replicas.map((r) => h("tr", {}, h("td", {}, r.storage), h("td", {}, r.cluster), h("td", {}, state(r.state)),
            h("td", {}, `${r.lag_objects} object(s), ${bytes(r.lag_bytes)}`), h("td", {}, when(r.oldest_unsynced_at)), h("td", {}, when(r.last_sync_at)), h("td", {}, r.last_error || "")))))
      : h("p", { class: "muted", id: "replicas" }, "No replicas."),
    h("h2", {}, "Placement policy"),
    form({
      fields: [
        { name: "allowed_zones", label: "Allowed zones", type: "list", value: b.allowed_zones, hint: "empty: anywhere" },
        { name: "target_replicas", label: "Replicas besides the master", type: "number", value: b.target_replicas },
        { name: "replica_override", label: "Replicas chosen by hand", type: "list", value: (b.replica_override || []).map(storageName), hint: "storage names; empty: the planner chooses" },
      ],
      submit: "Save policy",
      onsubmit: async (v) => {
        const body = { allowed_zones: v.allowed_zones, target_replicas: v.target_replicas, replica_override: v.replica_override.length ? v.replica_override : null };
        await api("PATCH", `/api/buckets/${b.id}`, body);
        toast("Policy saved");
        route();
      },
    }),
    h("h2", {}, "Route override"),
    h("p", {}, b.route_override ? `Invocations go to ${b.route_override.faas_ids.map(faasName).join(", ")} (${b.route_override.policy || "default policy"}).` : "Routed by placement: to FaaS deployments in the clusters holding a ready copy."),
    form({
      fields: [
        { name: "faas", label: "FaaS deployments", type: "list", value: b.route_override ? b.route_override.faas_ids.map(faasName) : [], hint: "names, comma-separated" },
        { name: "policy", label: "Policy", type: "select", value: b.route_override?.policy || "", options: [["", "default"], ...["round_robin", "least_conn", "random", "p2c", "first", "ip_hash", "header_hash", "least_latency"].map((p) => [p, p])] },
      ],
      submit: "Set route override",
      onsubmit: async (v) => {
        await api("PUT", `/api/buckets/${b.id}/route-override`, { faas: v.faas, policy: v.policy || null });
        toast("Route override set");
        route();
      },
    }),
    b.route_override ? h("button", { type: "button", class: "secondary", id: "clear-override", onclick: async () => { await api("DELETE", `/api/buckets/${b.id}/route-override`); toast("Route override cleared"); route(); } }, "Clear route override") : null,
    h("h2", {}, "Where invocations went"),
    went.length ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "FaaS deployment"), h("th", {}, "invocations"))), h("tbody", {}, went.map((p) => h("tr", {}, h("td", {}, p.upstream), h("td", {}, p.n))))) : h("p", { class: "muted" }, "No invocations counted yet."),
    h("h2", {}, "Objects"),
    objectBrowser(b),
    h("h2", {}, "Delete"),
    confirmDelete(`bucket ${b.name} and every copy`, () => api("DELETE", `/api/buckets/${b.id}?force=true`)),
  );
}

function objectBrowser(b) {
  const base = `/api/buckets/${seg(b.name)}/objects`;
  const file = h("input", { id: "upload-file", type: "file" });
  const key = h("input", { id: "upload-key", placeholder: "the file's name" });
  const progress = h("progress", { max: 100, value: 0, hidden: true, "aria-label": "Upload progress" });
  const message = h("div", { role: "status" });
  const up = h(
    "form",
    { class: "row" },
    h("div", { class: "field" }, h("label", { for: "upload-file" }, "File"), file),
    h("div", { class: "field" }, h("label", { for: "upload-key" }, "Key"), key),
    h("button", { type: "submit" }, "Upload"),
    progress,
    message,
  );
  up.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = file.files[0];
    if (!f) {
      message.textContent = "Choose a file first.";
      return;
    }
    const k = key.value || f.name;
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", `${base}/${keyPath(k)}`);
    xhr.setRequestHeader("authorization", `Bearer ${token()}`);
    if (f.type) xhr.setRequestHeader("content-type", f.type);
    progress.hidden = false;
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) progress.value = Math.round((100 * e.loaded) / e.total);
    };
    xhr.onload = () => {
      progress.hidden = true;
      if (xhr.status === 200) {
        toast(`Uploaded ${k}`);
        route();
      } else {
        let m = `HTTP ${xhr.status}`;
        try {
          m = JSON.parse(xhr.responseText).error.message;
        } catch (_) {}
        message.replaceChildren(errorBanner({ message: m }));
      }
    };
    xhr.onerror = () => message.replaceChildren(errorBanner({ message: "The upload failed (connection lost)." }));
    xhr.send(f);
  });
  const download = async (o) => {
    const r = await fetch(`${base}/${keyPath(o.key)}`, { headers: { authorization: `Bearer ${token()}` } });
    if (!r.ok) return alert(`Download failed: HTTP ${r.status}`);
    const url = URL.createObjectURL(await r.blob());
    const a = h("a", { href: url, download: o.key.split("/").pop() });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  };
  return h(
    "div",
    {},
    up,
    pagedTable({
      path: base,
      empty: "No objects.",
      columns: [
        ["key", (o) => h("span", { class: "mono" }, o.key)],
        ["size", (o) => bytes(o.size)],
        ["type", (o) => o.content_type || ""],
        ["updated", (o) => when(o.updated_at)],
        ["", (o) => h("span", {}, h("button", { type: "button", class: "secondary", onclick: () => download(o) }, "Download"), " ",
          confirmDelete(`object ${o.key}`, () => api("DELETE", `${base}/${keyPath(o.key)}`)))],
      ],
    }),
  );
}

// ---- jobs, routes, settings, map, raw -----------------------------------------------

async function jobs(params) {
  const st = params.get("state") || "";
  const filter = h(
    "div",
    { class: "row" },
    h("div", { class: "field" }, h("label", { for: "job-state" }, "State"),
      h("select", { id: "job-state", onchange: (e) => (location.hash = `#/jobs${e.target.value ? `?state=${e.target.value}` : ""}`) },
        ["", "queued", "running", "done", "dead"].map((s) => h("option", { value: s, selected: s === st }, s || "any")))),
  );
  show(
    h("h1", {}, "Jobs"),
    filter,
    pagedTable({
      path: "/api/jobs",
      params: { state: st },
      empty: "No jobs.",
      columns: [
        ["id", (j) => j.id],
        ["kind", (j) => j.kind],
        ["bucket", (j) => j.bucket],
        ["object", (j) => j.object_key || ""],
        ["state", (j) => state(j.state)],
        ["attempts", (j) => `${j.attempts}/${j.max_attempts}`],
        ["last error", (j) => j.last_error || ""],
        ["", (j) => (j.state === "dead" ? h("button", { type: "button", onclick: async () => { try { await api("POST", `/api/jobs/${j.id}/retry`); toast(`Job ${j.id} queued again`); route(); } catch (e) { alert(e.message); } } }, "Retry") : "")],
      ],
    }),
  );
}

async function routes() {
  const t = await api("GET", "/api/routes?limit=1");
  show(
    h("h1", {}, "Routes"),
    h("p", {}, `Route table version ${t.version}`, t.settings ? `: requests carry ${t.settings.match_header}; without it they are ${t.settings.missing_header === "any" ? "routed to any deployment" : "refused"}; default policy ${t.settings.default_policy}.` : " (none published yet)."),
    pagedTable({
      path: "/api/routes",
      empty: "No routes.",
      columns: [
        ["bucket", (r) => (r.bucket === "*" ? "(no bucket)" : h("a", { href: `#/buckets/${seg(r.bucket)}` }, r.bucket))],
        ["policy", (r) => r.policy + (r.overridden ? " (override)" : "")],
        ["targets", (r) => r.targets.map((x) => `${x.name} @ ${x.cluster}`).join(", ") || h("span", { class: "state-failed" }, "none")],
      ],
    }),
  );
}

async function settings() {
  const s = await api("GET", "/api/settings");
  show(
    h("h1", {}, "Settings"),
    form({
      fields: [
        { name: "default_policy", label: "Default selection policy", type: "select", value: s.default_policy, options: ["round_robin", "least_conn", "random", "p2c", "first", "ip_hash", "header_hash", "least_latency"].map((p) => [p, p]) },
        { name: "match_header", label: "Match header", value: s.match_header, hint: "the request header naming a bucket" },
        { name: "missing_header", label: "Requests without it", type: "select", value: s.missing_header, options: [["reject", "reject"], ["any", "route to any deployment"]] },
      ],
      submit: "Save settings",
      onsubmit: async (v) => {
        await api("PATCH", "/api/settings", v);
        toast("Settings saved");
        route();
      },
    }),
  );
}

async function map() {
  const [cs, fs, ss] = await Promise.all([all("/api/clusters"), all("/api/faas-deployments"), all("/api/storage-deployments")]);
  const zones = new Map();
  for (const c of cs) for (const z of c.zones.length ? c.zones : ["(no zone)"]) zones.set(z, [...(zones.get(z) || []), c]);
  show(
    h("h1", {}, "Map"),
    h("div", { class: "map" },
      [...zones.entries()].sort().map(([z, members]) => h("section", { class: "panel" }, h("h2", {}, `Zone ${z}`),
        h("ul", {}, members.map((c) => h("li", {}, h("a", { href: `#/clusters/${seg(c.name)}` }, c.name),
          h("ul", {},
            ss.filter((s) => s.cluster_id === c.id).map((s) => h("li", {}, "storage ", h("a", { href: `#/storage/${seg(s.name)}` }, s.name), " ", state(s.health))),
            fs.filter((f) => f.cluster_id === c.id).map((f) => h("li", {}, "FaaS ", h("a", { href: `#/faas/${seg(f.name)}` }, f.name), ` (${f.platform}) `, state(f.health)))))))))),
  );
}

async function raw() {
  const [cs, fs, ss, st, rt] = await Promise.all([all("/api/clusters"), all("/api/faas-deployments"), all("/api/storage-deployments"), api("GET", "/api/settings"), api("GET", "/api/routes?limit=1000")]);
  const doc = { settings: st, clusters: cs, faas_deployments: fs, storage_deployments: ss, routes: rt };
  show(h("h1", {}, "Raw configuration"), h("p", { class: "muted" }, "Settings, deployments and the first 1,000 routes, as the API returns them."), h("pre", { class: "raw" }, JSON.stringify(doc, null, 2)));
}

// ---- routing --------------------------------------------------------------------

const ROUTES = [
  [/^#\/?$/, dashboard],
  [/^#\/clusters$/, clusters],
  [/^#\/clusters\/(.+)$/, cluster],
  [/^#\/faas$/, faasList],
  [/^#\/faas\/(.+)$/, faasItem],
  [/^#\/storage$/, storageList],
  [/^#\/storage\/(.+)$/, storageItem],
  [/^#\/buckets$/, buckets],
  [/^#\/buckets\/(.+)$/, bucket],
  [/^#\/jobs$/, jobs],
  [/^#\/routes$/, routes],
  [/^#\/settings$/, settings],
  [/^#\/map$/, map],
  [/^#\/raw$/, raw],
];

async function route() {
  if (!token()) return signin();
  document.getElementById("nav").hidden = false;
  const [path, query] = (location.hash || "#/").split("?");
  const params = new URLSearchParams(query || "");
  for (const a of document.querySelectorAll("nav a")) {
    const here = a.getAttribute("href") === (path === "#" ? "#/" : path.replace(/^(#\/[^/]+)\/.*/, "$1"));
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  for (const [re, page] of ROUTES) {
    const m = path.match(re);
    if (!m) continue;
    try {
      await (m[1] !== undefined ? page(decodeURIComponent(m[1]), params) : page(params));
    } catch (e) {
      if (e.status !== 401) show(h("h1", {}, "Something went wrong"), errorBanner(e));
    }
    main().focus({ preventScroll: true });
    return;
  }
  show(h("h1", {}, "Not found"), h("p", {}, "No such page. ", h("a", { href: "#/" }, "To the dashboard")));
}

document.getElementById("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.hash = "#/";
  signin("Signed out.");
});
window.addEventListener("hashchange", route);
route();
