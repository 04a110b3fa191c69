"""The replay machinery of benchmarks/search_efficiency.py on hand-made trajectories: the
cache round trip, the hypervolume bookkeeping, the early-stopping simulation with W workers
and the NSGA-II baseline (Ray's ASHA is left to the benchmark itself)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


def _module(name: str) -> ModuleType:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


traj = _module("search_trajectories")
eff = _module("search_efficiency")

FLOPS_DENSE, PARAMS_DENSE, EPOCHS, N = 1000, 500, 6, 8


def _trajectories(seeds: tuple[int, ...] = (0,)) -> Any:
    """N λ per seed on a monotone trade-off: stronger λ, fewer FLOPs, lower accuracy; the
    compacted FLOPs reach their final value only at the last two epochs (gates close late)."""
    config = traj.CollectConfig(subset=100, epochs=EPOCHS, n_lambdas=N, seeds=seeds)
    data = traj.TrajectorySet(config=config, flops_dense=FLOPS_DENSE, params_dense=PARAMS_DENSE)
    for seed in seeds:
        for i, lam in enumerate(config.lambdas):
            s = i / (N - 1)
            final = 0.9 - 0.8 * s
            acc_final = 0.98 - 0.1 * s * s
            rows = []
            for t in range(1, EPOCHS + 1):
                expected = final + (0.9 - final) * math.exp(-0.7 * t)
                kept = final if t >= EPOCHS - 1 else 1.0
                acc = acc_final - 0.05 * math.exp(-0.8 * t)
                rows.append(
                    {
                        "epoch": t,
                        "loss": 0.1,
                        "accuracy": acc,
                        "expected_l0": expected * PARAMS_DENSE,
                        "expected_flops": expected * FLOPS_DENSE,
                        "seconds": 1.0,
                        "m_accuracy": acc,
                        "m_flops": int(kept * FLOPS_DENSE),
                        "m_params": int(kept * PARAMS_DENSE),
                        "m_sparsity": 1.0 - kept,
                        "m_architecture": [1, 1, 1],
                    }
                )
            data.trials.append({"lam": lam, "beta": config.beta, "seed": seed, "epochs": rows})
    return data


def _replay(data: Any, ref: tuple[float, float] = (1.0, 1.0)) -> Any:
    return traj.Replay(data.by_seed(0), FLOPS_DENSE, PARAMS_DENSE, EPOCHS, ref)


def test_cache_round_trip_and_checks(tmp_path: Path) -> None:
    data = _trajectories(seeds=(0, 1))
    path = traj.cache_path(data.config, tmp_path)
    assert path.parent == tmp_path and path.name.endswith(".json")
    assert traj.cache_path(data.config, tmp_path / "x.json") == tmp_path / "x.json"
    with pytest.raises(FileNotFoundError):
        traj.load_or_collect(data.config, tmp_path, collect_missing=False)
    traj._save(data, path)
    loaded = traj.load_or_collect(data.config, tmp_path, collect_missing=False)
    assert loaded.config == data.config and loaded.trials == data.trials and loaded.complete()
    assert [t["lam"] for t in loaded.by_seed(1)] == data.config.lambdas
    other = traj.CollectConfig(subset=100, epochs=EPOCHS, n_lambdas=N + 1, seeds=(0, 1))
    with pytest.raises(ValueError):
        traj.load_or_collect(other, path, collect_missing=False)
    assert json.loads(path.read_text())["format"] == traj.FORMAT


def test_grid_reaches_the_whole_front_at_its_total() -> None:
    replay = _replay(_trajectories())
    order = list(range(N))
    outcome = replay.outcome(eff.grid_search(replay, order), 1.0)
    assert outcome.final_fraction == pytest.approx(1.0)
    assert outcome.total == N * EPOCHS and outcome.stopped == 0
    assert outcome.to_target <= outcome.total
    # trials stopped before their gates close have dense FLOPs: nothing on the front
    assert replay.hv([traj.Ended(3, 2, stopped=True)]) == 0.0


@pytest.mark.parametrize("workers", [1, 3, 8])
@pytest.mark.parametrize("predict", [False, True])
def test_early_stopping_simulation(workers: int, predict: bool) -> None:
    replay = _replay(_trajectories())
    order = [5, 2, 7, 0, 3, 6, 1, 4]
    ends = eff.early_stopping(replay, order, workers=workers, grace=1, eta=2, predict=predict)
    assert sorted(e.index for e in ends) == list(range(N))  # every trial ends once
    rungs = {1, 2, 4}
    for end in ends:
        assert end.epochs == EPOCHS or (end.stopped and end.epochs in rungs)
    assert any(e.stopped for e in ends) and any(not e.stopped for e in ends)
    assert replay.outcome(ends, 0.95).total < N * EPOCHS
    # the first trial to reach each rung alone continues past it
    assert next(e for e in ends if e.index == order[0]).epochs == EPOCHS


def test_early_stopping_one_worker_follows_the_board() -> None:
    replay = _replay(_trajectories())
    order = list(range(N))
    ends = eff.early_stopping(replay, order, workers=1, grace=1, eta=3, predict=False)
    # one worker: trials run one after another, in launch order
    assert [e.index for e in ends] == order


def test_nsga2_stops_at_the_target() -> None:
    replay = _replay(_trajectories())
    ends = eff.nsga2_search(replay, 0, max_trials=40, fraction=0.9)
    outcome = replay.outcome(ends, 0.9)
    assert all(e.epochs == EPOCHS and not e.stopped for e in ends)
    assert outcome.final_fraction >= 0.9 or len(ends) == 40
    assert math.isfinite(outcome.to_target) == (outcome.final_fraction >= 0.9)
