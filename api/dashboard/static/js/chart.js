// Canvas charts: scatter and line plots on linear or log axes, with hover tooltips, click,
// and keyboard selection. Two stacked canvases: the data layer is drawn once per change and
// the overlay (hover ring, guide line) on every pointer move, so 10k points stay fluid.
// Scales, ticks and axis painting live in chart-axes.js.

import { h } from "./common.js";
import { drawAxes, line, plotScales } from "./chart-axes.js";

let counter = 0;

/**
 * new Chart(host, {
 *   label,                        // accessible name
 *   x: {title, log, format, bounds: [lo, hi], min, integer}, y: {...},
 *   hover: "nearest" | "x",       // pick the nearest point, or the nearest in x (curves)
 *   tooltip(point, series) -> Node | Node[],
 *   describe(point, series) -> string,   // what a screen reader hears on keyboard selection
 *   onClick(point, series), onHover(point | null, series),
 *   keyboardSeries: ["front"],    // series the arrow keys step through (x order)
 *   emptyText,
 * })
 * chart.setSeries([{key, label, points: [{x, y, ref}], color, radius, stroke,
 *                   kind: "points" | "line" | "step", lineWidth, markers, pickable}])
 */
export class Chart {
  constructor(host, options) {
    this.host = host;
    this.options = { hover: "nearest", margin: { left: 58, right: 16, top: 12, bottom: 40 }, ...options };
    this.id = `chart-${++counter}`;
    host.classList.add("chart");
    this.base = h("canvas", { "aria-label": options.label });
    this.overlay = h("canvas", { class: "overlay", "aria-hidden": "true" });
    this.tip = h("div", { class: "tooltip", role: "tooltip", id: `${this.id}-tip`, hidden: true });
    this.empty = h("div", { class: "chart-empty", hidden: true }, options.emptyText || "no data yet");
    this.said = h("div", { class: "visually-hidden", "aria-live": "polite", id: `${this.id}-said` });
    host.append(this.base, this.overlay, this.tip, this.empty, this.said);
    if (options.onClick || options.keyboardSeries) {
      this.base.tabIndex = 0;
      this.base.setAttribute("role", "application");
      this.base.setAttribute("aria-roledescription", "chart");
      this.base.setAttribute(
        "aria-label",
        `${options.label}. Arrow keys step through the highlighted points${options.onClick ? ", Enter opens one" : ""}.`,
      );
      this.base.setAttribute("aria-describedby", this.said.id);
    } else {
      this.base.setAttribute("role", "img");
    }
    this.series = [];
    this.active = -1;
    this.linked = -1;
    this.width = 0;
    this.height = 0;
    host.l0chart = this;
    this.base.l0chart = this;
    this._bindEvents();
    new ResizeObserver(() => this._resize()).observe(host);
  }

  // ---------------------------------------------------------------- data

  setSeries(series) {
    this.series = series.map((s) => ({
      kind: "points",
      radius: 3.5,
      pickable: true,
      ...s,
      points: s.points.filter((p) => this._plottable(p)),
    }));
    this.active = -1;
    this.linked = -1;
    this.tip.hidden = true;
    this._measure();
    this.draw();
  }

  _plottable(p) {
    const { x, y } = this.options;
    return (
      Number.isFinite(p.x) && Number.isFinite(p.y) && (!x.log || p.x > 0) && (!y.log || p.y > 0)
    );
  }

  /** Points per series key, as drawn. */
  counts() {
    return Object.fromEntries(this.series.map((s) => [s.key, s.points.length]));
  }

  /** The refs' ids of one series, as drawn. */
  ids(key) {
    const s = this.series.find((t) => t.key === key);
    return s ? s.points.map((p) => p.ref?.id) : [];
  }

  /** Client (page) coordinates of the point whose ref has this id; null if not drawn. */
  clientPoint(id) {
    const i = this.refIndex?.get(id);
    if (i === undefined) return null;
    const rect = this.base.getBoundingClientRect();
    return { x: rect.left + this.px[i], y: rect.top + this.py[i] };
  }

  /** Ring the point of this ref (hover elsewhere, e.g. the same trial in another chart). */
  showRef(ref) {
    const i = ref ? this.refIndex?.get(ref.id) : undefined;
    this.linked = i === undefined ? -1 : i;
    this._drawOverlay();
  }

  // ---------------------------------------------------------------- layout

  _measure() {
    const rect = this.host.getBoundingClientRect();
    this.width = Math.round(rect.width);
    this.height = Math.round(rect.height);
  }

  _resize() {
    const before = [this.width, this.height];
    this._measure();
    if (before[0] !== this.width || before[1] !== this.height) this.draw();
  }

  // ---------------------------------------------------------------- drawing

  draw() {
    const { width, height } = this;
    if (!width || !height) return;
    const ctx = this._context(this.base);
    ctx.clearRect(0, 0, width, height);
    const total = this.series.reduce((n, s) => n + s.points.length, 0);
    this.empty.hidden = total > 0;
    const { x, y, box } = (this.scales = plotScales(this.series, this.options, width, height));
    if (total > 0) drawAxes(ctx, this.options, x, y, box, height);

    const n = this.series.reduce((k, s) => k + (s.pickable ? s.points.length : 0), 0);
    this.px = new Float64Array(n);
    this.py = new Float64Array(n);
    this.owner = new Array(n);
    this.refIndex = new Map();
    let k = 0;
    ctx.save();
    ctx.beginPath();
    ctx.rect(box.left - 6, box.top - 6, box.right - box.left + 12, box.bottom - box.top + 12);
    ctx.clip();
    for (const s of this.series) {
      const X = new Float64Array(s.points.length);
      const Y = new Float64Array(s.points.length);
      s.points.forEach((p, i) => ((X[i] = x.map(p.x)), (Y[i] = y.map(p.y))));
      if (s.kind === "line" || s.kind === "step") this._line(ctx, s, X, Y);
      if (s.kind === "points" || s.markers) this._points(ctx, s, X, Y);
      if (s.pickable) {
        s.points.forEach((p, i) => {
          this.px[k] = X[i];
          this.py[k] = Y[i];
          this.owner[k] = [s, p];
          if (p.ref && p.ref.id !== undefined) this.refIndex.set(p.ref.id, k);
          k += 1;
        });
      }
    }
    ctx.restore();
    this._keyboardOrder();
    this._drawOverlay();
  }

  _context(canvas) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(this.width * dpr);
    const hgt = Math.round(this.height * dpr);
    if (canvas.width !== w || canvas.height !== hgt) {
      canvas.width = w;
      canvas.height = hgt;
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return ctx;
  }

  _line(ctx, s, X, Y) {
    if (!X.length) return;
    ctx.beginPath();
    ctx.moveTo(X[0], Y[0]);
    for (let i = 1; i < X.length; i++) {
      if (s.kind === "step") ctx.lineTo(X[i], Y[i - 1]);
      ctx.lineTo(X[i], Y[i]);
    }
    if (s.kind === "step" && s.extendTo !== undefined) {
      ctx.lineTo(this.scales.x.map(s.extendTo), Y[Y.length - 1]);
    }
    ctx.strokeStyle = s.color;
    ctx.lineWidth = s.lineWidth || 2;
    ctx.lineJoin = "round";
    ctx.stroke();
  }

  _points(ctx, s, X, Y) {
    const r = s.radius;
    ctx.fillStyle = s.color;
    if (s.square) {
      // Thousands of tiny dots: squares cost a fraction of arcs and look the same.
      for (let i = 0; i < X.length; i++) ctx.fillRect(X[i] - r, Y[i] - r, 2 * r, 2 * r);
      return;
    }
    ctx.beginPath();
    for (let i = 0; i < X.length; i++) {
      ctx.moveTo(X[i] + r, Y[i]);
      ctx.arc(X[i], Y[i], r, 0, 2 * Math.PI);
    }
    ctx.fill();
    if (s.stroke) {
      ctx.lineWidth = s.strokeWidth || 1;
      ctx.strokeStyle = s.stroke;
      ctx.stroke();
    }
  }

  _drawOverlay() {
    if (!this.width || !this.height) return;
    const ctx = this._context(this.overlay);
    ctx.clearRect(0, 0, this.width, this.height);
    for (const [i, color, dashed] of [
      [this.linked, "#0f172a", true],
      [this.active, "#0f172a", false],
    ]) {
      if (i < 0 || i >= this.px.length) continue;
      const [s] = this.owner[i];
      if (this.options.hover === "x") {
        ctx.strokeStyle = "rgba(15, 23, 42, 0.25)";
        ctx.lineWidth = 1;
        const { box } = this.scales;
        line(ctx, Math.round(this.px[i]) + 0.5, box.top, Math.round(this.px[i]) + 0.5, box.bottom);
      }
      ctx.beginPath();
      ctx.arc(this.px[i], this.py[i], (s.radius || 3) + 4, 0, 2 * Math.PI);
      ctx.setLineDash(dashed ? [3, 3] : []);
      ctx.lineWidth = 2;
      ctx.strokeStyle = color;
      ctx.stroke();
      ctx.setLineDash([]);
    }
  }

  // ---------------------------------------------------------------- interaction

  _bindEvents() {
    const base = this.base;
    base.addEventListener("pointermove", (e) => {
      const rect = base.getBoundingClientRect();
      this._setActive(this._pick(e.clientX - rect.left, e.clientY - rect.top), false);
    });
    base.addEventListener("pointerleave", () => this._setActive(-1, false));
    base.addEventListener("click", (e) => {
      const rect = base.getBoundingClientRect();
      const i = this._pick(e.clientX - rect.left, e.clientY - rect.top);
      if (i >= 0 && this.options.onClick) this.options.onClick(...this._pointOf(i));
    });
    base.addEventListener("focus", () => {
      if (this.active < 0 && this.order?.length) this._setActive(this.order[0], true);
    });
    base.addEventListener("blur", () => this._setActive(-1, false));
    base.addEventListener("keydown", (e) => this._key(e));
  }

  _pointOf(i) {
    const [s, p] = this.owner[i];
    return [p, s];
  }

  _pick(mx, my) {
    if (!this.px) return -1;
    const byX = this.options.hover === "x";
    const { box } = this.scales;
    if (byX && (mx < box.left - 8 || mx > box.right + 8 || my < box.top - 8 || my > box.bottom + 8)) {
      return -1;
    }
    let best = -1;
    let bestD = byX ? Infinity : 10 * 10;
    for (let i = 0; i < this.px.length; i++) {
      const dx = this.px[i] - mx;
      const dy = this.py[i] - my;
      const d = byX ? Math.abs(dx) : dx * dx + dy * dy;
      if (d <= bestD) {
        best = i;
        bestD = d;
      }
    }
    return best;
  }

  _keyboardOrder() {
    const keys = this.options.keyboardSeries;
    const order = [];
    for (let i = 0; i < (this.px?.length || 0); i++) {
      if (!keys || keys.includes(this.owner[i][0].key)) order.push(i);
    }
    order.sort((a, b) => this.px[a] - this.px[b]);
    this.order = order;
  }

  _key(e) {
    const order = this.order || [];
    if (!order.length) return;
    const at = order.indexOf(this.active);
    let next = null;
    if (e.key === "ArrowRight" || e.key === "ArrowDown") next = order[Math.min(order.length - 1, at + 1)];
    else if (e.key === "ArrowLeft" || e.key === "ArrowUp") next = order[Math.max(0, at - 1)];
    else if (e.key === "Home") next = order[0];
    else if (e.key === "End") next = order[order.length - 1];
    else if ((e.key === "Enter" || e.key === " ") && this.active >= 0 && this.options.onClick) {
      e.preventDefault();
      this.options.onClick(...this._pointOf(this.active));
      return;
    } else if (e.key === "Escape") next = -1;
    if (next === null) return;
    e.preventDefault();
    this._setActive(next, true);
  }

  _setActive(i, fromKeyboard) {
    if (i === this.active) return;
    this.active = i;
    this._drawOverlay();
    const interactive = i >= 0 && this.options.onClick;
    this.base.classList.toggle("pointing", Boolean(interactive));
    this.base.style.cursor = interactive ? "pointer" : "default";
    if (i < 0) {
      this.tip.hidden = true;
      this.options.onHover?.(null, null);
      return;
    }
    const [point, series] = this._pointOf(i);
    this.options.onHover?.(point, series);
    if (this.options.tooltip) this._showTip(i, point, series);
    if (fromKeyboard && this.options.describe) this.said.textContent = this.options.describe(point, series);
  }

  _showTip(i, point, series) {
    const tip = this.tip;
    tip.replaceChildren(...[].concat(this.options.tooltip(point, series)));
    tip.hidden = false;
    const w = tip.offsetWidth;
    const hgt = tip.offsetHeight;
    let left = this.px[i] + 14;
    if (left + w > this.width) left = this.px[i] - w - 14;
    const top = Math.min(Math.max(0, this.py[i] - hgt / 2), Math.max(0, this.height - hgt));
    tip.style.left = `${Math.max(0, left)}px`;
    tip.style.top = `${top}px`;
  }
}

/** Tooltip rows: [["λ", "0.1"], ...] -> nodes. */
export function tipRows(title, rows, extra) {
  return [
    h("div", {}, h("strong", {}, title)),
    extra || null,
    ...rows.map(([k, v]) => h("div", { class: "t-row" }, h("span", {}, k), h("span", {}, v))),
  ].filter(Boolean);
}
