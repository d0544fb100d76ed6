"""The discover job end to end on data planted from the joint MoE law, then export and report."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from cluster.cli import main
from discover.fit import FitResult
from discover.laws import get_law
from discover.metrics import r2
from discover.workflow import _rebuild, export_saved, load_outcome, run_discover, run_fit

FAST_SEARCH = {"generations": 15, "population_size": 120, "time_limit": 30}


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> str:
    """80 runs in the paper's ranges, losses from the reference law (no noise), as a CSV file."""
    law = get_law("moe_joint")
    rng = np.random.default_rng(7)
    n = 80
    N = np.exp(rng.uniform(np.log(1.3e8), np.log(3.4e9), n))
    table = pd.DataFrame(
        {
            "N": N,
            "Na": N * rng.uniform(0.1, 0.6, n),
            "D": np.exp(rng.uniform(np.log(1e10), np.log(5e10), n)),
            "G": rng.integers(1, 21, n).astype(float),
            "S": rng.uniform(0.0, 0.7, n),
        }
    )
    truth = FitResult(law, dict(law.reference), math.nan, True, "planted", 0)
    table["loss"] = truth.predict(table)
    path = tmp_path_factory.mktemp("planted") / "runs.csv"
    table.to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def outcome(planted, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    result = run_discover(planted, seeds=[0], out_dir=out, engine_options=FAST_SEARCH)
    return result, out


def test_reference_law_recovers_its_optima(outcome):
    result, _ = outcome
    ref = result.laws[0]
    assert ref.name == "moe_joint" and ref.n_constants == 12
    assert ref.holdout["r2"] > 0.999
    assert ref.optima["G*"] == pytest.approx(math.sqrt(7.2446 / 0.1577), rel=0.02)
    assert ref.optima["S*"] == pytest.approx(3.2363 / (2 * 5.1395), rel=0.02)
    assert result.n_holdout + result.n_fit == result.n_rows == 80
    assert result.holdout["factor"] == "N"


def test_discovered_law_is_scored_on_the_same_split(outcome):
    result, _ = outcome
    found = result.laws[1]
    assert found.name == "discovered" == result.chosen
    assert found.n_constants <= 8
    assert found.fit["n"] == result.n_fit and found.holdout["n"] == result.n_holdout
    assert found.fit["r2"] > 0.9
    assert result.front and sum(bool(row["chosen"]) for row in result.front) == 1
    text = result.format()
    assert "moe_joint" in text and "discovered" in text and "held out" in text


def test_saved_result_round_trips_and_exports(outcome, planted, tmp_path):
    result, out = outcome
    loaded = load_outcome(out / "discovery.json")
    assert loaded.laws[1].params == result.laws[1].params
    assert {p.name for p in (out / "law").iterdir()} >= {
        "law.srepr",
        "law.txt",
        "law.tex",
        "law.json",
    }

    # The law rebuilt from the saved formula (parsed without eval) predicts what was scored.
    table = pd.read_csv(planted)
    held = table["N"] > result.holdout["threshold"]
    rebuilt = _rebuild(loaded.laws[1])
    score = r2(table.loc[held, "loss"], rebuilt.predict(table[held]))
    assert score == pytest.approx(result.laws[1].holdout["r2"], rel=1e-9, abs=1e-12)

    paths = export_saved(out / "discovery.json", tmp_path / "export")
    saved = json.loads(paths["json"].read_text())
    constants = saved["constants"]
    values = {k: (v["value"] if isinstance(v, dict) else v) for k, v in constants.items()}
    assert values == pytest.approx(result.laws[1].params, rel=1e-12)


def test_cli_export_and_report(outcome, tmp_path, capsys):
    _, out = outcome
    assert main(["export", str(out / "discovery.json"), "--out", str(tmp_path / "e")]) == 0
    assert (tmp_path / "e" / "law.tex").is_file()
    capsys.readouterr()
    assert main(["report", str(out / "discovery.json"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [law["name"] for law in doc["laws"]] == ["moe_joint", "discovered"]


def test_fit_of_a_formula_string(planted):
    result = run_fit(planted, formula="L0 + A*N**(-alpha) + B*D**(-beta)")
    law = result.laws[0]
    assert law.inputs == ["N", "D"] and law.n_constants == 5
    assert set(law.params) == {"L0", "A", "alpha", "B", "beta"}
    assert law.fit["r2"] > 0.5


def test_compare_prints_one_table_of_laws_by_metrics(planted):
    from discover.workflow import run_compare

    result = run_compare(planted, laws=["moe_joint", "chinchilla"])
    lines = result.format().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("law "))
    assert "held-out R²" in lines[header] and "G*" in lines[header]
    rows = {line.split()[0]: line.split() for line in lines[header + 1 : header + 3]}
    assert set(rows) == {"moe_joint", "chinchilla"}
    ref = result.laws[0]
    assert rows["moe_joint"][1] == "12"
    assert float(rows["moe_joint"][4]) == pytest.approx(ref.holdout["r2"], abs=1e-4)
    assert float(rows["moe_joint"][6]) == pytest.approx(ref.optima["G*"], abs=1e-4)


def test_a_column_mapping_travels_with_the_result_into_exports(tmp_path):
    # Clark et al.'s N is moelaw's Na: fitted with --use N=Na, the exported function must read
    # Na from a table, not the table's own (different) N column.
    import importlib.util

    from discover.workflow import export_saved, run_fit

    rng = np.random.default_rng(0)
    na = 10 ** rng.uniform(7, 9, 60)
    e = 2.0 ** rng.integers(0, 9, 60)
    table = pd.DataFrame({"Na": na, "N": na * e, "E": e, "step": 1})
    table["loss"] = 1.6 + 40 * table["Na"] ** -0.2 * table["E"] ** -0.08
    csv = tmp_path / "runs.csv"
    table.to_csv(csv, index=False)
    outcome = run_fit(str(csv), law="moe_powerlaw4", columns={"N": "Na"}, where={"step": 1},
                      holdout_threshold=5e8, out_dir=tmp_path / "fit")  # fmt: skip
    split = {"where": {"step": 1}, "columns": {"N": "Na"}, "holdout_threshold": 5e8,
             "holdout_quantile": None}  # fmt: skip
    assert outcome.settings["split"] == split
    assert outcome.holdout["threshold"] == 5e8
    assert outcome.laws[0].columns == {"N": "Na"}
    export_saved(tmp_path / "fit" / "fit.json", tmp_path / "law")
    spec = importlib.util.spec_from_file_location("law", tmp_path / "law" / "law.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.COLUMNS["N"] == "Na"
    np.testing.assert_allclose(module.predict(table), table["loss"], rtol=1e-6)
