"""A budget sweep's page (issue 13): its best trial within the constraint and its
early-stopped trials, from rows written straight into the database (no Ray)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service import repository as repo
from service.db import create_engine_for, session_scope, upgrade_database
from service.spec import SweepSpec
from tests.browser.conftest import CHART, Live, Tab, live_service
from tests.service.test_repository import metrics

pytestmark = [pytest.mark.slow]


def _seed_budget_sweep(url: str) -> tuple[int, int]:
    """A finished budget sweep (FLOPs ≤ 1,000): two probes stopped at epoch 2, two finals;
    its id and the id of the most accurate trial within budget."""
    upgrade_database(url)
    spec = SweepSpec.model_validate(
        {
            "name": "budget-page",
            "model": {"arch": "mlp", "hidden": [8]},
            "dataset": "synthetic",
            "lambdas": [0.01, 3.0],
            "training": {"epochs": 6},
            "search": {"strategy": "budget", "constraint": {"max_flops": 1000}, "n_trials": 4},
        }
    )
    engine = create_engine_for(url)
    try:
        with session_scope(engine) as s:
            sweep_id = repo.create_sweep(s, spec).id
            rows = [  # (λ, stop_at, accuracy, FLOPs)
                (0.03, 2, 0.70, 1900.0),
                (1.0, 2, 0.60, 1500.0),
                (0.5, None, 0.91, 1200.0),  # the most accurate, over budget
                (0.8, None, 0.88, 950.0),  # the answer
            ]
            ids = []
            for lam, stop_at, accuracy, flops in rows:
                trial = repo.add_trial(s, sweep_id, lam, 2 / 3, 0, stop_at=stop_at)
                extra = {} if stop_at is None else {"stopped_epoch": stop_at}
                repo.record_trial_result(s, trial.id, metrics(accuracy, 0.5, flops, **extra), b"")
                ids.append(trial.id)
            repo.finish_sweep(s, sweep_id)
        return sweep_id, ids[3]
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def budget(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Live, int, int]]:
    root: Path = tmp_path_factory.mktemp("budget")
    url = f"sqlite:///{root / 'l0sweep.db'}"
    sweep_id, best_id = _seed_budget_sweep(url)
    with live_service(url, root / "data", with_runner=False) as live:
        yield live, sweep_id, best_id


def test_budget_sweep_page_links_its_best_trial_and_counts_stopped_ones(
    budget: tuple[Live, int, int], tab: Tab
) -> None:
    live, sweep_id, best_id = budget
    assert live.get(f"/sweeps/{sweep_id}")["best"]["id"] == best_id
    tab.page.goto(f"{live.url}/sweeps/{sweep_id}")
    tab.loaded()
    link = tab.page.locator("#best-trial")
    assert link.inner_text() == f"trial {best_id}"
    assert f"trial {best_id}" in tab.page.inner_text(".facts")
    assert "950 FLOPs" in tab.page.inner_text(".facts")
    assert "stopped" in tab.page.inner_text("body")
    # Early-stopped probes off the front are drawn as their own series, named in the legend.
    front = set(live.front_ids(sweep_id))
    stopped = [t["id"] for t in live.trials(sweep_id) if t["status"] == "stopped"]
    off_front = sorted(set(stopped) - front)
    for chart in ("front-sparsity", "front-flops"):
        assert sorted(tab.page.evaluate(f"{CHART.format(chart)}.ids('stopped')")) == off_front
    assert len(off_front) == 2  # both probes: dominated by the finals
    assert f"early-stopped, off the front ({len(off_front)})" in tab.page.inner_text(".legend")
    tab.shot("budget-sweep")
    link.click()
    tab.page.wait_for_url(f"**/trials/{best_id}")
    assert tab.errors == []
