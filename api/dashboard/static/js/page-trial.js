// One trial: measures, per-epoch curves (the paper's figure: loss, test accuracy, expected
// L0 and expected FLOPs), the kept architecture against the dense one, and model downloads.
// Polls every 2 s while the trial trains.

import {
  POLL_MS,
  api,
  every,
  facts,
  fmtArch,
  fmtInt,
  fmtNum,
  fmtPct,
  fmtSI,
  h,
  initPage,
  statusBadge,
} from "./common.js";
import { drawArchitecture, gatedLayers } from "./arch.js";
import { Chart, tipRows } from "./chart.js";

const trialId = Number(document.body.dataset.trialId);
const main = document.getElementById("main");
const OPEN = new Set(["pending", "running"]);
const KNOWN = new Set([
  "accuracy", "error", "sparsity", "params", "params_dense", "flops", "flops_dense",
  "expected_flops", "expected_l0", "architecture",
]);
// Every format GET /trials/{id}/model offers; the default (no ?format) first.
const FORMATS = [
  { query: "", label: "TorchScript", hint: "default · torch.jit.load" },
  { query: "?format=onnx", label: "ONNX", hint: "onnxruntime" },
  { query: "?format=pt2", label: "torch.export", hint: "torch.export.load" },
];
const CURVES = [
  { key: "loss", title: "Training loss", y: { title: "Loss" }, fmt: (v) => fmtNum(v, 4) },
  {
    key: "accuracy",
    title: "Test accuracy",
    y: { title: "Test accuracy", format: (v) => `${Number((100 * v).toPrecision(3))}%` },
    fmt: (v) => fmtPct(v),
  },
  { key: "expected_l0", title: "Expected L0 (parameters)", y: { title: "Expected L0" }, fmt: (v) => fmtSI(v) },
  { key: "expected_flops", title: "Expected FLOPs per example", y: { title: "Expected FLOPs" }, fmt: (v) => fmtSI(v) },
];

const state = { trial: null, sweep: null, history: null, finalLoads: 0 };
const ui = {};

initPage();

function build(trial, sweep) {
  ui.title = h("h1", {}, `Trial ${trial.id}`);
  ui.status = h("span");
  ui.subtitle = h("p", { class: "subtitle" });
  ui.measures = h("div");
  ui.downloads = h("div");
  ui.arch = h("div", { class: "arch", id: "architecture" });
  ui.charts = {};
  const grid = h("div", { class: "grid-2" });
  for (const curve of CURVES) {
    const host = h("div", { id: `curve-${curve.key}`, class: "small" });
    grid.append(h("figure", { class: "plot" }, h("figcaption", { class: "chart-title" }, curve.title), host));
    ui.charts[curve.key] = new Chart(host, {
      label: `${curve.title} per epoch`,
      x: { title: "Epoch", integer: true },
      y: curve.y,
      hover: "x",
      keyboardSeries: ["curve"],
      tooltip: (p) => tipRows(`Epoch ${p.x}`, [[curve.title.toLowerCase(), curve.fmt(p.y)]]),
      describe: (p) => `epoch ${p.x}: ${curve.fmt(p.y)}`,
      emptyText: "no epochs recorded yet",
    });
  }
  ui.curvesNote = h("span", { class: "note" });
  main.replaceChildren(
    h(
      "nav",
      { class: "breadcrumb", "aria-label": "Breadcrumb" },
      h("a", { href: "/" }, "Sweeps"),
      " / ",
      h("a", { href: `/sweeps/${sweep.id}`, id: "sweep-link" }, `#${sweep.id} ${sweep.name}`),
      ` / trial ${trial.id}`,
    ),
    h("div", { class: "page-head" }, h("div", {}, h("div", { class: "actions" }, ui.title, ui.status), ui.subtitle)),
    h("section", { class: "panel", "aria-labelledby": "h-measures" }, h("h2", { id: "h-measures" }, "Measures"), ui.measures),
    h("section", { class: "panel", "aria-labelledby": "h-model" }, h("h2", { id: "h-model" }, "Compacted model"), ui.downloads),
    h(
      "section",
      { class: "panel", "aria-labelledby": "h-curves" },
      h("h2", { id: "h-curves" }, "Training curves", ui.curvesNote),
      grid,
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "h-arch" },
      h("h2", { id: "h-arch" }, "Kept architecture", h("span", { class: "note" }, "filled: kept units · outline: the dense layer")),
      ui.arch,
    ),
  );
}

function render() {
  const { trial, sweep, history } = state;
  const m = trial.metrics;
  const epochs = sweep.spec?.training?.epochs ?? "?";
  document.title = `Trial ${trial.id} · ${sweep.name} · l0sweep`;
  ui.status.replaceChildren(statusBadge(trial.status));
  ui.subtitle.textContent = `λ ${fmtNum(trial.lambda)} · β ${fmtNum(trial.beta)} · seed ${trial.seed} · #${trial.number} of sweep ${sweep.id}`;

  const rows = [
    ["Epochs", `${trial.epochs_done} / ${epochs}`],
    ["Node", trial.node || "–"],
    trial.pack ? ["Pack", trial.pack] : null,
    trial.error ? ["Error", trial.error] : null,
  ];
  if (m) {
    rows.unshift(
      ["Test accuracy", fmtPct(m.accuracy)],
      ["Test error", fmtPct(m.error)],
      ["Sparsity", fmtPct(m.sparsity, 1)],
      ["Params", fmtInt(m.params), `of ${fmtInt(m.params_dense)}`],
      ["FLOPs", fmtInt(m.flops), `of ${fmtInt(m.flops_dense)} (${fmtNum(m.flops_dense / Math.max(1, m.flops), 3)}× fewer)`],
      ["Expected FLOPs", fmtSI(m.expected_flops)],
      ["Expected L0", fmtSI(m.expected_l0)],
      ["Kept architecture", fmtArch(m.architecture)],
    );
    for (const [key, value] of Object.entries(m)) {
      if (KNOWN.has(key)) continue;
      // Extra measures a worker reports (e.g. accuracy_raw without EMA) are passed through.
      const shown = typeof value !== "number" ? String(value) : key.startsWith("accuracy") ? fmtPct(value) : fmtNum(value, 4);
      rows.push([key.replaceAll("_", " "), shown]);
    }
  }
  ui.measures.replaceChildren(
    facts(rows),
    m ? "" : h("p", { class: "empty" }, "The measures appear when the trial completes."),
  );

  const hasModel = trial.status === "completed" || trial.status === "stopped";
  ui.downloads.replaceChildren(
    hasModel
      ? h(
          "ul",
          { class: "downloads", id: "model-downloads" },
          FORMATS.map((f) =>
            h(
              "li",
              {},
              h(
                "a",
                { class: "button", href: `/api/v1/trials/${trial.id}/model${f.query}`, download: "" },
                `Download ${f.label}`,
                h("span", { class: "hint" }, f.hint),
              ),
            ),
          ),
        )
      : h("p", { class: "empty" }, "The model can be downloaded once the trial completes."),
    hasModel
      ? h("p", { class: "subtitle" }, "Raw pixel intensities in [0, 1] shaped (N, C, H, W) in, logits out; no l0sweep needed to load it.")
      : "",
  );

  for (const curve of CURVES) {
    const points = history.items
      .filter((r) => r[curve.key] !== null && r[curve.key] !== undefined)
      .map((r) => ({ x: r.epoch, y: r[curve.key], ref: r }));
    ui.charts[curve.key].setSeries([
      { key: "curve", label: curve.title, kind: "line", markers: true, color: "#1d4ed8", radius: 3, lineWidth: 2, points },
    ]);
  }
  ui.curvesNote.textContent = `${fmtInt(history.total)} epoch${history.total === 1 ? "" : "s"} recorded`;

  if (m && Array.isArray(m.architecture)) {
    ui.arch.replaceChildren(drawArchitecture(m.architecture, gatedLayers(sweep.spec)));
  } else {
    ui.arch.replaceChildren(h("p", { class: "empty" }, "The kept architecture is measured when the trial completes."));
  }
}

async function load() {
  let trial;
  try {
    trial = await api(`/trials/${trialId}`);
  } catch (error) {
    if (error.status === 404) {
      main.replaceChildren(h("h1", {}, `No trial ${trialId}`), h("p", {}, h("a", { href: "/" }, "Back to the sweeps")));
      return false;
    }
    throw error;
  }
  const [sweep, history] = await Promise.all([
    api(`/sweeps/${trial.sweep_id}`),
    api(`/trials/${trialId}/history`),
  ]);
  const first = !state.trial;
  Object.assign(state, { trial, sweep, history });
  if (first) build(trial, sweep);
  render();
  document.body.dataset.loads = String(Number(document.body.dataset.loads || 0) + 1);
  if (!OPEN.has(trial.status)) state.finalLoads += 1;
  return state.finalLoads < 2;
}

every(POLL_MS, load);
