"""LawRegressor: fit/predict on a planted law, scikit-learn's parameter protocol, and argument
checks that name the parameter, the rule and the value."""

import importlib.util

import numpy as np
import pandas as pd
import pytest
import sympy

import discover.pipeline
from discover.estimator import LawRegressor
from discover.formula import symbol
from results.errors import InputError

FAST = dict(
    engines=("pyoperon",),
    max_constants=5,
    n_starts=16,
    engine_options={"pyoperon": dict(generations=20, population_size=200, time_limit=3,
                                     n_population=10)},
)  # fmt: skip


def chinchilla(n, seed, N_range=(6, 9)):
    rng = np.random.default_rng(seed)
    N, D = 10 ** rng.uniform(*N_range, n), 10 ** rng.uniform(8, 11, n)
    return pd.DataFrame({"N": N, "D": D, "loss": 1.69 + 406.4 / N**0.34 + 410.7 / D**0.28})


@pytest.fixture(scope="module")
def fitted():
    table = chinchilla(40, seed=1)
    return LawRegressor(**FAST).fit(table[["N", "D"]], table["loss"]), table


def test_fit_recovers_the_planted_law_and_extrapolates(fitted):
    model, table = fitted
    larger = chinchilla(20, seed=2, N_range=(9, 10))  # 10x beyond the largest fitted N
    assert model.score(larger[["N", "D"]], larger["loss"]) > 0.999
    assert model.score(larger, "loss") == model.score(larger[["N", "D"]], larger["loss"])
    np.testing.assert_allclose(model.predict(table), model.best_.predict(table), rtol=0)
    assert model.sympy().free_symbols == {symbol("N"), symbol("D")}


def test_fitted_attributes(fitted):
    model, _ = fitted
    front = model.equations_
    assert isinstance(front, pd.DataFrame) and len(front) >= 2
    assert front["chosen"].tolist() == [True] + [False] * (len(front) - 1)
    assert {"formula", "n_constants", "inner_extrap_r2", "fitted"} <= set(front.columns)
    assert front["n_constants"].max() <= 5
    assert list(model.feature_names_in_) == ["N", "D"] and model.n_features_in_ == 2
    assert model.inputs_ == ("N", "D") and model.target_ == "loss"
    assert model.result_.best is model.best_
    assert model.result_.settings["holdout_factor"] == "N"  # the default when N is an input


def test_predict_from_arrays_numpy_export_and_latex(fitted):
    from matplotlib.mathtext import MathTextParser

    model, table = fitted
    expected = model.predict(table)
    X = table[["N", "D"]].to_numpy()
    np.testing.assert_allclose(model.predict(X), expected, rtol=0)
    swapped = table[["D", "N"]].to_numpy()
    np.testing.assert_allclose(model.predict(swapped, variable_names=["D", "N"]), expected)
    np.testing.assert_allclose(model.to_numpy()(table), expected, rtol=1e-9)
    MathTextParser("path").parse(f"${model.latex()}$")
    assert sympy.latex(model.sympy()).count("N") == model.latex().count("N")


def test_predict_refuses_missing_columns_and_unfitted(fitted):
    model, table = fitted
    with pytest.raises(InputError, match="X has no column 'D'"):
        model.predict(table[["N"]])
    with pytest.raises(InputError, match="X has 3 columns; the law was fitted on 2"):
        model.predict(np.ones((4, 3)))
    with pytest.raises(InputError, match="not fitted yet; call fit"):
        LawRegressor().predict(table)


class Stop(Exception):
    """Raised by the recorder in place of a search."""


def _spy(monkeypatch):
    """Replace the pipeline by a recorder: checks the arguments the estimator builds."""
    calls = []

    def record(data, inputs, target, **options):
        calls.append(dict(data=data, inputs=inputs, target=target, **options))
        raise Stop

    monkeypatch.setattr(discover.pipeline, "discover_law", record)
    return calls


def test_array_input_and_target_by_name_reach_the_pipeline(monkeypatch):
    calls = _spy(monkeypatch)
    table = chinchilla(12, seed=3)
    with pytest.raises(Stop):
        LawRegressor().fit(table[["N", "D"]].to_numpy(), table["loss"].to_numpy(),
                           variable_names=["N", "D"])  # fmt: skip
    call = calls[-1]
    assert call["inputs"] == ["N", "D"] and call["target"] == "loss"
    np.testing.assert_array_equal(call["data"]["D"], table["D"])
    assert "engines" not in call  # None: the pipeline's own default
    assert call["seeds"] == (0,) and call["holdout_factor"] == "N"

    with pytest.raises(Stop):
        LawRegressor(engines=["pysr"], inputs=["D"], seeds=3).fit(table, "loss")
    call = calls[-1]
    assert call["inputs"] == ["D"] and call["target"] == "loss" and call["engines"] == ("pysr",)
    assert call["holdout_factor"] == "D" and call["seeds"] == (3,)


BAD = [
    (dict(holdout_quantile=1.5), r"holdout_quantile must be a number in \(0, 1\), got 1.5"),
    (dict(holdout_quantile="0.2"), r"holdout_quantile must be a number in \(0, 1\), got '0.2'"),
    (dict(max_constants=0), "max_constants must be an integer >= 1, got 0"),
    (dict(n_starts=2.5), "n_starts must be an integer >= 1, got 2.5"),
    (dict(n_jobs=True), "n_jobs must be an integer >= 1, got True"),
    (dict(tie_tolerance=-1), "tie_tolerance must be a number >= 0, got -1"),
    (dict(one_se="yes"), "one_se must be True or False, got 'yes'"),
    (dict(seeds=[]), r"seeds must be a non-empty list of integers >= 0, got \[\]"),
    (dict(seeds=[0, -1]), r"seeds must be a non-empty list of integers >= 0, got \[0, -1\]"),
    (dict(engines=[]), r"engines must be a non-empty list of engine names or None, got \[\]"),
    (dict(engine_options=[1]), r"engine_options must be a dict .* got \[1\]"),
    (dict(inputs="N"), "inputs must be a list of column names or None, got 'N'"),
    (dict(inputs=["N", "Q"]), r"inputs must be columns of X .* of which \['Q'\] are not"),
    (dict(holdout_factor="Q"), "holdout_factor must be a column of X .* got 'Q'"),
]


@pytest.mark.parametrize(("params", "message"), BAD)
def test_each_parameter_is_checked_at_fit(params, message, monkeypatch):
    calls = _spy(monkeypatch)
    model = LawRegressor(**params)  # __init__ accepts anything: it only stores
    assert model.get_params()[next(iter(params))] is next(iter(params.values()))
    with pytest.raises(InputError, match=message):
        model.fit(chinchilla(12, seed=3)[["N", "D"]], np.ones(12))
    assert not calls


def test_arguments_are_checked_at_fit(monkeypatch):
    calls = _spy(monkeypatch)
    table = chinchilla(12, seed=3)
    with pytest.raises(InputError, match="pass variable_names="):
        LawRegressor().fit(table[["N", "D"]].to_numpy(), table["loss"])
    with pytest.raises(InputError, match=r"variable_names must name each of the 2 columns"):
        LawRegressor().fit(table[["N", "D"]].to_numpy(), table["loss"], variable_names=["N"])
    with pytest.raises(InputError, match=r"one value per row of X \(12 rows\), got shape \(5,\)"):
        LawRegressor().fit(table[["N", "D"]], np.ones(5))
    with pytest.raises(InputError, match="y='L' is not a column of X"):
        LawRegressor().fit(table, "L")
    with pytest.raises(InputError, match="loss"):  # the target must be positive and finite
        LawRegressor().fit(table[["N", "D"]], -table["loss"])
    assert not calls


def test_get_params_set_params_round_trip():
    model = LawRegressor(max_constants=4, seeds=(1, 2))
    params = model.get_params()
    assert params["max_constants"] == 4 and params["seeds"] == (1, 2)
    assert params["engines"] is None and params["holdout_quantile"] == 0.2
    twin = LawRegressor(**params)
    assert twin.get_params() == params
    assert model.set_params(one_se=True, n_jobs=2) is model
    assert model.get_params()["one_se"] is True and model.n_jobs == 2
    with pytest.raises(InputError, match="no parameter 'max_const'; valid parameters: inputs,"):
        model.set_params(max_const=3)
    assert repr(LawRegressor(max_constants=4)) == "LawRegressor(max_constants=4)"


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None, reason="needs scikit-learn")
def test_sklearn_clone_gives_an_unfitted_copy_with_the_same_params(fitted):
    from sklearn.base import clone

    model, _ = fitted
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "best_")
    assert copy.engine_options == model.engine_options
