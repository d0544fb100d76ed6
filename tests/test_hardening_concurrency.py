"""Concurrent writers to one store lose no record and duplicate none; read-only stores fail early.

As root, chmod does not stop writes, so the children that must meet a read-only folder drop to
the unprivileged user 65534 first (as tests/test_results_store.py does).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from test_results_store import make_record

from cluster.spec import load_spec, plan
from results import Store

REPO = Path(__file__).resolve().parents[1]
from tiny import CORPUS, tiny_spec  # noqa: E402

NOBODY = 65534


def _python(code: str, *args: str, user: int | None = None, env=None, timeout=600):
    """Run ``code`` in a fresh interpreter that can import the packages and the tests."""
    prelude = f"import sys; sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'tests')!r}]\n"
    code = textwrap.dedent(code)
    if user is not None:
        # After the imports: the interpreter's own files may be readable by root only.
        drop = f"import os; os.setgid({user}); os.setuid({user})  # permissions apply from here"
        code = code.replace("# DROP PRIVILEGES\n", drop + "\n")
    return subprocess.Popen(
        [sys.executable, "-c", prelude + code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None},
    )


# ----------------------------------------------------------------------------------------------
# Two writer processes, overlapping runs, ok and failed records racing

WRITER = """
    import json, os, time
    from results import Store
    from test_results_store import make_record
    store, first, last, status, go = Store(sys.argv[1]), *map(int, sys.argv[2:4]), *sys.argv[4:6]
    while not os.path.exists(go):  # start together
        time.sleep(0.01)
    new = [i for i in range(first, last) if store.write(make_record(i, status=status))]
    print(json.dumps(new))
"""


def test_two_writers_lose_nothing_and_count_each_run_once(tmp_path):
    import json

    store = Store(tmp_path / "store")
    go = tmp_path / "go"
    # Writer A: ok runs 0..59; writer B: failed runs 30..89 then nothing else.
    a = _python(WRITER, str(store.path), "0", "60", "ok", str(go))
    b = _python(WRITER, str(store.path), "30", "90", "failed", str(go))
    go.touch()
    out_a, out_b = a.communicate(timeout=300)[0], b.communicate(timeout=300)[0]
    assert a.returncode == 0 and b.returncode == 0, out_a + out_b
    new_a, new_b = json.loads(out_a.splitlines()[-1]), json.loads(out_b.splitlines()[-1])

    # Every ok run written by A is new exactly once; a failed run never replaces an ok one.
    assert new_a == list(range(60))
    runs = store.runs(status=None)
    assert len(runs) == 90 and runs["run_id"].is_unique
    assert set(runs["run_id"]) == {make_record(i).run_id for i in range(90)}
    status = dict(zip(runs["run_id"], runs["status"], strict=True))
    assert all(status[make_record(i).run_id] == "ok" for i in range(60))
    assert all(status[make_record(i).run_id] == "failed" for i in range(60, 90))
    assert set(range(60, 90)) <= set(new_b)
    assert store.verify() == []
    assert not [p for p in (store.path / "runs").iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------------------------------------
# Read-only places


def _read_only_root() -> Path:
    """A folder every user can enter, to be made read-only by the caller."""
    root = Path(tempfile.mkdtemp(prefix="moelaw-ro-"))
    root.chmod(0o755)
    return root


def _needs_a_user_chmod_stops():
    if os.geteuid() != 0:
        pytest.skip("drops to user 65534, which needs root")


def test_a_store_in_a_read_only_folder_fails_at_once_with_the_fix():
    _needs_a_user_chmod_stops()
    root = _read_only_root()
    root.chmod(0o555)
    code = """
        from results import Store, StoreError
        # DROP PRIVILEGES
        try:
            Store(sys.argv[1] + "/store")
        except StoreError as exc:
            print(exc)
            sys.exit(3)
    """
    child = _python(code, str(root), user=NOBODY)
    out = child.communicate(timeout=60)[0]
    assert child.returncode == 3, out
    assert f"cannot create a results store at {root}/store" in out
    assert "Permission denied" in out and "choose a folder you can write to" in out
    assert not (root / "store").exists()


SWEEP_INTO_READ_ONLY = """
    import contextlib
    import cluster.spec, cluster.sweep, tqdm
    from cluster.cli import main
    # DROP PRIVILEGES

    @contextlib.contextmanager
    def started(*args, **kwargs):
        print("Ray started before the store was found read-only")
        sys.exit(9)
        yield

    cluster.sweep.ray_session = started
    sys.exit(main(["sweep", sys.argv[1], "--store", sys.argv[2], "--quiet"]))
"""


@pytest.mark.skipif(not CORPUS.is_file(), reason="needs ../shared/corpus/austen.txt")
def test_a_sweep_into_a_read_only_store_fails_before_training(tmp_path):
    _needs_a_user_chmod_stops()
    root = _read_only_root()
    store = Store(root / "store")
    store.write(make_record(0))
    for path in (store.path / "runs", store.path):
        path.chmod(0o555)
    spec = root / "spec.toml"
    spec.write_text(tiny_spec("shared", store=store.path, extra="[oat]\nG = [1]\n"))
    spec.chmod(0o644)
    child = _python(SWEEP_INTO_READ_ONLY, str(spec), str(store.path), user=NOBODY)
    out = child.communicate(timeout=120)[0]
    assert child.returncode == 2, out
    assert "not writable" in out and "make the folder writable" in out


# ----------------------------------------------------------------------------------------------
# Two sweeps, one store


@pytest.mark.skipif(not CORPUS.is_file(), reason="needs ../shared/corpus/austen.txt")
def test_two_sweeps_sharing_a_store_store_each_run_once(tmp_path):
    store = tmp_path / "store"
    specs = []
    for name, G in (("a", "[1, 4]"), ("b", "[4, 8]")):  # base G=2 and G=4 in both
        specs.append(tmp_path / f"{name}.toml")
        specs[-1].write_text(tiny_spec("shared", store=store, extra=f"[oat]\nG = {G}\n"))
    planned = [{p.run_id for p in plan(load_spec(s))} for s in specs]
    assert len(planned[0] & planned[1]) == 2 and len(planned[0] | planned[1]) == 4

    code = """
        from cluster.cli import main
        sys.exit(main(["sweep", sys.argv[1], "--workers", "1", "--quiet"]))
    """
    env = {"PYTHONPATH": str(REPO), "RAY_ADDRESS": None}  # never join another cluster
    children = [_python(code, str(s), env=env) for s in specs]
    outs = [c.communicate(timeout=600)[0] for c in children]
    assert [c.returncode for c in children] == [0, 0], "\n".join(o[-2000:] for o in outs)

    opened = Store(store, create=False)
    runs = opened.runs(status=None)
    assert runs["run_id"].is_unique and set(runs["run_id"]) == planned[0] | planned[1]
    assert (runs["status"] == "ok").all()
    assert sorted(runs["G"]) == [1.0, 2.0, 4.0, 8.0]
    assert opened.verify() == []
