"""A sweep on a two-node Ray cluster on this machine: runs land on both nodes; the token stays
secret."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytest.importorskip("torch")

from tiny import tiny_spec  # noqa: E402

from cluster.local_cluster import LocalCluster  # noqa: E402
from cluster.spec import load_spec, plan  # noqa: E402
from results.store import Store  # noqa: E402

TOKEN = "moelaw-test-token-5f1c0a9e7d3b4a2c8e6f1b0d9a7c5e3f"


def _files_text(folder: Path) -> str:
    return "".join(p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file())


def test_sweep_lands_on_both_nodes_and_never_stores_the_token(tmp_path, monkeypatch):
    path = tmp_path / "spec.toml"
    path.write_text(tiny_spec("two-nodes", tokens=3.0e4, extra="[oat]\nG = [1, 4]\nS = [0.5]\n"))
    spec = load_spec(path)
    planned = {p.run_id for p in plan(spec)}
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)

    # 1. The driver is a separate process (as a user would run it), joining by address; Ray
    #    reads the token and auth mode from its environment when it is imported.
    with LocalCluster(nodes=2, cpus_per_node=1) as cluster:
        cmd = [sys.executable, "-m", "cluster.cli", "-v", "sweep", str(path)]
        cmd += ["--address", cluster.address]
        driver = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        node_logs = "".join(
            p.read_bytes().decode("latin-1") for p in cluster.temp_dir.glob("node*.log")
        )
    assert driver.returncode == 0, driver.stderr[-3000:]
    assert "4 trained, 0 failed" in driver.stdout

    # 2. Every run trained once, on one of two nodes, and both nodes took runs.
    runs = Store(spec.store, create=False).runs()
    assert set(runs["run_id"]) == planned
    nodes = set(runs["extra_node_id"])
    assert len(nodes) == 2 and all(len(n) == 56 for n in nodes)

    # 3. The token appears nowhere: not in the store, the driver's output, or the nodes' output.
    assert TOKEN not in _files_text(spec.store)
    assert TOKEN not in driver.stdout + driver.stderr
    assert TOKEN not in node_logs
