"""(a) The database goes away for 20 s in the middle of a real sweep, then comes back.

A PostgreSQL server of the test's own (``initdb`` + ``pg_ctl``, password auth) is stopped
while both trials train. The runner (in this process, driving the shared Ray cluster)
queues the results; nothing fails. The real API (``l0sweep serve --no-runner``, a uvicorn
subprocess) answers 503 with ``Retry-After`` during the outage and 200 after, never another
5xx. The sweep completes, each trial exactly once, one row per (trial, epoch), no gaps; and
the queued results are all written within 10 s of the database's return.

SQLite's form of an outage ("database is locked") is covered without Ray in
``tests/workers/tune/test_store.py``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.conftest import InProcessRunner, create_sweep
from tests.faults.support import (
    PostgresServer,
    Service,
    assert_each_trial_completed_once,
    free_port,
    grep_tree,
    snapshot,
    sweep_status,
    wait_for,
)
from workers.tune.engines import select_engine

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.postgres]

OUTAGE_S = 20.0
EPOCHS = 12
TOKEN = "tok-outage-7f3a91c2"


def test_a_database_outage_mid_sweep_loses_and_duplicates_nothing(
    runner_on: Callable[..., InProcessRunner],
    pg_server: PostgresServer,
    tmp_path: Path,
) -> None:
    service = Service()
    port = free_port()
    env = {
        "L0SWEEP_DATABASE_URL": pg_server.url,
        "L0SWEEP_API_TOKENS": TOKEN,
        "L0SWEEP_DATA_DIR": str(tmp_path / "data"),
    }
    api_log = tmp_path / "api.log"
    api = service.api(env, port, api_log)
    base = f"http://127.0.0.1:{port}/api/v1"
    r = runner_on(pg_server.url, cancel_poll_s=0.5, poll_interval_s=0.5)
    statuses: Counter[int] = Counter()
    try:
        with httpx.Client(base_url=base, timeout=10) as client:

            def get(path: str) -> httpx.Response:
                response = client.get(path)
                statuses[response.status_code] += 1
                return response

            def api_up() -> bool:
                try:
                    return get("/healthz").status_code == 200
                except httpx.TransportError:  # not listening yet
                    return False

            wait_for(api_up, 120, "the API", logs=[api_log], alive=[api])
            sweep_id = create_sweep(
                r.store.engine, lambdas=[0.1, 1.0], training={"epochs": EPOCHS, "batch_size": 50}
            )
            thread = threading.Thread(target=r.runner.serve_forever, daemon=True)
            thread.start()

            def both_training() -> bool:
                snap = snapshot(r.store.engine, sweep_id)
                return len(snap) == 2 and all(2 <= t["epochs_done"] < EPOCHS for t in snap.values())

            wait_for(both_training, 180, "both trials to train", logs=[api_log], alive=[api])

            # ---- the outage
            pg_server.stop()
            down_at = time.monotonic()
            max_queued = 0
            outage_answers: list[httpx.Response] = []
            while time.monotonic() - down_at < OUTAGE_S:  # the outage lasts OUTAGE_S
                max_queued = max(max_queued, r.runner.queued_writes())
                outage_answers.append(get(f"/sweeps/{sweep_id}"))
                outage_answers.append(get("/healthz"))
                time.sleep(0.5)
            pg_server.start()
            up_at = time.monotonic()

            # ---- recovery: the queued results are written, the API answers again
            def recovered() -> bool:
                return r.store.health.outage_s() == 0 and r.runner.queued_writes() == 0

            wait_for(recovered, 60, "the queued results to be written", interval_s=0.05)
            recovery_s = time.monotonic() - up_at
            wait_for(
                lambda: get(f"/sweeps/{sweep_id}").status_code == 200,
                60,
                "the API to answer 200",
                interval_s=0.1,
                logs=[api_log],
            )
            api_recovery_s = time.monotonic() - up_at

            wait_for(
                lambda: sweep_status(r.store.engine, sweep_id) == "completed",
                300,
                "the sweep to complete",
                logs=[api_log],
            )
            final = get(f"/sweeps/{sweep_id}")
            r.runner.stop()
            thread.join(60)
    finally:
        service.stop_all()

    print(
        f"outage {OUTAGE_S:.0f} s: up to {max_queued} writes queued; written "
        f"{recovery_s:.2f} s after the database returned; API 200 after {api_recovery_s:.2f} s"
    )
    # During the outage: 503 with Retry-After and the documented body; nothing else.
    assert outage_answers
    assert {a.status_code for a in outage_answers} == {503}
    for answer in outage_answers:
        assert answer.json()["detail"] == "database unavailable"
        assert answer.headers.get("retry-after")
    assert {s for s in statuses if s >= 500} == {503}
    assert final.status_code == 200 and final.json()["status"] == "completed"

    assert max_queued > 0  # results did queue during the outage
    assert recovery_s <= 10.0
    assert_each_trial_completed_once(r.store.engine, sweep_id, EPOCHS)
    # The runner's pickled state in storage names the database without its password.
    assert grep_tree(r.storage, [pg_server.password, TOKEN]) == []


PAUSE_GATE = 3


def _held_at_epoch(flag_dir: str) -> Callable[..., Any]:
    """The real engine; a first attempt holds after its epoch-``PAUSE_GATE`` checkpoint until
    ``flag_dir/go`` exists, so the trials are surely still running when the pause comes."""

    def engine(
        members: Any,
        job: Any,
        *,
        device: str,
        on_progress: Any,
        resume: Any,
        should_stop: Any = None,
    ) -> Any:
        def progress(records: Any, state: Any) -> None:
            on_progress(records, state)
            if resume is None and max(r.epoch for r in records) == PAUSE_GATE:
                deadline = time.monotonic() + 120
                while not Path(flag_dir, "go").exists() and time.monotonic() < deadline:
                    time.sleep(0.05)

        real = select_engine(len(members))
        return real(
            members,
            job,
            device=device,
            on_progress=progress,
            resume=resume,
            should_stop=should_stop,
        )

    return engine


def test_a_an_outage_past_the_tolerance_pauses_the_sweep_never_fails_it(
    runner_on: Callable[..., InProcessRunner],
    pg_server: PostgresServer,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """Past ``L0SWEEP_DB_OUTAGE_TOLERANCE_S`` (3 s here) the runner stops the trials at their
    checkpoints and, once the database is back, writes what it queued and leaves the sweep
    ``running`` without a runner; the next loop pass resumes it from its checkpoints."""
    caplog.set_level("WARNING", logger="workers.tune.runner")
    r = runner_on(
        pg_server.url,
        db_outage_tolerance_s=3.0,
        cancel_poll_s=0.5,
        poll_interval_s=0.5,
        engine=_held_at_epoch(str(tmp_path)),
    )
    outcomes: list[Any] = []
    run_sweep = r.runner.run_sweep

    def recorded(sweep: Any) -> Any:
        outcomes.append(run_sweep(sweep))
        return outcomes[-1]

    r.runner.run_sweep = recorded  # type: ignore[method-assign]
    epochs = 6
    sweep_id = create_sweep(r.store.engine, lambdas=[0.1, 1.0], training={"epochs": epochs})
    thread = threading.Thread(target=r.runner.serve_forever, daemon=True)
    thread.start()
    try:

        def held() -> bool:
            snap = snapshot(r.store.engine, sweep_id)
            return len(snap) == 2 and all(t["epochs_done"] == PAUSE_GATE for t in snap.values())

        wait_for(held, 180, "both trials to train")
        pg_server.stop()
        wait_for(lambda: "pausing sweep" in caplog.text, 60, "the runner to pause the sweep")
        (tmp_path / "go").touch()  # (the paused trials are gone; this only frees a stray one)
        pg_server.start()
        wait_for(lambda: sweep_status(r.store.engine, sweep_id) == "completed", 300, "completion")
    finally:
        r.runner.stop()
        thread.join(60)
    assert outcomes[0].paused and outcomes[0].status == "running"
    assert outcomes[-1].status == "completed" and not outcomes[-1].interrupted
    assert_each_trial_completed_once(r.store.engine, sweep_id, epochs)
    # The trials stopped by the pause went on from their checkpoints, not from scratch.
    for trial in snapshot(r.store.engine, sweep_id).values():
        assert trial["extra"][epochs]["resumed_at_epoch"] >= PAUSE_GATE - 1, trial["extra"]
