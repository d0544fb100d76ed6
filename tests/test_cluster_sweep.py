"""Sweeps on a local Ray: idempotence, resumption after a killed driver, failed runs recorded."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytest.importorskip("torch")

from tiny import tiny_spec  # noqa: E402

from cluster.local_cluster import _group_alive  # noqa: E402
from cluster.spec import load_spec, plan  # noqa: E402
from cluster.sweep import run_sweep  # noqa: E402
from results.store import Store  # noqa: E402


def _spec(tmp_path: Path, tokens: float = 2.0e4) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(tiny_spec("tiny", tokens=tokens, extra="[oat]\nG = [1, 4]\nS = [0.5]\n"))
    return path


def test_four_runs_on_two_workers_then_nothing_to_do(tmp_path):
    spec = load_spec(_spec(tmp_path))
    planned = {p.run_id for p in plan(spec)}
    assert len(planned) == 4

    first = run_sweep(spec, workers=2)
    assert (first.done, first.skipped, first.failed) == (4, 0, {})
    store = Store(spec.store, create=False)
    runs = store.runs()
    assert set(runs["run_id"]) == planned
    assert sorted(runs["G"]) == [1.0, 2.0, 2.0, 4.0]
    assert (runs["loss"] > 0).all() and (runs["loss"] < 5.6).all()
    assert set(store.curves()["run_id"]) == planned

    second = run_sweep(spec, workers=2)
    assert (second.done, second.skipped, len(second.failed)) == (0, 4, 0)
    assert len(Store(spec.store, create=False).runs()) == 4


def test_killed_driver_resumes_without_duplicates(tmp_path):
    spec_path = _spec(tmp_path, tokens=6.0e4)
    spec = load_spec(spec_path)
    planned = {p.run_id for p in plan(spec)}
    runs_dir = spec.store / "runs"

    # 1. Start the sweep in its own process group; kill the group once one run has landed.
    cmd = [
        sys.executable,
        "-m",
        "cluster.cli",
        "sweep",
        str(spec_path),
        "--workers",
        "1",
        "--quiet",
    ]
    driver = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and driver.poll() is None:
            if runs_dir.is_dir() and any(runs_dir.glob("*.parquet")):
                break
            time.sleep(0.2)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    stored_before = set(Store(spec.store, create=False).runs()["run_id"])
    assert 1 <= len(stored_before) < len(planned), "the driver should die part-way"

    # 2. The same sweep again finishes the rest: every run once, none trained twice.
    summary = run_sweep(spec, workers=2)
    assert summary.skipped == len(stored_before)
    assert summary.done == len(planned) - len(stored_before)
    runs = Store(spec.store, create=False).runs(status=None)
    assert sorted(runs["run_id"]) == sorted(planned)
    assert len(list(runs_dir.glob("*.parquet"))) == len(planned)


def test_local_workers_run_at_normal_priority():
    # Ray nices its workers to 15 by default; on a machine with any other load that starved the
    # training runs of a sweep (measured: 5% of a core each while other jobs ran at niceness 0).
    import ray

    from cluster.sweep import ray_session

    with ray_session(num_cpus=1):
        niceness = ray.get(ray.remote(lambda: os.nice(0)).remote())
    assert niceness == os.nice(0)


def test_ctrl_c_stops_the_sweep_its_workers_and_keeps_the_store_resumable(tmp_path):
    # Ctrl-C reaches the driver as SIGINT (with SIGINT at its default disposition: a shell's
    # background job ignores it, and so does Python then). The sweep must stop the runs in flight,
    # end its local Ray (no process of its group left), exit 130 and leave nothing half-written.
    spec_path = _spec(tmp_path, tokens=2.0e6)
    spec = load_spec(spec_path)
    cmd = [sys.executable, "-m", "cluster.cli", "sweep", str(spec_path), "--workers", "2",
           "--quiet"]  # fmt: skip
    driver = subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    checkpoints = spec.store / "checkpoints"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and driver.poll() is None:
            if checkpoints.is_dir() and len(list(checkpoints.iterdir())) >= 2:
                break  # two runs are training
            time.sleep(0.2)
        assert driver.poll() is None, "the sweep should still be running"
        driver.send_signal(signal.SIGINT)
        _, err = driver.communicate(timeout=120)  # a guard against a hang, not a timing
        deadline = time.monotonic() + 60
        while _group_alive(driver.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = _group_alive(driver.pid)
    finally:
        if _group_alive(driver.pid):
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert driver.returncode == 130
    assert "moelaw sweep: interrupted" in err
    assert not left, "Ray processes of the interrupted sweep are still running"
    # Nothing was stored as failed or half-written: every planned run is still to do
    assert Store(spec.store, create=False).runs(status=None).empty
    assert not list((spec.store / "runs").glob("*.tmp*"))
