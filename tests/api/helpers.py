"""Helpers for API tests: valid specs and completing trials through the repository."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from service import repository as repo
from service.db import session_scope

SPEC: dict[str, Any] = {
    "name": "mnist-mlp",
    "model": {"arch": "mlp", "hidden": [300, 100]},
    "dataset": "mnist",
    "lambdas": [0.01, 0.1, 1.0],
    "betas": [0.6667],
    "seeds": [0, 1],
    "training": {"epochs": 2, "batch_size": 100, "lr": 0.001, "weight_decay": 0.0005},
    "search": {"strategy": "grid"},
    "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
    "fuse": "auto",
    "max_concurrent_trials": None,
}


def spec(**overrides: Any) -> dict[str, Any]:
    return {**SPEC, **overrides}


def complete_trials(
    app: FastAPI,
    sweep_id: int,
    rows: list[tuple[float, float, float]],
    model: bytes | None = None,
) -> list[int]:
    """Record (accuracy, sparsity, flops) results for the first len(rows) trials."""
    engine = app.state.l0sweep.engine
    with session_scope(engine) as s:
        trials = repo.list_trials(s, sweep_id).items
        for trial, (acc, sp, flops) in zip(trials, rows, strict=False):
            repo.record_trial_epoch(s, trial.id, {"epoch": 1, "loss": 0.5, "accuracy": acc})
            repo.record_trial_result(
                s,
                trial.id,
                {
                    "accuracy": acc,
                    "sparsity": sp,
                    "params": round((1 - sp) * 266_200),
                    "params_dense": 266_200,
                    "flops": flops,
                    "flops_dense": 532_000,
                    "expected_flops": flops * 1.1,
                    "expected_l0": 1000.0,
                    "architecture": [784, 300, 100],
                },
                model,
            )
        return [t.id for t in trials]
