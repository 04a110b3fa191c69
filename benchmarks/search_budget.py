"""Budget-targeted search vs the full grid vs Optuna TPE (issue 13, benchmark part (b)).

The question: "the most accurate model with FLOPs ≤ 25 % of dense". Three ways to answer it,
replayed on the cached real-MNIST trajectories of ``benchmarks/search_trajectories.py`` (a
tabular benchmark: every trial of the λ grid was trained once, with every epoch's record and
compacted-model measures kept, so a method "trains" a trial by reading it):

(i) the budget search (``workers.tune.budget.BudgetPlanner``, the planner the runner uses):
    short probes, the boundary bracketed and bisected, then finals to the end. Its λ are
    snapped to the cached grid (``grid=``: nearest in log; finals upwards), so it can only
    pick grid λ, and bisection ends when the bracket's two λ are grid neighbours. A probe
    reads the first ``stop_at`` epoch records; a final reads the measured model at the last
    epoch;
(ii) the full grid: every λ to the end; its best model within the budget is the reference;
(iii) Optuna TPE with a constraint (measured FLOPs − budget ≤ 0: ``Trial.set_constraint``,
    which replaced ``TPESampler(constraints_func=...)`` in Optuna 5), λ categorical over
    the grid, one objective (the final measured accuracy), every trial replayed to the end:
    its best at the budget search's trial-epochs, and the trial-epochs it needs to come
    within ``tolerance`` points of the grid's best (a repeated λ counts again: a real run
    would train it again).

One repeat per cached seed (≥ 3), medians over repeats. ``budget_comparison`` is what
``benchmarks/search_efficiency.py`` calls for its ``budget_saving`` and ``budget_gap_pts``.

    .venv/bin/python benchmarks/search_budget.py [--n-trials 8] [--fraction 0.25] [--check]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from search_trajectories import (  # noqa: E402
    TrajectorySet,
    add_collect_args,
    config_from_args,
    load_or_collect,
)
from targets import Targets, add_check_flag  # noqa: E402

from workers.tune.budget import BudgetPlanner, Predictor  # noqa: E402

__all__ = ["budget_comparison", "replay_budget", "replay_tpe"]

RECORD_FIELDS = ("epoch", "loss", "accuracy", "expected_l0", "expected_flops", "seconds")


def _final(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    last = rows[-1]
    return {
        "accuracy": float(last["m_accuracy"]),
        "flops": float(last["m_flops"]),
        "params": float(last["m_params"]),
        "sparsity": float(last["m_sparsity"]),
    }


def _by_lam(trials: Sequence[Mapping[str, Any]]) -> dict[float, list[Mapping[str, Any]]]:
    return {float(t["lam"]): list(t["epochs"]) for t in trials}


def grid_best(
    trials: Sequence[Mapping[str, Any]], budget: float
) -> tuple[float, Mapping[str, float]] | None:
    """(λ, final measures) of the most accurate grid model with FLOPs ≤ ``budget``."""
    finals = [(lam, _final(rows)) for lam, rows in _by_lam(trials).items()]
    ok = [(lam, m) for lam, m in finals if m["flops"] <= budget]
    return max(ok, key=lambda x: (x[1]["accuracy"], -x[0])) if ok else None


def replay_budget(
    trials: Sequence[Mapping[str, Any]],
    *,
    budget: float,
    flops_dense: float,
    epochs: int,
    n_trials: int,
    probe_epochs: int | None = None,
    predictor: Predictor | None = None,
) -> dict[str, Any]:
    """The budget search on one seed's cached trials; all ready proposals run at once."""
    rows_of = _by_lam(trials)
    grid = sorted(rows_of)
    plan = BudgetPlanner(
        "max_flops",
        budget,
        (grid[0], grid[-1]),
        epochs,
        n_trials,
        dense=flops_dense,
        probe_epochs=probe_epochs,
        predictor=predictor,
        grid=grid,
    )
    issued = []
    while not plan.done:
        batch = []
        while (p := plan.next()) is not None:
            batch.append(p)
        if not batch:
            raise RuntimeError("the planner waits with nothing in flight")
        for p in batch:
            rows = rows_of[p.lam]
            issued.append((p.kind, p.lam))
            if p.kind == "probe":
                stop = p.stop_at or epochs
                history = [{k: r[k] for k in RECORD_FIELDS} for r in rows[:stop]]
                plan.observe_probe(p.lam, history)
            else:
                plan.observe_final(p.lam, _final(rows))
    best = plan.best()
    return {
        "trial_epochs": plan.trial_epochs,
        "trials": len(issued),
        "issued": issued,
        "lam": best[0] if best else None,
        "accuracy": float(best[1]["accuracy"]) if best else None,
        "flops": float(best[1]["flops"]) if best else None,
        "note": plan.note,
    }


def replay_tpe(
    trials: Sequence[Mapping[str, Any]],
    *,
    budget: float,
    epochs: int,
    max_trials: int,
    seed: int,
) -> list[tuple[float, Mapping[str, float]]]:
    """Optuna TPE (constraint: FLOPs − budget ≤ 0) over the λ grid; the replayed
    (λ, final measures) of each of its ``max_trials`` trials, in order."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows_of = _by_lam(trials)
    grid = sorted(rows_of)

    # Optuna 5 replaced TPESampler(constraints_func=...) by Trial.set_constraint (same
    # rule: feasible when every constraint value is <= 0).
    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    out: list[tuple[float, Mapping[str, float]]] = []
    for _ in range(max_trials):
        trial = study.ask({"lam": optuna.distributions.CategoricalDistribution(grid)})
        lam = float(trial.params["lam"])
        m = _final(rows_of[lam])
        trial.set_constraint("flops", m["flops"] - budget)
        study.tell(trial, m["accuracy"])
        out.append((lam, m))
    return out


def _tpe_run_summary(
    runs: Sequence[tuple[float, Mapping[str, float]]],
    *,
    budget: float,
    same_trials: int,
    goal: float,
) -> tuple[float | None, int | None]:
    """(best feasible accuracy after ``same_trials`` trials, trials until one reaches
    ``goal``) of one TPE run."""
    best_at: list[float | None] = []
    best: float | None = None
    for _, m in runs:
        if m["flops"] <= budget:
            best = m["accuracy"] if best is None else max(best, m["accuracy"])
        best_at.append(best)
    reach = next((i + 1 for i, b in enumerate(best_at) if b is not None and b >= goal), None)
    return (best_at[same_trials - 1] if same_trials else None), reach


def _tpe_summary(
    trials: Sequence[Mapping[str, Any]],
    *,
    budget: float,
    epochs: int,
    same_epochs: int,
    reference: float,
    tolerance_pts: float,
    max_trials: int,
    seeds: Sequence[int],
) -> dict[str, Any]:
    """TPE on one repeat: medians over its sampler ``seeds`` (one run is luck: a first
    random trial may land on the answer)."""
    same_trials = max(0, same_epochs // epochs)
    runs = [
        _tpe_run_summary(
            replay_tpe(trials, budget=budget, epochs=epochs, max_trials=max_trials, seed=s),
            budget=budget,
            same_trials=same_trials,
            goal=reference - tolerance_pts / 100,
        )
        for s in seeds
    ]
    reach = _median([r for _, r in runs])
    return {
        "same_epochs_trials": same_trials,
        # a run with no model within budget yet counts as accuracy 0
        "same_epochs_accuracy": _median([a if a is not None else 0.0 for a, _ in runs]),
        "same_epochs_found": sum(a is not None for a, _ in runs),
        "trials_to_reach": reach,
        "epochs_to_reach": None if reach is None else reach * epochs,
        "runs": len(runs),
    }


def _median(values: Sequence[float | None]) -> float | None:
    """Median; a missing value (None) counts as worst (+inf), and a median that is one is None."""
    filled = [float("inf") if v is None else float(v) for v in values]
    m = statistics.median(filled) if filled else float("inf")
    return None if m == float("inf") else m


def budget_comparison(
    trajectories: TrajectorySet,
    *,
    fraction: float = 0.25,
    n_trials: int = 8,
    probe_epochs: int | None = None,
    tpe_max_trials: int = 60,
    tpe_seeds: int = 10,
    tolerance_pts: float = 0.3,
    predictor: Predictor | None = None,
) -> dict[str, Any]:
    """Budget search vs grid vs TPE with FLOPs ≤ ``fraction`` of dense, one repeat per
    cached seed; medians over repeats.

    Returns ``budget_saving`` (grid ÷ budget trial-epochs), ``budget_gap_pts`` (grid best
    within budget − budget search, accuracy points), the trial-epochs and accuracies behind
    them, TPE's figures (``tpe_*``), ``budget_beats_tpe`` and ``per_seed`` details.
    """
    config = trajectories.config
    epochs = config.epochs
    flops_dense = float(trajectories.flops_dense)
    budget = fraction * flops_dense
    per_seed: list[dict[str, Any]] = []
    for seed in sorted(trajectories.seeds_done()):
        trials = trajectories.by_seed(seed)
        reference = grid_best(trials, budget)
        grid_epochs = len(trials) * epochs
        mine = replay_budget(
            trials,
            budget=budget,
            flops_dense=flops_dense,
            epochs=epochs,
            n_trials=n_trials,
            probe_epochs=probe_epochs,
            predictor=predictor,
        )
        ref_acc = float(reference[1]["accuracy"]) if reference else None
        gap = None
        if ref_acc is not None and mine["accuracy"] is not None:
            gap = 100 * (ref_acc - mine["accuracy"])
        tpe = _tpe_summary(
            trials,
            budget=budget,
            epochs=epochs,
            same_epochs=mine["trial_epochs"],
            reference=ref_acc if ref_acc is not None else 1.0,
            tolerance_pts=tolerance_pts,
            max_trials=tpe_max_trials,
            seeds=[1000 * seed + k for k in range(tpe_seeds)],
        )
        per_seed.append(
            {
                "seed": seed,
                "grid_trial_epochs": grid_epochs,
                "grid_lam": reference[0] if reference else None,
                "grid_accuracy": ref_acc,
                "budget": mine,
                "budget_saving": grid_epochs / max(1, mine["trial_epochs"]),
                "budget_gap_pts": gap,
                "tpe": tpe,
            }
        )
    budget_epochs = _median([s["budget"]["trial_epochs"] for s in per_seed])
    tpe_reach = _median([s["tpe"]["epochs_to_reach"] for s in per_seed])
    return {
        "fraction": fraction,
        "n_trials": n_trials,
        "epochs": epochs,
        "grid_size": len(config.lambdas),
        "repeats": len(per_seed),
        "budget_saving": _median([s["budget_saving"] for s in per_seed]),
        "budget_gap_pts": _median([s["budget_gap_pts"] for s in per_seed]),
        "budget_trial_epochs": budget_epochs,
        "budget_accuracy": _median([s["budget"]["accuracy"] for s in per_seed]),
        "grid_trial_epochs": _median([s["grid_trial_epochs"] for s in per_seed]),
        "grid_accuracy": _median([s["grid_accuracy"] for s in per_seed]),
        "tpe_same_epochs_accuracy": _median([s["tpe"]["same_epochs_accuracy"] for s in per_seed]),
        "tpe_epochs_to_reach": tpe_reach,
        "budget_beats_tpe": budget_epochs is not None
        and (tpe_reach is None or budget_epochs < tpe_reach),
        "per_seed": per_seed,
    }


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def report(result: Mapping[str, Any], targets: Targets) -> None:
    print(
        f"budget: FLOPs <= {result['fraction']:.0%} of dense; budget search n_trials "
        f"{result['n_trials']}; grid {result['grid_size']} lambdas x {result['epochs']} epochs; "
        f"{result['repeats']} repeats (the cached seeds)"
    )
    print(
        f"{'seed':>4} | {'grid lam':>8} {'acc':>7} {'t-ep':>5} | {'budget lam':>10} {'acc':>7} "
        f"{'t-ep':>5} {'trials':>6} {'gap pts':>7} | {'TPE acc@same':>12} {'found':>5} "
        f"{'t-ep to reach':>13}"
    )
    for s in result["per_seed"]:
        b, t = s["budget"], s["tpe"]
        print(
            f"{s['seed']:4d} | {_fmt(s['grid_lam'], '8.4g')} {_fmt(s['grid_accuracy'], '7.4f')} "
            f"{s['grid_trial_epochs']:5d} | {_fmt(b['lam'], '10.4g')} "
            f"{_fmt(b['accuracy'], '7.4f')} "
            f"{b['trial_epochs']:5d} {b['trials']:6d} {_fmt(s['budget_gap_pts'], '7.2f')} | "
            f"{_fmt(t['same_epochs_accuracy'], '12.4f')} "
            f"{t['same_epochs_found']:>2d}/{t['runs']:<2d} "
            f"{_fmt(t['epochs_to_reach'], '13.0f')}"
        )
        print(f"       budget trials: {', '.join(f'{k} {lam:.4g}' for k, lam in b['issued'])}")
        if b["note"]:
            print(f"       note: {b['note']}")
    saving, gap = result["budget_saving"], result["budget_gap_pts"]
    print(
        f"medians: budget {_fmt(result['budget_trial_epochs'], '.0f')} trial-epochs, accuracy "
        f"{_fmt(result['budget_accuracy'], '.4f')}; grid {_fmt(result['grid_trial_epochs'], '.0f')}"
        f" trial-epochs, accuracy {_fmt(result['grid_accuracy'], '.4f')}; TPE at the same "
        f"trial-epochs {_fmt(result['tpe_same_epochs_accuracy'], '.4f')}, trial-epochs to come "
        f"within 0.3 pts of the grid best {_fmt(result['tpe_epochs_to_reach'], '.0f')}"
    )
    print(
        f"budget_saving {_fmt(saving, '.2f')} (target >= 3: "
        f"{targets.at_least('budget_saving', saving or 0.0, 3.0)}); budget_gap_pts "
        f"{_fmt(gap, '.2f')} (target <= 0.3: "
        f"{targets.at_most('budget_gap_pts', float('inf') if gap is None else gap, 0.3)}); "
        f"budget beats TPE on trial-epochs: "
        f"{targets.at_least('budget_beats_tpe', float(result['budget_beats_tpe']), 1.0)}"
    )
    print(
        f"search_budget: budget_saving={_fmt(saving, '.2f')} budget_gap_pts={_fmt(gap, '.2f')} "
        f"tpe_epochs_to_reach={_fmt(result['tpe_epochs_to_reach'], '.0f')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_collect_args(parser)
    parser.add_argument("--fraction", type=float, default=0.25, help="FLOPs budget / dense")
    parser.add_argument("--n-trials", type=int, default=8, help="budget search trials")
    parser.add_argument("--probe-epochs", type=int, default=None)
    parser.add_argument("--tpe-max-trials", type=int, default=60)
    parser.add_argument("--tpe-seeds", type=int, default=10, help="TPE runs per repeat")
    parser.add_argument(
        "--collect", action="store_true", help="train the trajectories if they are not cached"
    )
    add_check_flag(parser)
    args = parser.parse_args()
    targets = Targets.from_args(args)
    trajectories = load_or_collect(
        config_from_args(args), args.cache, threads=args.threads, collect_missing=args.collect
    )
    print(trajectories.config.describe())
    result = budget_comparison(
        trajectories,
        fraction=args.fraction,
        n_trials=args.n_trials,
        probe_epochs=args.probe_epochs,
        tpe_max_trials=args.tpe_max_trials,
        tpe_seeds=args.tpe_seeds,
    )
    report(result, targets)
    targets.finish()


if __name__ == "__main__":
    main()
