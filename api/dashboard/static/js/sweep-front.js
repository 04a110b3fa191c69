// The sweep page's front: the objective and constraint controls (kept in the URL), test error
// against sparsity and against FLOPs with the front highlighted, and the hypervolume over time.

import { announce, api, banner, fmtArch, fmtInt, fmtNum, fmtPct, fmtSI, h } from "./common.js";
import { Chart, tipRows } from "./chart.js";
import { state, sweepId } from "./sweep-state.js";
import { renderTable } from "./sweep-trials.js";

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

// ------------------------------------------------------------------ query (objectives, bounds)

// The objectives and constraints the front is asked for (from the URL, then the controls).
let query = readQuery();

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

export function frontQuery() {
  const params = new URLSearchParams({ objectives: query.objectives.join(",") });
  for (const [k, v] of Object.entries(query.bounds)) params.set(k, String(v));
  return params.toString();
}

function writeQuery() {
  const url = new URL(location.href);
  url.search = "";
  if (query.objectives.join(",") !== DEFAULT_OBJECTIVES.join(",")) {
    url.searchParams.set("objectives", query.objectives.join(","));
  }
  for (const [k, v] of Object.entries(query.bounds)) url.searchParams.set(k, String(v));
  history.replaceState(null, "", url);
}

function withinBounds(m) {
  const b = query.bounds;
  return !(
    (b.min_accuracy !== undefined && m.accuracy < b.min_accuracy) ||
    (b.min_sparsity !== undefined && m.sparsity < b.min_sparsity) ||
    (b.max_flops !== undefined && m.flops > b.max_flops) ||
    (b.max_params !== undefined && m.params > b.max_params)
  );
}

// ------------------------------------------------------------------ panels

const ui = {};

// The parts of the front and hypervolume panels, for the page to lay out.
export function buildFront() {
  ui.objectiveError = h("p", { class: "field-error", id: "objective-error", hidden: true });
  const checks = OBJECTIVES.map(([key, label]) =>
    h(
      "label",
      {},
      h("input", {
        type: "checkbox",
        name: "objective",
        value: key,
        checked: query.objectives.includes(key),
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
        value: query.bounds[key] ?? "",
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
  return {
    form: ui.form,
    summary: ui.frontSummary,
    sparsityHost: ui.sparsityHost,
    flopsHost: ui.flopsHost,
    legend: ui.legend,
    hvHost: ui.hvHost,
    hvNote: ui.hvNote,
  };
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

// Marks a trial (null: none) on both front charts, as hovering its row in the table does.
export function showOnCharts(ref) {
  ui.bySparsity.showRef(ref);
  ui.byFlops.showRef(ref);
}

// ------------------------------------------------------------------ rendering

export function renderFront() {
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

  const names = query.objectives.map((o) => OBJECTIVES.find(([k]) => k === o)[1]).join(", ");
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

export function renderHypervolume() {
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
  query.objectives = OBJECTIVES.map(([k]) => k).filter((k) => chosen.includes(k));
  reloadFront().catch((e) => banner(e.message));
}

function onBoundsSubmitted(event) {
  event.preventDefault();
  const bounds = {};
  for (const [key] of BOUNDS) {
    const input = ui.form.elements[key];
    if (input.value !== "" && Number.isFinite(Number(input.value))) bounds[key] = Number(input.value);
  }
  query.bounds = bounds;
  reloadFront().catch((e) => banner(e.message));
}

function resetFront() {
  query = { objectives: DEFAULT_OBJECTIVES.slice(), bounds: {} };
  for (const b of ui.form.querySelectorAll('input[name="objective"]')) {
    b.checked = DEFAULT_OBJECTIVES.includes(b.value);
    b.disabled = false;
  }
  for (const [key] of BOUNDS) ui.form.elements[key].value = "";
  ui.objectiveError.hidden = true;
  reloadFront().catch((e) => banner(e.message));
}
