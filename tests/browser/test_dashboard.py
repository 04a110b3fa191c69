"""The dashboard in a real browser against a live server (uvicorn, real Ray, SQLite) running
a small real sweep: what the pages show equals what the API says."""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import CHART, TOKEN, Live, Tab, live_service

pytestmark = [pytest.mark.ray, pytest.mark.slow]

EPOCHS = 3
SPEC = {
    "name": "browser-sweep",
    "model": {"arch": "mlp", "hidden": [32, 16]},
    "dataset": "synthetic",
    "lambdas": [0.1, 1.0, 10.0, 100.0],
    "seeds": [0],
    # A high learning rate so that 3 epochs on the small synthetic set prune some units.
    "training": {"epochs": EPOCHS, "lr": 0.05},
    "fuse": 1,
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("dashboard")
    with live_service(f"sqlite:///{root / 'l0sweep.db'}", root / "data") as service:
        yield service


@dataclass
class Watched:
    """The real sweep, as the sweeps page showed it while it ran (never reloaded)."""

    sweep_id: int
    seen: list[dict[str, Any]]
    navigations: int
    marker: str | None
    errors: list[str]


@pytest.fixture(scope="module")
def watched(live: Live, browser: Any) -> Iterator[Watched]:
    """Open the sweeps page, then submit the sweep and record the row as it changes."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = Tab(context.new_page())
    tab.page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    tab.page.on("pageerror", lambda e: tab.errors.append(f"uncaught: {e}"))
    tab.page.goto(f"{live.url}/")
    tab.wait("Number(document.body.dataset.refreshes || 0) >= 1")
    tab.page.evaluate("window.l0marker = 'same document'")
    sweep_id = live.submit(SPEC)["id"]
    row = f'tr[data-sweep-id="{sweep_id}"]'
    seen: list[dict[str, Any]] = []
    running_shot = False
    deadline = time.monotonic() + 300
    while not seen or seen[-1]["status"] != "completed":
        assert time.monotonic() < deadline, f"sweep {sweep_id} did not complete: {seen}"
        state = tab.wait(
            f"""(() => {{ const r = document.querySelector('{row}');
                return r && {{status: r.dataset.status,
                  progress: r.querySelector('.progress-text').textContent,
                  done: Number(r.querySelector('[role=progressbar]')
                                 .getAttribute('aria-valuenow'))}}; }})()""",
            timeout_s=240,
        )
        if not seen or state != seen[-1]:
            seen.append(state)
        if state["status"] == "running" and not running_shot:
            tab.shot("sweeps-running")
            running_shot = True
        tab.page.wait_for_timeout(200)
    tab.shot("sweeps")
    navigations = tab.page.evaluate("performance.getEntriesByType('navigation').length")
    marker = tab.page.evaluate("window.l0marker")
    context.close()
    yield Watched(sweep_id, seen, navigations, marker, tab.errors)


def test_sweeps_page_follows_the_running_sweep_without_a_reload(watched: Watched) -> None:
    statuses = [s["status"] for s in watched.seen]
    assert statuses[-1] == "completed" and statuses[0] in ("pending", "running"), statuses
    dones = [s["done"] for s in watched.seen]
    assert dones == sorted(dones) and dones[-1] == len(SPEC["lambdas"]) * EPOCHS, watched.seen
    assert len(set(dones)) >= 2, watched.seen  # the bar moved while we watched
    assert watched.seen[-1]["progress"] == f"{dones[-1]} / {dones[-1]} trial-epochs"
    assert (watched.navigations, watched.marker) == (1, "same document")
    assert watched.errors == []


def test_sweep_page_plots_every_trial_and_highlights_the_apis_front(
    live: Live, watched: Watched, tab: Tab
) -> None:
    sid = watched.sweep_id
    trials = live.trials(sid)
    completed = [t for t in trials if t["metrics"]]
    assert len(completed) == len(SPEC["lambdas"])
    tab.page.goto(f"{live.url}/sweeps/{sid}")
    tab.loaded()

    def plotted(chart: str) -> tuple[int, list[int]]:
        counts = tab.page.evaluate(f"{CHART.format(chart)}.counts()")
        front = tab.page.evaluate(f"{CHART.format(chart)}.ids('front')")
        return sum(counts.values()), sorted(front)

    for chart in ("front-sparsity", "front-flops"):
        assert plotted(chart) == (len(completed), live.front_ids(sid))
    table = tab.page.evaluate("document.querySelector('#trials-table .vt').l0table.rows.length")
    assert table == len(trials)
    history = live.get(f"/sweeps/{sid}/pareto/history")["items"]
    assert tab.page.evaluate(f"{CHART.format('hypervolume')}.counts().hv") == len(history)
    assert tab.page.inner_text("#front-count") == str(len(live.front_ids(sid)))
    tab.shot("sweep")

    # Two objectives: the highlighted points follow the API's front on them.
    summary = tab.page.inner_text("#front-summary")
    tab.page.uncheck("input[name=objective][value=flops]")
    tab.wait("s => document.querySelector('#front-summary').textContent !== s", arg=summary)
    assert "Accuracy, Sparsity:" in tab.page.inner_text("#front-summary")
    assert plotted("front-sparsity")[1] == live.front_ids(sid, objectives="accuracy,sparsity")
    assert "objectives=accuracy%2Csparsity" in tab.page.url

    # A constraint: points outside it are drawn apart; the front is the API's under it.
    bound = statistics.median(t["metrics"]["accuracy"] for t in completed)
    summary = tab.page.inner_text("#front-summary")
    tab.page.fill("#bound-min_accuracy", repr(bound))
    tab.page.press("#bound-min_accuracy", "Enter")
    tab.wait("s => document.querySelector('#front-summary').textContent !== s", arg=summary)
    expected = live.front_ids(sid, objectives="accuracy,sparsity", min_accuracy=bound)
    assert plotted("front-flops")[1] == expected
    outside = sum(t["metrics"]["accuracy"] < bound for t in completed)
    assert tab.page.evaluate(f"{CHART.format('front-flops')}.counts().filtered") == outside
    tab.shot("sweep-constrained")

    # Hover shows the trial; a click opens it.
    tab.page.click("text=Reset")
    tab.wait("!document.querySelector('#bound-min_accuracy').value")
    tab.wait(f"{CHART.format('front-sparsity')}.ids('front').length === {len(live.front_ids(sid))}")
    # The front point farthest from any other point, so the pointer picks that one.
    at = {
        t["id"]: tab.page.evaluate(f"{CHART.format('front-sparsity')}.clientPoint({t['id']})")
        for t in completed
    }

    def room(i: int) -> float:
        return min(
            (abs(at[i]["x"] - p["x"]) + abs(at[i]["y"] - p["y"]) for j, p in at.items() if j != i),
            default=1e9,
        )

    target_id = max(live.front_ids(sid), key=room)
    target = next(t for t in completed if t["id"] == target_id)
    point = at[target_id]
    tab.page.mouse.move(point["x"], point["y"])
    tip = tab.page.locator("#front-sparsity .tooltip")
    tip.wait_for(state="visible")
    text = " ".join(tip.inner_text().split())
    m = target["metrics"]
    assert text.startswith(f"Trial {target['id']}")
    assert re.search(rf"seed\s*{target['seed']}\b", text) and "λ" in text and "β" in text
    assert "-".join(map(str, m["architecture"])) in text
    assert "params" in text and "FLOPs" in text
    tab.page.mouse.click(point["x"], point["y"])
    tab.page.wait_for_url(f"**/trials/{target['id']}")
    assert tab.errors == []


def test_trial_page_draws_one_point_per_recorded_epoch(
    live: Live, watched: Watched, tab: Tab
) -> None:
    tid = live.front_ids(watched.sweep_id)[0]
    trial = live.get(f"/trials/{tid}")
    history = live.get(f"/trials/{tid}/history")
    assert history["total"] == EPOCHS
    tab.page.goto(f"{live.url}/trials/{tid}")
    tab.loaded()
    for key in ("loss", "accuracy", "expected_l0", "expected_flops"):
        recorded = sum(row[key] is not None for row in history["items"])
        assert tab.page.evaluate(f"{CHART.format('curve-' + key)}.counts().curve") == recorded
    # Kept against dense units, layer by layer: 784 pixels, 32 and 16 hidden units.
    arch = trial["metrics"]["architecture"]
    label = tab.page.get_attribute("#architecture svg", "aria-label")
    for kept, dense in zip(arch, (784, 32, 16), strict=True):
        assert f"{kept} of {dense}" in label
    assert tab.page.locator("#architecture svg rect.kept").count() == len(arch)
    # Every model format the API offers, the default first; the default downloads.
    hrefs = tab.page.eval_on_selector_all(
        "#model-downloads a", "links => links.map(a => a.getAttribute('href'))"
    )
    base = f"/api/v1/trials/{tid}/model"
    assert hrefs == [base, f"{base}?format=onnx", f"{base}?format=pt2"]
    download = tab.page.request.get(f"{live.url}{hrefs[0]}")
    assert download.status == 200
    assert download.body() == httpx.get(f"{live.url}{base}", trust_env=False).content
    tab.shot("trial")
    assert tab.unlabelled_controls() == []
    assert tab.errors == []


def test_submit_page_shows_the_fields_error_then_opens_the_new_sweep(live: Live, tab: Tab) -> None:
    tab.page.goto(f"{live.url}/submit")
    tab.wait("document.querySelector('#spec-editor').value.length > 10")
    assert tab.unlabelled_controls() == []
    # The presets the API serves are offered (without the route, only the examples, and no
    # failed request in the console).
    options = tab.page.eval_on_selector_all("#spec-source option", "os => os.map(o => o.value)")
    served = live.http.get("/presets")
    presets = served.json()["items"] if served.status_code == 200 else []
    offered = [o.removeprefix("preset:") for o in options if o.startswith("preset:")]
    assert offered == [p["name"] for p in presets]
    if presets:
        tab.page.select_option("#spec-source", f"preset:{presets[0]['name']}")
        assert json.loads(tab.page.input_value("#spec-editor")) == presets[0]["spec"]
    assert tab.errors == []
    bad = {**SPEC, "name": "from-the-browser", "model": {"arch": "resnet"}}
    text = json.dumps(bad, indent=2)
    tab.page.fill("#spec-editor", text)
    tab.tab_to("submit-sweep")
    tab.page.keyboard.press("Enter")
    # The token is asked for once, then kept for the tab.
    tab.page.fill("#token-input", TOKEN)
    tab.page.press("#token-input", "Enter")
    tab.page.locator(".inline-error").first.wait_for()
    arch_line = next(i for i, line in enumerate(text.split("\n"), 1) if '"arch"' in line)
    marked = tab.page.eval_on_selector_all(".inline-error", "es => es.map(e => e.dataset.line)")
    assert marked == [str(arch_line)]
    assert "resnet" in tab.page.inner_text(".inline-error")
    assert f"Line {arch_line} · model.arch" in tab.page.inner_text("#spec-errors")
    assert tab.page.get_attribute("#spec-editor", "aria-invalid") == "true"
    tab.shot("submit-error")
    assert len(tab.errors) == 1 and "422" in tab.errors[0], tab.errors
    before = live.get("/sweeps")["total"]

    good = {**SPEC, "name": "from-the-browser", "lambdas": [1.0], "training": {"epochs": 1}}
    tab.page.fill("#spec-editor", json.dumps(good, indent=2))
    tab.page.click("#submit-sweep")
    tab.page.wait_for_url("**/sweeps/*")
    new_id = int(tab.page.url.rsplit("/", 1)[1])
    assert live.get(f"/sweeps/{new_id}")["name"] == "from-the-browser"
    assert live.get("/sweeps")["total"] == before + 1
    tab.loaded()
    assert len(tab.errors) == 1


def test_cancel_works_with_the_token_and_is_refused_without_it(live: Live, tab: Tab) -> None:
    long = {**SPEC, "name": "to-cancel", "lambdas": [0.5], "training": {"epochs": 500}}
    sid = live.submit(long)["id"]
    tab.page.goto(f"{live.url}/sweeps/{sid}")
    tab.loaded()
    assert tab.unlabelled_controls() == []
    # The keyboard reaches the main action; Enter asks to confirm, Enter again cancels.
    tab.tab_to("cancel-sweep")
    tab.page.keyboard.press("Enter")
    assert tab.page.evaluate("document.activeElement.id") == "confirm-cancel"
    tab.page.keyboard.press("Enter")
    tab.page.fill("#token-input", "not-the-token")
    tab.page.press("#token-input", "Enter")
    status = tab.page.locator("#action-status")
    status.filter(has_text="Refused").wait_for()
    assert "401" in status.inner_text()
    assert live.get(f"/sweeps/{sid}")["status"] in ("pending", "running")
    tab.shot("cancel-refused")

    tab.page.click("#cancel-sweep")
    tab.page.click("#confirm-cancel")
    tab.page.fill("#token-input", TOKEN)  # the refused token was forgotten: asked again
    tab.page.click("#token-form button[value=ok]")
    # Wait for the success message itself: the refusal above also says "cancelled".
    status.filter(has_text=f"Sweep {sid} cancelled.").wait_for()
    assert live.get(f"/sweeps/{sid}")["status"] == "cancelled"
    # The page re-reads the sweep after the answer; under load that lands a moment later.
    tab.wait("document.querySelector('h1 + span .badge')?.textContent === 'cancelled'")
    assert not tab.page.is_visible("#cancel-sweep")
    tab.shot("cancel")
    assert len(tab.errors) == 1 and "401" in tab.errors[0], tab.errors


def test_keyboard_opens_sweeps_and_front_points(live: Live, watched: Watched, tab: Tab) -> None:
    tab.page.goto(f"{live.url}/")
    tab.wait("Number(document.body.dataset.refreshes || 0) >= 1")
    assert tab.unlabelled_controls() == []
    tab.tab_to("new-sweep")
    link = f'tr[data-sweep-id="{watched.sweep_id}"] a'
    tab.page.focus(link)
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_url(f"**/sweeps/{watched.sweep_id}")
    tab.loaded()
    tab.tab_to("download-spec")
    # The front plot takes focus; arrows step through the front, Enter opens the trial.
    tab.page.focus("#front-sparsity canvas")
    tab.page.keyboard.press("End")
    said = tab.page.inner_text("#front-sparsity [aria-live]")
    assert said.startswith("Trial ") and "λ" in said
    chosen = int(said.split()[1].rstrip(":"))
    assert chosen in live.front_ids(watched.sweep_id)
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_url(f"**/trials/{chosen}")
    assert tab.errors == []


def test_unknown_ids_say_so(live: Live, tab: Tab) -> None:
    tab.page.goto(f"{live.url}/sweeps/999999")
    tab.wait("document.querySelector('h1') && document.querySelector('h1').textContent")
    assert tab.page.inner_text("h1") == "No sweep 999999"
    tab.page.goto(f"{live.url}/trials/999999")
    tab.wait("document.querySelector('h1') && document.querySelector('h1').textContent")
    assert tab.page.inner_text("h1") == "No trial 999999"
    assert all("404" in e for e in tab.errors) and len(tab.errors) == 2


def test_spec_download_is_the_sweeps_spec(live: Live, watched: Watched, tab: Tab) -> None:
    tab.page.goto(f"{live.url}/sweeps/{watched.sweep_id}")
    tab.loaded()
    with tab.page.expect_download() as info:
        tab.page.click("#download-spec")
    download = info.value
    assert download.suggested_filename == f"sweep-{watched.sweep_id}-spec.json"
    saved = Path(download.path()).read_text(encoding="utf-8")
    assert json.loads(saved) == live.get(f"/sweeps/{watched.sweep_id}")["spec"]
