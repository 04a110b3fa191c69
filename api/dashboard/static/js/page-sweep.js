// One sweep: header and actions, the front plots with objective and constraint controls,
// the hypervolume over time and the trials table. Polls every 2 s while the sweep runs.

import {
  FINISHED,
  POLL_MS,
  announce,
  api,
  banner,
  countChips,
  describeGrid,
  describeModel,
  every,
  facts,
  fetchAllTrials,
  fmtArch,
  fmtDuration,
  fmtInt,
  fmtNum,
  fmtPct,
  fmtSI,
  h,
  initPage,
  plannedEpochs,
  progressBar,
  statusBadge,
  timeEl,
} from "./common.js";
import { Chart, tipRows } from "./chart.js";
import { VirtualTable } from "./vtable.js";

const sweepId = Number(document.body.dataset.sweepId);
const main = document.getElementById("main");
const OBJECTIVES = [
  ["accuracy", "Accuracy"],
  ["sparsity", "Sparsity"],
  ["flops", "FLOPs"],
  ["params", "Params"],
];
const BOUNDS = [
  ["min_accuracy", "Min accuracy", "e.g. 0.98"],
  ["min_sparsity", "Min sparsity", "e.g. 0.5"],
  ["max_flops", "Max FLOPs", "e.g. 100000"],
  ["max_params", "Max params", "e.g. 50000"],
];
const DEFAULT_OBJECTIVES = ["accuracy", "sparsity", "flops"];
const ERROR_FLOOR = 1e-4; // a perfect test set still gets a place on the log axis

const state = {
  sweep: null,
  trials: [],
  front: null,
  history: null,
  progress: null,
  frontIds: new Set(),
  query: readQuery(),
  finalLoads: 0,
};

initPage();

// ------------------------------------------------------------------ query (objectives, bounds)

function readQuery() {
  const params = new URLSearchParams(location.search);
  const names = (params.get("objectives") || "").split(",").filter((o) => OBJECTIVES.some(([k]) => k === o));
  const bounds = {};
  for (const [key] of BOUNDS) {
    const v = params.get(key);
    if (v !== null && v !== "" && Number.isFinite(Number(v))) bounds[key] = Number(v);
  }
  return { objectives: names.length >= 2 && names.length <= 3 ? names : DEFAULT_OBJECTIVES, bounds };
}

function frontQuery() {
  const params = new URLSearchParams({ objectives: state.query.objectives.join(",") });
  for (const [k, v] of Object.entries(state.query.bounds)) params.set(k, String(v));
  return params.toString();
}

function writeQuery() {
  const url = new URL(location.href);
  url.search = "";
  if (state.query.objectives.join(",") !== DEFAULT_OBJECTIVES.join(",")) {
    url.searchParams.set("objectives", state.query.objectives.join(","));
  }
  for (const [k, v] of Object.entries(state.query.bounds)) url.searchParams.set(k, String(v));
  history.replaceState(null, "", url);
}

function withinBounds(m) {
  const b = state.query.bounds;
  return !(
    (b.min_accuracy !== undefined && m.accuracy < b.min_accuracy) ||
    (b.min_sparsity !== undefined && m.sparsity < b.min_sparsity) ||
    (b.max_flops !== undefined && m.flops > b.max_flops) ||
    (b.max_params !== undefined && m.params > b.max_params)
  );
}

// ------------------------------------------------------------------ page skeleton

const ui = {};

function build(sweep) {
  ui.title = h("h1", {}, sweep.name);
  ui.status = h("span");
  ui.subtitle = h("p", { class: "subtitle" });
  ui.cancel = h("button", { type: "button", class: "danger", id: "cancel-sweep", onclick: askCancel }, "Cancel sweep");
  ui.confirmYes = h("button", { type: "button", class: "danger solid", id: "confirm-cancel", onclick: doCancel }, "Yes, cancel it");
  ui.confirm = h(
    "div",
    { class: "confirm-bar", role: "group", "aria-label": "Confirm cancelling", hidden: true },
    h("span", {}, "Stop this sweep and its unfinished trials?"),
    ui.confirmYes,
    h("button", { type: "button", onclick: keepRunning }, "Keep running"),
  );
  const spec = JSON.stringify(sweep.spec, null, 2);
  ui.download = h(
    "a",
    {
      class: "button",
      id: "download-spec",
      href: URL.createObjectURL(new Blob([spec + "\n"], { type: "application/json" })),
      download: `sweep-${sweep.id}-spec.json`,
    },
    "Download spec",
  );
  ui.copy = h("a", { class: "button", href: `/submit?from=${sweep.id}` }, "Submit a copy");
  ui.actionStatus = h("p", { class: "action-status", role: "status", id: "action-status" });

  ui.progress = progressBar(`Progress of sweep ${sweep.id}`);
  ui.facts = h("div");
  ui.counts = h("div");

  ui.objectiveError = h("p", { class: "field-error", id: "objective-error", hidden: true });
  const checks = OBJECTIVES.map(([key, label]) =>
    h(
      "label",
      {},
      h("input", {
        type: "checkbox",
        name: "objective",
        value: key,
        checked: state.query.objectives.includes(key),
        onchange: onObjectivesChanged,
        "aria-describedby": "objective-error",
      }),
      label,
    ),
  );
  const bounds = BOUNDS.map(([key, label, placeholder]) =>
    h(
      "label",
      {},
      label,
      h("input", {
        type: "number",
        name: key,
        step: "any",
        min: "0",
        placeholder,
        value: state.query.bounds[key] ?? "",
        id: `bound-${key}`,
      }),
    ),
  );
  ui.form = h(
    "form",
    { class: "front-controls", id: "front-form", "aria-label": "Front controls", onsubmit: onBoundsSubmitted },
    h("fieldset", {}, h("legend", {}, "Front objectives (2 or 3)"), h("div", { class: "checks" }, checks)),
    h("fieldset", {}, h("legend", {}, "Constraints"), h("div", { class: "bounds" }, bounds)),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", class: "primary", id: "apply-front" }, "Apply"),
      h("button", { type: "button", onclick: resetFront }, "Reset"),
    ),
    ui.objectiveError,
  );
  ui.frontSummary = h("p", { class: "front-summary", id: "front-summary", "aria-live": "polite" });

  const common = {
    y: { title: "Test error", log: true, format: (v) => `${Number((100 * v).toPrecision(2))}%` },
    tooltip: trialTip,
    describe: describeTrial,
    onClick: (p) => location.assign(`/trials/${p.ref.id}`),
    keyboardSeries: ["front"],
    emptyText: "no completed trials yet",
  };
  ui.sparsityHost = h("div", { id: "front-sparsity" });
  ui.flopsHost = h("div", { id: "front-flops" });
  ui.bySparsity = new Chart(ui.sparsityHost, {
    ...common,
    label: "Test error against sparsity, front highlighted",
    x: { title: "Sparsity", format: (v) => `${Math.round(100 * v)}%`, bounds: [0, 1] },
    onHover: (p) => linkHover(p, "sparsity"),
  });
  ui.byFlops = new Chart(ui.flopsHost, {
    ...common,
    label: "Test error against FLOPs per example, front highlighted",
    x: { title: "FLOPs per example", log: true },
    onHover: (p) => linkHover(p, "flops"),
  });
  ui.legend = h("div", { class: "legend" });

  ui.hvHost = h("div", { id: "hypervolume", class: "small" });
  ui.hv = new Chart(ui.hvHost, {
    label: "Hypervolume of the front over time",
    x: { title: "Minutes since the sweep started", min: 0 },
    y: { title: "Hypervolume", bounds: [0, 1] },
    hover: "x",
    tooltip: (p) =>
      tipRows(`After ${p.ref.completed} completed trial${p.ref.completed === 1 ? "" : "s"}`, [
        ["hypervolume", fmtNum(p.ref.hypervolume, 4)],
        ["at", `${fmtNum(p.x, 3)} min`],
      ]),
    describe: (p) => `hypervolume ${fmtNum(p.ref.hypervolume, 4)} after ${p.ref.completed} trials`,
    keyboardSeries: ["hv"],
    emptyText: "no completed trials yet",
  });
  ui.hvNote = h("span", { class: "note" });

  ui.tableNote = h("span", { class: "note" });
  ui.tableHost = h("div", { id: "trials-table" });
  ui.table = new VirtualTable(ui.tableHost, {
    label: "Trials",
    columns: trialColumns(sweep),
    sort: { key: "number", dir: "asc" },
    rowClass: (t) => (state.frontIds.has(t.id) ? "on-front" : ""),
    onRowActivate: (t) => location.assign(`/trials/${t.id}`),
    onRowHover: (t) => {
      const ref = t && t.metrics ? t : null;
      ui.bySparsity.showRef(ref);
      ui.byFlops.showRef(ref);
    },
  });

  main.replaceChildren(
    h("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" }, h("a", { href: "/" }, "Sweeps"), ` / #${sweep.id}`),
    h(
      "div",
      { class: "page-head" },
      h("div", {}, h("div", { class: "actions" }, ui.title, ui.status), ui.subtitle),
      h("span", { class: "spacer" }),
      h("div", { class: "actions" }, ui.cancel, ui.download, ui.copy),
    ),
    h("div", { class: "actions" }, ui.confirm, ui.actionStatus),
    h(
      "section",
      { class: "panel", "aria-labelledby": "h-progress" },
      h("h2", { id: "h-progress" }, "Progress"),
      h("div", { class: "progress-row" }, ui.progress, ui.counts),
      ui.facts,
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "h-front" },
      h("h2", { id: "h-front" }, "Trade-off and Pareto front"),
      ui.form,
      ui.frontSummary,
      h(
        "div",
        { class: "grid-2" },
        h("figure", { class: "plot" }, h("figcaption", { class: "chart-title" }, "Error vs sparsity"), ui.sparsityHost),
        h("figure", { class: "plot" }, h("figcaption", { class: "chart-title" }, "Error vs FLOPs"), ui.flopsHost),
      ),
      ui.legend,
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "h-hv" },
      h("h2", { id: "h-hv" }, "Hypervolume over time", ui.hvNote),
      ui.hvHost,
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "h-trials" },
      h("h2", { id: "h-trials" }, "Trials", ui.tableNote),
      ui.tableHost,
    ),
  );
}

function trialColumns(sweep) {
  const epochs = sweep.spec?.training?.epochs ?? "?";
  const m = (t, k) => (t.metrics ? t.metrics[k] : null);
  return [
    { key: "number", label: "#", numeric: true, width: "3.6rem", value: (t) => t.number },
    { key: "id", label: "Trial", numeric: true, width: "5rem", value: (t) => t.id, cell: (t) => h("a", { href: `/trials/${t.id}` }, String(t.id)) },
    {
      key: "front",
      label: "Front",
      numeric: true,
      width: "4.6rem",
      value: (t) => (state.frontIds.has(t.id) ? 1 : 0),
      cell: (t) => (state.frontIds.has(t.id) ? h("span", { class: "star", title: "on the front" }, "★", h("span", { class: "visually-hidden" }, " on the front")) : ""),
    },
    { key: "status", label: "Status", width: "7.4rem", value: (t) => t.status, cell: (t) => statusBadge(t.status) },
    { key: "lambda", label: "λ", numeric: true, width: "5.6rem", value: (t) => t.lambda, cell: (t) => fmtNum(t.lambda) },
    { key: "beta", label: "β", numeric: true, width: "4.6rem", value: (t) => t.beta, cell: (t) => fmtNum(t.beta) },
    { key: "seed", label: "Seed", numeric: true, width: "4.2rem", value: (t) => t.seed },
    { key: "epochs", label: "Epochs", numeric: true, width: "5.4rem", value: (t) => t.epochs_done, cell: (t) => `${t.epochs_done}/${epochs}` },
    { key: "node", label: "Node", width: "9rem", value: (t) => t.node, cell: (t) => (t.node ? h("span", { title: t.node }, t.node) : "–") },
    { key: "error", label: "Error", numeric: true, width: "5.6rem", value: (t) => m(t, "error"), cell: (t) => fmtPct(m(t, "error")) },
    { key: "sparsity", label: "Sparsity", numeric: true, width: "6rem", value: (t) => m(t, "sparsity"), cell: (t) => fmtPct(m(t, "sparsity"), 1) },
    { key: "params", label: "Params", numeric: true, width: "5.6rem", value: (t) => m(t, "params"), cell: (t) => fmtSI(m(t, "params")) },
    { key: "flops", label: "FLOPs", numeric: true, width: "5.6rem", value: (t) => m(t, "flops"), cell: (t) => fmtSI(m(t, "flops")) },
    { key: "architecture", label: "Kept architecture", width: "11rem", value: (t) => (m(t, "architecture") ? m(t, "architecture").join("-") : null), cell: (t) => fmtArch(m(t, "architecture")) },
  ];
}

// ------------------------------------------------------------------ tooltips and linking

function trialTip(point) {
  const t = point.ref;
  const m = t.metrics;
  return tipRows(
    `Trial ${t.id} · #${t.number}`,
    [
      ["λ", fmtNum(t.lambda)],
      ["β", fmtNum(t.beta)],
      ["seed", String(t.seed)],
      ["error", fmtPct(m.error)],
      ["sparsity", fmtPct(m.sparsity, 1)],
      ["params", `${fmtSI(m.params)} of ${fmtSI(m.params_dense)}`],
      ["FLOPs", `${fmtSI(m.flops)} of ${fmtSI(m.flops_dense)}`],
      ["kept", fmtArch(m.architecture)],
      ...(t.status === "stopped" ? [["stopped", `at epoch ${t.stopped_epoch ?? "?"}`]] : []),
    ],
    state.frontIds.has(t.id) ? h("div", { class: "t-front" }, "★ on the front") : null,
  );
}

function describeTrial(point) {
  const t = point.ref;
  const m = t.metrics;
  return `Trial ${t.id}: λ ${fmtNum(t.lambda)}, β ${fmtNum(t.beta)}, seed ${t.seed}, error ${fmtPct(m.error)}, sparsity ${fmtPct(m.sparsity, 1)}, ${fmtSI(m.flops)} FLOPs, kept ${fmtArch(m.architecture)}`;
}

function linkHover(point, from) {
  const other = from === "sparsity" ? ui.byFlops : ui.bySparsity;
  other.showRef(point ? point.ref : null);
}

// ------------------------------------------------------------------ rendering

function renderHeader() {
  const sweep = state.sweep;
  document.title = `${sweep.name} · sweep ${sweep.id} · l0sweep`;
  ui.title.textContent = sweep.name;
  ui.status.replaceChildren(statusBadge(sweep.status));
  const spec = sweep.spec || {};
  const training = spec.training || {};
  ui.subtitle.textContent = [
    `${describeModel(spec)} on ${spec.dataset}`,
    `λ ${describeGrid(spec.lambdas)}`,
    `β ${describeGrid(spec.betas)}`,
    `seeds ${describeGrid(spec.seeds)}`,
    `${training.epochs} epoch${training.epochs === 1 ? "" : "s"}`,
    `${spec.search?.strategy ?? "grid"} search`,
  ].join(" · ");
  const open = !FINISHED.has(sweep.status);
  ui.cancel.hidden = !open;
  if (!open) ui.confirm.hidden = true;
  const p = state.progress;
  ui.progress.update(p ? p.epochs_done : 0, p ? p.epochs_total : plannedEpochs(sweep), sweep.status);
  const start = sweep.started_at ? Date.parse(sweep.started_at) : null;
  const end = sweep.finished_at ? Date.parse(sweep.finished_at) : Date.now();
  ui.counts.replaceChildren(countChips(sweep.counts));
  ui.facts.replaceChildren(
    facts([
      ["Trials", fmtInt(sweep.n_trials)],
      ["Created", timeEl(sweep.created_at)],
      ["Started", timeEl(sweep.started_at)],
      ["Finished", timeEl(sweep.finished_at)],
      ["Duration", start ? fmtDuration(end - start) : "–"],
      bestFact(sweep),
      sweep.error ? ["Error", sweep.error] : null,
    ]),
  );
}

// A budget sweep's answer: the most accurate trial within its constraint (issue 13).
function bestFact(sweep) {
  if (sweep.spec?.search?.strategy !== "budget") return null;
  const best = sweep.best;
  if (!best) return ["Best within budget", "none yet"];
  const m = best.metrics || {};
  return [
    "Best within budget",
    h("a", { href: `/trials/${best.id}`, id: "best-trial" }, `trial ${best.id}`),
    `error ${fmtPct(m.error)} · ${fmtSI(m.flops)} FLOPs`,
  ];
}

function renderFront() {
  const completed = state.trials.filter((t) => t.metrics);
  const big = completed.length > 2000;
  const groups = { filtered: [], trials: [], stopped: [], front: [] };
  for (const t of completed) {
    const group = state.frontIds.has(t.id)
      ? "front"
      : !withinBounds(t.metrics)
        ? "filtered"
        : t.status === "stopped"
          ? "stopped"
          : "trials";
    groups[group].push(t);
  }
  const error = (t) => Math.max(ERROR_FLOOR, t.metrics.error ?? 1 - t.metrics.accuracy);
  const series = (x) => [
    { key: "filtered", label: "outside the constraints", color: "rgba(148, 163, 184, 0.45)", radius: big ? 1.6 : 3.5, square: big, points: groups.filtered.map((t) => ({ x: x(t), y: error(t), ref: t })) },
    { key: "trials", label: "completed trial", color: big ? "rgba(29, 78, 216, 0.35)" : "rgba(29, 78, 216, 0.6)", radius: big ? 1.6 : 4, square: big, points: groups.trials.map((t) => ({ x: x(t), y: error(t), ref: t })) },
    { key: "stopped", label: "early-stopped trial", color: big ? "rgba(124, 58, 237, 0.35)" : "rgba(124, 58, 237, 0.6)", radius: big ? 1.6 : 4, square: true, points: groups.stopped.map((t) => ({ x: x(t), y: error(t), ref: t })) },
    { key: "front", label: "on the front", color: "#ea580c", stroke: "#ffffff", strokeWidth: 1.5, radius: big ? 4 : 5.5, points: groups.front.map((t) => ({ x: x(t), y: error(t), ref: t })) },
  ];
  ui.bySparsity.setSeries(series((t) => t.metrics.sparsity));
  ui.byFlops.setSeries(series((t) => Math.max(1, t.metrics.flops)));

  const names = state.query.objectives.map((o) => OBJECTIVES.find(([k]) => k === o)[1]).join(", ");
  const front = state.front;
  const outside = groups.filtered.length;
  ui.frontSummary.replaceChildren(
    "Front on ",
    h("strong", {}, names),
    ": ",
    h("strong", { id: "front-count" }, fmtInt(front.items.length)),
    ` of ${fmtInt(completed.length)} trials with a result`,
    outside ? ` (${fmtInt(outside)} outside the constraints)` : "",
    " · hypervolume ",
    h("strong", { id: "front-hypervolume" }, fmtNum(front.hypervolume, 4)),
  );
  ui.legend.replaceChildren(
    ...[
      legendItem("front", `on the front (${fmtInt(groups.front.length)})`),
      legendItem("trial", `other completed trials (${fmtInt(groups.trials.length)})`),
      groups.stopped.length ? legendItem("stopped", `early-stopped, off the front (${fmtInt(groups.stopped.length)})`) : null,
      outside ? legendItem("filtered", `outside the constraints (${fmtInt(outside)})`) : null,
      h("span", {}, "Click a point to open its trial; hover for λ, β, seed and the kept architecture."),
    ].filter(Boolean),
  );
}

function legendItem(kind, text) {
  return h("span", {}, h("span", { class: `swatch ${kind}` }), text);
}

function renderHypervolume() {
  const sweep = state.sweep;
  const start = Date.parse(sweep.started_at || sweep.created_at);
  const minutes = (iso) => (Date.parse(iso) - start) / 60000;
  const points = state.history.items
    .filter((p) => p.finished_at)
    .map((p) => ({ x: Math.max(0, minutes(p.finished_at)), y: p.hypervolume, ref: p }));
  const end = sweep.finished_at ? minutes(sweep.finished_at) : (Date.now() - start) / 60000;
  ui.hv.setSeries([
    { key: "hv", label: "hypervolume", kind: "step", markers: points.length <= 60, color: "#1d4ed8", radius: 3, points, extendTo: Math.max(end, points.at(-1)?.x ?? 0) },
  ]);
  const last = state.history.items.at(-1);
  ui.hvNote.textContent = last ? `now ${fmtNum(last.hypervolume, 4)} after ${fmtInt(last.completed)} trials` : "";
}

function renderTable() {
  ui.table.setRows(state.trials);
  ui.tableNote.textContent = `${fmtInt(state.trials.length)} trials · sort by any column · click a row to open it`;
}

function renderAll() {
  // Each part's time shows in the browser's performance timeline (l0:render:*).
  for (const [name, part] of [["header", renderHeader], ["front", renderFront], ["hypervolume", renderHypervolume], ["table", renderTable]]) {
    const start = performance.now();
    part();
    performance.measure(`l0:render:${name}`, { start, end: performance.now() });
  }
}

// ------------------------------------------------------------------ loading

// Bumped by each change this page makes (cancel): a poll that started before it would
// otherwise land after it and show the stale status again.
let changes = 0;

async function load() {
  const q = frontQuery();
  const seen = changes;
  let sweep;
  try {
    sweep = await api(`/sweeps/${sweepId}`);
  } catch (error) {
    if (error.status === 404) {
      main.replaceChildren(h("h1", {}, `No sweep ${sweepId}`), h("p", {}, h("a", { href: "/" }, "Back to the sweeps")));
      return false;
    }
    throw error;
  }
  const [trials, front, history, progress] = await Promise.all([
    fetchAllTrials(sweepId),
    api(`/sweeps/${sweepId}/pareto?${q}`),
    api(`/sweeps/${sweepId}/pareto/history?${q}`),
    api(`/progress?sweep_ids=${sweepId}`),
  ]);
  if (q !== frontQuery()) return true; // the controls changed meanwhile; the next load catches up
  if (seen !== changes) return true; // this page changed the sweep meanwhile: the answer is stale
  const first = !state.sweep;
  const statusBefore = state.sweep?.status;
  Object.assign(state, { sweep, trials, front, history, progress: progress.items[0] || null });
  state.frontIds = new Set(front.items.map((t) => t.id));

  // The render-time figure of docs/benchmarks.md: data in hand -> front and table drawn.
  performance.clearMarks("l0:data");
  performance.mark("l0:data");
  if (first) build(sweep);
  renderAll();
  performance.mark("l0:rendered");
  performance.measure("l0:render", "l0:data", "l0:rendered");
  requestAnimationFrame(() => setTimeout(() => performance.measure("l0:painted", "l0:data"), 0));
  document.body.dataset.loads = String(Number(document.body.dataset.loads || 0) + 1);
  if (statusBefore && statusBefore !== sweep.status) announce(`Sweep ${sweep.status}`);

  // Once finished, one more load (results recorded just before the status changed), then stop.
  if (FINISHED.has(sweep.status)) state.finalLoads += 1;
  return state.finalLoads < 2;
}

async function reloadFront() {
  writeQuery();
  const q = frontQuery();
  const [front, history] = await Promise.all([
    api(`/sweeps/${sweepId}/pareto?${q}`),
    api(`/sweeps/${sweepId}/pareto/history?${q}`),
  ]);
  if (q !== frontQuery()) return;
  state.front = front;
  state.history = history;
  state.frontIds = new Set(front.items.map((t) => t.id));
  renderFront();
  renderHypervolume();
  renderTable();
  announce(`Front: ${front.items.length} trials`);
}

// ------------------------------------------------------------------ controls

function onObjectivesChanged() {
  const boxes = [...ui.form.querySelectorAll('input[name="objective"]')];
  const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
  for (const b of boxes) b.disabled = !b.checked && chosen.length >= 3;
  if (chosen.length < 2) {
    ui.objectiveError.hidden = false;
    ui.objectiveError.textContent = "Pick at least two objectives.";
    return;
  }
  ui.objectiveError.hidden = true;
  state.query.objectives = OBJECTIVES.map(([k]) => k).filter((k) => chosen.includes(k));
  reloadFront().catch((e) => banner(e.message));
}

function onBoundsSubmitted(event) {
  event.preventDefault();
  const bounds = {};
  for (const [key] of BOUNDS) {
    const input = ui.form.elements[key];
    if (input.value !== "" && Number.isFinite(Number(input.value))) bounds[key] = Number(input.value);
  }
  state.query.bounds = bounds;
  reloadFront().catch((e) => banner(e.message));
}

function resetFront() {
  state.query = { objectives: DEFAULT_OBJECTIVES.slice(), bounds: {} };
  for (const b of ui.form.querySelectorAll('input[name="objective"]')) {
    b.checked = DEFAULT_OBJECTIVES.includes(b.value);
    b.disabled = false;
  }
  for (const [key] of BOUNDS) ui.form.elements[key].value = "";
  ui.objectiveError.hidden = true;
  reloadFront().catch((e) => banner(e.message));
}

function say(message, kind) {
  ui.actionStatus.textContent = message;
  ui.actionStatus.dataset.kind = kind;
}

function askCancel() {
  ui.confirm.hidden = false;
  ui.confirmYes.focus();
}

function keepRunning() {
  ui.confirm.hidden = true;
  ui.cancel.focus();
}

async function doCancel() {
  ui.confirmYes.disabled = true;
  // A previous answer (e.g. a refusal) must not stand while this one is pending.
  say("Cancelling…", "pending");
  try {
    const sweep = await api(`/sweeps/${sweepId}/cancel`, { method: "POST", auth: true });
    changes += 1;
    state.sweep = sweep;
    ui.confirm.hidden = true;
    renderHeader();
    say(`Sweep ${sweepId} cancelled.`, "ok");
    ui.download.focus();
  } catch (error) {
    if (error.status === 401) say("Refused: the API did not accept the token (HTTP 401). Nothing was cancelled; set a valid token and try again.", "error");
    else if (error.status === 0) say(`Not cancelled: ${error.message}.`, "error");
    else say(`Not cancelled (HTTP ${error.status}): ${error.message}`, "error");
  } finally {
    ui.confirmYes.disabled = false;
  }
}

every(POLL_MS, load);
