"""Bootstrap: batched refits agree with one-by-one L-BFGS-B; intervals cover planted values."""

import numpy as np
import pandas as pd
import pytest

from discover.bootstrap import _polish_chunk, bootstrap
from discover.fit import FitResult, fit_law
from discover.laws import get_law
from discover.lm import refine
from results.errors import InputError

TRUE = dict(L0=1.69, A=406.4, alpha=0.34, B=410.7, beta=0.28)


def noisy(n=150, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    N, D = 10 ** rng.uniform(7, 10, n), 10 ** rng.uniform(9, 12, n)
    loss = TRUE["L0"] + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / D ** TRUE["beta"]
    return pd.DataFrame({"N": N, "D": D, "loss": loss * np.exp(noise * rng.standard_normal(n))})


@pytest.fixture(scope="module")
def fit():
    return fit_law(get_law("chinchilla"), noisy(), n_starts=512)


def test_batched_refits_match_lbfgsb_one_by_one(fit):
    problem = fit.problem
    counts = np.random.default_rng(0).multinomial(150, np.full(150, 1 / 150), size=12)
    theta0 = problem.theta(fit.params)
    batched, ok = refine(problem, theta0, problem.w * counts)
    single, single_ok = _polish_chunk(problem, np.repeat(theta0[None], 12, 0), counts, 3000)
    assert ok.all() and single_ok.all()
    for b in range(12):
        f_batch = problem.with_weights(problem.w * counts[b]).objective_and_gradient(batched[b])[0]
        f_one = problem.with_weights(problem.w * counts[b]).objective_and_gradient(single[b])[0]
        assert f_batch <= f_one * (1 + 1e-9)
    np.testing.assert_allclose(problem.constants(batched), problem.constants(single), rtol=1e-4)


def test_intervals_cover_the_truth_and_shrink_with_data(fit):
    table = bootstrap(fit, n=200, seed=1, workers=1).set_index("constant")
    for name, value in TRUE.items():
        assert table.loc[name, "lo"] < value < table.loc[name, "hi"], name
    big = fit_law(get_law("chinchilla"), noisy(n=600, seed=4), n_starts=512)
    wide = big.bootstrap(n=200, seed=1, workers=1).set_index("constant")
    assert (wide["se"] < table["se"]).all()


def test_same_seed_same_intervals_and_process_pool_agrees(fit):
    a = fit.bootstrap(n=60, seed=3, workers=1)
    b = fit.bootstrap(n=60, seed=3, workers=2)
    pd.testing.assert_frame_equal(a, b)


def test_resample_count_and_loaded_fits_are_checked(fit):
    with pytest.raises(InputError, match="at least 2 resamples"):
        fit.bootstrap(n=1)
    bare = FitResult(fit.law, fit.params, 0.0, True, "", 0)
    with pytest.raises(InputError, match="carries no data"):
        bare.bootstrap(n=10)


def test_a_linear_constant_at_zero_raises_no_warning_in_the_refits():
    # eps fitted on its bound 0 (linear scale) beside log-scale constants: mapping the constants
    # to search coordinates logged every one of them, 0 included, and warned "divide by zero".
    import warnings

    from discover.laws import Bounds, law_from_expr

    rng = np.random.default_rng(3)
    N = 10 ** rng.uniform(6, 9, 80)
    loss = (400 * N**-0.3 - 0.1) * np.exp(0.01 * rng.standard_normal(80))  # eps "wants" -0.1
    rows = pd.DataFrame({"N": N, "loss": loss})
    law = law_from_expr("eps + A*N**(-a)", ["N"], bounds={
        "eps": Bounds(0.0, 10.0), "A": Bounds(1e-3, 1e6, positive=True),
        "a": Bounds(1e-3, 2.0, positive=True)})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fitted = fit_law(law, rows, n_starts=64)
        assert fitted.params["eps"] == 0.0
        table = bootstrap(fitted, n=20, workers=1)
    rows_ = table.set_index("constant")
    assert rows_.loc["eps", "censored"] == "lower" and rows_.loc["eps", "lo"] == 0.0
    assert rows_.loc["a", "lo"] < fitted.params["a"] < rows_.loc["a", "hi"]
