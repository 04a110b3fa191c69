// Chart axes: the maths (data extents, linear and log scales, nice ticks, number formats) and
// the painting of grid, tick labels and axis titles. Pure functions of the data and options;
// the Chart class in chart.js owns the canvases and calls in here.

const FONT = "11px system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif";
const TITLE_FONT = "600 12px system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif";
const GRID = "#e7ebf1";
const AXIS = "#9aa4b2";
const INK = "#5b6576";

/** Scales for the plot area: {x, y} map data to pixels, box is the area inside the margins. */
export function plotScales(series, options, width, height) {
  const { x, y, margin } = options;
  const xs = [];
  const ys = [];
  for (const s of series) {
    for (const p of s.points) (xs.push(p.x), ys.push(p.y));
    if (s.extendTo !== undefined) xs.push(s.extendTo);
  }
  const left = margin.left;
  const right = width - margin.right;
  const top = margin.top;
  const bottom = height - margin.bottom;
  return {
    x: makeScale(extent(xs, x), [left, right], x.log),
    y: makeScale(extent(ys, y), [bottom, top], y.log),
    box: { left, right, top, bottom },
  };
}

/** Grid lines, tick labels, axis lines and titles. */
export function drawAxes(ctx, options, x, y, box, height) {
  ctx.font = FONT;
  ctx.lineWidth = 1;
  ctx.strokeStyle = GRID;
  ctx.fillStyle = INK;
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const fx = options.x.format || defaultFormat;
  const fy = options.y.format || defaultFormat;
  for (const t of x.ticks(options.x.integer)) {
    const X = Math.round(x.map(t)) + 0.5;
    line(ctx, X, box.top, X, box.bottom);
    ctx.fillText(fx(t), X, box.bottom + 6);
  }
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const t of y.ticks(options.y.integer)) {
    const Y = Math.round(y.map(t)) + 0.5;
    line(ctx, box.left, Y, box.right, Y);
    ctx.fillText(fy(t), box.left - 6, Y);
  }
  ctx.strokeStyle = AXIS;
  line(ctx, box.left + 0.5, box.top, box.left + 0.5, box.bottom + 0.5);
  line(ctx, box.left, box.bottom + 0.5, box.right, box.bottom + 0.5);
  ctx.font = TITLE_FONT;
  ctx.fillStyle = "#334155";
  ctx.textAlign = "center";
  ctx.textBaseline = "bottom";
  ctx.fillText(axisTitle(options.x), (box.left + box.right) / 2, height - 2);
  ctx.save();
  ctx.translate(12, (box.top + box.bottom) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = "middle";
  ctx.fillText(axisTitle(options.y), 0, 0);
  ctx.restore();
}

// ------------------------------------------------------------------ scales and ticks

function extent(values, axis) {
  if (axis.domain) return axis.domain;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo === Infinity) return axis.log ? [1, 10] : axis.bounds || [0, 1];
  let domain;
  if (axis.log) {
    let a = Math.log10(lo);
    let b = Math.log10(hi);
    if (b - a < 0.2) ((a -= 0.3), (b += 0.3));
    const pad = (b - a) * 0.06;
    domain = [10 ** (a - pad), 10 ** (b + pad)];
  } else {
    if (hi - lo < 1e-12) {
      const d = axis.integer ? 1 : Math.abs(lo) * 0.1 || 1;
      ((lo -= d), (hi += d));
    }
    const pad = axis.integer ? 0.3 : (hi - lo) * 0.06;
    domain = [lo - pad, hi + pad];
  }
  if (axis.bounds) {
    domain = [Math.max(axis.bounds[0], domain[0]), Math.min(axis.bounds[1], domain[1])];
  }
  if (axis.min !== undefined) domain[0] = axis.min;
  return domain;
}

function makeScale([lo, hi], [r0, r1], log) {
  const f = log ? Math.log10 : (v) => v;
  const a = f(lo);
  const span = f(hi) - a || 1;
  return {
    domain: [lo, hi],
    map: (v) => r0 + ((f(v) - a) / span) * (r1 - r0),
    ticks: (integer) => (log ? logTicks(lo, hi) : linearTicks(lo, hi, 5, integer)),
  };
}

function niceStep(raw) {
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

function linearTicks(lo, hi, count, integer) {
  let step = niceStep((hi - lo) / count);
  if (integer) step = Math.max(1, Math.round(step));
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    ticks.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12)));
  }
  return ticks;
}

function logTicks(lo, hi) {
  const a = Math.floor(Math.log10(lo));
  const b = Math.ceil(Math.log10(hi));
  const decades = b - a;
  const mults = decades <= 1 ? [1, 2, 3, 5] : decades <= 3 ? [1, 2, 5] : [1];
  const every = decades > 8 ? 2 : 1;
  const ticks = [];
  for (let e = a; e <= b; e += every) {
    for (const m of mults) {
      const v = Number((m * 10 ** e).toPrecision(12));
      if (v >= lo && v <= hi) ticks.push(v);
    }
  }
  return ticks.length >= 2 ? ticks : linearTicks(lo, hi, 4, false);
}

function defaultFormat(v) {
  const a = Math.abs(v);
  if (a >= 1e3) {
    for (const [size, suffix] of [[1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
      if (a >= size) return `${Number((v / size).toPrecision(3))}${suffix}`;
    }
  }
  if (a !== 0 && a < 1e-3) return v.toExponential(0);
  return String(Number(v.toPrecision(3)));
}

function axisTitle(axis) {
  return axis.log ? `${axis.title} (log)` : axis.title;
}

/** Stroke one straight segment. */
export function line(ctx, x0, y0, x1, y1) {
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  ctx.lineTo(x1, y1);
  ctx.stroke();
}
