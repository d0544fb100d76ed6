"""Messages of the `moelaw` program speak its flags, not Python; bad flag values are named."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cluster.cli import main
from discover.engines.pysr import PYTHON_ENV, EngineUnavailable, check_available
from discover.fit import fit_law
from discover.laws import Bounds, get_law
from discover.workflow import run_compare
from results import InputError, Store, import_clark2022
from results.schema import RunRecord, run_id

CLARK_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "clark2022" / "curves.csv.gz"


def _table(n=12) -> pd.DataFrame:
    """A small study with every factor column (no granularity or sparsity columns)."""
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "N": np.geomspace(1e5, 2e6, n),
            "Na": np.geomspace(3e4, 6e5, n),
            "D": rng.choice([5e5, 1e6, 2e6], n),
            "G": rng.choice([1, 2, 4, 8], n).astype(float),
            "S": rng.choice([0.0, 0.2, 0.5], n),
            "E": rng.choice([8, 16, 32], n).astype(float),
            "loss": np.linspace(3.0, 2.2, n),
        }
    )


@pytest.fixture
def csv(tmp_path) -> str:
    path = tmp_path / "runs.csv"
    _table().to_csv(path, index=False)
    return str(path)


def _error(capsys, argv) -> str:
    """The one stderr line of a refused command (exit status 2)."""
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


# 1. --bounds: the constant, the value given and the fix


def test_bounds_low_above_high_names_constant_value_and_fix(csv, capsys):
    line = _error(capsys, ["fit", "--law", "chinchilla", "--data", csv, "--bounds", "A=5:1"])
    assert "--bounds A=5:1: the lower bound of A must be below the upper" in line
    assert "LO=5, HI=1" in line and "--bounds A=1:5" in line


def test_bounds_equal_ends_are_refused(csv, capsys):
    line = _error(capsys, ["fit", "--law", "chinchilla", "--data", csv, "--bounds", "A=3:3"])
    assert "--bounds A=3:3" in line and "LO=3, HI=3" in line and "interval around 3" in line


def test_log_bounds_need_a_positive_low(csv, capsys):
    argv = ["fit", "--law", "chinchilla", "--data", csv, "--bounds", "alpha=0:2:log"]
    line = _error(capsys, argv)
    assert "--bounds alpha=0:2:log" in line and "needs LO > 0, got LO=0" in line
    assert "--bounds alpha=1e-9:2:log" in line and "drop ':log'" in line
    assert "positive=" not in line


@pytest.mark.parametrize("text", ["nan:1", "0:inf"])
def test_bounds_must_be_finite(csv, capsys, text):
    line = _error(capsys, ["fit", "--law", "chinchilla", "--data", csv, "--bounds", f"B={text}"])
    assert f"--bounds B={text}" in line and "finite" in line and "--bounds B=1e-9:1e9" in line


def test_bounds_messages_of_the_library_name_both_fixes():
    with pytest.raises(InputError) as caught:
        Bounds(5.0, 1.0)
    assert "lo=5.0, hi=1.0" in str(caught.value)
    assert "--bounds NAME=LO:HI" in str(caught.value) and "Bounds(lo, hi)" in str(caught.value)
    with pytest.raises(InputError) as caught:
        Bounds(0.0, 1.0, positive=True)
    assert "drop ':log' from --bounds" in str(caught.value)
    assert "positive=False in Python" in str(caught.value)


def test_constant_at_a_bound_says_which_flag_widens_it(csv, capsys):
    code = main(["fit", "--law", "chinchilla", "--data", csv, "--bounds", "A=1:2"])
    out = " ".join(capsys.readouterr().out.split())  # notes are wrapped at 100 columns
    assert code == 0
    assert "A at its upper bound 2" in out
    assert "widen it (`--bounds A=LO:HI" in out and "with `moelaw fit --law` or `--formula`;" in out
    assert "law.with_bounds(NAME=Bounds(lo, hi)) in Python" in out
    assert "law.with_bounds(...)" not in out
    assert "`moelaw fit --formula` on the command line, law.fix(NAME=value) in Python" in out


def test_fit_message_of_the_library_names_the_bounds():
    law = get_law("chinchilla").with_bounds(A=Bounds(1.0, 2.0))
    with pytest.warns(Warning):
        fit = fit_law(law, _table(), "loss")
    assert "A at its upper bound 2;" in fit.message or "A at its upper bound 2," in fit.message
    assert "--bounds A=LO:HI" in fit.message


# 2. --use: never the target, never one column for two symbols


def test_use_refuses_the_target_column(csv, capsys):
    line = _error(capsys, ["fit", "--law", "chinchilla", "--data", csv, "--use", "N=loss"])
    assert "--use N=loss reads the input N from 'loss'" in line
    assert "(--target loss)" in line and "predict loss from itself" in line


def test_use_refuses_an_input_from_another_target(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    _table().assign(loss2=lambda t: t.loss + 0.1).to_csv(path, index=False)
    argv = ["compare", "--laws", "chinchilla", "--data", str(path), "--target", "loss2"]
    line = _error(capsys, [*argv, "--use", "D=loss2"])
    assert "--use D=loss2" in line and "(--target loss2)" in line


def test_use_refuses_replacing_the_target(csv, capsys):
    line = _error(capsys, ["compare", "--laws", "chinchilla", "--data", csv, "--use", "loss=Na"])
    assert "--use loss=Na would replace the target column 'loss' with 'Na'" in line
    assert "--target Na" in line


def test_use_refuses_two_symbols_from_one_column(csv, capsys):
    argv = ["fit", "--law", "chinchilla", "--data", csv, "--use", "N=Na", "--use", "D=Na"]
    line = _error(capsys, argv)
    assert "--use N=Na and --use D=Na read the inputs N, D from one column 'Na'" in line


def test_use_of_another_column_still_works(csv, capsys):
    code = main(["fit", "--law", "clark2022", "--data", csv, "--use", "N=Na", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["laws"][0]["columns"]["N"] == "Na"


# 3. compare --laws all names what it leaves out


def test_compare_all_names_the_skipped_laws_and_their_columns(csv, capsys):
    code = main(["compare", "--laws", "all", "--data", csv, "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    skipped = doc["settings"]["skipped_laws"]
    assert skipped["krajewski2024"] == ["granularity"] and skipped["abnar2025"] == ["sparsity"]
    assert skipped["tao2024_vocab"] == ["N_nv", "N_v", "H"]
    compared = [law["name"] for law in doc["laws"]]
    assert "chinchilla" in compared and "krajewski2024" not in compared
    assert not set(compared) & set(skipped)
    note = doc["notes"][0]
    assert note.startswith(f"skipped {len(skipped)} law(s) whose inputs are not columns")
    assert "krajewski2024 (no column granularity)" in note
    assert "abnar2025 (no column sparsity)" in note


def test_compare_all_prints_the_skipped_laws(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    _table().drop(columns=["E", "G", "S", "Na"]).to_csv(path, index=False)
    code = main(["compare", "--laws", "all", "--data", str(path)])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0 and "== chinchilla" in out
    assert "moe_joint (no column Na, G, S)" in out and "clark2022 (no column E)" in out


def test_compare_of_named_laws_refuses_one_without_its_columns(csv, capsys):
    line = _error(capsys, ["compare", "--laws", "chinchilla,abnar2025", "--data", csv])
    assert "--laws chinchilla,abnar2025: cannot compare 1 law(s)" in line
    assert "abnar2025 (no column sparsity)" in line


def test_compare_all_with_no_law_left_is_refused(tmp_path):
    path = tmp_path / "renamed.csv"
    _table().rename(columns={"N": "params", "D": "tokens", "Na": "active"}).to_csv(path)
    with pytest.raises(InputError, match="--laws all: cannot compare .* chinchilla \\(no column"):
        run_compare(str(path), laws=["all"], holdout_factor="params")


# 4. The store: how to create one, in commands


def test_a_folder_that_is_not_a_store_names_the_commands_that_make_one(tmp_path, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("not runs\n")
    line = _error(capsys, ["fit", "--law", "chinchilla", "--data", str(folder)])
    assert f"{folder} is not a moelaw results store" in line
    assert "`moelaw sweep SPEC --store NEW`" in line
    assert "`moelaw data import-clark curves.csv.gz --store NEW`" in line


def test_a_missing_store_names_the_commands_and_the_python_call(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(InputError) as caught:
        Store(missing, create=False)
    message = str(caught.value)
    assert f"`moelaw sweep SPEC --store {missing}`" in message
    assert "on the command line, Store(path, create=True) in Python" in message


# 5. PySR elsewhere


def test_pysr_from_a_python_that_cannot_run_names_the_variable(tmp_path):
    with pytest.raises(EngineUnavailable) as caught:
        check_available(python=str(tmp_path / "no-python"))
    message = str(caught.value)
    assert f"set the environment variable {PYTHON_ENV}" in message
    assert "(python= in Python)" in message and "pass python=" not in message


@pytest.mark.skipif(importlib.util.find_spec("pysr") is not None, reason="pysr is installed")
def test_pysr_missing_says_it_can_run_from_another_python():
    with pytest.raises(EngineUnavailable) as caught:
        check_available(python=sys.executable)
    message = str(caught.value)
    assert "PySR can also run from another Python PY" in message
    assert "`PY -m pip install pysr`" in message and "`PY -m pysr install`" in message
    assert f"{PYTHON_ENV}=PY (python=PY in Python)" in message


# 6. Clark et al. never join another study's store unasked


def _other_run() -> RunRecord:
    config = {"study": "mine", "i": 0}
    return RunRecord(
        run_id=run_id(config), source="my-sweep", status="ok", error="",
        N=1e6, Na=2e5, D=1e8, G=2, S=0.0, E=8, loss=3.1, seed=0, wall_time_s=1.0,
        config=config, architecture={}, curve=[], extra={},
    )  # fmt: skip


@pytest.fixture
def small_clark(tmp_path) -> Path:
    if not CLARK_CSV.is_file():
        pytest.skip(f"{CLARK_CSV} is not present")
    path = tmp_path / "small.csv"
    pd.read_csv(CLARK_CSV).query("hyper_id < 2").to_csv(path, index=False)
    return path


def test_clark_import_into_another_study_is_refused(tmp_path, small_clark, capsys):
    store = Store(tmp_path / "mine")
    store.write(_other_run())
    argv = ["data", "import-clark", str(small_clark), "--store", str(store.path)]
    line = _error(capsys, argv)
    assert f"results store {store.path} already holds runs of another study (1 of 'my-sweep')" in (
        line
    )
    assert "Import into a new or empty store" in line and "--store stores/clark2022" in line
    assert "--allow-mixed" in line
    assert store.ids(None) == {_other_run().run_id}  # nothing was written
    # On purpose, from the command line too
    assert main([*argv, "--allow-mixed"]) == 0
    assert sorted(store.runs().source) == ["clark2022", "clark2022", "my-sweep"]


def test_clark_import_again_and_on_purpose(tmp_path, small_clark):
    store = Store(tmp_path / "clark")
    assert import_clark2022(small_clark, store) == 2
    assert import_clark2022(small_clark, store, tokens_per_step=1000) == 2  # same study: fine
    mixed = Store(tmp_path / "mixed")
    mixed.write(_other_run())
    assert import_clark2022(small_clark, mixed, allow_mixed=True) == 2
    assert sorted(mixed.runs().source) == ["clark2022", "clark2022", "my-sweep"]


def test_an_unreadable_run_file_names_the_command_that_reruns_it(tmp_path):
    store = Store(tmp_path / "mine")
    store.write(_other_run())
    path = store.path / "runs" / f"{_other_run().run_id}.parquet"
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(InputError) as caught:
        store.runs()
    message = str(caught.value)
    assert "1 unreadable run file(s)" in message
    assert "(`moelaw sweep SPEC` runs only the missing ones)" in message
    assert "skip_corrupt=True in Python" in message


def test_a_loss_floor_at_zero_is_not_told_to_widen(tmp_path, capsys):
    rng = np.random.default_rng(4)
    N = 10 ** rng.uniform(6, 9, 40)
    loss = (400 * N**-0.3 - 0.1) * np.exp(0.005 * rng.standard_normal(40))  # floor "wants" -0.1
    path = tmp_path / "runs.csv"
    pd.DataFrame({"N": N, "loss": loss}).to_csv(path, index=False)
    assert main(["fit", "--formula", "L0 + A*N**(-alpha)", "--data", str(path),
                 "--bounds", "A=1:1e6:log"]) == 0  # fmt: skip
    out = " ".join(capsys.readouterr().out.split())
    assert (
        "L0 at 0, the lowest a loss floor can be: the data do not locate an irreducible loss"
        in (out)
    )
    assert "--bounds L0" not in out
