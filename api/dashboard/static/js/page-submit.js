// The submit page: a JSON spec editor, pre-filled from an example, a preset (when the API
// serves GET /presets) or a copy of a sweep (?from=ID). The API validates; a 422 is shown on
// the line of the offending field. Success opens the new sweep.

import { api, h, initPage } from "./common.js";
import { JsonSyntaxError, lineOf, locate, parseWithPositions } from "./jsonpos.js";

const main = document.getElementById("main");
const LINE = 20; // px, as in the stylesheet (.editor line-height)

const EXAMPLES = [
  {
    name: "example:mnist-mlp",
    title: "MNIST · MLP 300-100 · λ grid",
    description: "The paper's MLP on MNIST, three λ, one seed, 10 epochs.",
    spec: {
      name: "mnist-mlp",
      model: { arch: "mlp", hidden: [300, 100] },
      dataset: "mnist",
      lambdas: [0.01, 0.1, 1.0],
      betas: [0.6667],
      seeds: [0],
      training: { epochs: 10, batch_size: 100, lr: 0.001, weight_decay: 0.0005 },
      search: { strategy: "grid" },
      fuse: "auto",
    },
  },
  {
    name: "example:lenet5",
    title: "MNIST · LeNet-5 · λ log grid",
    description: "LeNet-5-Caffe 20-50-800-500 over five log-spaced λ, 20 epochs.",
    spec: {
      name: "mnist-lenet5",
      model: { arch: "lenet5" },
      dataset: "mnist",
      lambdas: { logspace: [-2, 0, 5] },
      betas: [0.6667],
      seeds: [0],
      training: { epochs: 20 },
    },
  },
  {
    name: "example:synthetic",
    title: "Synthetic · tiny MLP · smoke test",
    description: "Seconds per trial: a 32-16 MLP on the synthetic set, 2 epochs.",
    spec: {
      name: "smoke-test",
      model: { arch: "mlp", hidden: [32, 16] },
      dataset: "synthetic",
      lambdas: [0.1, 1.0, 3.0],
      seeds: [0],
      training: { epochs: 2 },
      fuse: 1,
    },
  },
];

initPage();

// ------------------------------------------------------------------ layout

const textarea = h("textarea", {
  id: "spec-editor",
  spellcheck: "false",
  wrap: "off",
  autocomplete: "off",
  autocapitalize: "off",
  "aria-describedby": "spec-errors spec-hint",
});
const backdrop = h("pre", { "aria-hidden": "true" });
const gutter = h("div", { class: "gutter", "aria-hidden": "true" });
const editor = h("div", { class: "editor" }, gutter, h("div", { class: "editor-body" }, backdrop, textarea));
const errorHeading = h("p", { class: "field-error", id: "spec-error-summary", tabindex: "-1" });
const errorList = h("ul", { class: "error-list" });
const errors = h("div", { id: "spec-errors", hidden: true }, errorHeading, errorList);
const picker = h("select", { id: "spec-source", onchange: () => pick(picker.value) });
const submitButton = h("button", { type: "submit", class: "primary", id: "submit-sweep" }, "Submit sweep");
const status = h("p", { class: "action-status", role: "status", id: "submit-status" });
const about = h("div", { id: "source-about" });

main.replaceChildren(
  h(
    "div",
    { class: "page-head" },
    h(
      "div",
      {},
      h("h1", {}, "New sweep"),
      h("p", { class: "subtitle", id: "spec-hint" }, "A sweep spec as JSON (DESIGN.md §5). The API checks it; problems show on their line."),
    ),
  ),
  h(
    "div",
    { class: "submit-layout" },
    h(
      "form",
      { class: "panel", id: "submit-form", "aria-label": "Submit a sweep", onsubmit: onSubmit },
      h(
        "div",
        { class: "editor-tools" },
        h("label", { for: "spec-source" }, "Start from", picker),
        h("button", { type: "button", id: "format-spec", onclick: formatSpec }, "Format JSON"),
      ),
      h("label", { for: "spec-editor", class: "visually-hidden" }, "Sweep spec (JSON)"),
      editor,
      errors,
      h("div", { class: "actions", id: "submit-actions" }, submitButton, status),
    ),
    h("aside", { class: "panel help", "aria-label": "About the spec" }, about, fieldHelp()),
  ),
);

function fieldHelp() {
  const rows = [
    ["model", '{"arch": "mlp", "hidden": [300, 100]}, {"arch": "lenet5"} or {"arch": "wrn", "depth": 28, "width": 10}'],
    ["dataset", "mnist, synthetic (MLP, LeNet-5); cifar10, cifar100 (WRN)"],
    ["lambdas", 'L0 strength per weight: a list, or {"logspace": [lo, hi, n]}'],
    ["betas", "hard-concrete temperatures (default [0.6667])"],
    ["seeds", "one trial per λ × β × seed"],
    ["training", "epochs, batch_size, lr, weight_decay, optimizer, …"],
    ["search", '{"strategy": "grid"}, random or optuna with n_trials'],
  ];
  return h(
    "div",
    {},
    h("h2", {}, "Fields"),
    h("dl", {}, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
  );
}

// ------------------------------------------------------------------ editor decorations

let marks = new Map(); // line -> [messages]

function decorate() {
  const lines = textarea.value.split("\n");
  const gutterLines = [];
  const backLines = [];
  lines.forEach((text, i) => {
    const line = i + 1;
    const messages = marks.get(line);
    gutterLines.push(h("div", { class: messages ? "err" : "" }, String(line)));
    backLines.push(
      h(
        "div",
        { class: messages ? "err" : "", dataset: { line } },
        text || "\u200b",
        messages ? h("span", { class: "inline-error", dataset: { line } }, `← ${messages.join("; ")}`) : null,
      ),
    );
  });
  gutter.replaceChildren(...gutterLines);
  backdrop.replaceChildren(...backLines);
  syncScroll();
}

function syncScroll() {
  backdrop.scrollTop = textarea.scrollTop;
  backdrop.scrollLeft = textarea.scrollLeft;
  gutter.scrollTop = textarea.scrollTop;
}

function clearErrors() {
  marks = new Map();
  errors.hidden = true;
  errorList.replaceChildren();
  textarea.removeAttribute("aria-invalid");
  editor.dataset.invalid = "false";
  decorate();
}

/** problems: [{offset, label, message}] */
function showErrors(heading, problems) {
  marks = new Map();
  const text = textarea.value;
  const items = problems.map((p) => {
    const { line } = lineOf(text, p.offset);
    marks.set(line, [...(marks.get(line) || []), p.message]);
    return h(
      "li",
      {},
      h(
        "button",
        { type: "button", onclick: () => reveal(p.offset, line) },
        `Line ${line}`,
        p.label ? [" · ", h("code", {}, p.label)] : "",
        `: ${p.message}`,
      ),
    );
  });
  errorHeading.textContent = heading;
  errorList.replaceChildren(...items);
  errors.hidden = false;
  textarea.setAttribute("aria-invalid", "true");
  editor.dataset.invalid = "true";
  decorate();
  const first = Math.min(...[...marks.keys()]);
  textarea.scrollTop = Math.max(0, (first - 4) * LINE);
  syncScroll();
  errorHeading.focus();
}

function reveal(offset, line) {
  textarea.focus();
  const end = textarea.value.indexOf("\n", offset);
  textarea.setSelectionRange(offset, end < 0 ? textarea.value.length : end);
  textarea.scrollTop = Math.max(0, (line - 4) * LINE);
  syncScroll();
}

textarea.addEventListener("scroll", syncScroll);
textarea.addEventListener("input", () => {
  idempotencyKey = newKey();
  status.textContent = "";
  if (marks.size || !errors.hidden) clearErrors();
  else decorate();
});

// ------------------------------------------------------------------ sources

const sources = new Map(EXAMPLES.map((e) => [e.name, e]));

function setSpec(spec) {
  textarea.value = `${JSON.stringify(spec, null, 2)}\n`;
  idempotencyKey = newKey();
  clearErrors();
}

function pick(name) {
  const source = sources.get(name);
  if (!source) return;
  setSpec(source.spec);
  const paper = source.paper;
  about.replaceChildren(
    h("h2", {}, source.title || source.name),
    h("p", {}, source.description || ""),
    paper
      ? h(
          "p",
          { class: "subtitle" },
          `Paper: ${paper.error} % error at ${paper.architecture}${paper.source ? ` (${paper.source})` : ""}`,
        )
      : "",
  );
}

async function fillPicker() {
  const group = (label, items) =>
    h("optgroup", { label }, items.map((s) => h("option", { value: s.name }, s.title || s.name)));
  const groups = [group("Examples", EXAMPLES)];
  if (document.body.dataset.presets === "1") {
    try {
      const body = await api("/presets");
      const presets = Array.isArray(body) ? body : body.items || [];
      for (const p of presets) sources.set(`preset:${p.name}`, { ...p, name: `preset:${p.name}` });
      if (presets.length) groups.unshift(group("Presets (paper setups)", presets.map((p) => sources.get(`preset:${p.name}`))));
    } catch {
      // No presets to offer: the examples are enough.
    }
  }
  const from = Number(new URLSearchParams(location.search).get("from"));
  if (from) {
    try {
      const sweep = await api(`/sweeps/${from}`);
      const copy = { ...sweep.spec, name: `${sweep.name} (copy)` };
      sources.set("copy", { name: "copy", title: `Copy of sweep ${from}`, description: `The spec of sweep ${from}, ${sweep.name}.`, spec: copy });
      groups.unshift(group("This sweep", [sources.get("copy")]));
    } catch {
      status.textContent = `Sweep ${from} was not found; starting from an example.`;
    }
  }
  picker.replaceChildren(...groups);
  // A copy or a preset named in the URL (?preset=mlp-l0), else the quick example: the
  // paper's presets train for hours.
  const preset = `preset:${new URLSearchParams(location.search).get("preset")}`;
  picker.value = sources.has("copy") ? "copy" : sources.has(preset) ? preset : EXAMPLES[0].name;
  pick(picker.value);
}

function formatSpec() {
  try {
    setSpec(JSON.parse(textarea.value));
  } catch {
    check(); // shows where the JSON breaks
  }
}

// ------------------------------------------------------------------ submitting

function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `dashboard-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}
let idempotencyKey = newKey();

/** Parse locally; on a syntax error show it on its line and return null. */
function check() {
  try {
    return parseWithPositions(textarea.value);
  } catch (error) {
    if (!(error instanceof JsonSyntaxError)) throw error;
    showErrors("The spec is not valid JSON.", [{ offset: error.offset, label: "", message: error.message }]);
    return null;
  }
}

function problemOf(root, detail) {
  const loc = Array.isArray(detail.loc) ? detail.loc.slice() : [];
  if (loc[0] === "body") loc.shift();
  if (String(detail.type || "").startsWith("union_tag") && detail.ctx?.discriminator) {
    loc.push(String(detail.ctx.discriminator).replaceAll("'", ""));
  }
  const { offset, path } = locate(root, loc);
  const last = loc.at(-1);
  const label = path.endsWith(String(last)) || path.endsWith(`[${last}]`) || typeof last !== "string" ? path : path ? `${path}.${last}` : last;
  return { offset, label: label || "", message: detail.msg || String(detail) };
}

async function onSubmit(event) {
  event.preventDefault();
  clearErrors();
  const root = check();
  if (!root) return;
  submitButton.disabled = true;
  status.dataset.kind = "";
  status.textContent = "Submitting…";
  try {
    const sweep = await api("/sweeps", {
      method: "POST",
      body: textarea.value,
      auth: true,
      headers: { "Idempotency-Key": idempotencyKey },
    });
    status.dataset.kind = "ok";
    status.textContent = `Sweep ${sweep.id} submitted; opening it…`;
    location.assign(`/sweeps/${sweep.id}`);
    return;
  } catch (error) {
    status.dataset.kind = "error";
    if (error.status === 422 && Array.isArray(error.detail)) {
      status.textContent = "";
      const n = error.detail.length;
      showErrors(`The API refused the spec: ${n} problem${n === 1 ? "" : "s"}.`, error.detail.map((d) => problemOf(root, d)));
    } else if (error.status === 401) {
      status.textContent = "Refused: the API did not accept the token (HTTP 401). Set a valid token and submit again.";
    } else if (error.status === 413) {
      status.textContent = "The spec is over the API's size limit (HTTP 413).";
    } else if (error.status === 0) {
      status.textContent = `Not submitted: ${error.message}.`;
    } else {
      status.textContent = `Not submitted (HTTP ${error.status}): ${error.message}`;
    }
  } finally {
    submitButton.disabled = false;
  }
}

fillPicker();
