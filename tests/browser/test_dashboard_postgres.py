"""The dashboard on PostgreSQL: a live server on a fresh schema runs a small real sweep and
every page shows what the API says, with no console error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import CHART, Tab, live_service

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.postgres]

SPEC = {
    "name": "browser-postgres",
    "model": {"arch": "mlp", "hidden": [16]},
    "dataset": "synthetic",
    "lambdas": [0.1, 10.0],
    "seeds": [0],
    "training": {"epochs": 2, "lr": 0.02},
    "fuse": 1,
}


def test_pages_match_the_api_on_postgresql(postgres_url: str, tmp_path: Path, tab: Tab) -> None:
    with live_service(postgres_url, tmp_path / "data") as live:
        sid = live.submit(SPEC)["id"]
        assert live.wait_finished(sid)["status"] == "completed"
        trials = live.trials(sid)
        front = live.front_ids(sid)

        tab.page.goto(f"{live.url}/")
        tab.wait(f"document.querySelector('tr[data-sweep-id=\"{sid}\"][data-status=completed]')")
        done = tab.page.get_attribute(
            f'tr[data-sweep-id="{sid}"] [role=progressbar]', "aria-valuenow"
        )
        assert done == str(sum(t["epochs_done"] for t in trials)) == "4"
        tab.shot("postgres-sweeps")

        tab.page.goto(f"{live.url}/sweeps/{sid}")
        tab.loaded()
        for chart in ("front-sparsity", "front-flops"):
            assert sum(tab.page.evaluate(f"{CHART.format(chart)}.counts()").values()) == len(trials)
            assert sorted(tab.page.evaluate(f"{CHART.format(chart)}.ids('front')")) == front
        tab.shot("postgres-sweep")

        tab.page.goto(f"{live.url}/trials/{front[0]}")
        tab.loaded()
        history = live.get(f"/trials/{front[0]}/history")
        assert history["total"] == 2
        for key in ("loss", "accuracy", "expected_l0", "expected_flops"):
            assert tab.page.evaluate(f"{CHART.format('curve-' + key)}.counts().curve") == 2
        tab.shot("postgres-trial")
    assert tab.errors == []
