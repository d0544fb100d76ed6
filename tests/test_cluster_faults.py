"""Sweeps that survive failures: a killed worker resumes from its checkpoint, failures are
classified, out-of-memory runs are retried after a backoff, and a broken configuration does not
stop the rest."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytest.importorskip("torch")

from tiny import tiny_spec  # noqa: E402

from cluster.runner import classify  # noqa: E402
from cluster.spec import load_spec, plan  # noqa: E402
from cluster.sweep import failure_class, run_sweep  # noqa: E402
from results.errors import InputError  # noqa: E402
from results.store import Store  # noqa: E402


def _spec(tmp_path: Path, tokens: float, extra: str = ""):
    path = tmp_path / "spec.toml"
    schedule = "[schedule]\nbackoff_s = 0.3\nretries = 2\n" + extra
    path.write_text(tiny_spec("faults", tokens=tokens, defaults="eval_every = 40", extra=schedule))
    return load_spec(path)


def test_failures_are_classified():
    import ray.exceptions as rex
    import torch

    assert classify(MemoryError()) == "oom"
    assert classify(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")) == "oom"
    assert classify(RuntimeError("CUDA error: out of memory")) == "oom"
    assert classify(InputError("tokens too few")) == "config_error"
    assert classify(ValueError("bad")) == "config_error"
    assert classify(RuntimeError("disk on fire")) == "error"
    assert failure_class(rex.WorkerCrashedError()) == "worker_died"
    assert failure_class(rex.RayTaskError("f", "tb", MemoryError())) == "oom"


def test_killed_worker_resumes_from_its_checkpoint(tmp_path):
    spec = _spec(tmp_path, tokens=2.0e5)
    (planned,) = plan(spec)
    steps = int(2.0e5) // (8 * 64)
    folder = spec.store / "checkpoints" / planned.run_id
    killed = {}

    # 1. Kill the worker process with SIGKILL once it has saved its first checkpoint.
    def killer():
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if (folder / "checkpoint.pt").exists() and (folder / "worker.pid").exists():
                pid = int((folder / "worker.pid").read_text())
                os.kill(pid, signal.SIGKILL)
                killed["pid"] = pid
                return
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    summary = run_sweep(spec, workers=1, max_retries=2)
    thread.join(timeout=5)
    assert "pid" in killed, "the worker should have been killed mid-run"

    # 2. Ray's retry finished the run from the checkpoint: fewer steps trained than from scratch.
    assert (summary.done, summary.failed) == (1, {})
    runs = Store(spec.store, create=False).runs(status=None)
    assert len(runs) == 1 and runs.loc[0, "status"] == "ok"
    assert runs.loc[0, "extra_attempt"] == 2
    resumed = int(runs.loc[0, "extra_resumed_from_step"])
    assert resumed >= 40 and resumed % 40 == 0
    assert steps - resumed < steps
    assert runs.loc[0, "extra_steps"] == steps
    assert 0 < runs.loc[0, "loss"] < 5.6
    assert len(list((spec.store / "runs").glob("*.parquet"))) == 1
    assert not folder.exists(), "the checkpoint folder is removed once the record is stored"


def test_broken_config_and_out_of_memory_are_recorded_and_the_rest_completes(tmp_path):
    # G=4 always runs out of memory, G=1 only on its first attempt; the S=0.5 run's configuration
    # is refused inside its task (an InputError raised where training starts).
    spec = _spec(tmp_path, tokens=2.0e4, extra="[oat]\nG = [1, 4]\nS = [0.5]\n")
    key = {(p.point["G"], p.point["S"]): p.run_id for p in plan(spec)}
    broken = key[(2, 0.5)]
    log_path = tmp_path / "attempts.jsonl"

    from cluster.runner import execute
    from results.errors import InputError

    def flaky(run_config, run_id, *args, **kwargs):
        top_k = run_config["model"]["top_k"]
        with open(log_path, "a") as f:
            f.write(json.dumps({"G": top_k, "t": time.time()}) + "\n")
        attempts = sum(json.loads(line)["G"] == top_k for line in log_path.read_text().splitlines())
        if run_config["model"]["n_shared"] > 0:
            raise InputError("simulated: this configuration cannot be trained")
        if top_k == 4 or (top_k == 1 and attempts == 1):
            raise MemoryError(f"simulated: out of memory at G={top_k}")
        return execute(run_config, run_id, *args, **kwargs)

    summary = run_sweep(spec, workers=2, executor=flaky)

    # 1. Counts: the base and G=1 (second attempt) trained, G=4 and the broken run failed.
    assert summary.done == 2
    assert set(summary.failed) == {key[(4, 0.0)], broken}
    assert summary.failed[key[(4, 0.0)]].startswith("[oom] RayTaskError")
    assert summary.failed[broken].startswith("[config_error]")
    assert summary.retried == 3  # G=1 once, G=4 twice

    # 2. The store holds each run once, with its class and attempts.
    runs = Store(spec.store, create=False).runs(status=None).set_index("run_id")
    assert len(runs) == 4
    assert runs.loc[key[(4, 0.0)], "extra_failure"] == "oom"
    assert runs.loc[key[(4, 0.0)], "extra_driver_attempts"] == 3
    assert runs.loc[broken, "extra_failure"] == "config_error"
    assert runs.loc[broken, "extra_driver_attempts"] == 1
    assert runs.loc[key[(1, 0.0)], "status"] == "ok"
    assert runs.loc[key[(1, 0.0)], "extra_driver_attempts"] == 2
    assert "cannot be trained" in Store(spec.store).get(broken).error

    # 3. The backoff doubles: 0.3 s, then 0.6 s between G=4's attempts.
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    times = [line["t"] for line in lines if line["G"] == 4]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.3 and times[2] - times[1] >= 0.6
