"""Bad input to the `moelaw` program: exit status 2, one line naming the problem, nothing left."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cluster.cli import main
from results.store import Store

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "austen.txt"


def _table(n=12, **overrides) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "N": np.geomspace(1e5, 2e6, n),
            "Na": np.geomspace(3e4, 6e5, n),
            "D": rng.choice([5e5, 1e6, 2e6], n),
            "G": rng.choice([1, 2, 4, 8], n).astype(float),
            "S": rng.choice([0.0, 0.2, 0.5], n),
            "loss": np.linspace(3.0, 2.2, n),
        }
    )
    for key, value in overrides.items():
        table[key] = value
    return table


def _run(capsys, argv) -> tuple[int, list[str]]:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def _assert_one_line(code, err, *words):
    assert code == 2
    assert len(err) == 1, err
    for word in words:
        assert word in err[0], err[0]


def test_missing_column(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    _table().drop(columns=["D"]).to_csv(path, index=False)
    code, err = _run(capsys, ["fit", "--law", "chinchilla", "--data", str(path)])
    _assert_one_line(code, err, "'D'")


def test_unknown_column_for_holdout(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    _table().to_csv(path, index=False)
    argv = ["fit", "--law", "chinchilla", "--data", str(path), "--holdout-factor", "Q"]
    code, err = _run(capsys, argv)
    _assert_one_line(code, err, "'Q'")


@pytest.mark.parametrize(
    ("value", "word"),
    [(np.nan, "NaN"), (np.inf, "inf"), (-1.0, "positive"), (0.0, "positive")],
)
def test_bad_losses_name_the_rows(tmp_path, capsys, value, word):
    table = _table()
    table.loc[3, "loss"] = value
    path = tmp_path / "runs.csv"
    table.to_csv(path, index=False)
    code, err = _run(capsys, ["fit", "--law", "chinchilla", "--data", str(path)])
    _assert_one_line(code, err, "loss", "3")
    assert word.lower() in err[0].lower()


def test_results_path_that_does_not_exist(tmp_path, capsys):
    code, err = _run(capsys, ["discover", "--data", str(tmp_path / "nowhere")])
    _assert_one_line(code, err, "nowhere")


def test_empty_store(tmp_path, capsys):
    Store(tmp_path / "empty", create=True)
    code, err = _run(capsys, ["discover", "--data", str(tmp_path / "empty")])
    _assert_one_line(code, err, "moelaw sweep")


def _write_spec(tmp_path, defaults: str, extra: str = "") -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(
        f'name = "t"\nstore = "store"\n[data]\nfiles = ["{CORPUS}"]\n'
        f"[defaults]\n{defaults}\n{extra}"
    )
    return path


def test_spec_with_unknown_factor(tmp_path, capsys):
    spec = _write_spec(tmp_path, "N = 1e5\nNa_ratio = 0.4\nD = 2e4", "[grid]\nK = [1, 2]\n")
    code, err = _run(capsys, ["sweep", str(spec), "--quiet"])
    _assert_one_line(code, err, "unknown key 'K'")
    assert not (tmp_path / "store" / "runs").exists() or not any(
        (tmp_path / "store" / "runs").iterdir()
    )


@pytest.mark.parametrize(
    ("defaults", "word"),
    [
        ("N = 1e5\nNa = 2e5\nD = 2e4", "Na"),
        ("N = 1e5\nNa_ratio = 0.4\nD = 2e4\nS = 1.0", "S"),
        ("N = 1e5\nNa_ratio = 0.4\nD = 2e4\nG = 0", "G"),
    ],
)
def test_spec_with_impossible_combination(tmp_path, capsys, defaults, word):
    spec = _write_spec(tmp_path, defaults)
    code, err = _run(capsys, ["sweep", str(spec), "--quiet"])
    _assert_one_line(code, err, word, "point (")
    assert not (tmp_path / "store").exists()


def test_unsafe_formula_is_refused(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    _table().to_csv(path, index=False)
    formula = "__import__('os').system('echo hacked') + N"
    code, err = _run(capsys, ["fit", "--formula", formula, "--data", str(path)])
    _assert_one_line(code, err)


def test_export_of_a_missing_result(tmp_path, capsys):
    code, err = _run(capsys, ["export", str(tmp_path / "discovery.json"), "--out", str(tmp_path)])
    _assert_one_line(code, err, "moelaw discover")


@pytest.mark.parametrize(
    ("defaults", "words"),
    [
        ("N = 1e5\nNa_ratio = 0.4\nD = 2e4\nG = 2.5", ["'G'", "whole number", "2.5"]),
        ("N = 1e5\nNa_ratio = 0.4\nD = 100", ["D=100", "one step"]),
        ("N = 1e5\nNa_ratio = 0.4\nD = -2e4", ["D=-20000", "one step"]),
    ],
)
def test_spec_values_that_cannot_train_are_refused_by_their_spec_key(
    tmp_path, capsys, defaults, words
):
    spec = _write_spec(tmp_path, defaults)
    code, err = _run(capsys, ["sweep", str(spec), "--dry-run"])
    _assert_one_line(code, err, *words)
    assert not (tmp_path / "store").exists()


def test_dry_run_writes_nothing(tmp_path, capsys):
    spec = _write_spec(tmp_path, "N = 1e5\nNa_ratio = 0.4\nD = 2e4")
    assert main(["sweep", str(spec), "--dry-run"]) == 0
    assert "1 of 1 runs to train" in capsys.readouterr().out
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    "argv, words",
    [
        (["discover", "--out", "{file}"], ["--out", "is a file, not a folder"]),
        (["fit", "--law", "chinchilla", "--out", "{file}/sub"], ["--out", "cannot be created"]),
        (["report", "--html", "{file}"], ["--html", "is a file, not a folder"]),
        (["discover", "--time-limit", "-1"], ["--time-limit", "positive", "-1"]),
        (["fit", "--law", "chinchilla", "--where", "G=4", "--where", "G=8"],
         ["--where", "'G' twice", "'4'", "'8'"]),
    ],
)  # fmt: skip
def test_bad_output_folders_and_options_are_refused_before_any_work(tmp_path, capsys, argv,
                                                                     words):  # fmt: skip
    # These used to run the whole job (20-30 s) and then end in a traceback, or silently keep
    # the last of two --where values for one column.
    taken = tmp_path / "taken.csv"
    taken.write_text("a file where a folder is expected\n")
    argv = [a.replace("{file}", str(taken)) for a in argv]
    code, err = _run(capsys, argv)
    _assert_one_line(code, err, *words)
    assert taken.read_text() == "a file where a folder is expected\n"
