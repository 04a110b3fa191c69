"""repository.fronts.hypervolume_history against its definition: after each completed trial
(in finishing order), the hypervolume of the brute-force front of the trials so far."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import Engine, update

from service import repository as repo
from service.db import session_scope
from service.models import Trial
from service.pareto import hypervolume
from service.repository.fronts import hypervolume_history
from service.spec import SweepSpec

DENSE_PARAMS, DENSE_FLOPS = 1000.0, 2000.0


def _brute_front(points: np.ndarray) -> np.ndarray:
    """Indices no other point dominates (all columns minimised), O(n²)."""
    keep = []
    for i, p in enumerate(points):
        dominated = any(np.all(q <= p) and np.any(q < p) for q in points)
        if not dominated:
            keep.append(i)
    return np.array(keep, dtype=int)


def test_history_matches_the_front_of_each_prefix(engine: Engine) -> None:
    rng = np.random.default_rng(7)
    n = 40
    spec = SweepSpec.model_validate(
        {
            "model": {"arch": "mlp", "hidden": [10]},
            "dataset": "synthetic",
            "lambdas": {"logspace": [-3, 1, n]},
            "training": {"epochs": 1},
        }
    )
    accuracy = rng.uniform(0.5, 1.0, n).round(2)  # rounded: ties and duplicates happen
    sparsity = rng.uniform(0.0, 0.9, n).round(1)
    flops = rng.uniform(100, DENSE_FLOPS, n).round(-2)
    finish_order = rng.permutation(n)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with session_scope(engine) as s:
        sweep_id = repo.create_sweep(s, spec).id
        trials = repo.list_trials(s, sweep_id).items
        for i, trial in enumerate(trials):
            repo.record_trial_result(
                s,
                trial.id,
                {
                    "accuracy": accuracy[i],
                    "sparsity": sparsity[i],
                    "params": (1 - sparsity[i]) * DENSE_PARAMS,
                    "params_dense": DENSE_PARAMS,
                    "flops": flops[i],
                    "flops_dense": DENSE_FLOPS,
                },
            )
        for rank, i in enumerate(finish_order):
            s.execute(
                update(Trial)
                .where(Trial.id == trials[i].id)
                .values(finished_at=start + timedelta(seconds=int(rank)))
            )
    with session_scope(engine, readonly=True) as s:
        history = hypervolume_history(s, sweep_id, ["accuracy", "sparsity", "flops"])
        thinned = hypervolume_history(s, sweep_id, ["accuracy", "flops"], max_points=7)
        front = repo.pareto_front(s, sweep_id, ["accuracy", "sparsity", "flops"])

    fractions = np.column_stack([1 - accuracy, 1 - sparsity, flops / DENSE_FLOPS])
    assert [p.completed for p in history] == list(range(1, n + 1))
    for point in history:
        prefix = fractions[finish_order[: point.completed]]
        expected = hypervolume(prefix[_brute_front(prefix)], [1.0, 1.0, 1.0])
        assert point.hypervolume == pytest.approx(expected, abs=1e-12)
        assert point.finished_at == start + timedelta(seconds=point.completed - 1)
    assert history[-1].hypervolume == pytest.approx(front.hypervolume, abs=1e-12)

    assert [p.completed for p in thinned] == [1, 8, 14, 20, 27, 34, 40]
    for point in thinned:
        prefix = fractions[finish_order[: point.completed]][:, [0, 2]]
        expected = hypervolume(prefix[_brute_front(prefix)], [1.0, 1.0])
        assert point.hypervolume == pytest.approx(expected, abs=1e-12)
