"""The results store: round trips, idempotent and atomic writes, corruption, concurrency."""

import dataclasses
import json
import math
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from results import RunRecord, Store, StoreError, canonical_json, run_id
from results.store import MARKER_NAME, STALE_TEMP_S

REPO = Path(__file__).resolve().parents[1]
BASE_COLUMNS = [
    "run_id", "source", "status", "error", "N", "Na", "D", "G", "S", "E", "loss", "seed",
    "wall_time_s", "version", "created_at", "config",
]  # fmt: skip


def make_record(i: int, n_points: int = 20, status: str = "ok") -> RunRecord:
    """A deterministic run whose every value can be recomputed from ``i``."""
    config = {"i": i, "lr": 1e-3 * (i + 1), "tokens": 1000 * (i + 1), "tags": ["a", i]}
    curve = [
        {"split": split, "step": s, "tokens": 512 * s, "loss": 5.0 / (1 + s) + i * 1e-3}
        for split in ("train", "validation")
        for s in range(n_points)
    ]
    return RunRecord(
        run_id=run_id(config),
        source="unit-test",
        status=status,
        error="" if status == "ok" else f"run {i} diverged",
        N=1e5 * (i + 1),
        Na=2.5e4 * (i + 1),
        D=1e6 * (i + 1),
        G=1 + i % 4,
        S=0.25 * (i % 3),
        E=8 + i,
        loss=2.0 + 1.0 / (i + 1) if status == "ok" else math.nan,
        seed=i,
        wall_time_s=0.5 * i,
        config=config,
        architecture={"d_model": 32 + i, "n_layers": 2, "n_experts": 8 + i, "top_k": 1 + i % 4},
        curve=curve,
        extra={"note": f"run {i}", "flag": i % 2 == 0, "nested": {"x": [1, 2]}},
    )


def _child(code: str, *args: str, **kwargs) -> subprocess.Popen:
    """Start a Python process that can import results and this test module."""
    prelude = f"import sys; sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'tests')!r}]\n"
    script = prelude + textwrap.dedent(code)
    return subprocess.Popen([sys.executable, "-c", script, *args], **kwargs)


def test_round_trip_keeps_every_field(tmp_path):
    store = Store(tmp_path / "store")
    record = make_record(3)
    assert store.write(record) is True
    assert store.get(record.run_id) == record

    runs = store.runs()
    assert list(runs.columns[: len(BASE_COLUMNS)]) == BASE_COLUMNS
    row = runs.iloc[0]
    for name in ("run_id", "source", "status", "error", "N", "Na", "D", "G", "S", "E", "loss"):
        assert row[name] == getattr(record, name)
    assert (row.seed, row.wall_time_s) == (3, 1.5)
    assert (row.version, row.created_at) == (record.version, record.created_at)
    assert row.config == canonical_json(record.config)
    assert (row.arch_d_model, row.arch_n_layers, row.arch_n_experts, row.arch_top_k) == (
        35,
        2,
        11,
        4,
    )
    assert (row.extra_note, row.extra_flag) == ("run 3", False)
    assert "extra_nested" not in runs.columns  # only scalar extras become columns

    curves = store.curves()
    assert list(curves.columns) == ["run_id", "split", "step", "tokens", "loss"]
    assert len(curves) == 40 and set(curves.run_id) == {record.run_id}
    expected = sorted((p["split"], p["step"], p["tokens"], p["loss"]) for p in record.curve)
    assert list(curves[["split", "step", "tokens", "loss"]].itertuples(index=False)) == expected


def test_write_twice_does_not_rewrite(tmp_path):
    store = Store(tmp_path / "store")
    record = make_record(1)
    assert store.write(record) is True
    mtime = (store.path / "runs" / f"{record.run_id}.parquet").stat().st_mtime_ns
    assert store.write(make_record(1)) is False
    assert (store.path / "runs" / f"{record.run_id}.parquet").stat().st_mtime_ns == mtime
    assert record.run_id in store and store.ids() == {record.run_id}


def test_failed_run_is_replaced_by_ok_but_not_the_reverse(tmp_path):
    store = Store(tmp_path / "store")
    failed, ok = make_record(2, status="failed"), make_record(2)
    assert failed.run_id == ok.run_id
    assert store.write(failed) is True
    assert failed.run_id not in store and store.ids() == set()
    assert store.ids("failed") == store.ids(None) == {failed.run_id}
    assert len(store.runs()) == 0
    assert store.runs("failed").error.tolist() == ["run 2 diverged"]

    assert store.write(ok) is True
    assert store.runs(status=None).status.tolist() == ["ok"]
    assert store.write(failed) is False
    assert store.get(ok.run_id) == ok


def test_empty_store_has_the_columns(tmp_path):
    store = Store(tmp_path / "new")
    assert (store.path / MARKER_NAME).is_file()
    for status in ("ok", None):
        runs = store.runs(status=status)
        assert list(runs.columns) == BASE_COLUMNS and len(runs) == 0
    assert str(runs.N.dtype) == "float64" and str(runs.seed.dtype) == "int64"
    assert list(store.curves().columns) == ["run_id", "split", "step", "tokens", "loss"]
    assert store.ids() == set() and store.verify() == []


def test_opening_errors_name_the_path_and_the_fix(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(StoreError, match=f"no results store at {missing}.*create=True"):
        Store(missing, create=False)
    assert not missing.exists()

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("hello")
    with pytest.raises(StoreError, match=f"{other} is a non-empty folder without {MARKER_NAME}"):
        Store(other)
    with pytest.raises(StoreError, match="is a file"):
        Store(other / "notes.txt")

    Store(tmp_path / "s")
    (tmp_path / "s" / MARKER_NAME).write_text(
        '{"kind": "moelaw results store", "schema_version": 9}'
    )
    with pytest.raises(StoreError, match="schema version 9.*upgrade moelaw"):
        Store(tmp_path / "s", create=False)


def test_bad_arguments_are_input_errors(tmp_path):
    store = Store(tmp_path / "s")
    with pytest.raises(ValueError, match="status 'done'"):
        store.runs(status="done")
    with pytest.raises(ValueError, match="takes a RunRecord"):
        store.write({"run_id": "x"})
    with pytest.raises(ValueError, match="not in results store"):
        store.curves(["feedfacefeedface"])


def test_corrupted_file_is_named_and_can_be_skipped(tmp_path):
    store = Store(tmp_path / "store")
    records = [make_record(i) for i in range(4)]
    for record in records:
        store.write(record)
    broken = records[2].run_id
    path = store.path / "runs" / f"{broken}.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a half-written file
    (store.path / "runs" / "junk.parquet").write_bytes(b"not parquet at all")

    with pytest.raises(StoreError, match=f"{broken}.*junk.*delete those files"):
        store.runs()
    with pytest.raises(StoreError, match=broken):
        store.curves()
    assert store.verify() == sorted([broken, "junk"])

    with pytest.warns(UserWarning, match=broken):
        runs = store.runs(skip_corrupt=True)
    assert sorted(runs.run_id) == sorted(r.run_id for r in records if r.run_id != broken)
    with pytest.warns(UserWarning, match=broken):
        assert len(store.curves(skip_corrupt=True)) == 3 * 40

    # Re-running the run replaces the broken file.
    assert store.write(records[2]) is True
    (store.path / "runs" / "junk.parquet").unlink()
    assert store.verify() == [] and len(store.runs()) == 4


def test_stray_temp_files_are_ignored_then_cleaned(tmp_path):
    store = Store(tmp_path / "store")
    store.write(make_record(0))
    runs_dir = store.path / "runs"
    old, fresh = runs_dir / ".dead.123.ab.tmp", runs_dir / ".busy.456.cd.tmp"
    for path in (old, fresh):
        path.write_bytes(b"PAR1 partial")
    past = time.time() - 2 * STALE_TEMP_S
    os.utime(old, (past, past))

    assert len(store.runs()) == 1 and store.verify() == []
    assert Store(store.path).write(make_record(1)) is True
    assert not old.exists() and fresh.exists()
    assert len(store.runs()) == 2


def test_killed_writer_leaves_a_readable_store(tmp_path):
    store = Store(tmp_path / "store")
    writer = _child(
        """
        from results import Store
        from test_results_store import make_record
        store = Store(sys.argv[1])
        for i in range(100000):
            store.write(make_record(i, n_points=3000))
        """,
        str(store.path),
    )
    # Kill the writer once it is well into its loop: most of its time is spent inside write().
    deadline = time.time() + 60
    while len(store.ids(None)) < 15 and time.time() < deadline and writer.poll() is None:
        time.sleep(0.01)
    os.kill(writer.pid, signal.SIGKILL)
    assert writer.wait() == -signal.SIGKILL

    # Every run the store reports is complete and equal to what was written.
    runs = store.runs()
    assert len(runs) >= 15 and store.verify() == []
    curves = store.curves()
    for run in runs.itertuples():
        stored = store.get(run.run_id)
        expected = make_record(json.loads(run.config)["i"], n_points=3000)
        assert stored == dataclasses.replace(expected, created_at=stored.created_at)
        assert (curves.run_id == run.run_id).sum() == 6000


def test_writer_killed_between_fsync_and_rename_leaves_no_partial_run(tmp_path):
    store = Store(tmp_path / "store")
    writer = _child(
        """
        import os, signal
        from results import Store
        from test_results_store import make_record
        store = Store(sys.argv[1])
        for i in range(5):
            store.write(make_record(i))
        os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # die with the file unrenamed
        store.write(make_record(5))
        """,
        str(store.path),
    )
    assert writer.wait(timeout=60) == -signal.SIGKILL

    temps = [p for p in (store.path / "runs").iterdir() if p.name.endswith(".tmp")]
    assert len(temps) == 1 and temps[0].name.startswith(f".{make_record(5).run_id}.")
    assert store.ids(None) == {make_record(i).run_id for i in range(5)}
    assert len(store.runs()) == 5 and len(store.curves()) == 5 * 40 and store.verify() == []
    assert store.write(make_record(5)) is True and len(store.runs()) == 6


def test_two_writers_with_overlapping_runs_give_the_union(tmp_path):
    store = Store(tmp_path / "store")
    code = """
        from results import Store
        from test_results_store import make_record
        store = Store(sys.argv[1])
        first, last = int(sys.argv[2]), int(sys.argv[3])
        print(sum(store.write(make_record(i)) for i in range(first, last)))
        """
    writers = [
        _child(code, str(store.path), "0", "60", stdout=subprocess.PIPE, text=True),
        _child(code, str(store.path), "30", "90", stdout=subprocess.PIPE, text=True),
    ]
    written = [int(w.communicate(timeout=120)[0]) for w in writers]
    assert [w.returncode for w in writers] == [0, 0]

    runs = store.runs()
    assert sum(written) == 90  # each of the 30 shared runs was written by exactly one of them
    assert len(runs) == 90 and runs.run_id.is_unique
    assert set(runs.run_id) == {make_record(i).run_id for i in range(90)}
    assert store.verify() == []


def _read_only_folder():
    """A store folder made read-only with chmod 0o555, in a place every user can reach."""
    root = Path(tempfile.mkdtemp(prefix="moelaw-ro-"))
    root.chmod(0o755)
    store = Store(root / "store")
    store.write(make_record(0))
    for path in (store.path / "runs", store.path):
        path.chmod(0o555)
    return root, store


def _try_write(store_path: Path, as_user: int | None) -> tuple[int, str]:
    """Write one run into the store, as this user or (after imports) as ``as_user``."""
    code = """
        import os
        from results import Store, StoreError
        from test_results_store import make_record
        store, record = Store(sys.argv[1], create=False), make_record(1)
        if sys.argv[2] != "same":
            os.setuid(int(sys.argv[2]))  # drop root: from here on, permissions apply
        try:
            store.write(record)
        except StoreError as exc:
            print(exc)
            sys.exit(3)
        """
    user = "same" if as_user is None else str(as_user)
    child = _child(code, str(store_path), user, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                   text=True)  # fmt: skip
    out = child.communicate(timeout=60)[0]
    return child.returncode, out


def test_read_only_store_fails_at_write_with_a_clear_error():
    root, store = _read_only_folder()
    try:
        # As root chmod does not stop writes, so the writer drops to an unprivileged user.
        probe = store.path / "runs" / "probe"
        try:
            probe.touch()
            probe.unlink()
            user = 65534 if os.geteuid() == 0 else -1
        except PermissionError:
            user = None
        if user == -1:
            pytest.skip("this platform does not stop writes into a chmod 0o555 folder")
        code, message = _try_write(store.path, user)
        if "Operation not permitted" in message:
            pytest.skip(f"cannot drop privileges to make the folder read-only: {message[-200:]}")

        assert code == 3, message
        assert f"results store {store.path} is not writable" in message
        assert "Permission denied" in message and "make the folder writable" in message
        assert len(store.runs()) == 1 and store.verify() == []  # reading still works
        files = sorted(p.name for p in (store.path / "runs").iterdir())
        assert files == [".lock", f"{make_record(0).run_id}.parquet"]  # no temporary file left
    finally:
        for path in (store.path, store.path / "runs"):
            path.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP)
        shutil.rmtree(root)


def test_runs_reads_250_runs_in_well_under_a_second(tmp_path):
    store = Store(tmp_path / "store")
    for i in range(250):
        store.write(make_record(i, n_points=25))
    store.runs()  # warm the file cache and imports
    times = []
    for _ in range(3):
        start = time.perf_counter()
        runs = store.runs()
        times.append(time.perf_counter() - start)
    assert len(runs) == 250
    assert min(times) < 0.5, times
