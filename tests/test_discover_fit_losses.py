"""The four losses, weights, and the averaged-versus-summed trap."""

import numpy as np
import pandas as pd
import pytest

from discover.fit import _problem, fit_law
from discover.laws import get_law
from results.errors import InputError

TRUE = dict(L0=1.69, A=406.4, alpha=0.34, B=410.7, beta=0.28)


def table(n=120, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    N, D = 10 ** rng.uniform(7, 10, n), 10 ** rng.uniform(9, 12, n)
    loss = TRUE["L0"] + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / D ** TRUE["beta"]
    return pd.DataFrame({"N": N, "D": D, "loss": loss * np.exp(noise * rng.standard_normal(n))})


@pytest.mark.parametrize("loss", ["huber", "squared", "absolute", "asymmetric"])
def test_every_loss_recovers_a_noiseless_law(loss):
    fit = fit_law(get_law("chinchilla"), table(), loss=loss, n_starts=256)
    assert fit.converged, fit.message
    for name, value in TRUE.items():
        assert fit.params[name] == pytest.approx(value, rel=1e-4), name


def test_loss_values_and_gradients():
    law = get_law("chinchilla")
    r = np.array([-0.1, -1e-4, 0.0, 1e-4, 0.1])
    p = {loss: _problem(law, table(10), "loss", loss, 1e-3, None, {}, asymmetry=4.0)
         for loss in ("huber", "squared", "absolute", "asymmetric")}  # fmt: skip
    beyond = 0.1e-3 - 0.5e-6  # delta (|r| - delta/2) at |r| = 0.1
    np.testing.assert_allclose(p["huber"].rho(r), [beyond, 0.5e-8, 0, 0.5e-8, beyond])
    np.testing.assert_allclose(p["squared"].rho(r), 0.5 * r**2)
    np.testing.assert_allclose(p["absolute"].rho(r), np.abs(r), atol=1e-9)
    np.testing.assert_allclose(p["asymmetric"].rho(r), 0.5 * r**2 * np.array([1, 1, 1, 4, 4]))
    for problem in p.values():  # psi is the derivative of rho
        x = np.array([-0.05, -3e-4, 2e-4, 0.07])
        numeric = (problem.rho(x + 1e-10) - problem.rho(x - 1e-10)) / 2e-10
        np.testing.assert_allclose(problem.psi(x), numeric, rtol=1e-4)


def test_asymmetric_loss_predicts_below_the_noisy_points():
    rows = table(n=200, noise=0.02, seed=3)
    sym = fit_law(get_law("chinchilla"), rows, loss="squared", n_starts=256)
    asym = fit_law(get_law("chinchilla"), rows, loss="asymmetric", asymmetry=9.0, n_starts=256)
    over = lambda fit: np.mean(fit.predict(rows) > rows["loss"])  # noqa: E731
    assert over(asym) < over(sym) - 0.1
    # The 0.1-expectile of normal noise lies 0.86 sigma below the mean: P(Z < -0.86) = 0.195.
    assert over(asym) == pytest.approx(0.195, abs=0.07)


def test_averaged_and_summed_objectives_reach_the_same_optimum():
    rows = table(n=150, noise=0.01, seed=5)
    summed = fit_law(get_law("chinchilla"), rows, n_starts=512)
    averaged = fit_law(get_law("chinchilla"), rows, n_starts=512, reduction="mean")
    assert summed.converged and averaged.converged
    assert averaged.objective * len(rows) == pytest.approx(summed.objective, rel=1e-9)
    for name in TRUE:
        assert averaged.params[name] == pytest.approx(summed.params[name], rel=1e-6), name


def test_weights_equal_to_repeats():
    rows = table(n=60, noise=0.01, seed=7)
    w = np.random.default_rng(1).integers(1, 4, len(rows))
    weighted = fit_law(get_law("chinchilla"), rows, weights=w, n_starts=256)
    repeated = fit_law(get_law("chinchilla"), rows.loc[rows.index.repeat(w)], n_starts=256)
    assert weighted.objective == pytest.approx(repeated.objective, rel=1e-8)
    for name in TRUE:
        assert weighted.params[name] == pytest.approx(repeated.params[name], rel=1e-5)


def test_linear_residuals_are_plain_least_squares():
    rows = table(n=80, noise=0.01, seed=2)
    fit = fit_law(get_law("chinchilla"), rows, loss="squared", residual="linear", n_starts=256)
    assert fit.objective == pytest.approx(0.5 * np.sum((fit.predict(rows) - rows["loss"]) ** 2))


def test_bad_loss_options_are_refused():
    rows = table(n=20)
    with pytest.raises(InputError, match="unknown reduction 'avg'"):
        fit_law(get_law("chinchilla"), rows, reduction="avg")
    with pytest.raises(InputError, match="asymmetry must be positive"):
        fit_law(get_law("chinchilla"), rows, loss="asymmetric", asymmetry=0)
    with pytest.raises(InputError, match="unknown residual"):
        fit_law(get_law("chinchilla"), rows, residual="exp")
