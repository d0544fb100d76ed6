"""The joint MoE law planted at 300 design points, re-fitted, with bootstrap interval widths.

Run from the repository root:

    .venv/bin/python bench/planted_joint.py                  # 1000 resamples
    .venv/bin/python bench/planted_joint.py --resamples 200

Design: N 1.3e8-3.4e9, D 1e10-5e10, Na 3e7-2.2e9 with Na < N, G 1-20, S 0-0.7 (log-uniform
where the paper's ranges span decades), losses from the reference constants of
``discover.laws.get_law("moe_joint")``. Without noise the re-fit must recover every constant
within 1%; with 0.5% multiplicative noise it must reach an objective no higher than at the true
constants, and each 95% interval must contain the truth unless the constant is named as not
identifiable. Printed: the recovery errors, both objectives, the identifiability findings and a
table of value, truth, interval and relative width for every constant and for G*, S*.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_discover_fit import moe_table  # noqa: E402

from discover.fit import fit_law  # noqa: E402
from discover.laws import get_law  # noqa: E402
from discover.optima import optimum  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--noise-seed", type=int, default=11)
    args = parser.parse_args()
    law = get_law("moe_joint")
    warnings.simplefilter("ignore")

    # 1. Noiseless: every constant within 1%.
    clean = moe_table(n=300, seed=0)
    fit = fit_law(law, clean, n_starts=4096)
    worst = max(abs(fit.params[k] / v - 1) for k, v in law.reference.items())
    print(f"noiseless: largest relative error {worst:.2e}, objective {fit.objective:.3e}")

    # 2. 0.5% multiplicative noise: objective, identifiability, intervals.
    noisy = clean.copy()
    rng = np.random.default_rng(args.noise_seed)
    noisy["loss"] *= 1 + 0.005 * rng.standard_normal(len(noisy))
    fit = fit_law(law, noisy, n_starts=4096)
    truth_objective = fit.problem.objective_and_gradient(fit.problem.theta(law.reference))[0]
    print(f"noisy: objective {fit.objective:.6e} at fit, {truth_objective:.6e} at the truth")
    print(f"converged: {fit.converged} ({fit.message})")
    print(f"not identifiable: {fit.identifiability}")
    began = time.perf_counter()
    table = fit.bootstrap(n=args.resamples, seed=0)
    print(f"bootstrap: {args.resamples} resamples in {time.perf_counter() - began:.1f} s")
    truth = {**law.reference, "G*": optimum(law, "G"), "S*": optimum(law, "S")}
    table["truth"] = table["constant"].map(truth)
    table["inside"] = (table["lo"] <= table["truth"]) & (table["truth"] <= table["hi"])
    table["width/|truth|"] = (table["hi"] - table["lo"]) / table["truth"].abs()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
