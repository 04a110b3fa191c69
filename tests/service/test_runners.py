"""Runner liveness in the database (issue 9): heartbeats, takeover of orphaned sweeps (a
compare-and-swap that two processes never both win), ownership, pause, the resume index."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import Engine, update

from service import repository as repo
from service.db import create_engine_for, session_scope, upgrade_database
from service.errors import ConflictError
from service.models import Runner, utcnow
from service.repository import runners
from tests.service.test_repository import make_spec


def _running_sweep(engine: Engine, runner_id: str, **spec: object) -> int:
    with session_scope(engine) as s:
        sweep_id = repo.create_sweep(s, make_spec(**spec)).id  # type: ignore[arg-type]
    with session_scope(engine) as s:
        claimed = repo.claim_next_pending_sweep(s, runner_id=runner_id)
        assert claimed is not None and claimed.id == sweep_id
    return sweep_id


def _age_heartbeat(engine: Engine, runner_id: str, seconds: float) -> None:
    with session_scope(engine) as s:
        s.execute(
            update(Runner)
            .where(Runner.id == runner_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
        )


def test_a_live_runners_sweep_is_not_taken_over_a_dead_ones_is(engine: Engine) -> None:
    with session_scope(engine) as s:
        repo.record_heartbeat(s, "a", host="h", pid=1)
        repo.record_heartbeat(s, "b", host="h", pid=2)
    sweep_id = _running_sweep(engine, "a")
    with session_scope(engine) as s:
        assert repo.take_over_orphaned_sweep(s, runner_id="b", timeout_s=60) is None
    with session_scope(engine) as s:
        repo.record_heartbeat(s, "a", host="h", pid=1)  # refreshes, keeps started_at
    _age_heartbeat(engine, "a", 61)
    with session_scope(engine) as s:
        got = repo.take_over_orphaned_sweep(s, runner_id="b", timeout_s=60)
        assert got is not None and (got.id, got.runner_id, got.status) == (sweep_id, "b", "running")
        assert repo.sweep_owner(s, sweep_id) == ("running", "b")
    with session_scope(engine) as s:  # b runs it now: nobody else gets it
        assert repo.take_over_orphaned_sweep(s, runner_id="c", timeout_s=60) is None
    # Only the runner that runs it may finish it.
    with pytest.raises(ConflictError), session_scope(engine) as s:
        repo.finish_sweep(s, sweep_id, runner_id="a")
    with session_scope(engine) as s:
        assert repo.finish_sweep(s, sweep_id, runner_id="b").status == "completed"


def test_postgresql_judges_heartbeats_by_its_own_clock_not_the_runners(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runner a's host clock is an hour slow, b's an hour fast: by their own clocks a's
    heartbeat is two hours old to b. The server's clock writes and judges it: a is alive."""
    upgrade_database(postgres_url)
    engine = create_engine_for(postgres_url)
    try:
        monkeypatch.setattr(runners, "utcnow", lambda: utcnow() - timedelta(hours=1))
        with session_scope(engine) as s:
            repo.record_heartbeat(s, "a", host="slow", pid=1)
        sweep_id = _running_sweep(engine, "a")
        monkeypatch.setattr(runners, "utcnow", lambda: utcnow() + timedelta(hours=1))
        with session_scope(engine) as s:
            repo.record_heartbeat(s, "b", host="fast", pid=2)
            assert abs((repo.database_now(s) - utcnow()).total_seconds()) < 5
            assert repo.take_over_orphaned_sweep(s, runner_id="b", timeout_s=60) is None
        _age_heartbeat(engine, "a", 61)  # a really stopped beating a minute ago
        with session_scope(engine) as s:
            got = repo.take_over_orphaned_sweep(s, runner_id="b", timeout_s=60)
            assert got is not None and (got.id, got.runner_id) == (sweep_id, "b")
    finally:
        engine.dispose()


def test_unowned_unknown_and_own_sweeps_are_orphaned(engine: Engine) -> None:
    legacy = _running_sweep(engine, "runner@old-host")  # no heartbeat row at all
    with session_scope(engine) as s:
        repo.record_heartbeat(s, "a", host="h", pid=1)
    own = _running_sweep(engine, "a")
    with session_scope(engine) as s:
        assert repo.release_sweep(s, own, "a") is True
        assert repo.release_sweep(s, own, "a") is False  # no longer a's
        assert repo.sweep_owner(s, own) == ("running", None)
    with session_scope(engine) as s:
        first = repo.take_over_orphaned_sweep(s, runner_id="a", timeout_s=60)
    with session_scope(engine) as s:
        repo.record_heartbeat(s, "b", host="h", pid=2)
        second = repo.take_over_orphaned_sweep(s, runner_id="b", timeout_s=60)
    assert first is not None and second is not None
    # The oldest first: the legacy sweep to a; the released one (no runner) to b.
    assert (first.id, first.runner_id, second.id, second.runner_id) == (legacy, "a", own, "b")
    with session_scope(engine) as s:
        # A runner's own running sweep counts as orphaned for it (it calls this only when it
        # runs no sweep: e.g. restarted with the same id, or after a failed step).
        again = repo.take_over_orphaned_sweep(s, runner_id="a", timeout_s=60)
        assert again is not None and again.id == legacy
        assert repo.take_over_orphaned_sweep(s, runner_id="c", timeout_s=60) is None


def test_finished_and_pending_sweeps_are_never_taken_over(engine: Engine) -> None:
    done = _running_sweep(engine, "gone")
    with session_scope(engine) as s:
        repo.finish_sweep(s, done)
        repo.create_sweep(s, make_spec(name="pending"))
    with session_scope(engine) as s:
        assert repo.take_over_orphaned_sweep(s, runner_id="b", timeout_s=1) is None


def test_forgetting_a_runner_frees_its_sweeps_at_once(engine: Engine) -> None:
    with session_scope(engine) as s:
        repo.record_heartbeat(s, "a", host="h", pid=1)
    sweep_id = _running_sweep(engine, "a")
    with session_scope(engine) as s:
        repo.forget_runner(s, "a")
    with session_scope(engine) as s:
        got = repo.take_over_orphaned_sweep(s, runner_id="b", timeout_s=3600)
        assert got is not None and got.id == sweep_id


TAKER = """
import json, sys, time
from service.db import create_engine_for, session_scope
from service import repository as repo
engine = create_engine_for(sys.argv[1])
with session_scope(engine) as s:  # a live runner: what it takes is not orphaned
    repo.record_heartbeat(s, sys.argv[2], host="h", pid=0)
while time.time() < float(sys.argv[3]):
    time.sleep(0.005)
got = []
while True:
    with session_scope(engine) as s:
        sweep = repo.take_over_orphaned_sweep(s, runner_id=sys.argv[2], timeout_s=60)
        if sweep is None:
            break
        got.append(sweep.id)
    with session_scope(engine) as s:  # "runs" it to the end
        repo.finish_sweep(s, got[-1], runner_id=sys.argv[2])
print(json.dumps(got))
"""


def test_two_processes_never_take_over_the_same_sweep(engine: Engine, db_url: str) -> None:
    n = 30
    ids = {_running_sweep(engine, "dead", seeds=[0]) for _ in range(n)}
    start = str(time.time() + 2.0)  # both start at the same moment
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TAKER, db_url, f"r{i}", start],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            results.append(json.loads(out))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    a, b = results
    assert not set(a) & set(b)
    assert sorted(a + b) == sorted(ids)


def test_the_resume_index_keeps_the_latest_checkpoint_per_pack(engine: Engine) -> None:
    sweep_id = _running_sweep(engine, "a")
    with session_scope(engine) as s:
        repo.remember_pack_checkpoint(s, sweep_id, [3, 1], "/c/1")
        repo.remember_pack_checkpoint(s, sweep_id, [3, 1], "/c/2")
        repo.remember_pack_checkpoint(s, sweep_id, [5], "s3://b/c/1")
        long_pack = list(range(100, 140))
        repo.remember_pack_checkpoint(s, sweep_id, long_pack, "/c/long")
    with session_scope(engine, readonly=True) as s:
        assert repo.list_pack_checkpoints(s, sweep_id) == [
            ([3, 1], "/c/2"),
            ([5], "s3://b/c/1"),
            (long_pack, "/c/long"),
        ]
    with session_scope(engine) as s:
        repo.forget_pack_checkpoint(s, sweep_id, [3, 1])
        repo.forget_pack_checkpoint(s, sweep_id, long_pack)
        repo.forget_pack_checkpoint(s, sweep_id, [9])  # unknown: nothing to do
    with session_scope(engine, readonly=True) as s:
        assert repo.list_pack_checkpoints(s, sweep_id) == [([5], "s3://b/c/1")]
