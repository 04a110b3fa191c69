// The sweep page's trials table: one row per trial (front membership starred), sortable by
// any column, a click opens the trial.

import { fmtArch, fmtInt, fmtNum, fmtPct, fmtSI, h, statusBadge } from "./common.js";
import { VirtualTable } from "./vtable.js";
import { state } from "./sweep-state.js";

const ui = {};

// The table and the note beside its heading; onHover gets the hovered trial while it has a
// result (null otherwise).
export function buildTrials(sweep, { onHover }) {
  ui.tableNote = h("span", { class: "note" });
  ui.tableHost = h("div", { id: "trials-table" });
  ui.table = new VirtualTable(ui.tableHost, {
    label: "Trials",
    columns: trialColumns(sweep),
    sort: { key: "number", dir: "asc" },
    rowClass: (t) => (state.frontIds.has(t.id) ? "on-front" : ""),
    onRowActivate: (t) => location.assign(`/trials/${t.id}`),
    onRowHover: (t) => onHover(t && t.metrics ? t : null),
  });
  return { note: ui.tableNote, host: ui.tableHost };
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

export function renderTable() {
  ui.table.setRows(state.trials);
  ui.tableNote.textContent = `${fmtInt(state.trials.length)} trials · sort by any column · click a row to open it`;
}
