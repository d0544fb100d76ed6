"""A sweep on a two-node Ray cluster on this machine: runs land on both nodes, the token stays secret."""

import logging
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytest.importorskip("torch")

from cluster.local_cluster import LocalCluster  # noqa: E402
from cluster.spec import load_spec, plan  # noqa: E402
from cluster.sweep import run_sweep  # noqa: E402
from results.store import Store  # noqa: E402

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "austen.txt"
TOKEN = "moelaw-test-token-5f1c0a9e7d3b4a2c8e6f1b0d9a7c5e3f"

SPEC = """
name = "two-nodes"
store = "store"

[data]
files = ["{corpus}"]

[defaults]
N = 1.0e5
Na_ratio = 0.4
D = 3.0e4
G = 2
d_model = 32
n_layers = 1
seq_len = 64
batch_size = 8
eval_tokens = 4096

[oat]
G = [1, 4]
S = [0.5]
"""


def _files_text(folder: Path) -> str:
    return "".join(p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
def test_sweep_lands_on_both_nodes_and_never_stores_the_token(tmp_path, monkeypatch, caplog):
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(corpus=CORPUS))
    spec = load_spec(path)
    planned = {p.run_id for p in plan(spec)}
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)

    with LocalCluster(nodes=2, cpus_per_node=1) as cluster:
        summary = run_sweep(spec, address=cluster.address)
        node_logs = "".join(
            p.read_bytes().decode("latin-1") for p in cluster.temp_dir.glob("node*.log")
        )

    # 1. Every run trained once, on one of two nodes, and both nodes took runs.
    assert (summary.done, summary.failed, summary.skipped) == (4, {}, 0)
    runs = Store(spec.store, create=False).runs()
    assert set(runs["run_id"]) == planned
    nodes = set(runs["extra_node_id"])
    assert len(nodes) == 2 and all(len(n) == 56 for n in nodes)

    # 2. The token appears nowhere: not in the store, our log records, or the nodes' output.
    assert TOKEN not in _files_text(spec.store)
    assert TOKEN not in caplog.text
    assert TOKEN not in node_logs
