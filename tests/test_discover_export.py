"""Export: every file is written, and the exported formula predicts what the fit predicts."""

import json

import numpy as np
import pandas as pd
import pytest
import sympy

from discover.export import export_law, read_law_txt
from discover.fit import fit_law
from discover.formula import symbol
from discover.laws import get_law


def chinchilla_table(n):
    rng = np.random.default_rng(1)
    N, D = 10 ** rng.uniform(7, 10, n), 10 ** rng.uniform(9, 12, n)
    return pd.DataFrame({"N": N, "D": D, "loss": 1.69 + 406.4 / N**0.34 + 410.7 / D**0.28})


@pytest.fixture(scope="module")
def fitted():
    table = chinchilla_table(n=60)
    return fit_law(get_law("chinchilla"), table, n_starts=256), table


def _predict(expr, table):
    f = sympy.lambdify([symbol("N"), symbol("D")], expr, "numpy")
    return np.asarray(f(table["N"].to_numpy(), table["D"].to_numpy()), dtype=float)


def test_writes_all_four_files(fitted, tmp_path):
    fit, table = fitted
    paths = export_law(fit, tmp_path / "out", metrics={"fit": fit.metrics(table)})
    assert sorted(paths) == ["json", "srepr", "tex", "txt"]
    summary = json.loads(paths["json"].read_text())
    assert summary["name"] == "chinchilla" and summary["n_constants"] == 5
    assert summary["inputs"] == ["N", "D"] and summary["converged"] is True
    assert summary["constants"]["alpha"]["value"] == fit.params["alpha"]
    assert summary["metrics"]["fit"]["r2"] == pytest.approx(1.0)
    assert "\\frac" in paths["tex"].read_text()
    assert not list((tmp_path / "out").glob(".law*"))  # no temporary files left


def test_srepr_round_trip_predicts_like_the_fit(fitted, tmp_path):
    fit, table = fitted
    paths = export_law(fit, tmp_path)
    # sympy's srepr reader evaluates text: used here only on a file this test just wrote.
    expr = sympy.parse_expr(paths["srepr"].read_text())
    np.testing.assert_allclose(_predict(expr, table), fit.predict(table), rtol=1e-9)


def test_txt_round_trip_with_safe_parser(fitted, tmp_path):
    fit, table = fitted
    paths = export_law(fit, tmp_path)
    expr = read_law_txt(paths["txt"])
    np.testing.assert_allclose(_predict(expr, table), fit.predict(table), rtol=1e-12)
