// The sweeps page: every sweep with status, trial-epoch progress, counts and times,
// refreshed every 2 s in place (rows are updated, not rebuilt, so focus and reading stay).

import {
  FINISHED,
  POLL_MS,
  announce,
  api,
  countChips,
  every,
  fmtDuration,
  timeEl,
  h,
  initPage,
  plannedEpochs,
  progressBar,
  statusBadge,
  describeModel,
} from "./common.js";

const PAGE = 50;
const main = document.getElementById("main");
const params = new URLSearchParams(location.search);
let offset = Math.max(0, Number(params.get("offset")) || 0);
const rows = new Map(); // sweep id -> {tr, cells, status}

initPage();

const summary = h("p", { class: "subtitle", id: "sweeps-summary" }, "Loading…");
const tbody = h("tbody");
const table = h(
  "table",
  { class: "sweeps-table", "aria-describedby": "sweeps-summary" },
  h("caption", { class: "visually-hidden" }, "Sweeps, newest first"),
  h(
    "thead",
    {},
    h(
      "tr",
      {},
      ["Sweep", "Status", "Progress", "Trials", "Created", "Started", "Finished", "Duration"].map((t) =>
        h("th", { scope: "col" }, t),
      ),
    ),
  ),
  tbody,
);
const empty = h(
  "p",
  { class: "empty", hidden: true },
  "No sweeps yet. ",
  h("a", { href: "/submit" }, "Submit one"),
  " or run ",
  h("code", {}, "l0sweep demo"),
  ".",
);
const newer = h("button", { type: "button", onclick: () => go(offset - PAGE) }, "← Newer");
const older = h("button", { type: "button", onclick: () => go(offset + PAGE) }, "Older →");
const pager = h("div", { class: "actions", hidden: true }, newer, older);

main.replaceChildren(
  h(
    "div",
    { class: "page-head" },
    h("div", {}, h("h1", {}, "Sweeps"), summary),
    h("span", { class: "spacer" }),
    h("a", { class: "button primary", href: "/submit", id: "new-sweep" }, "New sweep"),
  ),
  h("section", { class: "panel", "aria-label": "Sweeps" }, table, empty, pager),
);

function go(to) {
  offset = Math.max(0, to);
  const url = new URL(location.href);
  if (offset) url.searchParams.set("offset", String(offset));
  else url.searchParams.delete("offset");
  history.replaceState(null, "", url);
  refresh();
}

function makeRow(sweep) {
  const link = h("a", { href: `/sweeps/${sweep.id}`, class: "name" }, h("span", { class: "id" }, `#${sweep.id}`));
  const nameText = document.createTextNode("");
  link.append(nameText);
  const cells = {
    name: h("td", {}, link, h("div", { class: "subtitle model" })),
    status: h("td"),
    progress: h("td"),
    counts: h("td"),
    created: h("td"),
    started: h("td"),
    finished: h("td"),
    duration: h("td", { class: "num" }),
  };
  const bar = progressBar(`Progress of sweep ${sweep.id}`);
  cells.progress.append(bar);
  const tr = h("tr", { dataset: { sweepId: sweep.id } }, Object.values(cells));
  return { tr, cells, bar, nameText, status: null, key: "" };
}

function updateRow(row, sweep, progress) {
  const done = progress ? progress.epochs_done : 0;
  const total = progress ? progress.epochs_total : plannedEpochs(sweep);
  const key = JSON.stringify([sweep.status, sweep.counts, done, total, sweep.started_at, sweep.finished_at, sweep.name]);
  if (row.status && row.status !== sweep.status) announce(`Sweep ${sweep.id} is ${sweep.status}`);
  row.status = sweep.status;
  const end = sweep.finished_at ? Date.parse(sweep.finished_at) : Date.now();
  const start = sweep.started_at ? Date.parse(sweep.started_at) : null;
  row.cells.duration.textContent = start ? fmtDuration(end - start) : "–";
  if (key === row.key) return;
  row.key = key;
  row.nameText.textContent = sweep.name;
  row.cells.name.lastChild.textContent = `${describeModel(sweep.spec)} · ${sweep.spec?.dataset ?? ""}`;
  row.cells.status.replaceChildren(statusBadge(sweep.status));
  row.bar.update(done, total, sweep.status);
  row.cells.counts.replaceChildren(countChips(sweep.counts));
  row.cells.created.replaceChildren(timeEl(sweep.created_at));
  row.cells.started.replaceChildren(timeEl(sweep.started_at));
  row.cells.finished.replaceChildren(timeEl(sweep.finished_at));
  row.tr.dataset.status = sweep.status;
}

async function refresh() {
  const list = await api(`/sweeps?limit=${PAGE}&offset=${offset}`);
  const ids = list.items.map((s) => s.id);
  const progress = ids.length ? await api(`/progress?sweep_ids=${ids.join(",")}`) : { items: [] };
  const bySweep = new Map(progress.items.map((p) => [p.sweep_id, p]));

  // Keep existing rows (and whatever has focus inside them); add, drop and order by id list.
  for (const [id, row] of rows) {
    if (!ids.includes(id)) {
      row.tr.remove();
      rows.delete(id);
    }
  }
  let previous = null;
  for (const sweep of list.items) {
    let row = rows.get(sweep.id);
    if (!row) {
      row = makeRow(sweep);
      rows.set(sweep.id, row);
    }
    updateRow(row, sweep, bySweep.get(sweep.id));
    const expected = previous ? previous.nextSibling : tbody.firstChild;
    if (expected !== row.tr) tbody.insertBefore(row.tr, expected);
    previous = row.tr;
  }

  const running = list.items.filter((s) => !FINISHED.has(s.status)).length;
  summary.textContent = list.total
    ? `${list.total} sweep${list.total === 1 ? "" : "s"} · ${running} pending or running on this page · updated ${new Date().toLocaleTimeString()}`
    : "Nothing submitted yet.";
  empty.hidden = list.total > 0;
  table.hidden = list.total === 0;
  pager.hidden = list.total <= PAGE;
  newer.disabled = offset === 0;
  older.disabled = offset + PAGE >= list.total;
  document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
}

every(POLL_MS, refresh);
