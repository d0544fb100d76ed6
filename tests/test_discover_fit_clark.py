"""Clark et al. 2022 MoE split: train on dense sizes below 1.3e9, score R² on the 1.31B runs.

The reference scores (0.703 for Clark's law, 0.833 for the four-constant law) come from least
squares: on log L for Clark's law (its natural, log-linear scale) and on L itself for the
four-constant law. The Huber fit of log L is given beside them.
"""

import warnings
from pathlib import Path

import pandas as pd
import pytest

from discover.fit import fit_law
from discover.laws import get_law
from discover.metrics import r2

SHARED = Path(__file__).resolve().parents[2] / "shared"


def clark_split():
    raw = pd.read_csv(SHARED / "data" / "clark2022" / "curves.csv.gz")
    raw = raw[raw["step"] == 249000]
    table = pd.DataFrame({"N": raw["dense_parameter_count"].astype(float),
                          "E": raw["num_experts"].astype(float),
                          "loss": raw["loss_validation"]})  # fmt: skip
    train = table[table["N"] < 1.3e9].reset_index(drop=True)
    test = table[table["N"] >= 1.3e9].reset_index(drop=True)
    return train, test


@pytest.mark.parametrize(
    ("law", "loss", "residual", "expected"),
    [
        ("clark2022", "squared", "log", 0.703),
        ("moe_powerlaw4", "squared", "linear", 0.833),
        ("moe_powerlaw4", "huber", "log", 0.851),
    ],
)
def test_clark_split_reference_scores(law, loss, residual, expected):
    train, test = clark_split()
    assert (len(train), len(test)) == (193, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # converged, every constant identified
        fit = fit_law(get_law(law), train, loss=loss, residual=residual, n_starts=1024)
    assert fit.converged, fit.message
    assert r2(test["loss"], fit.predict(test)) == pytest.approx(expected, abs=5e-3)
