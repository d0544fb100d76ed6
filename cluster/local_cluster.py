"""A multi-node Ray cluster on this machine, to try ``moelaw sweep --address`` without a cluster.

    .venv/bin/python -m cluster.local_cluster SPEC --nodes 2 --cpus-per-node 1

Each node is a separate ``ray start --block`` process (the first the head, the others workers
joining it), every listener bound to 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``), with
token authentication: the token comes from ``RAY_AUTH_TOKEN`` in the environment or, if that is
unset, is made up for the cluster's lifetime; it is handed to Ray through the environment only and
never printed or written by moelaw. Each node runs in its own process group, which is what
:meth:`LocalCluster.stop` ends, so no other Ray instance on the machine is touched.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results.errors import InputError

log = logging.getLogger(__name__)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """Start a head and ``nodes - 1`` worker nodes as separate processes; stop them by group.

    Use as a context manager; ``address`` is what ``run_sweep(address=...)`` takes. The token is
    put into this process's environment (``RAY_AUTH_MODE``, ``RAY_AUTH_TOKEN``) so that a driver
    started here can join.
    """

    def __init__(self, nodes: int = 2, cpus_per_node: int = 1, ray_bin: str | None = None) -> None:
        if nodes < 1 or cpus_per_node < 1:
            raise InputError(f"a cluster needs nodes >= 1 and cpus_per_node >= 1, got {nodes}, "
                             f"{cpus_per_node}.")  # fmt: skip
        self.nodes, self.cpus = nodes, cpus_per_node
        self.ray_bin = ray_bin or str(Path(sys.executable).with_name("ray"))
        self.processes: list[subprocess.Popen] = []
        self.temp_dir = Path(tempfile.mkdtemp(prefix="mlray", dir="/tmp"))
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"

    def _env(self) -> dict:
        names = ("RAY_AUTH_TOKEN", "RAY_AUTH_MODE", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
        self._saved_env = {k: os.environ.get(k) for k in names}
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        return dict(os.environ)

    def start(self, timeout_s: float = 120.0) -> LocalCluster:
        env = self._env()
        common = ["--block", f"--num-cpus={self.cpus}", "--node-ip-address=127.0.0.1"]
        head = [self.ray_bin, "start", "--head", f"--port={self.port}", "--include-dashboard=false"]
        head += [f"--temp-dir={self.temp_dir}", "--disable-usage-stats"]
        self._spawn(head + common, env)
        self._wait_for_nodes(1, timeout_s)
        for _ in range(self.nodes - 1):
            self._spawn(self._worker_command() + common, env)
        self._wait_for_nodes(self.nodes, timeout_s)
        return self

    def _worker_command(self) -> list[str]:
        return [sys.executable, "-m", "cluster.local_cluster", "--join", self.address]

    def _spawn(self, cmd: list[str], env: dict) -> None:
        log_file = open(self.temp_dir / f"node{len(self.processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
        self.processes.append(process)

    def _wait_for_nodes(self, count: int, timeout_s: float) -> None:
        """Poll ``ray status`` until ``count`` nodes are alive."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for p in self.processes:
                if p.poll() is not None:
                    raise RuntimeError(
                        f"a Ray node exited with status {p.returncode} while starting; "
                        f"see the logs in {self.temp_dir}"
                    )
            command = [self.ray_bin, "status", f"--address={self.address}"]
            status = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ))
            if status.returncode == 0 and status.stdout.count("node_") >= count:
                return
            time.sleep(1.0)
        raise RuntimeError(f"{count} Ray nodes did not come up in {timeout_s:.0f} s; "
                           f"see the logs in {self.temp_dir}")  # fmt: skip

    def stop(self) -> None:
        """End every node's process group: SIGTERM, then SIGKILL whatever is left after 5 s."""
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
            groups = [p.pid for p in self.processes if _group_alive(p.pid)]
            for pgid in groups:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, sig)
            deadline = time.monotonic() + wait
            while any(_group_alive(g) for g in groups) and time.monotonic() < deadline:
                for p in self.processes:
                    p.poll()  # reap our own children
                time.sleep(0.1)
        self.processes.clear()
        for key, value in getattr(self, "_saved_env", {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def join(argv: list[str]) -> int:
    """``ray start --address ADDRESS ARGS`` for a worker node that stays on 127.0.0.1.

    Ray's command line refuses to join a cluster while ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
    (a guard meant for Windows and macOS), and with the variable at 1 it rewrites 127.0.0.1 to
    the machine's primary address, so that the node and its listeners would leave the loopback
    device. This runs Ray's own ``ray start`` in this process with two narrow overrides: the
    guard is lifted and loopback addresses are kept as given. The variable stays 0 in the
    environment, so the node's child processes bind to 127.0.0.1 as the head's do.
    TODO(cluster): drop the overrides if Ray gains a supported switch for loopback-only
    multi-node clusters.
    """
    from ray._private import ray_constants, services
    from ray.scripts.scripts import main as ray_main

    ray_constants.ENABLE_RAY_CLUSTER = True
    services.resolve_ip_for_localhost = lambda host: host
    sys.argv = ["ray", "start", f"--address={argv[0]}", *argv[1:]]
    return ray_main()


def main(argv: list[str] | None = None) -> int:
    """Run a sweep spec on a throw-away local cluster and print on which nodes its runs landed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--cpus-per-node", type=int, default=1)
    args = parser.parse_args(argv)

    from cluster.spec import load_spec
    from cluster.sweep import run_sweep
    from results.store import Store

    spec = load_spec(args.spec)
    with LocalCluster(args.nodes, args.cpus_per_node) as cluster:
        summary = run_sweep(spec, address=cluster.address)
    runs = Store(spec.store, create=False).runs(status=None)
    print(f"{summary.done} trained, {len(summary.failed)} failed, {summary.skipped} skipped")
    for node, count in runs["extra_node_id"].value_counts().items():
        print(f"node {node[:12]}: {count} runs")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--join"]:
        sys.exit(join(sys.argv[2:]))
    sys.exit(main())
