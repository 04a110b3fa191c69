// The sweep page's actions: cancel (asked, then confirmed), download the spec, submit a copy,
// and the line that reports how a cancel went.

import { api, h } from "./common.js";
import { state, sweepId } from "./sweep-state.js";

const ui = {};
let onCancelled = () => {};

// Bumped by each change this page makes (cancel): a poll that started before it would
// otherwise land after it and show the stale status again.
let changes = 0;

export function changesMade() {
  return changes;
}

// The action buttons and the confirm bar with its status line; onCancel runs once the API
// has cancelled the sweep (state.sweep is then its answer).
export function buildActions(sweep, { onCancel }) {
  onCancelled = onCancel;
  ui.cancel = h("button", { type: "button", class: "danger", id: "cancel-sweep", onclick: askCancel }, "Cancel sweep");
  ui.confirmYes = h("button", { type: "button", class: "danger solid", id: "confirm-cancel", onclick: doCancel }, "Yes, cancel it");
  ui.confirm = h(
    "div",
    { class: "confirm-bar", role: "group", "aria-label": "Confirm cancelling", hidden: true },
    h("span", {}, "Stop this sweep and its unfinished trials?"),
    ui.confirmYes,
    h("button", { type: "button", onclick: keepRunning }, "Keep running"),
  );
  const spec = JSON.stringify(sweep.spec, null, 2);
  ui.download = h(
    "a",
    {
      class: "button",
      id: "download-spec",
      href: URL.createObjectURL(new Blob([spec + "\n"], { type: "application/json" })),
      download: `sweep-${sweep.id}-spec.json`,
    },
    "Download spec",
  );
  ui.copy = h("a", { class: "button", href: `/submit?from=${sweep.id}` }, "Submit a copy");
  ui.actionStatus = h("p", { class: "action-status", role: "status", id: "action-status" });
  return { buttons: [ui.cancel, ui.download, ui.copy], bar: [ui.confirm, ui.actionStatus] };
}

// Cancel is offered only while the sweep is open.
export function offerCancel(open) {
  ui.cancel.hidden = !open;
  if (!open) ui.confirm.hidden = true;
}

function say(message, kind) {
  ui.actionStatus.textContent = message;
  ui.actionStatus.dataset.kind = kind;
}

function askCancel() {
  ui.confirm.hidden = false;
  ui.confirmYes.focus();
}

function keepRunning() {
  ui.confirm.hidden = true;
  ui.cancel.focus();
}

async function doCancel() {
  ui.confirmYes.disabled = true;
  // A previous answer (e.g. a refusal) must not stand while this one is pending.
  say("Cancelling…", "pending");
  try {
    const sweep = await api(`/sweeps/${sweepId}/cancel`, { method: "POST", auth: true });
    changes += 1;
    state.sweep = sweep;
    ui.confirm.hidden = true;
    onCancelled();
    say(`Sweep ${sweepId} cancelled.`, "ok");
    ui.download.focus();
  } catch (error) {
    if (error.status === 401) say("Refused: the API did not accept the token (HTTP 401). Nothing was cancelled; set a valid token and try again.", "error");
    else if (error.status === 0) say(`Not cancelled: ${error.message}.`, "error");
    else say(`Not cancelled (HTTP ${error.status}): ${error.message}`, "error");
  } finally {
    ui.confirmYes.disabled = false;
  }
}
