// One sweep: header and actions, the front plots with objective and constraint controls,
// the hypervolume over time and the trials table. Polls every 2 s while the sweep runs.
// The parts live in sweep-actions.js, sweep-front.js and sweep-trials.js; sweep-state.js
// holds what they share. This module lays the page out, draws its header and loads it.

import {
  FINISHED,
  POLL_MS,
  announce,
  api,
  countChips,
  describeGrid,
  describeModel,
  every,
  facts,
  fetchAllTrials,
  fmtDuration,
  fmtInt,
  fmtPct,
  fmtSI,
  h,
  initPage,
  plannedEpochs,
  progressBar,
  statusBadge,
  timeEl,
} from "./common.js";
import { buildActions, changesMade, offerCancel } from "./sweep-actions.js";
import { buildFront, frontQuery, renderFront, renderHypervolume, showOnCharts } from "./sweep-front.js";
import { state, sweepId } from "./sweep-state.js";
import { buildTrials, renderTable } from "./sweep-trials.js";

const main = document.getElementById("main");

initPage();

// ------------------------------------------------------------------ page skeleton

const ui = {};

function build(sweep) {
  ui.title = h("h1", {}, sweep.name);
  ui.status = h("span");
  ui.subtitle = h("p", { class: "subtitle" });
  const actions = buildActions(sweep, { onCancel: renderHeader });

  ui.progress = progressBar(`Progress of sweep ${sweep.id}`);
  ui.facts = h("div");
  ui.counts = h("div");

  const front = buildFront();
  const trials = buildTrials(sweep, { onHover: showOnCharts });

  main.replaceChildren(
    h("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" }, h("a", { href: "/" }, "Sweeps"), ` / #${sweep.id}`),
    h(
      "div",
      { class: "page-head" },
      h("div", {}, h("div", { class: "actions" }, ui.title, ui.status), ui.subtitle),
      h("span", { class: "spacer" }),
      h("div", { class: "actions" }, ...actions.buttons),
    ),
    h("div", { class: "actions" }, ...actions.bar),
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
      front.form,
      front.summary,
      h(
        "div",
        { class: "grid-2" },
        h("figure", { class: "plot" }, h("figcaption", { class: "chart-title" }, "Error vs sparsity"), front.sparsityHost),
        h("figure", { class: "plot" }, h("figcaption", { class: "chart-title" }, "Error vs FLOPs"), front.flopsHost),
      ),
      front.legend,
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "h-hv" },
      h("h2", { id: "h-hv" }, "Hypervolume over time", front.hvNote),
      front.hvHost,
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "h-trials" },
      h("h2", { id: "h-trials" }, "Trials", trials.note),
      trials.host,
    ),
  );
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
  offerCancel(!FINISHED.has(sweep.status));
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

function renderAll() {
  // Each part's time shows in the browser's performance timeline (l0:render:*).
  for (const [name, part] of [["header", renderHeader], ["front", renderFront], ["hypervolume", renderHypervolume], ["table", renderTable]]) {
    const start = performance.now();
    part();
    performance.measure(`l0:render:${name}`, { start, end: performance.now() });
  }
}

// ------------------------------------------------------------------ loading

async function load() {
  const q = frontQuery();
  const seen = changesMade();
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
  if (seen !== changesMade()) return true; // this page changed the sweep meanwhile: the answer is stale
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

every(POLL_MS, load);
