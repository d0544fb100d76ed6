"""Fitting: planted laws are recovered, non-convergence is loud, the gradient is right."""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from discover.fit import FitConvergenceWarning, IdentifiabilityWarning, _problem, fit_law
from discover.laws import get_law, law_from_expr
from results.errors import InputError

SHARED = Path(__file__).resolve().parents[2] / "shared"
CHINCHILLA = dict(L0=1.69, A=406.4, alpha=0.34, B=410.7, beta=0.28)


def chinchilla_table(n=200, seed=1, lo_n=7, hi_n=10):
    rng = np.random.default_rng(seed)
    N, D = 10 ** rng.uniform(lo_n, hi_n, n), 10 ** rng.uniform(9, 12, n)
    c = CHINCHILLA
    loss = c["L0"] + c["A"] / N ** c["alpha"] + c["B"] / D ** c["beta"]
    return pd.DataFrame({"N": N, "D": D, "loss": loss})


def moe_table(n=300, seed=0):
    """Design points in the paper's ranges, losses from the reference joint law without noise."""
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(1.3e8), np.log(3.4e9), n))
    Na = np.exp(rng.uniform(np.log(3e7), np.log(2.2e9), n))
    Na = np.clip(Na, 3e7, N * 0.95)
    D = np.exp(rng.uniform(np.log(1e10), np.log(5e10), n))
    G = rng.integers(1, 21, n).astype(float)
    S = rng.uniform(0.0, 0.7, n)
    table = pd.DataFrame({"N": N, "Na": Na, "D": D, "G": G, "S": S})
    law = get_law("moe_joint")
    fit = _reference_fit(law)
    table["loss"] = fit.predict(table)
    return table


def _reference_fit(law):
    from discover.fit import FitResult

    return FitResult(law, dict(law.reference), 0.0, True, "reference", 0)


def test_planted_chinchilla_recovered_within_one_percent():
    fit = fit_law(get_law("chinchilla"), chinchilla_table())
    assert fit.converged, fit.message
    for name, value in CHINCHILLA.items():
        assert fit.params[name] == pytest.approx(value, rel=1e-2)
    assert fit.objective < 1e-12


def test_same_seed_same_fit():
    table = chinchilla_table(n=60)
    a = fit_law(get_law("chinchilla"), table, n_starts=256, seed=3)
    b = fit_law(get_law("chinchilla"), table, n_starts=256, seed=3)
    assert a.params == b.params


def test_planted_moe_joint_recovered():
    law = get_law("moe_joint")
    with pytest.warns(IdentifiabilityWarning, match="b and beta are correlated"):
        fit = fit_law(law, moe_table(), n_starts=4096, n_polish=8, seed=0)  # D spans only 5x
    assert fit.converged, fit.message
    errors = {k: abs(fit.params[k] / v - 1) for k, v in law.reference.items()}
    assert max(errors.values()) < 0.01, errors
    assert fit.metrics(moe_table())["r2"] > 1 - 1e-9


def test_huge_inputs_do_not_overflow():
    # N up to 1e23 and D from 1e5: every evaluation stays finite in float64.
    table = chinchilla_table(n=80, lo_n=5, hi_n=23)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fit = fit_law(get_law("chinchilla"), table, n_starts=256)
    assert np.isfinite(fit.predict(table)).all()
    assert fit.params["alpha"] == pytest.approx(0.34, rel=1e-2)


def test_starved_fit_warns_and_reports():
    with pytest.warns(FitConvergenceWarning, match="did not converge"):
        fit = fit_law(get_law("chinchilla"), chinchilla_table(n=60), n_starts=16, maxiter=1)
    assert fit.converged is False
    assert "L-BFGS-B" in fit.message or "gradient" in fit.message


def test_gradient_matches_finite_differences():
    law = get_law("moe_joint")
    problem = _problem(law, moe_table(n=40), "loss", "huber", 0.05, None, {})
    rng = np.random.default_rng(2)
    theta = problem.lo + rng.uniform(0.3, 0.7, len(problem.lo)) * (problem.hi - problem.lo)
    _, g = problem.objective_and_gradient(theta)
    for j in range(len(theta)):
        step = np.zeros_like(theta)
        step[j] = 1e-6 * max(1.0, abs(theta[j]))
        up = problem.objective_and_gradient(theta + step)[0]
        down = problem.objective_and_gradient(theta - step)[0]
        assert g[j] == pytest.approx((up - down) / (2 * step[j]), rel=1e-4, abs=1e-8)


def test_column_mapping_and_renaming_agree():
    rng = np.random.default_rng(4)
    Na, E = 10 ** rng.uniform(6, 9, 80), 2.0 ** rng.integers(0, 9, 80)
    table = pd.DataFrame({"Na": Na, "E": E, "loss": 1.5 + 40 * Na**-0.2 * E**-0.1})
    law = get_law("moe_powerlaw4")
    by_column = fit_law(law, table, columns={"N": "Na"}, n_starts=256)
    renamed = fit_law(law.with_inputs({"N": "Na"}), table, n_starts=256)
    assert by_column.params["alpha"] == pytest.approx(0.2, rel=1e-3)
    assert renamed.params["beta"] == pytest.approx(0.1, rel=1e-3)
    np.testing.assert_allclose(by_column.predict(table), renamed.predict(table), rtol=1e-8)
    assert renamed.law.inputs == ("Na", "E")


def test_squared_loss_and_weights():
    table = chinchilla_table(n=80)
    fit = fit_law(get_law("chinchilla"), table, loss="squared", weights=np.ones(80), n_starts=256)
    assert fit.params["beta"] == pytest.approx(0.28, rel=1e-2)
    with pytest.raises(InputError, match="weights must be 80"):
        fit_law(get_law("chinchilla"), table, weights=np.ones(3))
    with pytest.raises(InputError, match="unknown loss"):
        fit_law(get_law("chinchilla"), table, loss="l1")


def test_custom_law_from_text():
    table = chinchilla_table(n=80)
    law = law_from_expr("L0 + A/N**alpha + B/D**beta", ["N", "D"], name="mine")
    assert set(law.constants) == {"L0", "A", "alpha", "B", "beta"}
    law = law.with_bounds(A=get_law("chinchilla").constants["A"],
                          B=get_law("chinchilla").constants["B"])  # fmt: skip
    fit = fit_law(law, table, n_starts=512)
    assert fit.params["alpha"] == pytest.approx(0.34, rel=1e-2)


def test_fit_reports_bad_data():
    table = chinchilla_table(n=20)
    table.loc[3, "loss"] = -0.1
    with pytest.raises(InputError, match=r"'loss' has 1 non-positive.*rows 3: -0.1"):
        fit_law(get_law("chinchilla"), table)


def test_epoch_chinchilla_fit_is_sane():
    raw = pd.read_csv(SHARED / "data" / "epoch_chinchilla" / "svg_extracted_data.csv")
    N, C = raw["Model Size"], raw["Training FLOP"]
    table = pd.DataFrame({"N": N, "D": C / (6 * N), "loss": raw["loss"]})
    fit = fit_law(get_law("chinchilla"), table)
    assert len(table) == 245
    assert fit.converged, fit.message
    assert 1.7 < fit.params["L0"] < 2.0 and 0.3 < fit.params["alpha"] < 0.4
    assert fit.metrics(table)["r2"] > 0.9


def test_leave_the_largest_out_scores_each_scale():
    from discover.metrics import leave_largest_out

    table = chinchilla_table(n=120)
    table["N"] = 10 ** (np.round(2 * np.log10(table["N"])) / 2)  # 7 sizes: 1e7, 10^7.5 .. 1e10
    table["loss"] = 1.69 + 406.4 / table["N"] ** 0.34 + 410.7 / table["D"] ** 0.28
    folds = leave_largest_out(table, "N", lambda rows: fit_law(get_law("chinchilla"), rows,
                                                               n_starts=256), folds=2)  # fmt: skip
    np.testing.assert_allclose(folds["held_out"], [1e10, 10**9.5])
    assert (folds["n_fit"] + folds["n_test"]).tolist()[0] == len(table)
    assert (folds["r2"] > 1 - 1e-8).all()
    with pytest.raises(InputError, match="needs at least 8"):
        leave_largest_out(table, "N", None, folds=7)


@pytest.mark.filterwarnings("ignore::discover.fit.FitConvergenceWarning")
@pytest.mark.filterwarnings("ignore::discover.fit.IdentifiabilityWarning")
def test_fitted_constants_stay_inside_their_bounds_to_the_last_digit():
    # A log-scale constant on its upper bound came back as exp(log(1e8)) = 100000000.00000018
    from discover.laws import Bounds, law_from_expr

    rng = np.random.default_rng(2)
    N = 10 ** rng.uniform(6, 9, 50)
    rows = pd.DataFrame({"N": N, "loss": 1.5 + 3e9 * N**-1.0})  # A wants 3e9
    bounds = {"A": Bounds(1.0, 1e8, positive=True), "alpha": Bounds(0.01, 3.0, positive=True)}
    law = law_from_expr("L0 + A*N**(-alpha)", ["N"], bounds=bounds)
    fit = fit_law(law, rows, n_starts=64)
    assert fit.params["A"] == 1e8
    for name, b in law.constants.items():
        assert b.lo <= fit.params[name] <= b.hi
