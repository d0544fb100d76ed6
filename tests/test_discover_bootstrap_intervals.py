"""Bootstrap interval methods against known answers; constants at a bound are censored and named.

The interval arithmetic is checked against scipy.stats.bootstrap on the very same resamples (the
mean of a skewed sample). The refitting path is checked on a one-constant law whose least-squares
fit has a closed form, so every bootstrap and jackknife refit has an exact value.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from discover.bootstrap import _censoring, _one_sided, interval, intervals, jackknife
from discover.fit import IdentifiabilityWarning, fit_law
from discover.identify import at_bound, bound_finding
from discover.laws import Bounds, law_from_expr
from results.errors import InputError

# ------------------------------------------------------------------------------------------------
# 1. Interval arithmetic: scipy's BCa, percentile and basic intervals on the same resamples.


@pytest.mark.parametrize(("ours", "theirs"), [("bca", "BCa"), ("percentile", "percentile"),
                                              ("basic", "basic")])  # fmt: skip
def test_intervals_match_scipy_on_the_same_resamples(ours, theirs):
    x = np.random.default_rng(5).exponential(2.0, 40)  # skewed: BCa differs from percentile
    B = 3000
    index = np.random.default_rng(9).integers(0, x.size, (B, x.size))  # scipy's resampling
    replicates = x[index].mean(axis=1)
    leave_one_out = (x.sum() - x) / (x.size - 1)
    lo, hi = interval(replicates, x.mean(), 0.9, ours, jackknife=leave_one_out)
    scipy_ci = stats.bootstrap(
        (x,),
        np.mean,
        n_resamples=B,
        confidence_level=0.9,
        method=theirs,
        rng=np.random.default_rng(9),
    ).confidence_interval
    np.testing.assert_allclose([lo, hi], [scipy_ci.low, scipy_ci.high], rtol=1e-12)


def test_bca_shifts_a_skewed_mean_upwards_and_bc_is_bca_without_acceleration():
    x = np.random.default_rng(5).exponential(2.0, 40)
    replicates = x[np.random.default_rng(9).integers(0, 40, (3000, 40))].mean(axis=1)
    loo = (x.sum() - x) / 39
    percentile = interval(replicates, x.mean(), method="percentile")
    bca = interval(replicates, x.mean(), method="bca", jackknife=loo)
    assert bca[0] > percentile[0] and bca[1] > percentile[1]  # right-skewed: both ends move up
    flat = np.full(40, 3.0)  # a jackknife that does not vary has no acceleration
    assert interval(replicates, x.mean(), method="bc") == interval(
        replicates, x.mean(), method="bca", jackknife=flat
    )


def test_bias_correction_vanishes_for_replicates_centred_on_the_fit():
    replicates = np.linspace(-1.0, 1.0, 2001)
    assert interval(replicates, 0.0, method="bc") == pytest.approx(
        interval(replicates, 0.0, method="percentile"), abs=1e-12
    )
    # half the replicates below the fit plus 2.5% -> z0 = Phi^-1(0.525), the ends move up
    lo, hi = interval(replicates, 0.05, method="bc")
    z0 = stats.norm.ppf(0.525)
    expected = np.percentile(
        replicates, 100 * stats.norm.cdf(2 * z0 + stats.norm.ppf([0.025, 0.975]))
    )
    np.testing.assert_allclose([lo, hi], expected, rtol=1e-3)


# ------------------------------------------------------------------------------------------------
# 2. The refitting path on a law with a closed-form fit: L = exp(-lam t), squared log residuals,
#    so lam = -sum(w t log y) / sum(w t^2) for any row weights w.


def decay_table(n=60, seed=3):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.1, 2.0, n)
    return pd.DataFrame({"t": t, "loss": np.exp(-0.7 * t + 0.05 * rng.standard_normal(n))})


def closed_form(table, weights):
    t, log_y = table["t"].to_numpy(), np.log(table["loss"].to_numpy())
    return -(weights * t * log_y).sum(axis=-1) / (weights * t**2).sum(axis=-1)


@pytest.fixture(scope="module")
def decay():
    law = law_from_expr("exp(-lam*t)", ["t"], name="decay", bounds={"lam": Bounds(-10.0, 10.0)})
    table = decay_table()
    return table, fit_law(law, table, loss="squared", n_starts=64)


def test_bootstrap_and_jackknife_refits_equal_the_closed_form(decay):
    table, fit = decay
    n = len(table)
    assert fit.params["lam"] == pytest.approx(closed_form(table, np.ones(n)), rel=1e-9)
    result = fit.bootstrap(n=300, seed=4, workers=1, method="bca").set_index("constant")

    counts = np.random.default_rng(4).multinomial(n, np.full(n, 1 / n), size=300)
    replicates = closed_form(table, counts)
    np.testing.assert_allclose(fit.bootstrap_samples["lam"], replicates, rtol=1e-8)
    loo = closed_form(table, 1.0 - np.eye(n))
    np.testing.assert_allclose(fit.jackknife_samples["lam"], loo, rtol=1e-8)

    expected = interval(replicates, closed_form(table, np.ones(n)), method="bca", jackknife=loo)
    np.testing.assert_allclose(result.loc["lam", ["lo", "hi"]].to_numpy(float), expected,
                               rtol=1e-7)  # fmt: skip
    assert result.loc["lam", "lo"] < 0.7 < result.loc["lam", "hi"]
    assert result.loc["lam", "method"] == "bca" and result.loc["lam", "censored"] == ""


def test_every_method_from_the_same_refits_without_refitting(decay):
    table, fit = decay
    fit.bootstrap(n=200, seed=1, workers=1, method="bca")
    before = fit.bootstrap_samples.copy()
    widths = {m: intervals(fit, m).set_index("constant").loc["lam", ["lo", "hi"]].to_numpy(float)
              for m in ("percentile", "basic", "bc", "bca")}  # fmt: skip
    pd.testing.assert_frame_equal(fit.bootstrap_samples, before)
    replicates = before["lam"].to_numpy()
    np.testing.assert_allclose(widths["percentile"], np.percentile(replicates, [2.5, 97.5]))
    reflected = 2 * fit.params["lam"] - np.percentile(replicates, [97.5, 2.5])
    np.testing.assert_allclose(widths["basic"], reflected)


def test_grouped_jackknife_leaves_out_every_tenth_row(decay):
    table, fit = decay
    samples = jackknife(fit, max_groups=10, workers=1)
    assert len(samples) == 10
    n = len(table)
    weights = np.ones((10, n))
    weights[np.arange(n) % 10, np.arange(n)] = 0.0
    np.testing.assert_allclose(samples["lam"], closed_form(table, weights), rtol=1e-8)


def test_methods_and_missing_refits_are_reported(decay):
    table, fit = decay
    with pytest.raises(InputError, match="unknown interval method 'studentized'"):
        fit.bootstrap(n=10, method="studentized")
    fresh = fit_law(fit.law, table, loss="squared", n_starts=16)
    with pytest.raises(InputError, match=r"call fit.bootstrap\(n=1000\) first"):
        intervals(fresh, "percentile")
    fresh.bootstrap(n=20, workers=1, method="percentile")
    with pytest.raises(InputError, match="need the jackknife"):
        intervals(fresh, "bca")


# ------------------------------------------------------------------------------------------------
# 3. A constant at its bound: named by the fit and the bootstrap, its interval one-sided.


def flat_table(n=80, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.uniform(1.0, 10.0, n)  # the true slope is 0, below the bound 1e-6 of k
    return pd.DataFrame({"t": t, "loss": 2.0 * np.exp(0.01 * rng.standard_normal(n))})


def test_constant_on_its_bound_is_named_and_its_interval_censored():
    bounds = {"c0": Bounds(0.1, 10.0), "k": Bounds(1e-6, 1.0, positive=True)}
    law = law_from_expr("c0 + k*t", ["t"], name="slope", bounds=bounds)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = fit_law(law, flat_table(), n_starts=64)
    finding = "k is at its lower bound 1e-06: not identifiable from these data; fix or tie it"
    assert finding in fit.identifiability
    assert any(finding in str(w.message) for w in caught if w.category is IdentifiabilityWarning)

    with pytest.warns(IdentifiabilityWarning, match="k is at its lower bound 1e-06: not identifi"):
        table = fit.bootstrap(n=200, seed=0, workers=1).set_index("constant")
    assert table.loc["k", "censored"] == "lower"
    assert table.loc["k", "lo"] == 1e-6
    samples = fit.bootstrap_samples["k"].to_numpy()
    assert table.loc["k", "hi"] == pytest.approx(np.percentile(samples, 95))
    assert table.loc["k", "hi"] > 1e-5  # one-sided upper limit, not the degenerate [b, b]
    assert table.loc["c0", "censored"] == "" and table.loc["c0", "lo"] < table.loc["c0", "hi"]


def test_censoring_rule_counts_refits_on_a_bound():
    bounds = Bounds(1e-6, 1e2, positive=True)
    inside = np.linspace(0.1, 1.0, 100)
    few = np.concatenate([np.full(2, 1e-6), inside[2:]])  # 2% at the bound: below 2.5%
    many = np.concatenate([np.full(5, 1e-6 * (1 + 1e-9)), inside[5:]])  # 5%: censored
    assert _censoring(0.5, few, bounds, 0.95) == 0
    assert _censoring(0.5, many, bounds, 0.95) == -1
    assert _censoring(1e-6, inside, bounds, 0.95) == -1  # the fit itself on the bound
    assert _censoring(0.5, np.concatenate([np.full(5, 1e2), inside[5:]]), bounds, 0.95) == 1
    assert _censoring(0.5, many, None, 0.95) == 0  # derived quantities have no bounds


def test_at_bound_is_relative_to_the_search_interval():
    signed = Bounds(-100.0, 100.0)
    np.testing.assert_array_equal(at_bound([-100.0, -99.99, 0.0, 99.99999], signed),
                                  [-1, 0, 0, 1])  # fmt: skip
    positive = Bounds(1e-6, 1e2, positive=True)  # width 18.4 in log space
    np.testing.assert_array_equal(at_bound([1e-6 * (1 + 1e-6), 1e-6 * 1.001, 99.9999], positive),
                                  [-1, 0, 1])  # fmt: skip
    assert bound_finding("h", 1, positive) == (
        "h is at its upper bound 100: not identifiable from these data; fix or tie it"
    )


def test_censored_interval_never_collapses_onto_its_bound():
    bounds = Bounds(1e-6, 1e2, positive=True)
    pinned = np.concatenate([np.full(97, 1e-6), [1e-4, 3e-3, 0.2]])  # 97% on the lower bound
    assert _one_sided(pinned, bounds, -1, 0.95) == (1e-6, 0.2)  # the farthest refit
    spread = np.concatenate([np.full(10, 1e-6), np.linspace(1e-3, 1.0, 80), np.full(10, 1e2)])
    assert _one_sided(spread, bounds, -1, 0.95) == (1e-6, 1e2)  # censored at both ends
    upper = np.concatenate([np.linspace(1.0, 50.0, 90), np.full(10, 1e2)])
    assert _one_sided(upper, bounds, 1, 0.95) == (pytest.approx(np.percentile(upper, 5)), 1e2)
