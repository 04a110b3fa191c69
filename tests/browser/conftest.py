"""Browser tests: Debian's Chromium driven by Playwright against a live l0sweep server.

The browser is the system's ``chromium`` (``make test`` installs it where missing;
``L0SWEEP_CHROMIUM`` points elsewhere): Playwright's own browser download is not used.
Without Playwright or Chromium the tests skip locally and fail when ``CI=true``.

Screenshots of every page go to ``build/screenshots/``; with ``L0SWEEP_DOCS_SCREENSHOT=1``
the 10,000-trial sweep page's also replaces the README's ``docs/dashboard.png``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.main import create_app
from service.settings import Settings
from service.vocabulary import FINISHED_SWEEP_STATUSES
from tests.service.fixtures import db_url, engine, postgres_url  # noqa: F401
from workers.cli.embedded import EmbeddedService
from workers.tune.runner import RunnerOptions

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
DOCS_SHOT = ROOT / "docs" / "dashboard.png"
TOKEN = "browser-token"
VIEWPORT = {"width": 1400, "height": 900}
#: A chart's test handle, by the id of its host element.
CHART = "document.querySelector('#{}').l0chart"


def chromium_path() -> str | None:
    return (
        os.environ.get("L0SWEEP_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


def require_browser() -> str:
    """The Chromium executable; skip (locally) or fail (``CI=true``) when it cannot run."""
    reason = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "Playwright is not installed (pip install -e '.[dev]')"
    path = chromium_path()
    if path is None:
        reason = "no chromium on PATH (make test installs it: apt-get install chromium)"
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    assert path is not None
    return path


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    # Package scope, not session: Playwright's sync API keeps an asyncio loop running on the
    # main thread while it is open, and later tests' ``asyncio.run`` would refuse to start.
    executable = require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Tab:
    """One page of its own browser context (own sessionStorage), with every console error
    and uncaught exception it logged."""

    page: Any
    errors: list[str] = field(default_factory=list)

    def wait(self, script: str, *, timeout_s: float = 30.0, arg: Any = None) -> Any:
        """Poll ``script`` (a JS expression or function) until it is truthy; its value.

        ``page.wait_for_function`` evaluates strings inside the page, which the dashboard's
        Content-Security-Policy forbids (no ``unsafe-eval``); ``evaluate`` is not affected.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.page.evaluate(script, arg)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {script}")
            time.sleep(0.1)

    def loaded(self, loads: int = 1, timeout_s: float = 30.0) -> None:
        """Wait until the page's data has been loaded and drawn ``loads`` times."""
        self.wait(f"Number(document.body.dataset.loads || 0) >= {loads}", timeout_s=timeout_s)

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def tab_to(self, element_id: str, *, max_presses: int = 40) -> list[str]:
        """Press Tab from the top of the page until ``#element_id`` has focus; the ids (or
        tags) focused on the way. Fails if it is never reached."""
        self.page.evaluate("document.activeElement && document.activeElement.blur()")
        seen: list[str] = []
        for _ in range(max_presses):
            self.page.keyboard.press("Tab")
            focused = self.page.evaluate(
                "(() => { const e = document.activeElement;"
                " return e.id || `${e.tagName.toLowerCase()}:${(e.textContent || '').trim()}`; })()"
            )
            seen.append(focused)
            if focused == element_id:
                return seen
        raise AssertionError(f"#{element_id} not reached by {max_presses} Tabs: {seen}")

    def unlabelled_controls(self) -> list[str]:
        """Form controls and buttons without an accessible name."""
        return list(
            self.page.evaluate(
                """() => [...document.querySelectorAll(
                    'input, select, textarea, button, [tabindex="0"]')]
                  .filter((e) => !e.closest('[hidden]') && !(e.type === 'hidden'))
                  .filter((e) => !((e.labels && e.labels.length) || e.getAttribute('aria-label')
                      || e.getAttribute('aria-labelledby')
                      || (e.tagName === 'BUTTON' && e.textContent.trim())))
                  .map((e) => e.outerHTML.slice(0, 120))"""
            )
        )


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(30_000)
    opened = Tab(page)
    page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: opened.errors.append(f"uncaught: {e}"))
    try:
        yield opened
    finally:
        context.close()


@dataclass
class Live:
    """A running ``l0sweep serve``: uvicorn on loopback, the runner on real Ray."""

    url: str
    settings: Settings
    http: httpx.Client

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params)
        r.raise_for_status()
        return r.json()

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post("/sweeps", json=spec, headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def trials(self, sweep_id: int) -> list[dict[str, Any]]:
        return list(self.get(f"/sweeps/{sweep_id}/trials", limit=1000)["items"])

    def front_ids(self, sweep_id: int, **params: Any) -> list[int]:
        return sorted(t["id"] for t in self.get(f"/sweeps/{sweep_id}/pareto", **params)["items"])

    def wait_finished(self, sweep_id: int, timeout_s: float = 240.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            sweep = self.get(f"/sweeps/{sweep_id}")
            if sweep["status"] in FINISHED_SWEEP_STATUSES:
                return dict(sweep)
            if time.monotonic() > deadline:
                raise AssertionError(f"sweep {sweep_id} still {sweep['status']}")
            time.sleep(0.5)


@contextmanager
def live_service(database_url: str, data_dir: Path, *, with_runner: bool = True) -> Iterator[Live]:
    """Serve the dashboard and API on ``database_url``; with the runner, sweeps run on the
    session's shared Ray cluster (tests/workers/ray_cluster.py)."""
    if with_runner:
        from tests.workers.ray_cluster import shared_cluster

        shared_cluster()
    settings = Settings(database_url=database_url, api_tokens=[TOKEN], data_dir=data_dir)
    options = RunnerOptions(storage_path=str(data_dir / "ray"))
    service = EmbeddedService(
        settings, app=create_app(settings), runner_options=options, with_runner=with_runner
    )
    with service, httpx.Client(base_url=f"{service.url}/api/v1", trust_env=False) as http:
        yield Live(service.url, settings, http)
