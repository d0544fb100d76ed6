"""Exports carry each constant's search bounds, and a command line that fits the law again.

A discovered law's constants are searched in the engine's bounds (a scale in [1e-8, 1e12], log
space); the same formula typed into ``moelaw fit --formula`` gets the defaults (-100 to 100) and
fits worse. ``law.json`` used to claim the defaults for every constant. Now it records the law's
own bounds, and :func:`discover.export.fit_command` writes them out as ``--bounds``, so the
command reproduces the fit.
"""

import importlib.util
import json
import shlex
import warnings

import numpy as np
import pandas as pd
import pytest

from cluster.cli import main
from discover.export import bounds_from_json, export_law, fit_command, to_numpy_function
from discover.fit import FitResult, fit_law
from discover.laws import Bounds, default_bounds, law_from_expr

FORMULA = "c4 + c3/N**c2 + c1/D**c0"
#: The structured engine's bounds for this shape (discover/engines/structured.py).
ENGINE_BOUNDS = {
    "c0": Bounds(1e-3, 3.0, positive=True),
    "c1": Bounds(1e-8, 1e12, positive=True),
    "c2": Bounds(1e-3, 3.0, positive=True),
    "c3": Bounds(1e-8, 1e12, positive=True),
    "c4": Bounds(1e-4, 1e3, positive=True),
}
TRUTH = {"c0": 0.5, "c1": 2.5e3, "c2": 0.9, "c3": 6.69e6, "c4": 1.7}
THRESHOLD = 3e7  # runs with N above it are held out, in Python and on the command line


def planted_table(n=48, seed=0) -> pd.DataFrame:
    """Runs of a known law whose scale c3 = 6.69e6 lies far outside the default [-100, 100]."""
    rng = np.random.default_rng(seed)
    N, D = 10 ** rng.uniform(5, 8, n), 10 ** rng.uniform(6, 9, n)
    t = TRUTH
    loss = t["c4"] + t["c3"] / N ** t["c2"] + t["c1"] / D ** t["c0"]
    return pd.DataFrame({"N": N, "D": D, "loss": loss * np.exp(rng.normal(0.0, 0.002, n))})


@pytest.fixture(scope="module")
def table_csv(tmp_path_factory):
    table = planted_table()
    path = tmp_path_factory.mktemp("runs") / "runs.csv"
    table.to_csv(path, index=False)
    return table, path


@pytest.fixture(scope="module")
def engine_fit(table_csv):
    """The planted law fitted within the engine's bounds, on the rows `moelaw fit` fits on."""
    table, _ = table_csv
    law = law_from_expr(FORMULA, ["N", "D"], name="discovered", bounds=ENGINE_BOUNDS)
    return fit_law(law, table[table["N"] <= THRESHOLD].reset_index(drop=True))


def run_cli(argv, capsys) -> dict:
    """Run ``moelaw ARGV`` in this process; the constants of the law it fits (from ``--json``)."""
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0, capsys.readouterr().err
    (law,) = json.loads(capsys.readouterr().out)["laws"]
    return law["params"]


def test_law_json_and_law_py_record_the_laws_own_bounds(engine_fit, tmp_path):
    fit = engine_fit
    paths = export_law(fit, tmp_path, data_flag="runs.csv")
    doc = json.loads(paths["json"].read_text())
    assert doc["constants"]["c3"] == {
        "value": fit.params["c3"], "lo": 1e-8, "hi": 1e12, "log_space": True, "positive": True,
        "reference": None,
    }  # fmt: skip
    assert doc["constants"]["c4"]["lo"] == 1e-4 and doc["constants"]["c4"]["hi"] == 1e3
    assert bounds_from_json(doc["constants"]) == fit.law.constants == ENGINE_BOUNDS

    spec = importlib.util.spec_from_file_location("exported_bounds", paths["py"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.BOUNDS["c3"] == (1e-8, 1e12, True)
    assert {k: (b.lo, b.hi, b.positive) for k, b in ENGINE_BOUNDS.items()} == module.BOUNDS
    assert module.REFIT_COMMAND == doc["refit_command"] == fit_command(fit, "runs.csv")


def test_fit_command_writes_every_bound_digit_for_digit(engine_fit):
    assert fit_command(engine_fit, "runs.csv") == (
        "moelaw fit --data runs.csv --formula 'c4 + c3/N**c2 + c1/D**c0' "
        "--bounds c0=0.001:3.0:log --bounds c1=1e-08:1000000000000.0:log "
        "--bounds c2=0.001:3.0:log --bounds c3=1e-08:1000000000000.0:log "
        "--bounds c4=0.0001:1000.0:log"
    )
    # A Law works as well as a fit; flags text is kept as typed; odd bounds survive repr.
    law = law_from_expr("L0 + A*N**(-alpha)", ["N"], bounds={"A": Bounds(0.1 + 0.2, 7e300)})
    assert fit_command(law, "--data 'my runs.csv' --where extra_step=249000") == (
        "moelaw fit --data 'my runs.csv' --where extra_step=249000 "
        "--formula 'A/N**alpha + L0' --bounds A=0.30000000000000004:7e+300 "
        "--bounds L0=0.0:10.0 --bounds alpha=0.0:2.0"
    )
    assert fit_command(law, "my runs.csv").startswith("moelaw fit --data 'my runs.csv' --formula")
    assert fit_command(law).startswith("moelaw fit --formula")  # the bundled study


def test_refit_command_reproduces_the_fit_through_the_cli(engine_fit, table_csv, capsys):
    fit = engine_fit
    _, csv = table_csv
    command = fit_command(fit, f"--data {shlex.quote(str(csv))} --holdout-above {THRESHOLD!r}")
    argv = shlex.split(command)
    assert argv[:2] == ["moelaw", "fit"]
    params = run_cli(argv[1:], capsys)
    assert params == pytest.approx(fit.params, rel=1e-6)
    assert fit.params["c3"] == pytest.approx(TRUTH["c3"], rel=0.05)

    # The fault: the printed formula alone gets the default bounds and cannot reach c3.
    typed = run_cli(["fit", "--data", str(csv), "--holdout-above", repr(THRESHOLD),
                     "--formula", FORMULA], capsys)  # fmt: skip
    assert typed["c3"] <= 100.0 < fit.params["c3"]


def test_a_discovered_laws_command_reproduces_its_constants(table_csv, capsys):
    from discover.estimator import LawRegressor

    table, csv = table_csv
    rows = table[table["N"] <= THRESHOLD].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LawRegressor(["N", "D"], max_constants=5, engines=("structured",)).fit(
            rows[["N", "D", "loss"]], "loss"
        )
    best = model.best_
    # The engine's own bounds, not those a typed formula gets.
    assert all(b != default_bounds(name) for name, b in best.law.constants.items())
    argv = shlex.split(
        fit_command(best, f"--data {shlex.quote(str(csv))} --holdout-above {THRESHOLD!r}")
    )
    assert run_cli(argv[1:], capsys) == pytest.approx(best.params, rel=1e-6)


def test_fit_command_carries_the_column_mapping_and_the_objective(capsys, tmp_path):
    rng = np.random.default_rng(5)
    Na = 10 ** rng.uniform(6, 9, 30)
    table = pd.DataFrame({"Na": Na, "N": 4 * Na, "loss": 1.7 + 400.0 / Na**0.3})
    table.to_csv(tmp_path / "runs.csv", index=False)
    law = law_from_expr("L0 + A*N**(-alpha)", ["N"], bounds={"A": Bounds(1.0, 1e4, True)})
    rows = table[table["Na"] <= 1e8].reset_index(drop=True)
    options = {"loss": "squared", "residual": "linear", "columns": {"N": "Na"}}
    fit = fit_law(law, rows, **options)

    csv = shlex.quote(str(tmp_path / "runs.csv"))
    command = fit_command(fit, f"--data {csv} --holdout-factor Na --holdout-above 1e8")
    assert command.endswith("--use N=Na --loss squared --residual linear")
    assert run_cli(shlex.split(command)[1:], capsys) == pytest.approx(fit.params, rel=1e-6)


def test_a_law_the_command_line_cannot_fit_is_exported_with_the_reason(tmp_path):
    law = law_from_expr("L0 + A*N**(-alpha)", ["N"], bounds={"A": Bounds(1.0, float("inf"))})
    fit = FitResult(law, {"L0": 1.7, "A": 400.0, "alpha": 0.3}, 0.0, True, "converged", 0)
    doc = json.loads(export_law(fit, tmp_path)["json"].read_text())
    assert doc["refit_command"] is None
    assert doc["refit_note"] == (
        "constant 'A' has bounds [1.0, inf], which `moelaw fit --bounds` cannot take; give it "
        "finite bounds (law.with_bounds(A=Bounds(lo, hi)))"
    )
    assert doc["constants"]["A"]["hi"] is None  # JSON has no infinity
    assert bounds_from_json(doc["constants"]) == law.constants
    assert to_numpy_function(fit).refit_command is None


def test_saved_results_export_the_bounds_they_were_fitted_in(table_csv, tmp_path):
    from discover.workflow import run_fit

    _, csv = table_csv
    given = {"c3": "1e-8:1e12:log", "c1": "1e-8:1e12:log", "c4": "1e-4:1e3:log"}
    run_fit(csv, formula=FORMULA, bounds=given, holdout_threshold=THRESHOLD, out_dir=tmp_path)
    doc = json.loads((tmp_path / "law" / "law.json").read_text())
    assert doc["constants"]["c3"]["lo"] == 1e-8 and doc["constants"]["c3"]["hi"] == 1e12


def test_a_saved_results_command_selects_the_same_runs_and_split(table_csv, tmp_path, capsys):
    # The command names the data, the row selection and the holdout of the result: run from any
    # folder it fits the same rows (it once read the bundled study instead)
    from discover.workflow import run_fit

    table, _ = table_csv
    csv = tmp_path / "tagged runs.csv"  # a space: the path must be quoted
    pd.concat([table.assign(tag=1), table.head(5).assign(tag=2, loss=9.0)]).to_csv(csv, index=False)
    given = {"c3": "1e-8:1e12:log", "c1": "1e-8:1e12:log", "c4": "1e-4:1e3:log"}
    outcome = run_fit(csv, formula=FORMULA, bounds=given, holdout_threshold=THRESHOLD,
                      where={"tag": 1}, out_dir=tmp_path / "out")  # fmt: skip
    command = json.loads((tmp_path / "out" / "law" / "law.json").read_text())["refit_command"]
    assert command.startswith(
        f"moelaw fit --data '{csv}' --where tag=1 --holdout-above {float(THRESHOLD)!r} --formula "
    )
    params = run_cli(shlex.split(command)[1:], capsys)
    for name, value in outcome.laws[0].params.items():
        assert params[name] == pytest.approx(value, rel=1e-6)
