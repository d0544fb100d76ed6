"""`moelaw fit` and `moelaw compare` objective and bootstrap options: thin layers over fit_law."""

import json

import numpy as np
import pandas as pd
import pytest

from cluster.cli import main

TRUE = dict(L0=1.69, A=406.4, alpha=0.34, B=410.7, beta=0.28)


@pytest.fixture()
def csv(tmp_path):
    rng = np.random.default_rng(0)
    N, D = 10 ** rng.uniform(7, 10, 80), 10 ** rng.uniform(9, 12, 80)
    loss = TRUE["L0"] + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / D ** TRUE["beta"]
    path = tmp_path / "runs.csv"
    pd.DataFrame({"N": N, "D": D, "loss": loss * np.exp(0.01 * rng.standard_normal(80))}).to_csv(
        path, index=False
    )
    return str(path)


def test_fit_with_bootstrap_prints_intervals(csv, capsys):
    assert main(["fit", "--data", csv, "--law", "chinchilla", "--bootstrap", "40", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["laws"][0]
    rows = {row["constant"]: row for row in report["intervals"]}
    assert set(rows) == set(TRUE)
    for name, row in rows.items():
        assert row["lo"] <= report["params"][name] <= row["hi"]
        assert row["se"] > 0 and row["n_ok"] == 40
    assert main(["fit", "--data", csv, "--law", "chinchilla", "--bootstrap", "20"]) == 0
    assert "95% interval" in capsys.readouterr().out


def test_loss_and_residual_options_reach_the_fit(csv, capsys):
    args = ["fit", "--data", csv, "--law", "chinchilla", "--json"]
    assert main([*args, "--loss", "squared", "--residual", "linear"]) == 0
    squared = json.loads(capsys.readouterr().out)["laws"][0]["params"]
    assert main(args) == 0
    huber = json.loads(capsys.readouterr().out)["laws"][0]["params"]
    assert squared["beta"] != pytest.approx(huber["beta"], rel=1e-6)
    assert main(["compare", "--data", csv, "--laws", "chinchilla", "--loss", "absolute"]) == 0
    assert "chinchilla" in capsys.readouterr().out


def test_a_constant_pinned_at_a_bound_is_marked_one_sided_and_named(csv, capsys):
    # The data have no term in C*N; C rests on its lower bound 0 in every resample
    formula = "L0 + A*N**(-alpha) + B*D**(-beta) + C*N"
    args = ["fit", "--data", csv, "--formula", formula, "--bounds", "C=0:1",
            "--bounds", "A=1:1e4:log", "--bounds", "B=1:1e4:log", "--bootstrap", "20"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.strip().startswith("C "))
    assert "at its lower bound: one-sided" in line
    assert "C is at its lower bound 0: not identifiable from these data; fix or tie it" in out


def test_more_constants_than_fitting_rows_is_said_plainly(tmp_path, capsys):
    # Chinchilla's 5 constants on 2 fitting rows printed R² 1.0000 with no warning
    path = tmp_path / "three.csv"
    pd.DataFrame({"N": [1e7, 1e8, 1e9], "D": [1e9, 1e10, 1e11], "loss": [3.0, 2.6, 2.3]}).to_csv(
        path, index=False
    )
    assert main(["fit", "--data", str(path), "--law", "chinchilla"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "5 constants fitted to 2 rows" in out and "say nothing" in out
