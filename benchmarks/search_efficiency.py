"""Search efficiency of Pareto early stopping (issue 13), replayed on cached real trajectories.

A tabular benchmark, as HPOBench and NAS-Bench are: the real MNIST trajectories of an L0 MLP
λ grid (``benchmarks/search_trajectories.py``, every epoch's compacted model measured) are
trained once and cached; every search strategy here replays them instead of training, so
it costs seconds and all strategies see the same trials.

Part (a), "front": trial-epochs needed until the front of the finished trials, on
(accuracy ↑, FLOPs ↓) with the measured (compacted) model of each trial at the epoch it
ended, reaches 95 % of the hypervolume of the full λ grid's front (all trials to the last
epoch). Hypervolume: ``service.pareto.hypervolume`` of (error, FLOPs / dense FLOPs) against
a fixed reference point (``--ref``; default (1, 1), the API's convention, DESIGN §5).
Trial-epochs are counted in completion order: after the k-th trial ends (completed or
stopped), the cost is the epochs the first k trials ran.
Strategies, each on the λ grid of one trajectory seed, launched in a random order (seeded):

- grid: every trial to the last epoch, ``--workers`` at a time;
- ES (plain / predict): the grid with Pareto early stopping, ``workers.tune.rungs.RungBoard``
  (MO-ASHA's stopping rule on (accuracy, expected FLOPs) and (accuracy, expected sparsity)),
  simulated with W workers in epoch time: events in time order, ties by worker; ``predict``
  ranks on the predicted final expected FLOPs instead of their value at the rung;
- ASHA: Ray Tune's ``ASHAScheduler`` (same grace, η and rungs) in a real ``tune.Tuner``
  (``ray.init(address="local", num_cpus=2)``) over a trainable that replays its λ's
  trajectory, on the scalarised objective accuracy − w·(expected FLOPs / dense), for each
  ``--asha-w``;
- NSGA-II: Optuna's ``NSGAIISampler`` on (accuracy, FLOPs / dense), λ categorical over the
  grid, each trial replayed to the last epoch, one at a time.

A stopped trial reports its measured model at its stop epoch. Repeats: one per trajectory
seed (the launch order and the samplers seeded with it); medians are reported. The last
line is ``search_efficiency: front_saving=X budget_saving=Y budget_gap_pts=Z``
(front_saving = the grid's trial-epochs ÷ early stopping's, both to 95 % of the front's
hypervolume; the budget fields are part (b)'s, ``benchmarks/search_budget.py``: FLOPs ≤ 25 %
of dense, the grid's trial-epochs ÷ the budget search's and the accuracy gap in points).

    .venv/bin/python benchmarks/search_efficiency.py [--check] [--workers 4]
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import io
import logging
import math
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_budget import budget_comparison
from search_budget import report as report_budget
from search_trajectories import (
    Ended,
    Outcome,
    Replay,
    add_collect_args,
    config_from_args,
    load_or_collect,
)
from targets import Targets, add_check_flag

from workers.tune.rungs import RungBoard, predict_final_flops, rung_epochs


def grid_search(replay: Replay, order: Sequence[int]) -> list[Ended]:
    """Every trial to the end; W workers, equal lengths: they end in launch order."""
    return [Ended(i, replay.epochs) for i in order]


def early_stopping(
    replay: Replay, order: Sequence[int], *, workers: int, grace: int, eta: float, predict: bool
) -> list[Ended]:
    """The grid under ``RungBoard``, ``workers`` trials at a time, one epoch per time unit."""
    board = RungBoard(grace, eta, predict=predict)
    queue = deque(order)
    events: list[tuple[int, int, int, int]] = []  # (time, worker, index, epoch done)
    for w in range(min(workers, len(queue))):
        heapq.heappush(events, (1, w, queue.popleft(), 1))
    ended: list[Ended] = []
    while events:
        t, w, index, epoch = heapq.heappop(events)
        history = replay.trials[index]["epochs"][:epoch]
        stop = board.decide(index, history, epochs=replay.epochs, params_dense=replay.params_dense)
        if stop or epoch == replay.epochs:
            ended.append(Ended(index, epoch, stopped=stop and epoch < replay.epochs))
            if queue:
                heapq.heappush(events, (t + 1, w, queue.popleft(), 1))
        else:
            heapq.heappush(events, (t + 1, w, index, epoch + 1))
    return ended


def nsga2_search(replay: Replay, seed: int, *, max_trials: int, fraction: float) -> list[Ended]:
    """Optuna NSGA-II, λ categorical over the grid, each trial to the end, until the
    target hypervolume or ``max_trials``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.NSGAIISampler(population_size=10, seed=seed)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    dist: dict[str, optuna.distributions.BaseDistribution] = {
        "index": optuna.distributions.CategoricalDistribution(range(len(replay.trials)))
    }
    ended: list[Ended] = []
    for _ in range(max_trials):
        trial = study.ask(dist)
        end = Ended(int(trial.params["index"]), replay.epochs)
        error, flops = replay.point(end)
        study.tell(trial, [1.0 - error, flops])
        ended.append(end)
        if replay.hv(ended) >= fraction * replay.full_hv:
            break
    return ended


def _asha_trainable(config: dict[str, Any], replay_rows: list[list[dict[str, Any]]]) -> None:
    from ray import tune

    rows = replay_rows[config["index"]]
    for row in rows:
        time.sleep(config["epoch_s"])
        tune.report(
            {
                "objective": row["accuracy"] - config["w"] * row["expected_flops_frac"],
                "epoch": row["epoch"],
                "wall": time.time(),
            }
        )


def asha_search(
    replay: Replay,
    order: Sequence[int],
    *,
    w: float,
    workers: int,
    grace: int,
    eta: float,
    epoch_s: float,
) -> list[Ended]:
    """Ray Tune's ASHAScheduler over replayed trials, in a real Tuner (Ray started by the
    caller); trials end in the order of their last report."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    rows = [
        [
            {**r, "expected_flops_frac": r["expected_flops"] / replay.flops_dense}
            for r in t["epochs"]
        ]
        for t in replay.trials
    ]
    scheduler = ASHAScheduler(
        time_attr="training_iteration",
        max_t=replay.epochs,
        grace_period=grace,
        reduction_factor=eta,
        brackets=1,
    )
    with tempfile.TemporaryDirectory() as storage:
        tuner = tune.Tuner(
            tune.with_resources(
                tune.with_parameters(_asha_trainable, replay_rows=rows),
                {"cpu": 2.0 / workers},
            ),
            param_space={
                "index": tune.grid_search(list(order)),
                "w": w,
                "epoch_s": epoch_s,
            },
            tune_config=tune.TuneConfig(
                metric="objective",
                mode="max",
                scheduler=scheduler,
                max_concurrent_trials=workers,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(storage_path=storage, verbose=0),
        )
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            grid = tuner.fit()
        finals = []
        for k in range(len(grid)):
            result = grid[k]
            metrics = result.metrics or {}
            epoch = int(metrics.get("epoch", 0))
            index = int((result.config or {})["index"])
            finals.append((float(metrics.get("wall", 0.0)), index, epoch))
    finals.sort()
    return [Ended(i, e, stopped=e < replay.epochs) for _, i, e in finals if e > 0]


def prediction_errors(replay: Replay, rungs: Sequence[int]) -> tuple[float, float]:
    """Median |error| / dense of the final expected FLOPs, at the rungs: prediction, last
    value."""
    pred, last = [], []
    for t in replay.trials:
        curve = [(r["epoch"], r["expected_flops"]) for r in t["epochs"]]
        final = curve[-1][1]
        for rung in rungs:
            known = curve[:rung]
            pred.append(abs(predict_final_flops(known, replay.epochs) - final))
            last.append(abs(known[-1][1] - final))
    dense = replay.flops_dense
    return statistics.median(pred) / dense, statistics.median(last) / dense


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def _fmt(v: float) -> str:
    return "never" if math.isinf(v) else ("nan" if math.isnan(v) else f"{v:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_collect_args(parser)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--grace", type=int, default=1)
    parser.add_argument("--eta", type=float, default=3.0)
    parser.add_argument("--fraction", type=float, default=0.95)
    parser.add_argument(
        "--ref", default="1,1", help="reference point: error,flops/dense (DESIGN §5's (1, 1))"
    )
    parser.add_argument("--asha-w", default="0.01,0.1")
    parser.add_argument("--asha-epoch-s", type=float, default=0.05)
    parser.add_argument("--nsga2-max-trials", type=int, default=60)
    parser.add_argument("--no-ray", action="store_true", help="skip Ray Tune's ASHA")
    parser.add_argument("--no-collect", action="store_true", help="fail without a cache")
    add_check_flag(parser)
    args = parser.parse_args()
    targets = Targets.from_args(args)
    logging.getLogger("ray").setLevel(logging.ERROR)

    config = config_from_args(args)
    data = load_or_collect(
        config, args.cache, threads=args.threads, collect_missing=not args.no_collect
    )
    ref_e, ref_f = (float(v) for v in args.ref.split(","))
    rungs = rung_epochs(args.grace, args.eta, config.epochs)
    print("Tabular benchmark: every strategy replays the same cached real trajectories")
    print(f"  {config.describe()}")
    print(
        f"  collected in {data.collect_seconds:.0f}s; W={args.workers} workers, "
        f"grace {args.grace}, eta {args.eta:g}, rungs {rungs}; target {args.fraction:.0%} "
        f"of the full grid front's hypervolume on (error, FLOPs/dense), ref ({ref_e:g}, {ref_f:g})"
    )
    results: dict[str, list[Outcome]] = {}
    predict_err: list[tuple[float, float]] = []
    sensitivity: dict[tuple[int, float, int, bool], list[Outcome]] = {}
    changed: list[int] = []  # trials whose stop epoch the prediction changes, per repeat

    def add(name: str, replay: Replay, ends: list[Ended]) -> None:
        results.setdefault(name, []).append(replay.outcome(ends, args.fraction))

    asha_ws = [float(v) for v in args.asha_w.split(",")] if not args.no_ray else []
    if asha_ws:
        import ray

        ray.init(  # a Ray of its own, whatever cluster runs beside it
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    t0 = time.perf_counter()
    for seed in config.seeds:
        replay = Replay(
            data.by_seed(seed), data.flops_dense, data.params_dense, config.epochs, (ref_e, ref_f)
        )
        order = [int(i) for i in np.random.default_rng(seed).permutation(len(replay.trials))]
        add("grid", replay, grid_search(replay, order))
        stop_epochs = []
        for predict in (False, True):
            ends = early_stopping(
                replay,
                order,
                workers=args.workers,
                grace=args.grace,
                eta=args.eta,
                predict=predict,
            )
            add("ES predict" if predict else "ES plain", replay, ends)
            stop_epochs.append({e.index: e.epochs for e in ends})
        changed.append(sum(stop_epochs[0][i] != stop_epochs[1][i] for i in stop_epochs[0]))
        for w in asha_ws:
            ends = asha_search(
                replay,
                order,
                w=w,
                workers=args.workers,
                grace=args.grace,
                eta=args.eta,
                epoch_s=args.asha_epoch_s,
            )
            add(f"ASHA w={w:g}", replay, ends)
        add(
            "NSGA-II",
            replay,
            nsga2_search(replay, seed, max_trials=args.nsga2_max_trials, fraction=args.fraction),
        )
        predict_err.append(prediction_errors(replay, rungs))
        for g, eta, w in SENSITIVITY:
            for predict in (False, True):
                ends = early_stopping(replay, order, workers=w, grace=g, eta=eta, predict=predict)
                key = (g, eta, w, predict)
                sensitivity.setdefault(key, []).append(replay.outcome(ends, args.fraction))
    if asha_ws:
        import ray

        ray.shutdown()
    print(f"  replays took {time.perf_counter() - t0:.0f}s")
    _report_sensitivity(sensitivity)
    print(f"  trials whose stop epoch the prediction changes, per repeat: {changed}")
    print("\nPart (b), budget-targeted search (benchmarks/search_budget.py):")
    budget = budget_comparison(data)
    report_budget(budget, targets)
    _report(args, results, predict_err, targets, budget)


# (grace, η, W) of the secondary table: how the saving depends on the rule's settings.
SENSITIVITY = [
    (1, 3.0, 4),
    (1, 3.0, 1),
    (1, 3.0, 8),
    (1, 2.0, 4),
    (1, 1.5, 4),
    (3, 2.0, 4),
    (3, 1.5, 4),
    (6, 2.0, 4),
]


def _report_sensitivity(sensitivity: dict[tuple[int, float, int, bool], list[Outcome]]) -> None:
    print(
        "\nES settings (medians of repeats; trial-epochs to the target, final HV %, "
        "trials completed of the grid):"
    )
    print(
        f"{'grace':>5} {'eta':>4} {'W':>3} {'plain':>7} {'HV %':>6} {'done':>5} "
        f"{'predict':>8} {'HV %':>6} {'done':>5}"
    )
    for g, eta, w in SENSITIVITY:
        cells = []
        for predict in (False, True):
            outs = sensitivity[(g, eta, w, predict)]
            cells.append(
                f"{_fmt(_median([o.to_target for o in outs])):>7} "
                f"{100 * _median([o.final_fraction for o in outs]):6.1f} "
                f"{_median([o.trials - o.stopped for o in outs]):5.0f}"
            )
        print(f"{g:5d} {eta:4g} {w:3d} {cells[0]} {' ' + cells[1]}")


def _report(
    args: argparse.Namespace,
    results: dict[str, list[Outcome]],
    predict_err: list[tuple[float, float]],
    targets: Targets,
    budget: dict[str, Any],
) -> None:
    print(
        f"\n{'strategy':<14} {'to target (median)':>18} {'per repeat':>18} {'final HV %':>10} "
        f"{'trials':>6} {'stopped':>7} {'total':>6}"
    )
    med: dict[str, float] = {}
    for name, outs in results.items():
        med[name] = _median([o.to_target for o in outs])
        per = "/".join(_fmt(o.to_target) for o in outs)
        print(
            f"{name:<14} {_fmt(med[name]):>18} {per:>18} "
            f"{100 * _median([o.final_fraction for o in outs]):10.1f} "
            f"{_median([o.trials for o in outs]):6.0f} {_median([o.stopped for o in outs]):7.0f} "
            f"{_median([o.total for o in outs]):6.0f}"
        )

    def saving(name: str) -> float:
        """Median over repeats of grid ÷ strategy trial-epochs to the target (0: never)."""
        return _median(
            [
                0.0 if math.isinf(o.to_target) else g.to_target / o.to_target
                for g, o in zip(results["grid"], results[name], strict=True)
            ]
        )

    plain, pred = saving("ES plain"), saving("ES predict")
    chosen = "ES predict" if pred > plain else "ES plain"
    front_saving = max(plain, pred)
    pe, le = (_median([p[i] for p in predict_err]) for i in (0, 1))
    print(
        f"\nfinal expected FLOPs from the rungs, median |error| / dense: prediction {pe:.4f}, "
        f"last value {le:.4f}"
    )
    print(
        f"front saving (grid ÷ ES trial-epochs to the target, median of repeats): plain "
        f"{plain:.2f}x, predict {pred:.2f}x -> {chosen} "
        f"({'prediction beats' if pred > plain else 'prediction does not beat'} the plain rule)"
    )
    print(f"front_saving >= 3: {targets.at_least('front_saving', front_saving, 3.0)}")
    es = med[chosen]
    asha = [n for n in results if n.startswith("ASHA")]
    rivals = ([min(asha, key=lambda n: med[n])] if asha else []) + ["NSGA-II"]
    for name in rivals:
        ok = not math.isinf(es) and es < med[name]
        verdict = targets.at_least(f"{chosen} beats {name}", float(ok), 1.0)
        print(
            f"{chosen} ({_fmt(es)}) fewer trial-epochs to the target than {name} "
            f"({_fmt(med[name])}): {verdict}"
        )
    if targets.missed:  # said here, so that the summary stays the last line of the output
        print(f"targets missed: {', '.join(targets.missed)}")
    saving_b, gap_b = (
        math.nan if budget[k] is None else budget[k] for k in ("budget_saving", "budget_gap_pts")
    )
    print(
        f"search_efficiency: front_saving={front_saving:.2f} budget_saving={saving_b:.2f} "
        f"budget_gap_pts={gap_b:.2f}",
        flush=True,
    )
    if targets.check and targets.missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
