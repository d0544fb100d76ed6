"""Side-by-side comparison of fitted laws: columns, scores, optima, text table."""

import numpy as np
import pandas as pd
import pytest
import sympy as sp

from discover.compare import COLUMNS, compare, format_side_by_side
from discover.fit import FitResult
from discover.formula import symbol
from discover.laws import get_law


def known_fit(name: str, params: dict) -> FitResult:
    """A FitResult with given constants (no fitting), so every score is known in advance."""
    return FitResult(get_law(name), dict(params), 0.0, True, "converged", 0)


def joint_runs(n=50, seed=0) -> tuple[pd.DataFrame, np.ndarray]:
    """Runs generated from the joint MoE law's reference constants; holdout: the largest N."""
    rng = np.random.default_rng(seed)
    runs = pd.DataFrame({
        "N": 10 ** rng.uniform(8, 9.5, n), "D": 10 ** rng.uniform(10, 11, n),
        "G": rng.integers(1, 17, n).astype(float), "S": rng.uniform(0, 0.7, n),
    })  # fmt: skip
    runs["Na"] = runs["N"] * rng.uniform(0.1, 0.5, n)
    law = get_law("moe_joint")
    f = sp.lambdify([symbol(x) for x in law.inputs], law.substitute(law.reference))
    runs["loss"] = f(*(runs[x] for x in law.inputs))
    return runs, (runs["N"] >= runs["N"].quantile(0.8)).to_numpy()


def test_compare_scores_and_optima_of_known_fits():
    runs, holdout = joint_runs()
    joint = known_fit("moe_joint", get_law("moe_joint").reference)
    chin = known_fit("chinchilla", {"L0": 2.0, "A": 400.0, "alpha": 0.34, "B": 400.0, "beta": 0.28})
    table = compare({"joint": joint, "chinchilla": chin}, runs, "loss", holdout)

    assert tuple(table.columns) == COLUMNS
    assert table["law"].tolist() == ["joint", "chinchilla"]
    assert table["n_constants"].tolist() == [12, 5]
    row = table.iloc[0]
    assert row["fit_r2"] == pytest.approx(1.0) and row["holdout_r2"] == pytest.approx(1.0)
    assert row["fit_rmse"] == pytest.approx(0.0, abs=1e-12)
    assert row["G_star"] == pytest.approx(np.sqrt(7.2446 / 0.1577), rel=1e-9)  # 6.778
    assert row["S_star"] == pytest.approx(3.2363 / (2 * 5.1395), rel=1e-9)  # 0.315
    assert np.isnan(table.iloc[1]["G_star"]) and np.isnan(table.iloc[1]["S_star"])

    # The Chinchilla row's scores, computed by hand
    pred = chin.predict(runs)
    y, p = runs["loss"][~holdout], pred[~holdout]
    assert table.iloc[1]["fit_r2"] == pytest.approx(1 - np.mean((y - p) ** 2) / np.var(y))
    assert table.iloc[1]["fit_rmse"] == pytest.approx(np.sqrt(np.mean((y - p) ** 2)))
    yh, ph = runs["loss"][holdout], pred[holdout]
    assert table.iloc[1]["holdout_r2"] == pytest.approx(1 - np.mean((yh - ph) ** 2) / np.var(yh))


def test_side_by_side_text_wraps_formulas():
    runs, holdout = joint_runs()
    joint = known_fit("moe_joint", get_law("moe_joint").reference)
    text = format_side_by_side(compare({"joint": joint}, runs, "loss", holdout))
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["law", "formula", "constants"]
    assert set(lines[1]) == {"-"}
    assert lines[2].startswith("joint") and " 12 " in lines[2] and "6.78" in lines[2]
    assert len(lines) > 4  # the 12-constant formula wraps onto continuation lines
    assert all(line.startswith(" ") for line in lines[3:])
    assert max(len(line) for line in lines) <= 100


def test_compare_refuses_a_mask_of_the_wrong_length():
    runs, holdout = joint_runs()
    joint = known_fit("moe_joint", get_law("moe_joint").reference)
    with pytest.raises(ValueError, match="one boolean per row"):
        compare({"joint": joint}, runs, "loss", holdout[:-1])
