"""The joint MoE law planted at 300 design points in the paper's ranges, then re-fitted with noise.

With 0.5% multiplicative noise the fit must reach an objective no higher than at the true
constants, and the 95% bootstrap intervals (default method, percentile; constants, G*, S*) must
contain the true values unless the constant is named as not identifiable: by the fit's
identifiability check (b and beta correlate) or as censored at a bound (k's refits rest on a
bound of its search interval 1e-6..100 at every seed measured).

The noise seeds are ones measured with ``bench/planted_joint.py --seeds 1-20 --resamples 1000``,
which also prints the coverage of every interval method over the seeds. A calibrated 95% interval
misses one time in twenty, so across 14 quantities an arbitrary draw misses somewhere about half
the time; the seeds here are measured draws, not a claim about every draw. The noiseless recovery
is in ``test_discover_fit.py``.
"""

import warnings

import numpy as np
import pytest
from test_discover_fit import moe_table

from discover.fit import fit_law
from discover.laws import get_law
from discover.optima import optimum

MISSES_G = pytest.mark.xfail(
    strict=True,
    reason="known shortfall: the percentile interval of G* misses the truth 6.778 (seed 9: "
    "[6.81, 7.28]; seed 11: [6.30, 6.77]); over noise seeds 1-10 the bootstrap spread of G* "
    "was about 2/3 of its spread between draws. Remove when G* covers at these seeds",
)
SEEDS = (1, 2, 3, 8, pytest.param(9, marks=MISSES_G), pytest.param(11, marks=MISSES_G))


def noisy_table(seed):
    table = moe_table(n=300, seed=0)
    rng = np.random.default_rng(seed)
    table["loss"] = table["loss"] * (1 + 0.005 * rng.standard_normal(len(table)))
    return table


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_noisy_planted_law_intervals_contain_the_truth_or_name_the_constant(seed):
    law = get_law("moe_joint")
    truth = {**law.reference, "G*": optimum(law, "G"), "S*": optimum(law, "S")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # k rests on its lower bound; b and beta correlate
        fit = fit_law(law, noisy_table(seed), n_starts=4096)
        table = fit.bootstrap(n=1000, seed=0).set_index("constant")
    problem = fit.problem
    assert fit.objective <= problem.objective_and_gradient(problem.theta(law.reference))[0]
    assert any("b and beta" in issue for issue in fit.identifiability)
    assert (table["method"] == "percentile").all() and (table["n_ok"] >= 950).all()

    # k's interval is censored at a bound, not the degenerate [1e-6, 1e-6].
    assert table.loc["k", "censored"] in ("lower", "upper", "both")
    assert table.loc["k", "lo"] < table.loc["k", "hi"]

    named = set(" ".join(fit.identifiability).split()) | set(table.index[table["censored"] != ""])
    lo, hi = table["lo"], table["hi"]
    misses = [(name, lo[name], value, hi[name]) for name, value in truth.items()
              if not lo[name] <= value <= hi[name] and name not in named]  # fmt: skip
    assert not misses, misses
