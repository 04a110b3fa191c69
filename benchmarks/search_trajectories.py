"""Real MNIST training trajectories of an L0 MLP λ grid, collected once and cached (issue 13).

The search-efficiency benchmarks (``benchmarks/search_efficiency.py``) replay these
trajectories instead of training: a tabular benchmark, as HPOBench and NAS-Bench are. Every
trial of the grid (λ × seed, β = 2/3) is trained to the last epoch and, after EVERY epoch,
both its training record (test accuracy with test-time gates, expected L0, expected FLOPs)
and the measures of its compacted model at that epoch (accuracy, FLOPs, params, sparsity,
architecture) are kept, because a trial stopped early reports its model at the stop epoch.

The λ of one seed train as one fused pack (``l0models.fused.train_fused``); each member is
copied into its single model after every epoch (``on_state``). Its compacted FLOPs and
params come from the model's cost formula at its kept architecture (what ``measure`` counts
on the compacted module, and is tested to equal), its accuracy from the trainer's test-time
evaluation; at the last epoch every member is checked against ``l0models.measure``. The
cache is one JSON file per configuration (its key is a hash of the configuration), written
after every seed, so an interrupted collection resumes at the seed it was on.

    .venv/bin/python benchmarks/search_trajectories.py [--cache PATH] [--threads 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.pareto import hypervolume

__all__ = [
    "CollectConfig",
    "Ended",
    "Outcome",
    "Replay",
    "TrajectorySet",
    "add_collect_args",
    "cache_path",
    "collect",
    "config_from_args",
    "load_or_collect",
]

FORMAT = 1
Trials = list[dict[str, Any]]


@dataclass(frozen=True)
class CollectConfig:
    """What is trained: MLP ``hidden`` on MNIST (the first ``subset`` training examples,
    None = all 60k; the 10k test set whole), the λ grid ``geomspace(lam_min, lam_max,
    n_lambdas)``, β, seeds, epochs and the optimiser's settings (Adam, batch 100,
    weight decay 5e-4, the MLP's default droprates)."""

    hidden: tuple[int, ...] = (300, 100)
    subset: int | None = 10000
    epochs: int = 12
    lam_min: float = 0.003
    lam_max: float = 1.5
    n_lambdas: int = 16
    beta: float = 2.0 / 3.0
    seeds: tuple[int, ...] = (0, 1, 2)
    lr: float = 3e-3
    batch_size: int = 100
    weight_decay: float = 5e-4

    @property
    def lambdas(self) -> list[float]:
        return [float(v) for v in np.geomspace(self.lam_min, self.lam_max, self.n_lambdas)]

    def key(self) -> str:
        blob = json.dumps({"format": FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def describe(self) -> str:
        data = "all 60k" if self.subset is None else f"first {self.subset}"
        arch = "-".join(str(h) for h in (784, *self.hidden, 10))
        return (
            f"MLP {arch} on real MNIST ({data} training examples, 10k test), {self.epochs} "
            f"epochs, Adam lr {self.lr:g}, batch {self.batch_size}, wd {self.weight_decay:g}, "
            f"beta {self.beta:.4g}, {self.n_lambdas} lambdas log-spaced in "
            f"[{self.lam_min:g}, {self.lam_max:g}], seeds {list(self.seeds)}"
        )


@dataclass
class TrajectorySet:
    """The cached trajectories: ``trials`` is a list of ``{"lam", "beta", "seed",
    "epochs": [row, ...]}`` with one row per epoch (1-based ``epoch``, ``loss``,
    ``accuracy``, ``expected_l0``, ``expected_flops``, ``seconds``, and the compacted
    model's ``m_accuracy``, ``m_flops``, ``m_params``, ``m_sparsity``,
    ``m_architecture``)."""

    config: CollectConfig
    flops_dense: int = 0
    params_dense: int = 0
    trials: list[dict[str, Any]] = field(default_factory=list)
    collect_seconds: float = 0.0
    torch_threads: int = 0
    measure_check: float = 0.0  # largest |accuracy − measure().accuracy| at the last epoch

    def seeds_done(self) -> set[int]:
        return {int(t["seed"]) for t in self.trials}

    def complete(self) -> bool:
        return self.seeds_done() >= set(self.config.seeds)

    def by_seed(self, seed: int) -> list[dict[str, Any]]:
        """The trials of one seed, in λ order."""
        return sorted((t for t in self.trials if t["seed"] == seed), key=lambda t: t["lam"])

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "config": asdict(self.config),
            "flops_dense": self.flops_dense,
            "params_dense": self.params_dense,
            "collect_seconds": self.collect_seconds,
            "torch_threads": self.torch_threads,
            "measure_check": self.measure_check,
            "trials": self.trials,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrajectorySet:
        c = dict(d["config"])
        c["hidden"], c["seeds"] = tuple(c["hidden"]), tuple(c["seeds"])
        return cls(
            config=CollectConfig(**c),
            flops_dense=int(d["flops_dense"]),
            params_dense=int(d["params_dense"]),
            trials=list(d["trials"]),
            collect_seconds=float(d.get("collect_seconds", 0.0)),
            torch_threads=int(d.get("torch_threads", 0)),
            measure_check=float(d.get("measure_check", 0.0)),
        )


def cache_path(config: CollectConfig, cache: str | os.PathLike[str] | None = None) -> Path:
    """``cache`` if it names a ``.json`` file, else ``<dir>/trajectories-<key>.json`` under
    ``cache`` or the dataset cache (``$L0SWEEP_DATA_DIR`` or ``~/.cache/l0sweep``)."""
    if cache is not None and str(cache).endswith(".json"):
        return Path(cache)
    if cache is None:
        from l0models.datasets import data_dir

        base = data_dir() / "search_trajectories"
    else:
        base = Path(cache)
    return base / f"trajectories-{config.key()}.json"


def _save(trajectories: TrajectorySet, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(trajectories.as_dict(), f)
    os.replace(tmp, path)


def _load(path: Path, config: CollectConfig) -> TrajectorySet | None:
    if not path.exists():
        return None
    stored = TrajectorySet.from_dict(json.loads(path.read_text()))
    if stored.config != config:
        raise ValueError(f"{path} holds trajectories of another configuration: {stored.config}")
    return stored


def _collect_seed(
    config: CollectConfig, seed: int, data: Any, log: Callable[[str], None]
) -> tuple[list[dict[str, Any]], int, int, float]:
    """Train the λ grid of one seed as one fused pack, measuring every member every epoch.

    Per epoch, each member is copied into its single model (``on_state``); the compacted
    model's params and FLOPs are the model's cost formula at its kept architecture
    (``model.cost(model.architecture())``, what ``measure`` counts on the compacted module
    and is tested to equal) and its accuracy is the trainer's evaluation with test-time
    gates (= the compacted model's up to float reordering), so no per-epoch compaction and
    second evaluation is paid. At the last epoch both are checked against the ``measure()``
    of ``train_fused``'s results; the largest accuracy difference is returned.
    """
    from l0models import MLPConfig, TrainSettings, build_model
    from l0models.fused import FusedState, MemberSpec, train_fused

    arch = MLPConfig(hidden=config.hidden)
    lambdas = config.lambdas
    members = [MemberSpec(lam=lam, beta=config.beta, seed=seed) for lam in lambdas]
    settings = TrainSettings(
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        weight_decay=config.weight_decay,
    )
    singles = [
        build_model(
            arch, beta=config.beta, lam=lam, weight_decay=config.weight_decay, n_train=data.n_train
        )
        for lam in lambdas
    ]
    params_dense, flops_dense = (int(v) for v in singles[0].cost(singles[0].dense_counts()))
    rows: list[list[dict[str, Any]]] = [[] for _ in members]
    clock = {"t": time.perf_counter()}

    def on_state(state: FusedState) -> None:
        trained = time.perf_counter() - clock["t"]
        for k, single in enumerate(singles):
            single.load_state_dict(state.member_state(k).model_state)
            kept = single.architecture()
            params, flops = (int(v) for v in single.cost(kept))
            record = state.histories[k][-1]
            rows[k].append(
                {
                    "epoch": record.epoch,
                    "loss": record.loss,
                    "accuracy": record.accuracy,
                    "expected_l0": record.expected_l0,
                    "expected_flops": record.expected_flops,
                    "seconds": record.seconds,
                    "m_accuracy": record.accuracy,
                    "m_flops": flops,
                    "m_params": params,
                    "m_sparsity": 1.0 - params / params_dense,
                    "m_architecture": kept,
                }
            )

        def brief(k: int) -> str:
            row = rows[k][-1]
            return (
                f"lam {lambdas[k]:.3g}: acc {row['m_accuracy']:.4f} flops "
                f"{row['m_flops'] / flops_dense:.3f} (E {row['expected_flops'] / flops_dense:.3f})"
            )

        log(
            f"  seed {seed} epoch {state.epoch}/{config.epochs} in {trained:.1f}s; {brief(0)}; "
            f"{brief(len(lambdas) // 2)}; {brief(len(lambdas) - 1)}"
        )
        clock["t"] = time.perf_counter()

    results = train_fused(arch, members, settings=settings, data=data, on_state=on_state)
    worst = 0.0
    for k, result in enumerate(results):
        m, last = result.measures, rows[k][-1]
        if (m.flops, m.params, list(m.architecture)) != (
            last["m_flops"],
            last["m_params"],
            last["m_architecture"],
        ):
            raise RuntimeError(f"member {k}: measure() {m} disagrees with the epoch row {last}")
        worst = max(worst, abs(m.accuracy - last["m_accuracy"]))
        last["m_accuracy"] = m.accuracy  # the last epoch's row is measure()'s own
    trials = [
        {"lam": lam, "beta": config.beta, "seed": seed, "epochs": r}
        for lam, r in zip(lambdas, rows, strict=True)
    ]
    return trials, flops_dense, params_dense, worst


def collect(
    config: CollectConfig,
    path: Path,
    *,
    threads: int = 2,
    log: Callable[[str], None] = print,
) -> TrajectorySet:
    """Train what ``path`` lacks of ``config`` (seed by seed, saving after each)."""
    import torch

    from l0models import load_dataset

    torch.set_num_threads(threads)
    trajectories = _load(path, config) or TrajectorySet(config=config, torch_threads=threads)
    data = load_dataset("mnist", subset=config.subset)
    for seed in config.seeds:
        if seed in trajectories.seeds_done():
            continue
        t0 = time.perf_counter()
        log(f"collecting seed {seed}: {config.describe()}")
        trials, flops_dense, params_dense, worst = _collect_seed(config, seed, data, log)
        trajectories.measure_check = max(trajectories.measure_check, worst)
        trajectories.trials.extend(trials)
        trajectories.flops_dense, trajectories.params_dense = flops_dense, params_dense
        trajectories.collect_seconds += time.perf_counter() - t0
        trajectories.torch_threads = threads
        _save(trajectories, path)
        log(f"seed {seed} done in {time.perf_counter() - t0:.0f}s -> {path}")
    return trajectories


def load_or_collect(
    config: CollectConfig,
    cache: str | os.PathLike[str] | None = None,
    *,
    threads: int = 2,
    collect_missing: bool = True,
    log: Callable[[str], None] = print,
) -> TrajectorySet:
    """The cached trajectories of ``config``, collecting the missing seeds first (unless
    ``collect_missing`` is False: then a missing cache raises FileNotFoundError)."""
    path = cache_path(config, cache)
    stored = _load(path, config)
    if stored is not None and stored.complete():
        return stored
    if not collect_missing:
        raise FileNotFoundError(f"no complete trajectories at {path}; run {__file__}")
    return collect(config, path, threads=threads, log=log)


# ---------------------------------------------------------------- replaying


@dataclass(frozen=True)
class Ended:
    """One trial's end in a search: grid index, epochs it ran, stopped early or not."""

    index: int
    epochs: int
    stopped: bool = False


@dataclass
class Outcome:
    """A strategy on one repeat: trial-epochs to the target (inf: never), final fraction of
    the full front's hypervolume, trials run and stopped, total trial-epochs."""

    to_target: float
    final_fraction: float
    trials: int
    stopped: int
    total: int


@dataclass
class Replay:
    """One repeat: the grid of one trajectory seed and what counts as the front."""

    trials: Trials
    flops_dense: int
    params_dense: int
    epochs: int
    ref: tuple[float, float]
    full_hv: float = field(init=False)

    def __post_init__(self) -> None:
        self.full_hv = self.hv([Ended(i, self.epochs) for i in range(len(self.trials))])

    def point(self, end: Ended) -> tuple[float, float]:
        row = self.trials[end.index]["epochs"][end.epochs - 1]
        return 1.0 - row["m_accuracy"], row["m_flops"] / self.flops_dense

    def hv(self, ends: Sequence[Ended]) -> float:
        return hypervolume([self.point(e) for e in ends], self.ref) if ends else 0.0

    def outcome(self, ends: Sequence[Ended], fraction: float) -> Outcome:
        spent, to_target = 0, math.inf
        for k, end in enumerate(ends):
            spent += end.epochs
            if math.isinf(to_target) and self.hv(ends[: k + 1]) >= fraction * self.full_hv:
                to_target = spent
        return Outcome(
            to_target=to_target,
            final_fraction=self.hv(ends) / self.full_hv if self.full_hv > 0 else math.nan,
            trials=len(ends),
            stopped=sum(e.stopped for e in ends),
            total=spent,
        )


def add_collect_args(parser: argparse.ArgumentParser) -> None:
    d = CollectConfig()
    parser.add_argument("--cache", default=None, help="a .json file or a directory")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--subset", type=int, default=d.subset, help="0 = all 60k")
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--lam-min", type=float, default=d.lam_min)
    parser.add_argument("--lam-max", type=float, default=d.lam_max)
    parser.add_argument("--n-lambdas", type=int, default=d.n_lambdas)
    parser.add_argument("--seeds", default=",".join(str(s) for s in d.seeds))
    parser.add_argument("--lr", type=float, default=d.lr)


def config_from_args(args: argparse.Namespace) -> CollectConfig:
    return CollectConfig(
        subset=args.subset or None,
        epochs=args.epochs,
        lam_min=args.lam_min,
        lam_max=args.lam_max,
        n_lambdas=args.n_lambdas,
        seeds=tuple(int(s) for s in args.seeds.split(",")),
        lr=args.lr,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_collect_args(parser)
    args = parser.parse_args()
    config = config_from_args(args)
    t0 = time.perf_counter()
    trajectories = load_or_collect(config, args.cache, threads=args.threads)
    path = cache_path(config, args.cache)
    print(f"{config.describe()}")
    print(
        f"{len(trajectories.trials)} trials x {config.epochs} epochs at {path} "
        f"(collection {trajectories.collect_seconds:.0f}s with {trajectories.torch_threads} "
        f"torch threads; this call {time.perf_counter() - t0:.0f}s); last epoch vs "
        f"l0models.measure: same FLOPs/params/architecture, accuracy within "
        f"{trajectories.measure_check:.1e}"
    )
    print(f"{'seed':>4} {'lambda':>8} {'acc':>7} {'flops/dense':>11} {'E flops/dense':>13} arch")
    for t in sorted(trajectories.trials, key=lambda t: (t["seed"], t["lam"])):
        last = t["epochs"][-1]
        print(
            f"{t['seed']:4d} {t['lam']:8.4g} {last['m_accuracy']:7.4f} "
            f"{last['m_flops'] / trajectories.flops_dense:11.4f} "
            f"{last['expected_flops'] / trajectories.flops_dense:13.4f} "
            f"{'-'.join(str(a) for a in last['m_architecture'])}"
        )


if __name__ == "__main__":
    main()
