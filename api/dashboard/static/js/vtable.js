// A sortable table that renders only the rows in view (fixed row height), so 10,000 trials
// cost the same as forty. Sorting is by precomputed keys; empty values sort last either way.

import { h } from "./common.js";

/**
 * new VirtualTable(host, {
 *   label,                                  // accessible name of the table region
 *   columns: [{key, label, numeric, value(row), cell(row) -> string | Node, width}],
 *   sort: {key, dir: "asc" | "desc"},
 *   rowClass(row) -> string, onRowActivate(row), onRowHover(row | null),
 *   rowHeight: 32,
 * })
 * table.setRows(rows)
 */
export class VirtualTable {
  constructor(host, options) {
    this.options = { rowHeight: 32, overscan: 8, ...options };
    this.columns = options.columns;
    this.sort = options.sort || { key: this.columns[0].key, dir: "asc" };
    this.rows = [];
    this.order = [];
    this.scroller = h("div", { class: "vt", role: "region", tabindex: 0, "aria-label": options.label });
    this.table = h("table", { "aria-label": options.label });
    this.colgroup = h("colgroup", {}, this.columns.map((c) => h("col", { class: `col-${c.key}` })));
    this.head = h("thead", {}, h("tr", {}, this.columns.map((c) => this._th(c))));
    this.body = h("tbody");
    this.table.append(this.colgroup, this.head, this.body);
    this.scroller.append(this.table);
    host.append(this.scroller);
    this.columns.forEach((c, i) => {
      if (c.width) this.colgroup.children[i].style.width = c.width;
    });
    let pending = false;
    this.scroller.addEventListener("scroll", () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => ((pending = false), this.render()));
    });
    this.body.addEventListener("click", (e) => {
      if (e.target.closest("a")) return;
      const row = this._rowOf(e.target);
      if (row && this.options.onRowActivate) this.options.onRowActivate(row);
    });
    this.body.addEventListener("mouseover", (e) => this.options.onRowHover?.(this._rowOf(e.target)));
    this.body.addEventListener("mouseleave", () => this.options.onRowHover?.(null));
    this.scroller.l0table = this;
  }

  _th(column) {
    const arrow = h("span", { class: "arrow", "aria-hidden": "true" }, "↕");
    const button = h(
      "button",
      { type: "button", class: "sort", onclick: () => this.sortBy(column.key) },
      column.label,
      arrow,
    );
    const th = h("th", { scope: "col", class: column.numeric ? "num" : "", dataset: { key: column.key } }, button);
    th.arrow = arrow;
    return th;
  }

  _rowOf(target) {
    const tr = target.closest?.("tr[data-index]");
    return tr ? this.rows[this.order[Number(tr.dataset.index)]] : null;
  }

  setRows(rows) {
    this.rows = rows;
    this._sort();
    this.render();
  }

  sortBy(key, dir) {
    if (dir === undefined) {
      const column = this.columns.find((c) => c.key === key);
      dir = this.sort.key === key ? (this.sort.dir === "asc" ? "desc" : "asc") : column.numeric ? "desc" : "asc";
    }
    this.sort = { key, dir };
    this._sort();
    this.render();
  }

  _sort() {
    const column = this.columns.find((c) => c.key === this.sort.key) || this.columns[0];
    const keys = this.rows.map((r) => column.value(r));
    const sign = this.sort.dir === "asc" ? 1 : -1;
    const order = this.rows.map((_, i) => i);
    order.sort((a, b) => {
      const ka = keys[a];
      const kb = keys[b];
      const na = ka === null || ka === undefined || Number.isNaN(ka);
      const nb = kb === null || kb === undefined || Number.isNaN(kb);
      if (na || nb) return na === nb ? a - b : na ? 1 : -1;
      if (ka < kb) return -sign;
      if (ka > kb) return sign;
      return a - b;
    });
    this.order = order;
    for (const th of this.head.querySelectorAll("th")) {
      const on = th.dataset.key === column.key;
      if (on) th.setAttribute("aria-sort", this.sort.dir === "asc" ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
      th.arrow.textContent = on ? (this.sort.dir === "asc" ? "▲" : "▼") : "↕";
    }
    this.table.setAttribute("aria-rowcount", String(this.rows.length + 1));
  }

  /** Draw the rows in view (plus a margin), with spacer rows for the rest. */
  render() {
    const { rowHeight, overscan } = this.options;
    const n = this.order.length;
    const headHeight = this.head.offsetHeight || rowHeight;
    // Before the rows exist the region is only as tall as its header: use its full height.
    const cap = parseFloat(getComputedStyle(this.scroller).maxHeight) || 544;
    const view = Math.max(this.scroller.clientHeight, Math.min(cap, n * rowHeight + headHeight));
    const top = Math.max(0, this.scroller.scrollTop);
    const first = Math.max(0, Math.floor(top / rowHeight) - overscan);
    const last = Math.min(n, Math.ceil((top + view - headHeight) / rowHeight) + overscan);
    const colspan = this.columns.length;
    const pad = (height) => {
      const td = h("td", { colspan });
      td.style.height = `${height}px`;
      return h("tr", { class: "vt-pad", "aria-hidden": "true" }, td);
    };
    const fragment = document.createDocumentFragment();
    if (first > 0) fragment.append(pad(first * rowHeight));
    for (let i = first; i < last; i++) fragment.append(this._tr(i));
    if (last < n) fragment.append(pad((n - last) * rowHeight));
    this.body.replaceChildren(fragment);
    this.first = first;
    this.last = last;
    // Borders and fonts decide the real row height: measure it once and lay out again.
    if (!this.measured && last > first) {
      this.measured = true;
      const drawn = this.body.querySelector("tr[data-index]").getBoundingClientRect().height;
      if (drawn && Math.abs(drawn - rowHeight) > 0.5) {
        this.options.rowHeight = drawn;
        this.render();
      }
    }
  }

  _tr(i) {
    const row = this.rows[this.order[i]];
    const cls = this.options.rowClass ? this.options.rowClass(row) : "";
    const tr = h("tr", { class: cls, "aria-rowindex": i + 2, dataset: { index: i } });
    for (const column of this.columns) {
      tr.append(h("td", { class: column.numeric ? "num" : "" }, column.cell ? column.cell(row) : column.value(row)));
    }
    return tr;
  }

  /** Rows in the current sort order (for tests and the keyboard). */
  sortedRows() {
    return this.order.map((i) => this.rows[i]);
  }
}
