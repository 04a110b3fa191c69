"""The runner on a real Ray cluster (head + 2 worker nodes, ``ray.cluster_utils.Cluster``):
multi-node placement, retries from checkpoints, cancellation, Optuna, packs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.cluster_utils import Cluster

from service import repository
from service.db import session_scope
from service.spec import SweepSpec
from service.vocabulary import ModelFormat
from tests.workers.conftest import Sweeps
from tests.workers.ray_cluster import WORKER_NODES
from workers.tune.engines import select_engine, sequential_engine
from workers.tune.protocol import Member, MemberEpoch, ProgressFn, StopFn, TrainJob

pytestmark = [pytest.mark.ray, pytest.mark.slow]

MEASURES = ("accuracy", "error", "sparsity", "params", "params_dense", "flops", "flops_dense")
MEASURES_ALL = (*MEASURES, "expected_flops", "expected_l0", "architecture")


def _epochs(store: Any, trial_id: int) -> list[int]:
    with session_scope(store.engine) as session:
        return [e.epoch for e in repository.list_trial_epochs(session, trial_id)]


def test_grid_sweep_runs_on_several_nodes_and_records_them(
    sweeps: Callable[..., Sweeps], ray_cluster: Cluster, db_url: str
) -> None:
    s = sweeps(url=db_url)  # SQLite and PostgreSQL
    sweep_id = s.create(lambdas=[0.1, 0.5, 1.0, 3.0])
    outcome = s.runner.run_next()
    assert outcome is not None and outcome.sweep_id == sweep_id
    assert outcome.status == "completed" and outcome.completed == 4

    rows = s.store.trials(sweep_id)
    assert [r.status for r in rows] == ["completed"] * 4
    for row in rows:
        assert row.metrics is not None and all(k in row.metrics for k in MEASURES_ALL)
        assert _epochs(s.store, row.id) == [1, 2]
    with session_scope(s.store.engine) as session:
        nodes = {repository.get_trial(session, r.id).node for r in rows}
        assert all(repository.get_trial_model(session, r.id) for r in rows)
    # Two 1-CPU worker nodes, two trials at a time: both nodes trained.
    worker_ids = {n["NodeID"][:12] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU")}
    assert len(worker_ids) == WORKER_NODES
    assert {node.split(":")[-1] for node in nodes if node} == worker_ids
    assert s.store.sweep_status(sweep_id) == "completed"


@pytest.mark.parametrize("fuse", [1, 2])
def test_eval_every_skips_test_accuracy_between_evaluations(
    sweeps: Callable[..., Sweeps], fuse: int
) -> None:
    """``training.eval_every=2`` over 5 epochs: test accuracy at epochs 2, 4 and 5 (the
    last always), null at 1 and 3; the loss and expected L0 every epoch; the measures as
    usual. One trial at a time and a fused pack alike."""
    s = sweeps()
    sweep_id = s.create(training={"epochs": 5, "eval_every": 2, "batch_size": 100}, fuse=fuse)
    outcome = s.runner.run_next()
    assert outcome is not None and outcome.status == "completed" and outcome.completed == 2
    for row in s.store.trials(sweep_id):
        with session_scope(s.store.engine) as session:
            epochs = repository.list_trial_epochs(session, row.id)
        assert [e.epoch for e in epochs] == [1, 2, 3, 4, 5]
        assert [e.epoch for e in epochs if e.accuracy is not None] == [2, 4, 5]
        assert all(e.loss is not None and e.expected_l0 is not None for e in epochs)
        assert row.metrics is not None and 0 <= row.metrics["accuracy"] <= 1
        assert row.metrics["accuracy"] == pytest.approx(epochs[-1].accuracy)


def _failing_once(log_dir: str) -> Callable[..., Any]:
    """An engine that crashes after its first epoch unless it was resumed from a checkpoint.

    Each call appends what it started from to ``log_dir/calls.jsonl`` (shared filesystem).
    """

    def engine(
        members: Sequence[Member],
        job: TrainJob,
        *,
        device: str,
        on_progress: ProgressFn,
        resume: Any | None,
        should_stop: StopFn | None = None,
    ) -> list[Any]:
        start = None if resume is None else int(resume.epoch)
        with open(Path(log_dir, "calls.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps({"trial": members[0].trial_id, "resumed_at": start}) + "\n")

        def on_progress_then_crash(records: Sequence[MemberEpoch], state: Any) -> None:
            on_progress(records, state)
            if resume is None:
                raise RuntimeError("injected failure after the first epoch")

        real = select_engine(len(members))
        return real(
            members,
            job,
            device=device,
            on_progress=on_progress_then_crash,
            resume=resume,
            should_stop=should_stop,
        )

    return engine


def test_a_trial_failing_once_is_retried_from_its_checkpoint(
    sweeps: Callable[..., Sweeps], tmp_path: Path
) -> None:
    s = sweeps(engine=_failing_once(str(tmp_path)))
    sweep_id = s.create(lambdas=[0.3], training={"epochs": 3})
    outcome = s.runner.run_next()
    assert outcome is not None and outcome.status == "completed"
    (row,) = s.store.trials(sweep_id)
    assert row.status == "completed" and row.metrics is not None
    calls = [json.loads(line) for line in Path(tmp_path, "calls.jsonl").read_text().splitlines()]
    # First attempt from scratch, the retry from the epoch-1 checkpoint (not from scratch).
    assert calls == [
        {"trial": row.id, "resumed_at": None},
        {"trial": row.id, "resumed_at": 1},
    ]
    assert _epochs(s.store, row.id) == [1, 2, 3]
    with session_scope(s.store.engine) as session:
        extra = [e.extra for e in repository.list_trial_epochs(session, row.id)]
    assert [x["resumed_at_epoch"] for x in extra if x] == [0, 1, 1]


def test_a_trial_failing_every_time_is_marked_failed(
    sweeps: Callable[..., Sweeps], tmp_path: Path
) -> None:
    def always_failing(members: Sequence[Member], job: TrainJob, **_: Any) -> list[Any]:
        raise RuntimeError(f"broken trial {members[0].lam}")

    s = sweeps(engine=always_failing, max_failures=1)
    sweep_id = s.create(lambdas=[0.3])
    outcome = s.runner.run_next()
    assert outcome is not None and outcome.status == "failed"
    (row,) = s.store.trials(sweep_id)
    assert row.status == "failed"
    with session_scope(s.store.engine) as session:
        assert "broken trial 0.3" in (repository.get_trial(session, row.id).error or "")


def test_cancel_stops_running_trials_within_seconds(sweeps: Callable[..., Sweeps]) -> None:
    s = sweeps()
    # Long trials: a wide MLP for many epochs on the synthetic set.
    sweep_id = s.create(
        model={"arch": "mlp", "hidden": [300, 100]},
        lambdas=[0.1, 1.0],
        training={"epochs": 500, "batch_size": 20},
    )
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(outcome=s.runner.run_next()))
    thread.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = s.store.trials(sweep_id)
        if sum(r.epochs_done >= 1 for r in rows) == 2:
            break
        time.sleep(0.2)
    else:
        pytest.fail("trials did not start")

    with session_scope(s.store.engine) as session:
        repository.cancel_sweep(session, sweep_id)
    cancelled_at = time.monotonic()
    thread.join(60)
    stopped_after = time.monotonic() - cancelled_at
    assert not thread.is_alive()
    assert result["outcome"].status == "cancelled"
    assert stopped_after < 15, f"runner took {stopped_after:.1f}s to stop the sweep"

    # The trial processes are gone: their CPUs are free and no more epochs arrive.
    deadline = time.monotonic() + 15
    while ray.available_resources().get("CPU", 0) < WORKER_NODES:
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.2)
    freed_after = time.monotonic() - cancelled_at
    # No epoch can arrive after this: the driver (run_next, joined above) is the only writer.
    assert {r.status for r in s.store.trials(sweep_id)} == {"cancelled"}
    assert s.store.sweep_status(sweep_id) == "cancelled"
    print(f"cancel: runner returned after {stopped_after:.1f}s, CPUs free after {freed_after:.1f}s")


def test_optuna_runs_n_trials_and_the_front_is_built(
    sweeps: Callable[..., Sweeps], db_url: str
) -> None:
    s = sweeps(url=db_url)  # SQLite and PostgreSQL
    sweep_id = s.create(
        search={"strategy": "optuna", "n_trials": 4, "sampler": "tpe", "seed": 3},
        lambdas={"min": 0.05, "max": 20.0},
        betas={"min": 0.5, "max": 0.9},
        training={"epochs": 1},
    )
    outcome = s.runner.run_next()
    assert outcome is not None and outcome.status == "completed"
    rows = s.store.trials(sweep_id)
    assert len(rows) == 4 and {r.status for r in rows} == {"completed"}
    assert all(0.05 <= r.lam <= 20.0 and 0.5 <= r.beta <= 0.9 for r in rows)
    assert len({(r.lam, r.beta) for r in rows}) == 4
    with session_scope(s.store.engine) as session:
        front = repository.pareto_front(session, sweep_id, ("accuracy", "sparsity", "flops"))
    assert front.items and {t.id for t in front.items} <= {r.id for r in rows}
    assert 0.0 <= front.hypervolume <= 1.0


def test_random_strategy_runs_its_presampled_trials(sweeps: Callable[..., Sweeps]) -> None:
    s = sweeps()
    sweep_id = s.create(
        search={"strategy": "random", "n_trials": 3, "seed": 1},
        lambdas={"min": 0.05, "max": 5.0},
        training={"epochs": 1},
    )
    before = [(r.id, r.lam, r.beta) for r in s.store.trials(sweep_id)]
    outcome = s.runner.run_next()
    assert outcome is not None and outcome.status == "completed"
    after = s.store.trials(sweep_id)
    assert [(r.id, r.lam, r.beta) for r in after] == before
    assert {r.status for r in after} == {"completed"}


@pytest.mark.parametrize("engine", ["fused", "sequential"])
def test_a_pack_trains_as_one_ray_trial_and_fans_out_to_its_rows(
    sweeps: Callable[..., Sweeps], engine: str
) -> None:
    s = sweeps(engine=None if engine == "fused" else sequential_engine)
    sweep_id = s.create(lambdas=[0.1, 0.3, 1.0, 3.0, 10.0], fuse=2)
    outcome = s.runner.run_next()
    assert outcome is not None and outcome.status == "completed" and outcome.completed == 5
    rows = s.store.trials(sweep_id)
    with session_scope(s.store.engine) as session:
        trials = [repository.get_trial(session, r.id) for r in rows]
        packs = [t.pack for t in trials]
        models = [repository.get_trial_model(session, r.id) for r in rows]
        # Every format for every member; a sequential pack's members included (each was
        # exported when it finished, and the pack's checkpoints carry those files).
        for r in rows:
            for fmt in ModelFormat:
                found = repository.get_trial_model_file(session, r.id, fmt)
                assert found is not None and found[1], (engine, r.id, fmt)
    # Packs of 2, 2 and 1 (a single-member pack needs no label); each member its own row.
    assert packs[:4] == [packs[0], packs[0], packs[2], packs[2]] and packs[0] != packs[2]
    assert packs[4] is None
    assert all(models) and len({m for m in models if m}) == 5
    for row in rows:
        assert row.metrics is not None and _epochs(s.store, row.id) == [1, 2]
        # Where and how it trained (issue 12).
        assert (row.metrics["device"], row.metrics["precision"]) == ("cpu", "fp32")
    # Members keep their own λ: the strongest one pushes its gates down the most.
    expected_l0 = [r.metrics["expected_l0"] for r in rows if r.metrics]
    assert expected_l0[-1] < expected_l0[0]


def test_auto_fuses_a_sweep_large_enough_for_full_packs(sweeps: Callable[..., Sweeps]) -> None:
    from l0models import MLPConfig, auto_pack_size

    k = auto_pack_size(MLPConfig(hidden=(300, 100)), "cpu")
    assert k > 1  # the CPU rule fuses this MLP; the test is about the runner obeying it
    s = sweeps()
    n = k * WORKER_NODES  # one full pack per 1-CPU slot
    sweep_id = s.create(
        model={"arch": "mlp", "hidden": [300, 100]},
        lambdas=[0.05 * (i + 1) for i in range(n)],
        training={"epochs": 1},
        fuse="auto",
    )
    outcome = s.runner.run_next()
    assert outcome is not None and outcome.status == "completed" and outcome.completed == n
    with session_scope(s.store.engine) as session:
        packs = [t.pack for t in repository.list_trials(session, sweep_id).items]
    assert len(set(packs)) == WORKER_NODES and None not in packs
    assert sorted(packs.count(p) for p in set(packs)) == [k] * WORKER_NODES


def _gpu_mlp_spec() -> SweepSpec:
    body = {
        "model": {"arch": "mlp", "hidden": [300, 100]},
        "dataset": "synthetic",
        "lambdas": [0.1],
        "training": {"epochs": 1},
        "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0.5},
    }
    return SweepSpec.model_validate(body)


def test_fuse_auto_probe_runs_on_a_gpu_node_when_the_driver_has_none(
    ray_cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    from workers.tune.packing import probe_pack_size_on_worker

    spec = _gpu_mlp_spec()
    job = TrainJob(spec=spec)
    # A node that advertises a GPU: the probe must be scheduled there and answer. This node's
    # torch sees no CUDA device, so its honest answer is 1 ("do not fuse"), given promptly.
    node = ray_cluster.add_node(num_cpus=0, num_gpus=1)
    try:
        caplog.set_level("INFO", logger="workers.tune.packing")
        start = time.monotonic()
        size = probe_pack_size_on_worker(job, {"cpu": 1.0, "gpu": 0.5}, timeout_s=90)
        assert size == 1 and time.monotonic() - start < 60
        assert "a GPU worker chose packs of 1" in caplog.text
    finally:
        ray_cluster.remove_node(node)


def test_fuse_auto_probe_gives_up_without_a_gpu_node(
    ray_cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    from workers.tune.packing import probe_pack_size_on_worker

    spec = _gpu_mlp_spec()
    job = TrainJob(spec=spec)
    size = probe_pack_size_on_worker(job, {"cpu": 1.0, "gpu": 0.5}, timeout_s=2)
    assert size == 1
    assert "no GPU worker answered" in caplog.text
