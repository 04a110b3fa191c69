"""A sweep of many completed trials, written straight into the database (no Ray, no HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import update

from service import repository as repo
from service.db import create_engine_for, session_scope, upgrade_database
from service.models import Sweep, Trial
from service.spec import SweepSpec
from service.vocabulary import SweepStatus, TrialStatus

DENSE_PARAMS, DENSE_FLOPS = 266_610, 532_810  # MLP 784-300-100-10


def seed_completed_sweep(url: str, n_trials: int = 10_000, *, seed: int = 0) -> int:
    """One finished MLP sweep of ``n_trials`` completed trials (a multiple of 100); its id.

    The sweep and its trial rows come from ``repository.create_sweep``. The measures (a
    noisy accuracy-sparsity-FLOPs trade-off, as benchmarks/pareto_api.py draws them) are
    written with one bulk UPDATE of the columns ``repository.record_trial_result`` sets:
    that function costs ~3 ms a trial here (31 s for 10,000), the bulk write ~1 s.
    Trials finish one second apart, so the hypervolume has a history.
    """
    upgrade_database(url)
    spec = SweepSpec.model_validate(
        {
            "name": f"seeded-{n_trials}",
            "model": {"arch": "mlp", "hidden": [300, 100]},
            "dataset": "mnist",
            "lambdas": {"logspace": [-3, 1, n_trials // 100]},
            "betas": [0.5 + 0.03 * i for i in range(10)],
            "seeds": list(range(10)),
            "training": {"epochs": 1},
        }
    )
    rng = np.random.default_rng(seed)
    engine = create_engine_for(url)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    try:
        with session_scope(engine) as session:
            sweep_id = repo.create_sweep(session, spec).id
            trials = repo.list_trials(session, sweep_id).items
            rows = []
            for i, trial in enumerate(trials):
                sparsity = float(
                    np.clip(0.2 + 0.75 * np.tanh(trial.lam) + rng.normal(0, 0.05), 0, 0.99)
                )
                accuracy = float(np.clip(0.985 - 0.08 * sparsity**6 + rng.normal(0, 0.004), 0, 1))
                params = round((1 - sparsity) * DENSE_PARAMS)
                flops = min(DENSE_FLOPS, round(2 * params * rng.uniform(0.9, 1.1)))
                kept = [max(1, round(w * (1 - sparsity) ** 0.5)) for w in (784, 300, 100)]
                metrics = {
                    "accuracy": accuracy,
                    "error": 1 - accuracy,
                    "sparsity": sparsity,
                    "params": params,
                    "params_dense": DENSE_PARAMS,
                    "flops": flops,
                    "flops_dense": DENSE_FLOPS,
                    "expected_flops": float(flops),
                    "expected_l0": float(params),
                    "architecture": kept,
                }
                rows.append(
                    {
                        "id": trial.id,
                        "status": TrialStatus.COMPLETED,
                        "epochs_done": 1,
                        "node": f"10.0.0.{1 + i % 4}",
                        "metrics": metrics,
                        **{k: float(metrics[k]) for k in repo.REQUIRED_METRICS},
                        "started_at": start + timedelta(seconds=i),
                        "finished_at": start + timedelta(seconds=i + 1),
                    }
                )
            session.execute(update(Trial), rows)
            session.execute(
                update(Sweep)
                .where(Sweep.id == sweep_id)
                .values(
                    status=SweepStatus.COMPLETED,
                    started_at=start,
                    finished_at=start + timedelta(seconds=len(rows) + 1),
                    results_version=len(rows),
                )
            )
    finally:
        engine.dispose()
    return int(sweep_id)
