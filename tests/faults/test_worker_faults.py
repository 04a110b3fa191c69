"""(c) A trial's Ray worker process is SIGKILLed: the trial is retried from its checkpoint
and completes. (e) The checkpoint a retry would resume from is replaced by a pickle that
runs code on load: it is refused (nothing runs), the trial falls back to the checkpoint
before it and completes. Both on the shared Ray cluster with an in-process runner, on
PostgreSQL (the database plays no part in these faults; SQLite runs the same code path in
tests/workers)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from service import repository
from service.db import session_scope
from tests.faults.conftest import InProcessRunner, create_sweep
from tests.faults.support import assert_each_trial_completed_once, snapshot, wait_for
from workers.tune.checkpoints import STATE_FILE
from workers.tune.engines import select_engine
from workers.tune.protocol import Member, MemberEpoch, ProgressFn, StopFn, TrainJob
from workers.tune.runner import SweepOutcome

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.postgres]

EPOCHS = 6


def _attempts(log_dir: Path) -> list[dict[str, Any]]:
    path = log_dir / "attempts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _recording(log_dir: str, gate_epoch: int | None = None) -> Callable[..., Any]:
    """The real engine, recording each attempt (trial, pid, resumed epoch) in
    ``log_dir/attempts.jsonl``; with ``gate_epoch``, the first attempt announces that epoch's
    checkpoint (``ready``), waits for the test (``tampered``) and then fails."""

    def engine(
        members: Sequence[Member],
        job: TrainJob,
        *,
        device: str,
        on_progress: ProgressFn,
        resume: Any | None,
        should_stop: StopFn | None = None,
    ) -> list[Any]:
        first = resume is None
        attempt = {"trial": members[0].trial_id, "pid": os.getpid(), "resumed_at": None}
        if resume is not None:
            attempt["resumed_at"] = int(resume.epoch)
        with open(Path(log_dir, "attempts.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(attempt) + "\n")

        def progress(records: Sequence[MemberEpoch], state: Any) -> None:
            on_progress(records, state)
            if first and gate_epoch is not None and max(r.epoch for r in records) == gate_epoch:
                Path(log_dir, "ready").touch()
                deadline = time.monotonic() + 120
                while not Path(log_dir, "tampered").exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                raise RuntimeError("injected failure: retry from the tampered checkpoint")

        real = select_engine(len(members))
        return list(
            real(
                members,
                job,
                device=device,
                on_progress=progress,
                resume=resume,
                should_stop=should_stop,
            )
        )

    return engine


def _run_in_thread(r: InProcessRunner) -> tuple[threading.Thread, dict[str, SweepOutcome]]:
    result: dict[str, SweepOutcome] = {}

    def run() -> None:
        outcome = r.runner.run_next()
        if outcome is not None:
            result["outcome"] = outcome

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def test_c_a_killed_worker_process_is_retried_from_its_checkpoint(
    runner_on: Callable[..., InProcessRunner], postgres_url: str, tmp_path: Path
) -> None:
    logs = tmp_path / "attempts"
    logs.mkdir()
    r = runner_on(postgres_url, engine=_recording(str(logs)))
    # Small batches: epochs long enough to kill the process in the middle of the trial.
    sweep_id = create_sweep(
        r.store.engine, lambdas=[0.3], training={"epochs": EPOCHS, "batch_size": 40}
    )
    thread, result = _run_in_thread(r)

    def two_epochs_in() -> int | None:
        done = [t["epochs_done"] for t in snapshot(r.store.engine, sweep_id).values()]
        attempts = _attempts(logs)
        return attempts[0]["pid"] if done and done[0] >= 2 and attempts else None

    pid = wait_for(two_epochs_in, 180, "two epochs of the trial")
    os.kill(pid, signal.SIGKILL)
    thread.join(240)
    assert not thread.is_alive()
    assert result["outcome"].status == "completed"

    attempts = _attempts(logs)
    assert len(attempts) == 2 and attempts[1]["pid"] != pid
    resumed_at = attempts[1]["resumed_at"]
    assert resumed_at is not None and resumed_at >= 2  # from its checkpoint, not scratch
    assert_each_trial_completed_once(r.store.engine, sweep_id, EPOCHS)
    (trial,) = snapshot(r.store.engine, sweep_id).values()
    assert trial["extra"][1]["resumed_at_epoch"] == 0
    assert trial["extra"][EPOCHS]["resumed_at_epoch"] == resumed_at


class _RunsCode:
    """Unpickling this runs a shell command: what an attacker would put in storage."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_e_a_checkpoint_that_would_run_code_is_refused_and_the_trial_recovers(
    runner_on: Callable[..., InProcessRunner], postgres_url: str, tmp_path: Path
) -> None:
    gate = 3
    logs = tmp_path / "attempts"
    logs.mkdir()
    r = runner_on(postgres_url, engine=_recording(str(logs), gate_epoch=gate))
    sweep_id = create_sweep(r.store.engine, lambdas=[0.3], training={"epochs": EPOCHS})
    thread, result = _run_in_thread(r)

    def latest_checkpoint() -> str | None:
        # The driver has registered the gate epoch's checkpoint: it is what a retry loads.
        if not (logs / "ready").exists():
            return None
        with session_scope(r.store.engine, readonly=True) as session:
            entries = repository.list_pack_checkpoints(session, sweep_id)
        for _ids, path in entries:
            meta = json.loads(Path(path, "pack_meta.json").read_text())
            if max(rec["epoch"] for rec in meta["records"]) == gate:
                return path
        return None

    checkpoint = wait_for(latest_checkpoint, 180, f"the epoch-{gate} checkpoint")
    marker = tmp_path / "code-ran"
    torch.save(
        {"format": "l0sweep-pack-state/1", "state": _RunsCode(marker)}, Path(checkpoint, STATE_FILE)
    )
    (logs / "tampered").touch()
    thread.join(240)
    assert not thread.is_alive()
    assert result["outcome"].status == "completed"
    assert not marker.exists(), "the tampered checkpoint ran code"

    attempts = _attempts(logs)
    # Refused, the retry resumed from the checkpoint before it.
    assert [a["resumed_at"] for a in attempts] == [None, gate - 1]
    assert_each_trial_completed_once(r.store.engine, sweep_id, EPOCHS)
    (trial,) = snapshot(r.store.engine, sweep_id).values()
    refused = trial["extra"][EPOCHS].get("checkpoints_refused")
    assert refused and "UnpicklingError" in refused[0], trial["extra"][EPOCHS]
    assert trial["extra"][EPOCHS]["resumed_at_epoch"] == gate - 1
