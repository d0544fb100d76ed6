"""Untrusted files: nothing unpickles a user's file, and a damaged store names its bad runs.

The source scan reads every module of the four packages: a pickle, a ``torch.load`` without
``weights_only=True``, an ``np.load`` allowing pickles, or an ``eval``/``exec`` of text would run
code from a file a colleague shared.
"""

from __future__ import annotations

import io
import pickle
import re
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

import results
from cluster.cli import main
from discover.data import load_table
from discover.workflow import export_saved, run_fit
from results.errors import InputError, StoreError
from results.store import Store

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("results", "discover", "cluster", "trainer")

# (pattern, what it does): any match in package source is a finding.
UNSAFE = [
    (r"\bpickle\.loads?\(|\bcPickle\.|\bdill\.|\bcloudpickle\.loads?\(", "unpickles"),
    (r"\bread_pickle\(|\bjoblib\.load\(|\bshelve\.open\(|\bmarshal\.loads?\(", "unpickles"),
    (r"allow_pickle\s*=\s*True", "lets numpy unpickle"),
    (r"(?<![\w.])(eval|exec)\(", "executes text"),
    (r"\bparse_expr\(|\bsympy\.S\(\s*['\"]", "evaluates text through sympy"),
    (r"\byaml\.load\(|\byaml\.unsafe_load\(", "builds objects from YAML"),
]
# sympify of an object that is already a sympy expression never parses text.
SYMPIFY_OK = {
    "discover/laws.py": "canonical(sympy.sympify(expr))",  # the branch for non-str expr
    "discover/optima.py": "sympy.sympify(root)",  # a root returned by sympy.solve
    "discover/candidates.py": "walk(sp.sympify(expr))",  # parametrize(expr: sp.Expr)
}


def _sources():
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            yield path.relative_to(REPO).as_posix(), path.read_text()


def _calls(text: str, name: str) -> list[str]:
    """The full text of every call ``name(...)``, parentheses balanced."""
    calls = []
    for match in re.finditer(rf"\b{re.escape(name)}\(", text):
        depth, end = 0, match.end() - 1
        for end in range(match.end() - 1, len(text)):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            if depth == 0:
                break
        calls.append(text[match.start() : end + 1])
    return calls


def test_no_package_module_unpickles_or_evaluates_text():
    findings = []
    for name, text in _sources():
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        for pattern, does in UNSAFE:
            findings += [f"{name}: {m.group(0)!r} {does}" for m in re.finditer(pattern, code)]
        for call in _calls(code, "np.load") + _calls(code, "numpy.load"):
            if "allow_pickle" in call:
                findings.append(f"{name}: {call!r} passes allow_pickle")
        for call in _calls(code, "sympify"):
            if call not in SYMPIFY_OK.get(name, ""):
                findings.append(f"{name}: {call!r} may parse text with eval")
    assert not findings, "\n".join(findings)


def test_every_torch_load_uses_weights_only():
    loads = [(name, call) for name, text in _sources() for call in _calls(text, "torch.load")]
    assert loads, "expected the trainer's checkpoint loading"
    unsafe = [f"{name}: {call}" for name, call in loads if "weights_only=True" not in call]
    assert not unsafe, unsafe


class _Payload:
    """Unpickling this creates the file ``canary``: proof that a pickle was loaded."""

    def __init__(self, canary: Path):
        self.canary = canary

    def __reduce__(self):
        return (Path.touch, (self.canary,))


def test_a_hostile_checkpoint_in_a_checkpoint_dir_runs_no_code(tmp_path):
    pytest.importorskip("torch")
    from cluster.runner import _checkpoint_step

    canary = tmp_path / "tripped"
    with open(tmp_path / "checkpoint.pt", "wb") as handle:
        pickle.dump({"step": 7, "payload": _Payload(canary)}, handle)
    step = _checkpoint_step(tmp_path)
    assert not canary.exists(), "loading checkpoint.pt ran code from it"
    assert step == 0


# ----------------------------------------------------------------------------------------------
# Damaged stores and files


@pytest.fixture
def damaged(tmp_path) -> tuple[Path, list[str]]:
    """A copy of the bundled store with one truncated and one garbled run file (a pickle)."""
    store = tmp_path / "store"
    shutil.copytree(results.bundled_store_path("cpu-moe-v1"), store)
    files = sorted((store / "runs").glob("*.parquet"))
    data = files[3].read_bytes()
    files[3].write_bytes(data[: len(data) // 2])
    canary = tmp_path / "tripped"
    files[7].write_bytes(pickle.dumps(_Payload(canary)))
    return store, sorted([files[3].stem, files[7].stem])


def test_load_table_names_the_bad_runs_and_the_fix(damaged):
    store, bad = damaged
    with pytest.raises(StoreError) as err:
        load_table(store)
    text = str(err.value)
    assert "\n" not in text
    assert f"run ids {bad[0]}, {bad[1]}" in text
    assert f"runs/{bad[0]}.parquet" in text and "moelaw sweep" in text
    assert not (store.parent / "tripped").exists()

    with pytest.warns(UserWarning, match=bad[0]):
        rest = load_table(store, skip_corrupt=True)
    good = Store(results.bundled_store_path("cpu-moe-v1")).runs()
    assert len(rest) == len(good) - 2
    assert set(rest["run_id"]) == set(good["run_id"]) - set(bad)


def test_the_rest_of_a_damaged_store_stays_usable(damaged):
    store, bad = damaged
    opened = Store(store, create=False)
    assert opened.verify() == bad
    assert len(opened.ids(None)) == 25
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curves = opened.curves(skip_corrupt=True)
    assert set(curves["run_id"]).isdisjoint(bad) and curves["run_id"].nunique() == 23

    # Deleting the named files, as the message says, makes the store whole again.
    for run_id in bad:
        (store / "runs" / f"{run_id}.parquet").unlink()
    assert len(load_table(store)) == 23


@pytest.mark.parametrize("argv", [["data", "show"], ["discover", "--seeds", "0", "--data"]])
def test_the_cli_ends_with_one_line_naming_the_bad_runs(damaged, capsys, tmp_path, argv):
    store, bad = damaged
    argv = [*argv, str(store)] + (["--out", str(tmp_path / "out")] if "discover" in argv else [])
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1, err
    assert all(run_id in err[0] for run_id in bad)
    assert "delete" in err[0] and "moelaw sweep" in err[0]
    assert not (tmp_path / "out").exists()


def test_a_truncated_parquet_or_csv_given_directly_is_one_line(tmp_path):
    table = pd.DataFrame({"N": [1e5, 1e6, 1e7], "D": [1e9, 1e9, 1e10], "loss": [3.0, 2.5, 2.2]})
    buffer = io.BytesIO()
    table.to_parquet(buffer)
    (tmp_path / "t.parquet").write_bytes(buffer.getvalue()[:-20])
    (tmp_path / "t.csv").write_bytes(b"N,D,loss\n1e5,1e9,3\n\xff\xfe\x00")
    (tmp_path / "pickle.parquet").write_bytes(pickle.dumps(_Payload(tmp_path / "tripped")))
    for name in ("t.parquet", "t.csv", "pickle.parquet"):
        with pytest.raises(InputError) as err:
            load_table(tmp_path / name)
        assert name in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "tripped").exists()


def test_a_saved_result_with_a_hostile_formula_is_refused(tmp_path):
    table = pd.DataFrame(
        {"N": [1e5, 3e5, 1e6, 3e6, 1e7, 3e7], "D": [1e9, 1e10] * 3, "loss": [3, 2.8, 2.6, 2.5,
                                                                           2.4, 2.35]}
    )  # fmt: skip
    table.to_csv(tmp_path / "runs.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_fit(tmp_path / "runs.csv", law="chinchilla", out_dir=tmp_path / "fit")
    saved = tmp_path / "fit" / "fit.json"
    canary = tmp_path / "tripped"
    text = saved.read_text().replace(
        '"formula": "', f"\"formula\": \"__import__('pathlib').Path('{canary}').touch() + ", 1
    )
    saved.write_text(text)
    with pytest.raises(InputError, match="only plain function names|not allowed|refused"):
        export_saved(saved, tmp_path / "law")
    assert not canary.exists()
