// Shared pieces of the dashboard's pages: REST calls, the API token, formatting and DOM
// helpers. Plain ES module, no build step; nothing here touches innerHTML with data.

export const API = "/api/v1";
const TOKEN_KEY = "l0sweep.token";
export const POLL_MS = 2000;
export const FINISHED = new Set(["completed", "failed", "cancelled"]);
export const TRIAL_STATUSES = ["completed", "stopped", "running", "pending", "failed", "cancelled"];

// ------------------------------------------------------------------ REST

export class ApiError extends Error {
  constructor(status, detail) {
    super(describeDetail(detail));
    this.status = status;
    this.detail = detail;
  }
}

function describeDetail(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  }
  return String(detail);
}

/** Call the REST API; resolves with the JSON body, rejects with an ApiError.
 *  `auth: true` sends the session's token, asking for it first when none is kept. */
export async function api(path, { method = "GET", body, auth = false, headers = {} } = {}) {
  const sent = { Accept: "application/json", ...headers };
  if (body !== undefined) sent["Content-Type"] = "application/json";
  if (auth) {
    const token = await requireToken();
    if (!token) throw new ApiError(0, "no API token given");
    sent.Authorization = `Bearer ${token}`;
  }
  let response;
  try {
    response = await fetch(API + path, {
      method,
      headers: sent,
      body: body === undefined || typeof body === "string" ? body : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "the API did not answer (is l0sweep serve running?)");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    // A refused token is forgotten, so the next write asks for another one.
    if (response.status === 401 && auth) forgetToken();
    const detail = data && typeof data === "object" && "detail" in data ? data.detail : data;
    throw new ApiError(response.status, detail || response.statusText);
  }
  return data;
}

/** Every trial of a sweep: the first page tells the total and the server's page size, the
 *  rest are fetched in parallel. */
export async function fetchAllTrials(sweepId) {
  const url = (offset) => `/sweeps/${sweepId}/trials?limit=1000&offset=${offset}`;
  const first = await api(url(0));
  const items = first.items.slice();
  const size = first.items.length;
  if (size > 0 && items.length < first.total) {
    const offsets = [];
    for (let o = size; o < first.total; o += size) offsets.push(o);
    const pages = await Promise.all(offsets.map((o) => api(url(o))));
    for (const page of pages) for (const item of page.items) items.push(item);
  }
  return items;
}

// ------------------------------------------------------------------ the API token

export function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  updateTokenButton();
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  updateTokenButton();
}

export async function requireToken() {
  return storedToken() || askToken();
}

/** Ask for a token in the page's dialog; resolves with it, or null when dismissed. */
export function askToken(reason) {
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  const error = document.getElementById("token-error");
  input.value = "";
  error.hidden = !reason;
  error.textContent = reason || "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        const token = input.value.trim();
        input.value = "";
        if (dialog.returnValue === "ok" && token) {
          setToken(token);
          resolve(token);
        } else {
          resolve(null);
        }
      },
      { once: true },
    );
    dialog.returnValue = "";
    dialog.showModal();
    input.focus();
  });
}

function updateTokenButton() {
  const button = document.getElementById("token-button");
  if (!button) return;
  const set = Boolean(storedToken());
  button.dataset.set = String(set);
  button.textContent = set ? "API token set · forget" : "Set API token";
  button.setAttribute(
    "aria-label",
    set ? "Forget the API token kept in this tab" : "Set the API token used for changes",
  );
}

// ------------------------------------------------------------------ page frame

/** Wire the header (token button, current nav link) once per page. */
export function initPage() {
  updateTokenButton();
  document.getElementById("token-button").addEventListener("click", () => {
    if (storedToken()) {
      forgetToken();
      announce("API token forgotten");
    } else {
      askToken();
    }
  });
  const dialog = document.getElementById("token-dialog");
  document.getElementById("token-cancel").addEventListener("click", () => dialog.close(""));
  const current = { sweeps: "nav-sweeps", submit: "nav-submit" }[document.body.dataset.page];
  if (current) document.getElementById(current).setAttribute("aria-current", "page");
}

export function banner(message, kind = "error") {
  const el = document.getElementById("banner");
  el.hidden = !message;
  el.textContent = message || "";
  el.dataset.kind = kind;
}

export function announce(message) {
  const live = document.getElementById("live");
  live.textContent = "";
  // A fresh text node after a tick makes screen readers read the same message again.
  setTimeout(() => (live.textContent = message), 30);
}

/** Run `fn` now and then every `ms` while the page is visible, until it returns false.
 *  Failures show in the banner and polling goes on (the server may come back). */
export function every(ms, fn) {
  let timer = null;
  let stopped = false;
  const run = async () => {
    timer = null;
    if (stopped) return;
    let again = true;
    if (!document.hidden) {
      try {
        again = (await fn()) !== false;
        if (document.getElementById("banner").dataset.kind === "poll") banner("");
      } catch (error) {
        banner(`Could not refresh: ${error.message}`, "poll");
      }
    }
    if (again && !stopped) timer = setTimeout(run, ms);
    else stopped = true;
  };
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && timer !== null) {
      clearTimeout(timer);
      run();
    }
  });
  run();
  return { stop: () => ((stopped = true), timer !== null && clearTimeout(timer)) };
}

// ------------------------------------------------------------------ DOM

/** `h("a", {href, class: "x", onclick: f, dataset: {id: 1}}, "text", child, [more])` */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, status);
}

/** A labelled progress bar of trial-epochs; `update(done, total, status)` moves it. */
export function progressBar(label) {
  const fill = h("div", { class: "progress-fill" });
  const text = h("span", { class: "progress-text" });
  const bar = h("div", {
    class: "progress-track",
    role: "progressbar",
    "aria-label": label,
    "aria-valuemin": 0,
  }, fill);
  const el = h("div", { class: "progress" }, bar, text);
  el.update = (done, total, status) => {
    const fraction = total > 0 ? Math.min(1, done / total) : 0;
    fill.style.width = `${(100 * fraction).toFixed(1)}%`;
    bar.setAttribute("aria-valuemax", String(total));
    bar.setAttribute("aria-valuenow", String(done));
    bar.setAttribute("aria-valuetext", `${done} of ${total} trial-epochs`);
    text.textContent = `${fmtInt(done)} / ${fmtInt(total)} trial-epochs`;
    el.dataset.status = status || "";
  };
  return el;
}

export function countChips(counts) {
  const chips = TRIAL_STATUSES.filter((s) => counts[s] > 0).map((s) =>
    h("span", { class: `count status-${s}` }, `${fmtInt(counts[s])} ${s}`),
  );
  return h("div", { class: "counts" }, chips.length ? chips : h("span", { class: "count" }, "no trials"));
}

export function facts(rows) {
  return h(
    "dl",
    { class: "facts" },
    rows.filter(Boolean).map(([term, value, sub]) =>
      h("div", {}, h("dt", {}, term), h("dd", {}, value, sub ? h("span", { class: "sub" }, ` ${sub}`) : null)),
    ),
  );
}

// ------------------------------------------------------------------ formatting

// Hand-rolled, not toLocaleString: the first Intl call costs ~30 ms (ICU data), on the
// render path of a 10k-trial sweep.
export function fmtInt(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  const digits = String(Math.round(Math.abs(n))).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return n < 0 ? `-${digits}` : digits;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** 532810 -> "533k", 1.25e6 -> "1.25M". */
export function fmtSI(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  const a = Math.abs(n);
  for (const [size, suffix] of [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
    if (a >= size) return `${trim((n / size).toPrecision(3))}${suffix}`;
  }
  return trim(Number(n).toPrecision(3));
}

export function fmtPct(x, digits = 2) {
  return x === null || x === undefined ? "–" : `${(100 * x).toFixed(digits)} %`;
}

/** A float with `sig` significant digits, exponent form for very small or large values. */
export function fmtNum(x, sig = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return x.toExponential(sig - 1).replace("e", "e");
  return trim(Number(x).toPrecision(sig));
}

function trim(s) {
  return s.includes(".") && !s.includes("e") ? s.replace(/\.?0+$/, "") : s;
}

/** Local time, as short as it can be: "14:03:07" today, "Nov 29, 14:03" this year. */
export function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (d.toDateString() === now.toDateString()) return `${clock}:${pad(d.getSeconds())}`;
  const month = MONTHS[d.getMonth()];
  if (d.getFullYear() === now.getFullYear()) return `${month} ${d.getDate()}, ${clock}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock}`;
}

/** A <time> element: short text, the full timestamp on hover and for machines. */
export function timeEl(iso) {
  if (!iso) return "–";
  return h("time", { datetime: iso, title: new Date(iso).toString() }, fmtTime(iso));
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function fmtArch(arch) {
  return Array.isArray(arch) && arch.length ? arch.join("-") : "–";
}

/** "mlp 784-300-100", "lenet5", "wrn-28-10" from a spec's model. */
export function describeModel(spec) {
  const model = spec?.model || {};
  if (model.arch === "mlp") return `MLP ${(model.hidden || []).join("-")}`;
  if (model.arch === "wrn") return `WRN-${model.depth}-${model.width}`;
  if (model.arch === "lenet5") return "LeNet-5";
  return model.arch || "?";
}

export function describeGrid(values) {
  if (Array.isArray(values) && values.length > 6) {
    return `${values.length} values ${fmtNum(values[0])}…${fmtNum(values.at(-1))}`;
  }
  if (Array.isArray(values)) return values.map((v) => fmtNum(v)).join(", ");
  if (values && values.logspace) {
    const [lo, hi, n] = values.logspace;
    return `${n} log-spaced in 1e${lo}…1e${hi}`;
  }
  if (values && "min" in values) return `${fmtNum(values.min)}…${fmtNum(values.max)}`;
  return "–";
}

/** The trial-epochs a sweep plans (n_trials × epochs), when /progress is not at hand. */
export function plannedEpochs(sweep) {
  return sweep.n_trials * (sweep.spec?.training?.epochs || 0);
}
