"""pyoperon engine: tree-to-sympy conversion, transforms, planted-law recovery, determinism."""

import numpy as np
import pandas as pd
import pytest
import sympy as sp
from pyoperon.sklearn import SymbolicRegressor

from discover.candidates import factor_symbol
from discover.engines.pyoperon import InputTransform, run_pyoperon, tree_to_sympy

FAST = dict(generations=30, population_size=150, time_limit=None)


def planted(n=48, seed=0) -> pd.DataFrame:
    """y = 2 + 3 x^-0.5 on x log-uniform in [1, 1e4], no noise."""
    rng = np.random.default_rng(seed)
    x = np.exp(rng.uniform(0, np.log(1e4), n))
    return pd.DataFrame({"N": x, "loss": 2.0 + 3.0 * x**-0.5})


def test_tree_to_sympy_predicts_what_operon_predicts():
    rng = np.random.default_rng(1)
    X = np.ascontiguousarray(rng.uniform(0.5, 3.0, (60, 2)), dtype=np.float32)
    y = np.ascontiguousarray(1.5 + np.sqrt(X[:, 0]) * np.exp(-0.3 * X[:, 1]), dtype=np.float32)
    reg = SymbolicRegressor(
        allowed_symbols="add,sub,mul,div,exp,log,sqrt,square,constant,variable",
        objectives=["r2", "length"], optimizer_iterations=5, population_size=100,
        generations=15, random_state=3, max_length=30,
    )  # fmt: skip
    reg.fit(X, y)
    x1, x2 = sp.symbols("x1 x2", positive=True)
    names = {"X1": x1, "X2": x2}
    variables = {h: names[n] for h, n in reg.variables_.items()}
    checked = 0
    for model in reg.pareto_front_:
        expr = tree_to_sympy(model["tree"], variables)
        ours = np.asarray(
            sp.lambdify([x1, x2], expr, "numpy")(X[:, 0].astype(float), X[:, 1].astype(float))
        )
        theirs = reg.evaluate_model(model["tree"], X)
        ours = np.broadcast_to(ours, theirs.shape)
        finite = np.isfinite(theirs)
        np.testing.assert_allclose(ours[finite], theirs[finite], rtol=2e-4, atol=2e-5)
        checked += 1
    assert checked >= 3


def test_transform_symbolic_matches_numeric():
    x = np.array([1e6, 3e7, 2e9])
    t = InputTransform.from_column("N", x, "log")
    assert t.kind == "log"
    z = sp.lambdify([factor_symbol("N")], t.symbolic())(x)
    np.testing.assert_allclose(z, t.apply(x), rtol=1e-12)
    np.testing.assert_allclose([np.mean(t.apply(x)), np.std(t.apply(x))], [0, 1], atol=1e-12)
    s = InputTransform.from_column("S", np.array([0.0, 0.25, 0.5]), "log")
    assert s.kind == "linear"  # zero values cannot be logged


def test_planted_power_law_found_in_raw_symbols():
    data = planted()
    candidates = run_pyoperon(data, "loss", ["N"], seed=0, **FAST)
    N = factor_symbol("N")
    best = max(candidates, key=lambda c: c.fit_r2)
    assert best.fit_r2 > 0.9999
    assert best.expr.free_symbols == {N}
    # The law extrapolates two decades beyond the data: it is the power law, not a fit of it
    x_far = np.array([1e5, 1e6])
    pred = sp.lambdify([N], best.expr, "numpy")(x_far)
    np.testing.assert_allclose(pred, 2.0 + 3.0 * x_far**-0.5, rtol=2e-3)


def test_same_seed_same_candidates():
    data = planted(seed=4)
    first = run_pyoperon(data, "loss", ["N"], seed=7, **FAST)
    second = run_pyoperon(data, "loss", ["N"], seed=7, **FAST)
    assert [sp.srepr(c.expr) for c in first] == [sp.srepr(c.expr) for c in second]


def test_bad_transform_and_columns_are_refused():
    data = planted()
    with pytest.raises(ValueError, match="transform='sqrt'"):
        run_pyoperon(data, "loss", ["N"], transform="sqrt", **FAST)
    with pytest.raises(ValueError, match=r"\['D'\]"):
        run_pyoperon(data, "loss", ["D"], **FAST)
