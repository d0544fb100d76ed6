"""What the product exposes on the network: the local Ray listens on 127.0.0.1 only, and an
authentication token in the environment never reaches the results store or the output.

The sockets are listed with ``ss`` and matched to the processes the driver started (its
descendants, found in /proc), so Ray instances of other users on the machine are left out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
from tiny import CORPUS, tiny_spec  # noqa: E402

pytestmark = pytest.mark.skipif(
    shutil.which("ss") is None or not Path("/proc/self/stat").exists(),
    reason="needs the ss command and /proc to list sockets by process",
)

# Runs in a child: start the product's Ray, run one task, list our processes' listening sockets.
LISTEN_SCRIPT = """
import json, os, re, subprocess, sys
import ray
from cluster.sweep import ray_session

def descendants(root):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found

with ray_session(None, 1):
    @ray.remote
    def square(x):
        return x * x
    assert ray.get(square.remote(7)) == 49
    ours = descendants(os.getpid())
    sockets = []
    for flags in ("-ltnpH", "-lunpH"):
        out = subprocess.run(["ss", flags], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            pids = {int(p) for p in re.findall(r"pid=(\\d+)", line)}
            if pids & ours:
                fields = line.split()
                sockets.append({"proto": flags[2], "local": fields[3], "pids": sorted(pids & ours),
                                "line": line.strip()})
    print("SOCKETS " + json.dumps({"n_processes": len(ours), "sockets": sockets}))
"""

LOOPBACK = re.compile(r"^(127\.0\.0\.1|\[::ffff:127\.0\.0\.1\]|\[::1\]|localhost):\d+$")


def _child_env(**extra) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), **extra}
    env.pop("RAY_ADDRESS", None)  # never join a cluster someone else started
    return env


def test_local_ray_listens_on_loopback_only():
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LISTEN_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_child_env(),
        cwd=REPO,
    )
    lines = [ln for ln in child.stdout.splitlines() if ln.startswith("SOCKETS ")]
    assert child.returncode == 0 and lines, child.stderr[-3000:]
    found = json.loads(lines[-1][len("SOCKETS ") :])

    # Ray's GCS, raylet, object manager and workers all listen: expect several sockets.
    assert found["n_processes"] >= 3, found
    assert len(found["sockets"]) >= 3, found
    exposed = [s["line"] for s in found["sockets"] if not LOOPBACK.match(s["local"])]
    assert not exposed, "listening beyond 127.0.0.1:\n" + "\n".join(exposed)


@pytest.mark.skipif(not CORPUS.is_file(), reason="needs ../shared/corpus/austen.txt")
def test_an_auth_token_never_reaches_the_store_or_the_output(tmp_path):
    token = "moelaw-canary-" + os.urandom(12).hex()
    spec = tmp_path / "spec.toml"
    spec.write_text(tiny_spec("tiny-secret", store=tmp_path / "store"))
    child = subprocess.run(
        [sys.executable, "-m", "cluster.cli", "sweep", str(spec), "--workers", "1", "--quiet"],
        capture_output=True,
        text=True,
        timeout=400,
        env=_child_env(RAY_AUTH_TOKEN=token),
        cwd=tmp_path,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert "1 planned" in child.stdout or "planned" in child.stdout, child.stdout

    # Every byte the product wrote or printed, the store's Parquet files included.
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != spec]
    assert any(p.suffix == ".parquet" for p in written), written
    leaks = [str(p) for p in written if token.encode() in p.read_bytes()]
    leaks += [name for name, text in (("stdout", child.stdout), ("stderr", child.stderr))
              if token in text]  # fmt: skip
    assert not leaks, leaks
