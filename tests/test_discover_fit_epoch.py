"""Acceptance on Epoch AI's Chinchilla points: the optimum of the published objective, and its SEs.

Besiroglu et al. 2024 refit Hoffmann et al.'s Chinchilla law on points read off the paper's
Figure 4: D = C / (6 N), the 5 highest-loss points dropped, Huber loss (delta = 1e-3) of log-loss
residuals, summed. The optimum of that objective lies below the objective at their published
constants, because B is weakly determined.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from discover.fit import _problem, fit_law
from discover.laws import get_law

SHARED = Path(__file__).resolve().parents[2] / "shared"
OPTIMUM = dict(L0=1.8172, A=477.9, B=2143.0, alpha=0.3473, beta=0.3672)
PUBLISHED = dict(L0=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)
PUBLISHED_SE = dict(alpha=0.02, beta=0.02, A=124.6, B=1293.0)


def epoch_table() -> pd.DataFrame:
    raw = pd.read_csv(SHARED / "data" / "epoch_chinchilla" / "svg_extracted_data.csv")
    N = raw["Model Size"].to_numpy(float)
    table = pd.DataFrame({"N": N, "D": raw["Training FLOP"] / (6 * N), "loss": raw["loss"]})
    return table.sort_values("loss").iloc[:-5].reset_index(drop=True)


@pytest.fixture(scope="module")
def epoch_fit():
    return fit_law(get_law("chinchilla"), epoch_table(), n_starts=4096)


def test_reaches_the_optimum_of_the_published_objective(epoch_fit):
    assert len(epoch_table()) == 240
    assert epoch_fit.converged, epoch_fit.message
    for name, value in OPTIMUM.items():
        assert epoch_fit.params[name] == pytest.approx(value, rel=5e-3), name
    assert epoch_fit.objective == pytest.approx(1.01827e-3, rel=1e-5)
    assert epoch_fit.identifiability == []


def test_published_constants_score_worse_than_the_optimum(epoch_fit):
    problem = _problem(get_law("chinchilla"), epoch_table(), "loss", "huber", 1e-3, None, {})
    at_published = problem.objective_and_gradient(problem.theta(PUBLISHED))[0]
    assert at_published == pytest.approx(1.02284e-3, rel=1e-4)
    assert epoch_fit.objective < at_published


def test_bootstrap_standard_errors_match_the_published_ones(epoch_fit):
    table = epoch_fit.bootstrap(n=300, seed=0, workers=1).set_index("constant")
    assert (table["n_ok"] >= 295).all()
    for name, se in PUBLISHED_SE.items():
        assert table.loc[name, "se"] == pytest.approx(se, rel=0.35), name
    for name, value in epoch_fit.params.items():
        assert table.loc[name, "lo"] < value < table.loc[name, "hi"]
    assert len(epoch_fit.bootstrap_samples) == 300
    assert np.isfinite(epoch_fit.bootstrap_samples[list(OPTIMUM)].to_numpy()).all()
