"""(b'') A partition that drops packets instead of refusing connections: an iptables rule
drops everything sent to a throwaway PostgreSQL server's port while the runner's store holds
an open, pooled connection to it.

Without dead-peer detection, a query on that connection waits on TCP retransmissions for
about 15 minutes (and the stopper's poll runs on Ray Tune's control loop). With libpq's
``tcp_user_timeout`` and keep-alives (``service.db``; shortened through the URL here, as an
operator may) the call fails with a transient error within seconds: an outage, which the
stopper, the writer and the lease already handle. Needs root for iptables (CI runs as root).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from service.db import create_engine_for, is_transient, upgrade_database
from tests.faults.conftest import create_sweep
from tests.faults.support import PostgresServer, skip_or_fail
from workers.tune.store import RetryPolicy, SweepStore

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

FAST_DETECTION = (
    "tcp_user_timeout=2000&keepalives_idle=1&keepalives_interval=1&keepalives_count=2"
    "&connect_timeout=2"
)


@contextlib.contextmanager
def packets_dropped(port: int) -> Iterator[None]:
    """Drop every TCP packet sent to 127.0.0.1:``port`` (this test's own server only)."""
    iptables = shutil.which("iptables")
    if iptables is None:
        skip_or_fail("no iptables on this machine")
    rule = ["OUTPUT", "-p", "tcp", "-d", "127.0.0.1", "--dport", str(port), "-j", "DROP"]
    added = subprocess.run([str(iptables), "-A", *rule], capture_output=True, text=True)
    if added.returncode != 0:
        skip_or_fail(f"iptables refused a rule: {added.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run([str(iptables), "-D", *rule], check=True)


def _in_thread(call: Any, limit_s: float) -> tuple[bool, BaseException | None, float]:
    """Run ``call`` with a deadline: (finished, what it raised, seconds taken)."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            raised.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit_s)
    return not thread.is_alive(), (raised or [None])[0], time.monotonic() - started


def test_a_partition_that_drops_packets_is_an_outage_not_a_hang(
    pg_server: PostgresServer,
) -> None:
    url = f"{pg_server.url}?{FAST_DETECTION}"
    upgrade_database(url)
    store = SweepStore(create_engine_for(url), retry=RetryPolicy(window_s=0.5))
    try:
        sweep_id = create_sweep(store.engine)
        assert store.owner(sweep_id)[0] == "pending"  # a pooled connection, now open
        with packets_dropped(pg_server.port):
            finished, raised, took = _in_thread(lambda: store.owner(sweep_id, retry=False), 60)
            assert finished, "the query still waits on TCP after 60 s"
            assert raised is not None and is_transient(raised), raised
            assert store.health.outage_s() > 0
        print(f"a query into dropped packets failed after {took:.1f} s: {type(raised).__name__}")
        assert took < 20
        # The rule is gone: the pool replaces its dead connection and the store answers.
        finished, raised, _ = _in_thread(lambda: store.owner(sweep_id), 60)
        assert finished and raised is None
        assert store.health.outage_s() == 0
    finally:
        store.engine.dispose()
