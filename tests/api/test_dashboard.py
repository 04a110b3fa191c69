"""The dashboard's HTML routes and static assets, as served (the browser tests in
tests/browser check what the pages do)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path, PurePosixPath

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.dashboard import STATIC_DIR

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = STATIC_DIR.parent


@pytest.mark.parametrize(
    ("path", "page", "data"),
    [
        ("/", "sweeps", ""),
        ("/submit", "submit", 'data-presets="0"'),
        ("/sweeps/12", "sweep", 'data-sweep-id="12"'),
        ("/trials/7", "trial", 'data-trial-id="7"'),
    ],
)
def test_pages_are_served_with_a_strict_policy(
    client: TestClient, app: FastAPI, path: str, page: str, data: str
) -> None:
    if page == "submit" and "/api/v1/presets" in app.openapi()["paths"]:
        data = 'data-presets="1"'
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert f'<script type="module" src="/static/js/page-{page}.js"></script>' in r.text
    assert data in r.text and "$" not in r.text  # every template field filled
    policy = r.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "unsafe" not in policy
    assert r.headers["x-content-type-options"] == "nosniff"


def test_pages_stay_out_of_the_api_schema_and_validate_ids(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    pages = {"/", "/submit", "/sweeps/{sweep_id}", "/trials/{trial_id}"}
    assert pages.isdisjoint(paths) and not any(p.startswith("/static") for p in paths)
    assert client.get("/sweeps/0").status_code == 422
    assert client.get("/trials/abc").status_code == 422


def test_every_module_and_asset_a_page_loads_is_served(client: TestClient) -> None:
    shell = (DASHBOARD / "page.html").read_text(encoding="utf-8")
    wanted = set(re.findall(r'"(/static/[^"$]+)"', shell))
    modules = sorted(STATIC_DIR.glob("js/*.js"))
    wanted |= {f"/static/js/{m.name}" for m in modules}
    for module in modules:
        for name in re.findall(r'from "\./([\w-]+\.js)"', module.read_text(encoding="utf-8")):
            assert (STATIC_DIR / "js" / name).is_file(), f"{module.name} imports {name}"
    for url in sorted(wanted):
        r = client.get(url)
        assert r.status_code == 200, url
        assert r.headers["cache-control"] == "no-cache", url
    js = client.get("/static/js/common.js").headers["content-type"]
    assert js.startswith(("text/javascript", "application/javascript"))


def test_nothing_is_loaded_from_elsewhere() -> None:
    for path in DASHBOARD.rglob("*"):
        if path.suffix not in (".html", ".js", ".css", ".svg"):
            continue
        text = path.read_text(encoding="utf-8")
        assert "https://" not in text and "//cdn" not in text, path
        # The only http:// is the SVG namespace name (an identifier, never fetched).
        assert set(re.findall(r"http://[^\s\"']+", text)) <= {"http://www.w3.org/2000/svg"}


def test_every_dashboard_file_ships_in_the_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["api"]
    files = [p for p in DASHBOARD.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert files
    for path in files:
        relative = path.relative_to(ROOT / "api").as_posix()
        assert any(PurePosixPath(relative).match(p) for p in patterns), relative
