"""``workers.cli.render``: progress counts early-stopped trials as done; a budget sweep's
status names its best trial."""

from __future__ import annotations

import io

from rich.console import Console

from workers.cli.render import print_status, progress_of

SWEEP = {
    "id": 3,
    "name": "budget",
    "status": "completed",
    "n_trials": 3,
    "spec": {"training": {"epochs": 10}},
    "counts": {"completed": 1, "stopped": 2},
}
TRIALS = [
    {
        "id": 1,
        "status": "stopped",
        "epochs_done": 2,
        "lambda": 0.1,
        "beta": 0.66,
        "seed": 0,
        "node": None,
        "metrics": None,
    },
    {
        "id": 2,
        "status": "stopped",
        "epochs_done": 2,
        "lambda": 1.0,
        "beta": 0.66,
        "seed": 0,
        "node": None,
        "metrics": None,
    },
    {
        "id": 3,
        "status": "running",
        "epochs_done": 4,
        "lambda": 0.3,
        "beta": 0.66,
        "seed": 0,
        "node": None,
        "metrics": None,
    },
]


def test_stopped_trials_count_all_their_planned_epochs() -> None:
    assert progress_of(SWEEP, TRIALS) == (10 + 10 + 4, 30)


def test_status_names_a_budget_sweeps_best_trial() -> None:
    out = io.StringIO()
    best = {"id": 2, "metrics": {"error": 0.0123, "flops": 12345.0, "params": 678.0}}
    print_status(Console(file=out, width=200), {**SWEEP, "best": best}, TRIALS)
    text = out.getvalue()
    assert "best within the budget: trial 2 · error 1.23 % · FLOPs 12,345 · params 678" in text
    out = io.StringIO()
    print_status(Console(file=out, width=200), {**SWEEP, "best": None}, TRIALS)
    assert "best within" not in out.getvalue()
