"""Constants the data cannot separate are named in a warning, with the advice to fix or tie them."""

import warnings

import numpy as np
import pandas as pd
import pytest

from discover.fit import IdentifiabilityWarning, fit_law
from discover.identify import identifiability
from discover.laws import Bounds, law_from_expr

LAW = law_from_expr(
    "L0 + A*N**(-alpha)*D**(-beta)",
    ["N", "D"],
    bounds={"A": Bounds(1e-4, 1e8, positive=True), "L0": Bounds(0.0, 10.0)},
)


def runs(tokens_per_parameter=None, n=100, seed=0):
    rng = np.random.default_rng(seed)
    N = 10 ** rng.uniform(7, 10, n)
    D = tokens_per_parameter * N if tokens_per_parameter else 10 ** rng.uniform(9, 12, n)
    return pd.DataFrame({"N": N, "D": D, "loss": 1.7 + 400 * N**-0.2 * D**-0.15})


def test_alpha_and_beta_inseparable_when_tokens_follow_parameters():
    # D = 20 N: N^-alpha D^-beta = 20^-beta N^-(alpha + beta), so only alpha + beta is determined.
    with pytest.warns(IdentifiabilityWarning, match=r"alpha and beta.*Fix one constant"):
        fit = fit_law(LAW, runs(tokens_per_parameter=20), n_starts=256)
    assert any("alpha" in s and "beta" in s for s in fit.identifiability)
    assert fit.params["alpha"] + fit.params["beta"] == pytest.approx(0.35, rel=1e-6)


def test_fixing_the_named_constant_removes_the_warning():
    fixed = LAW.fix(beta=0.15)
    assert list(fixed.constants) == ["A", "L0", "alpha"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", IdentifiabilityWarning)
        fit = fit_law(fixed, runs(tokens_per_parameter=20), n_starts=256)
    assert fit.params["alpha"] == pytest.approx(0.2, rel=1e-6)


def test_independent_inputs_identify_everything():
    with warnings.catch_warnings():
        warnings.simplefilter("error", IdentifiabilityWarning)
        fit = fit_law(LAW, runs(), n_starts=256)
    assert fit.identifiability == []
    assert fit.params["beta"] == pytest.approx(0.15, rel=1e-6)


def test_check_names_pairs_and_dead_constants():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(50)
    J = np.column_stack([x, 2 * x + 1e-9 * rng.standard_normal(50), rng.standard_normal(50),
                         np.zeros(50)])  # fmt: skip
    issues = identifiability(J, np.ones(50), ["a", "b", "c", "d"])
    assert "d does not change any prediction" in issues
    assert any(s.startswith("a flat direction") and "a and b" in s for s in issues)
    assert any("a and b are correlated (r = 1.0" in s for s in issues)
    assert not any("c" in s.split("moves")[-1] for s in issues if "flat" in s)
