"""Groups: per-group constants for a chosen subset, shared constants for the rest."""

import numpy as np
import pandas as pd
import pytest

from discover.fit import fit_law
from discover.groups import fit_grouped, group_constants, grouped_law
from discover.laws import get_law
from results.errors import InputError

SHARED = dict(A=406.4, alpha=0.34, B=410.7, beta=0.28)
LEVELS = {"owt": 1.9, "pile": 1.7, "web": 2.1}


def runs(n=60, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    parts = []
    for name, L0 in LEVELS.items():
        N, D = 10 ** rng.uniform(7, 10, n), 10 ** rng.uniform(9, 12, n)
        loss = L0 + SHARED["A"] / N ** SHARED["alpha"] + SHARED["B"] / D ** SHARED["beta"]
        loss = loss * np.exp(noise * rng.standard_normal(n))
        parts.append(pd.DataFrame({"N": N, "D": D, "loss": loss, "data": name}))
    return pd.concat(parts, ignore_index=True)


def test_grouped_fit_recovers_per_group_and_shared_constants():
    table = runs()
    fit = fit_grouped(get_law("chinchilla"), table, by="data", per_group=["L0"], n_starts=512)
    assert fit.converged, fit.message
    assert fit.law.n_constants == 4 + 3
    per_group = group_constants(fit).set_index("data")["L0"]
    for name, L0 in LEVELS.items():
        assert per_group[name] == pytest.approx(L0, rel=1e-6)
    for name, value in SHARED.items():
        assert fit.params[name] == pytest.approx(value, rel=1e-5)
    np.testing.assert_allclose(fit.predict(table), table["loss"], rtol=1e-8)


def test_sharing_costs_objective_only_when_the_groups_differ():
    table = runs(noise=0.01, seed=3)
    grouped = fit_grouped(get_law("chinchilla"), table, by="data", per_group=["L0"], n_starts=512)
    separate = sum(
        fit_law(get_law("chinchilla"), part, n_starts=512).objective
        for _, part in table.groupby("data")
    )
    pooled = fit_law(get_law("chinchilla"), table, n_starts=512).objective
    assert separate <= grouped.objective * (1 + 1e-9)  # separate fits have more freedom
    assert grouped.objective < 0.2 * pooled  # one L0 for all cannot fit three levels


def test_grouping_is_checked():
    law = get_law("chinchilla")
    with pytest.raises(InputError, match="per_group must name constants"):
        grouped_law(law, "data", ["a", "b"], ["Q"])
    with pytest.raises(InputError, match="needs at least 2"):
        grouped_law(law, "data", ["a"], ["L0"])
    fit = fit_grouped(law, runs(n=20), by="data", per_group=["L0"], n_starts=128)
    other = runs(n=3).assign(data="books")
    with pytest.raises(InputError, match=r"groups \['books'\]"):
        fit.predict(other)
