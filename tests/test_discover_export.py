"""Export: every file is written, and the exported formula predicts what the fit predicts."""

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
import sympy

from discover.export import export_law, latex_text, read_law_txt, to_numpy_function
from discover.fit import fit_law
from discover.formula import symbol
from discover.laws import get_law, law_from_expr
from results.errors import InputError


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
    assert sorted(paths) == ["json", "py", "srepr", "tex", "txt"]
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


def _import_module(path, name):
    """Import a module from a file path, as a user of the exported law.py would."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_numpy_function_predicts_like_the_fit(fitted):
    fit, table = fitted
    f = to_numpy_function(fit)
    expected = fit.predict(table)
    np.testing.assert_allclose(f(table), expected, rtol=1e-9)
    np.testing.assert_allclose(f(table["N"], table["D"]), expected, rtol=1e-9)
    np.testing.assert_allclose(f(D=table["D"].to_numpy(), N=table["N"].to_numpy()), expected,
                               rtol=1e-9)  # fmt: skip
    assert f.inputs == ("N", "D") and f.constants == fit.params
    assert f(1e9, 1e11).shape == ()


def test_written_law_py_predicts_like_the_fit(fitted, tmp_path):
    fit, table = fitted
    paths = export_law(fit, tmp_path)
    module = _import_module(paths["py"], "exported_chinchilla")
    np.testing.assert_allclose(module.predict(table), fit.predict(table), rtol=1e-9)
    as_dict = {"N": table["N"].to_numpy(), "D": table["D"].to_numpy()}
    np.testing.assert_allclose(module.predict(as_dict), fit.predict(table), rtol=1e-9)
    # Constants are written digit for digit (repr of the float64 value).
    assert fit.params == module.CONSTANTS
    assert module.INPUTS == ("N", "D")
    assert "import numpy as np" in paths["py"].read_text()
    assert "sympy" not in paths["py"].read_text().split('"""')[2]


def test_law_py_of_an_engine_style_law_with_functions(tmp_path):
    # A discovered law: exp/log of the inputs, a read column different from the symbol
    # (N read from column Na), negative and tiny constants, keyword-named constants.
    rng = np.random.default_rng(3)
    table = pd.DataFrame({"Na": 10 ** rng.uniform(6, 9, 40), "E": rng.integers(1, 64, 40)})
    expr = sympy.parse_expr(
        "c0 + c1*exp(-c2*log(N)) - lambda_*log(E + 1)/sqrt(N) + Max(E, 2)*1e-14",
        local_dict={n: symbol(n) for n in ("N", "E", "c0", "c1", "c2", "lambda_")},
    )
    expr = expr.subs(symbol("lambda_"), symbol("lambda"))
    law = law_from_expr(expr, ("N", "E"), name="engine")
    params = {"c0": 1.2345678901234567, "c1": 2.7e11, "c2": 1.5, "lambda": -5e-14}
    f = to_numpy_function(law.expr, ("N", "E"), constants=params, columns={"N": "Na"})
    N, E = table["Na"].to_numpy(), table["E"].to_numpy(float)
    expected = (params["c0"] + params["c1"] * N ** -1.5 - params["lambda"] * np.log(E + 1) /
                np.sqrt(N) + np.maximum(E, 2) * 1e-14)  # fmt: skip
    np.testing.assert_allclose(f(table), expected, rtol=1e-12)

    path = tmp_path / "law.py"
    path.write_text(f.source)
    module = _import_module(path, "exported_engine")
    np.testing.assert_allclose(module.predict(table), expected, rtol=1e-12)
    assert "lambda_ = CONSTANTS['lambda']" in f.source  # a keyword becomes a valid name


def test_numpy_function_refuses_what_it_cannot_evaluate(fitted):
    fit, table = fitted
    f = to_numpy_function(fit)
    with pytest.raises(InputError, match="no column 'D'"):
        f(table[["N"]])
    with pytest.raises(InputError, match="takes 2 inputs"):
        f(table["N"])
    with pytest.raises(InputError, match="by keyword"):
        f(N=1e9)
    with pytest.raises(InputError, match="besseli.*no numpy counterpart"):
        to_numpy_function(sympy.besseli(1, symbol("N")))
    with pytest.raises(InputError, match=r"\['A'\].*neither inputs"):
        to_numpy_function(symbol("A") * symbol("N"), ("N",))


HARD_CONSTANTS = [5e-14, 2.7e11, -3.2e-7, 1.2345678901234567e300, 1e-300, 0.34000000000000002]


@pytest.mark.parametrize("value", HARD_CONSTANTS)
def test_latex_renders_with_mathtext(value):
    from matplotlib.mathtext import MathTextParser

    N, D, S = symbol("N"), symbol("D"), symbol("S")
    c = sympy.Float(value, 17)
    exprs = [
        c * N ** -sympy.Float(0.34),
        c / D ** sympy.Float(abs(value)) + sympy.Float(1.69),
        sympy.exp(c * sympy.log(N)) + sympy.Abs(S - c) + sympy.Max(N, c) + sympy.sqrt(D),
        sympy.Piecewise((c * N, c < N), (D, True)),
    ]
    parser = MathTextParser("path")
    for expr in exprs:
        text = latex_text(expr)
        parser.parse(f"${text}$")  # raises ValueError if mathtext cannot read it
    assert "10^{" in latex_text(c) or abs(value) < 1e6


def test_latex_of_a_long_discovered_law_renders(fitted, tmp_path):
    from matplotlib.mathtext import MathTextParser

    N, D = symbol("N"), symbol("D")
    terms = [sympy.Float(1.2345678901234567 * 10.0**k, 17) * N ** sympy.Float(-k / 7, 17)
             for k in range(-20, 20)]  # fmt: skip
    nested = N
    for _ in range(6):
        nested = sympy.exp(sympy.Float(0.3) * nested) + sympy.log(nested + sympy.Float(2e-9))
    long_law = sympy.Add(*terms) + nested / D
    assert len(latex_text(long_law)) > 2000
    MathTextParser("path").parse(f"${latex_text(long_law)}$")

    # The exported law.tex itself renders.
    fit, _ = fitted
    tex = export_law(fit, tmp_path)["tex"].read_text().strip()
    MathTextParser("path").parse(f"${tex}$")
    assert tex == latex_text(fit.sympy())


def test_latex_writes_the_activated_parameter_count_with_a_subscript():
    # "Na" printed as it is reads as N times a; the papers write N_a
    from discover.export import latex_text
    from discover.laws import get_law

    text = latex_text(get_law("moe_joint").expr)
    assert "N_{a}^{- \\alpha} k" in text and "\\frac{N_{a} h}{N}" in text
    assert "Na" not in text
