"""workers.tune.cluster: the embedded local Ray instance listens on loopback only (issue 10).

Ray turns ``_node_ip_address="127.0.0.1"`` into the machine's address unless multi-node
clusters are switched off, and its GCS, raylet and workers then listened on every
interface. Run in a subprocess: the test session may already be connected to Ray.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.ray

PROBE = textwrap.dedent(
    """
    import json, os, psutil, ray
    from workers.tune.cluster import connect_ray

    connect_ray(num_cpus=1)
    node_ip = ray.util.get_node_ip_address()
    env_after = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    session = ray._private.worker.global_worker.node.get_session_dir_path()
    me = psutil.Process()
    ours = {me.pid} | {p.pid for p in me.children(recursive=True)}
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if session in " ".join(p.info["cmdline"] or []):
                ours |= {p.pid} | {c.pid for c in p.children(recursive=True)}
        except psutil.Error:
            pass
    listening = set()
    for pid in ours:
        try:
            for c in psutil.Process(pid).net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    listening.add(c.laddr.ip)
        except psutil.Error:
            pass
    ray.shutdown()
    print(json.dumps({"node_ip": node_ip, "env_after": env_after, "listening": sorted(listening)}))
    """
)


def test_local_ray_listens_on_loopback_only() -> None:
    # Without the switch the test session sets for its own cluster (tests/workers/ray_cluster).
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["node_ip"] == "127.0.0.1"
    assert found["listening"], "no listening socket found: the probe is broken"
    loopback = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
    assert set(found["listening"]) <= loopback, found["listening"]
    assert found["env_after"] is None  # the switch does not leak into later connections
