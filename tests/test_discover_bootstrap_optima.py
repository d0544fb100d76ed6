"""Bootstrap intervals of derived optima (G*, S*) are censored at the ends of the sampled range.

The synthetic studies put a bracket ``e G + f/G + m S^2 + n S`` (the joint MoE law's) in front of
a positive factor of N, on a grid G in [1, 16], S in [0, 0.75]: one with an interior G* (truth
sqrt(45) = 6.71), one whose loss falls with G over the whole range (no G* inside it), and one with
G* = 14 near the upper end. S* = 0.3 in all of them.
"""

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from cluster.cli import main
from discover.bootstrap import _optimum_row
from discover.fit import fit_law
from discover.laws import law_from_expr
from discover.optima import optima_in_range
from results.errors import InputError

FORMULA = "L0 + (e*G + f/G + m*S**2 + n*S)*(N/1e6)**(-0.3)"
SPAN = (1.0, 16.0)


def study(e, f=0.9, m=1.0, n=-0.6, noise=0.002, seed=0):
    G, S, N = np.meshgrid([1.0, 2, 4, 8, 16], [0.0, 0.25, 0.5, 0.75], [1e6, 4e6, 1.6e7],
                          indexing="ij")  # fmt: skip
    G, S, N = G.ravel(), S.ravel(), N.ravel()
    loss = 1.5 + (e * G + f / G + m * S**2 + n * S) * (N / 1e6) ** -0.3
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"G": G, "S": S, "N": N,
                         "loss": loss * np.exp(noise * rng.standard_normal(G.size))})  # fmt: skip


def bootstrapped(table, n=200):
    law = law_from_expr(FORMULA, ["G", "S", "N"], name="bracket")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_law(law, table, n_starts=64)
        summary = fit.bootstrap(n=n, seed=0, workers=1).set_index("constant")
    return fit, summary


def closed_form(samples):
    """G* and S* as the closed forms sqrt(f/e) and -n/(2m) (the interior minima)."""
    return np.sqrt(samples["f"] / samples["e"]), -samples["n"] / (2 * samples["m"])


# ------------------------------------------------------------------------------------------------
# 1. The minimiser over a range, for many sets of constants at once.


def test_optima_in_range_tells_interior_minima_from_either_end():
    law = law_from_expr("e*G + f/G", ["G"])
    e = np.array([1.0, 0.001, 1.0, -1.0, 1.0, -1.0])
    f = np.array([4.0, 4.0, 0.25, 4.0, -4.0, -4.0])
    # 2 inside; 63 above; 0.5 below; falls everywhere; rises everywhere; a maximum at 2 with
    # L(16) < L(1)
    found = optima_in_range(law, "G", {"e": e, "f": f}, SPAN)
    np.testing.assert_array_equal(found, [2.0, np.inf, -np.inf, np.inf, -np.inf, np.inf])

    quadratic = law_from_expr("m*S**2 + n*S", ["S"])
    found = optima_in_range(quadratic, "S", {"m": [1.0, -1.0, -1.0], "n": [-0.6, 0.6, 1.0]},
                            (0.0, 0.75))  # fmt: skip
    np.testing.assert_allclose(found, [0.3, np.inf, -np.inf])  # maxima at 0.3 and 0.5


def test_optima_in_range_compares_losses_at_given_other_inputs():
    law = law_from_expr("(e*G + f/G)*N**(-a)", ["G", "N"])
    constants = {"e": [0.04, -0.04], "f": [1.0, 1.0], "a": [0.3, 0.3]}
    found = optima_in_range(law, "G", constants, SPAN, inputs={"N": 1e7})
    np.testing.assert_allclose(found, [5.0, np.inf])
    with pytest.raises(InputError, match=r"values of the other inputs \['N'\]; pass inputs="):
        optima_in_range(law, "G", constants, SPAN)


# ------------------------------------------------------------------------------------------------
# 2. The censoring rule, on replicates given directly.


def test_a_few_replicates_beyond_an_end_keep_the_two_sided_interval():
    inside = np.linspace(4.0, 12.0, 98)
    replicates = np.concatenate([inside, [np.inf, np.inf]])  # 2%: below (1 - 0.95)/2
    row = _optimum_row("G*", 8.0, replicates, SPAN, None, 0.95, "percentile")
    expected = np.percentile(np.concatenate([inside, [16.0, 16.0]]), [2.5, 97.5])
    assert [row["lo"], row["hi"]] == pytest.approx(expected, rel=1e-12)
    assert expected[1] < 16.0  # the quantiles do not reach the replicates placed on the end
    assert row["censored"] == "" and row["value"] == 8.0 and row["n_ok"] == 100
    assert row["note"] == "minimum inside [1, 16]; > 16 in 2% of resamples"


def test_more_than_the_tail_beyond_an_end_censors_that_end():
    inside = np.linspace(4.0, 12.0, 90)
    replicates = np.concatenate([inside, np.full(10, np.inf)])  # 10% above 16
    row = _optimum_row("G*", 8.0, replicates, SPAN, None, 0.95, "percentile")
    assert row["censored"] == "upper" and row["hi"] == 16.0
    assert row["lo"] == pytest.approx(np.percentile(np.concatenate([inside, np.full(10, 16.0)]), 5))
    assert np.isnan(row["se"])  # no spread of values partly known only to lie beyond 16
    assert row["note"] == "minimum inside [1, 16]; > 16 in 10% of resamples"


def test_a_fit_beyond_the_range_censors_its_end_whatever_the_resamples():
    below, above = np.full(30, -np.inf), np.full(10, np.inf)
    replicates = np.concatenate([below, np.linspace(2.0, 9.0, 60), above])
    for method in ("percentile", "bca"):
        row = _optimum_row("G*", -np.inf, replicates, SPAN, replicates[:20], 0.95, method)
        assert row["censored"] == "both" and (row["lo"], row["hi"]) == SPAN  # 95% quantile: 16
        assert np.isnan(row["value"]) and row["n_ok"] == 100
        assert row["note"] == (
            "no minimum inside [1, 16]; < 1 at the fit and in 30%, > 16 in 10% of resamples"
        )
    alone = _optimum_row("G*", np.inf, np.linspace(10.0, 15.0, 50), SPAN, None, 0.95, "percentile")
    assert alone["censored"] == "upper" and alone["hi"] == 16.0
    assert alone["lo"] == pytest.approx(np.percentile(np.linspace(10.0, 15.0, 50), 5))
    assert alone["note"] == "no minimum inside [1, 16]; > 16 at the fit and in 0% of resamples"


# ------------------------------------------------------------------------------------------------
# 3. Fitted studies: an interior optimum, a monotone truth, an optimum near the end.


def test_interior_optimum_keeps_its_closed_form_interval():
    fit, summary = bootstrapped(study(e=0.02))
    samples = fit.bootstrap_samples[fit.bootstrap_samples["converged"]]
    g_star, s_star = closed_form(samples)
    for name, replicates, truth in (("G*", g_star, 45**0.5), ("S*", s_star, 0.3)):
        row = summary.loc[name]
        np.testing.assert_allclose(row[["lo", "hi"]].to_numpy(float),
                                   np.percentile(replicates, [2.5, 97.5]), rtol=1e-10)  # fmt: skip
        assert row["se"] == pytest.approx(np.std(replicates, ddof=1), rel=1e-10)
        assert row["lo"] < truth < row["hi"] and row["censored"] == "" and row["note"] == ""
    assert summary.loc["G*", "value"] == pytest.approx((fit.params["f"] / fit.params["e"]) ** 0.5)


def test_monotone_truth_has_no_optimum_inside_and_says_so():
    fit, summary = bootstrapped(study(e=-0.005))  # the loss falls with G over [1, 16]
    assert fit.params["e"] < 0
    assert np.isposinf(fit.bootstrap_samples["G*"]).all()
    g = summary.loc["G*"]
    assert np.isnan(g["value"]) and np.isnan(g["se"]) and g["censored"] == "upper"
    assert (g["lo"], g["hi"]) == (16.0, 16.0)  # every resample lies beyond 16
    assert g["note"] == "no minimum inside [1, 16]; > 16 at the fit and in 100% of resamples"
    s = summary.loc["S*"]
    assert s["lo"] < 0.3 < s["hi"] and s["censored"] == "" and s["note"] == ""


def test_optimum_near_the_end_is_censored_when_enough_resamples_pass_it():
    fit, summary = bootstrapped(study(e=0.9 / 14**2, noise=0.01))
    g = summary.loc["G*"]
    replicates = fit.bootstrap_samples.loc[fit.bootstrap_samples["converged"], "G*"]
    share = float(np.isposinf(replicates).mean())
    assert 1.0 < g["value"] < 16.0 and share > 0.025
    assert g["censored"] == "upper" and g["hi"] == 16.0
    assert g["lo"] == pytest.approx(np.percentile(np.clip(replicates, *SPAN), 5))
    assert g["lo"] < 14.0
    assert g["note"] == f"minimum inside [1, 16]; > 16 in {100 * share:.3g}% of resamples"


# ------------------------------------------------------------------------------------------------
# 4. The command line prints what the Python API returns.


def test_cli_text_and_json_show_the_censored_optimum(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    study(e=-0.005).to_csv(path, index=False)
    args = ["fit", "--data", str(path), "--formula", FORMULA, "--inputs", "G,S,N",
            "--holdout-above", "4e6", "--bootstrap", "40"]  # fmt: skip
    assert main([*args, "--json"]) == 0
    rows = {r["constant"]: r for r in json.loads(capsys.readouterr().out)["laws"][0]["intervals"]}
    note = "no minimum inside [1, 16]; > 16 at the fit and in 100% of resamples"
    assert rows["G*"]["value"] is None and rows["G*"]["censored"] == "upper"
    assert (rows["G*"]["lo"], rows["G*"]["hi"], rows["G*"]["note"]) == (16.0, 16.0, note)
    assert rows["S*"]["censored"] == "" and rows["S*"]["lo"] < 0.3 < rows["S*"]["hi"]

    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    g = next(line for line in lines if line.strip().startswith("G*"))
    assert g.split()[:3] == ["G*", "none", "n/a"]
    assert g.endswith(f"[16.0000, > 16]  {note}")
    s = next(line for line in lines if line.strip().startswith("S*"))
    assert "one-sided" not in s and "resamples" not in s
