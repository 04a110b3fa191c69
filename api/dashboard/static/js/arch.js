// The kept architecture of a trial, drawn layer by layer against the dense units: one bar
// per gated layer (the groups DESIGN.md §3 counts), kept units filled inside the dense
// outline, and the funnel between consecutive layers.

import { fmtInt } from "./common.js";

const SVG = "http://www.w3.org/2000/svg";

/** [{label, dense}] per gated layer of the spec's model, or null when unknown. */
export function gatedLayers(spec) {
  const model = spec?.model || {};
  const colour = spec?.dataset === "cifar10" || spec?.dataset === "cifar100";
  const channels = colour ? 3 : 1;
  const size = colour ? 32 : 28;
  if (model.arch === "mlp") {
    // Linear layers gate their inputs: the pixels, then each hidden layer's units.
    const widths = [channels * size * size, ...(model.hidden || [300, 100])];
    return widths.map((dense, i) => ({ label: i === 0 ? "fc1 inputs (pixels)" : `fc${i + 1} inputs`, dense }));
  }
  if (model.arch === "lenet5") {
    const pooled = ((size - 4) / 2 - 4) / 2; // two 5×5 convs, each followed by 2×2 pooling
    return [
      { label: "conv1 maps", dense: 20 },
      { label: "conv2 maps", dense: 50 },
      { label: "fc1 inputs", dense: 50 * pooled * pooled },
      { label: "fc2 inputs", dense: 500 },
    ];
  }
  if (model.arch === "wrn") {
    // The first conv of each residual block gates its output maps (16k, 32k, 64k per group).
    const perGroup = (model.depth - 4) / 6;
    const layers = [];
    [16, 32, 64].forEach((c, g) => {
      for (let b = 0; b < perGroup; b++) layers.push({ label: `group ${g + 1} · block ${b + 1}`, dense: c * model.width });
    });
    return layers;
  }
  return null;
}

function el(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** An <svg> of the kept units per layer; `layers` from gatedLayers (or null). */
export function drawArchitecture(kept, layers) {
  const known = layers && layers.length === kept.length;
  const rows = kept.map((k, i) => ({
    label: known ? layers[i].label : `layer ${i + 1}`,
    kept: k,
    dense: known ? layers[i].dense : null,
  }));
  const width = 760;
  const left = 170;
  const barArea = 400;
  const center = left + barArea / 2;
  const rowH = 22;
  const gap = 18;
  const height = rows.length * (rowH + gap) - gap + 8;
  const maxUnits = Math.max(1, ...rows.map((r) => r.dense ?? r.kept));
  const w = (units) => (units > 0 ? Math.max(2, (barArea * units) / maxUnits) : 0);
  const svg = el("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `Kept units per gated layer: ${rows
      .map((r) => `${r.label} ${r.kept}${r.dense ? ` of ${r.dense}` : ""}`)
      .join(", ")}`,
  });
  rows.forEach((r, i) => {
    const y = 4 + i * (rowH + gap);
    if (i > 0) {
      // The funnel from the previous layer's kept units to this one's.
      const prev = rows[i - 1];
      const y0 = y - gap;
      const a = w(prev.kept) / 2;
      const b = w(r.kept) / 2;
      svg.append(
        el("polygon", {
          class: "link",
          points: `${center - a},${y0} ${center + a},${y0} ${center + b},${y} ${center - b},${y}`,
        }),
      );
    }
    if (r.dense) {
      svg.append(el("rect", { class: "dense", x: center - w(r.dense) / 2, y, width: w(r.dense), height: rowH, rx: 3 }));
    }
    svg.append(el("rect", { class: "kept", x: center - w(r.kept) / 2, y, width: w(r.kept), height: rowH, rx: 3 }));
    svg.append(el("text", { x: left - 12, y: y + rowH / 2 + 4, "text-anchor": "end" }, r.label));
    const share = r.dense ? ` of ${fmtInt(r.dense)} · ${((100 * r.kept) / r.dense).toFixed(1)} %` : "";
    svg.append(el("text", { x: left + barArea + 14, y: y + rowH / 2 + 4 }, `${fmtInt(r.kept)}${share}`));
  });
  return svg;
}
