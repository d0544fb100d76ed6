"""The joint MoE law planted at 300 design points in the paper's ranges, then re-fitted with noise.

With 0.5% multiplicative noise the fit must reach an objective no higher than at the true
constants, and the 95% bootstrap intervals (constants, G*, S*) must contain the true values unless
the fit names the constant as not identifiable. A 95% interval misses by chance one time in
twenty, so four noise draws are checked together: at most 3 of their 56 intervals may miss, each
by less than 1% of the true value. (Measured: one miss, G* at noise seed 11, by 0.1%; the
full table is printed by ``bench/planted_joint.py``.) The noiseless recovery is in
``test_discover_fit.py``.
"""

import warnings

import numpy as np
import pytest
from test_discover_fit import moe_table

from discover.fit import fit_law
from discover.laws import get_law
from discover.optima import optimum


def noisy_table(seed):
    table = moe_table(n=300, seed=0)
    rng = np.random.default_rng(seed)
    table["loss"] = table["loss"] * (1 + 0.005 * rng.standard_normal(len(table)))
    return table


@pytest.mark.slow
def test_noisy_planted_law_intervals_contain_the_truth():
    law = get_law("moe_joint")
    truth = {**law.reference, "G*": optimum(law, "G"), "S*": optimum(law, "S")}
    misses = []
    for seed in (1, 2, 3, 11):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # k rests on its lower bound; b and beta correlate
            fit = fit_law(law, noisy_table(seed), n_starts=4096)
        problem = fit.problem
        assert fit.objective <= problem.objective_and_gradient(problem.theta(law.reference))[0]
        assert any("b and beta" in issue for issue in fit.identifiability)

        table = fit.bootstrap(n=200, seed=0, workers=1).set_index("constant")
        assert (table["n_ok"] >= 190).all()
        named = " ".join(fit.identifiability).split()
        for name, value in truth.items():
            lo, hi = table.loc[name, "lo"], table.loc[name, "hi"]
            if not lo <= value <= hi and name not in named:
                misses.append((seed, name, min(abs(value - lo), abs(value - hi)) / abs(value)))
    assert len(misses) <= 3, misses
    assert all(by < 0.01 for _, _, by in misses), misses
