"""Epoch AI's Chinchilla refit: the optimum of its objective, the published constants, and SEs.

Run from the repository root:

    .venv/bin/python bench/epoch_chinchilla.py                # 1000 bootstrap resamples

Data and objective as in Besiroglu et al. 2024 ("Chinchilla Scaling: A Replication Attempt"):
``../shared/data/epoch_chinchilla/svg_extracted_data.csv``, D = C / (6 N), the 5 highest-loss
points dropped (240 left), Huber loss (delta = 1e-3) of log-loss residuals, summed. Printed: the
fitted constants and objective, the objective at the published constants, and bootstrap standard
errors beside the published ones (alpha 0.02, beta 0.02, A 124.6, B 1293).
"""

from __future__ import annotations

import argparse
import time

from fit_speed import epoch_table

from discover.fit import _problem, fit_law
from discover.laws import get_law

PUBLISHED = dict(L0=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)
PUBLISHED_SE = dict(L0=None, A=124.6, alpha=0.02, B=1293.0, beta=0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    table, law = epoch_table(), get_law("chinchilla")

    fit = fit_law(law, table, n_starts=4096)
    problem = _problem(law, table, "loss", "huber", 1e-3, None, {})
    at_published = problem.objective_and_gradient(problem.theta(PUBLISHED))[0]
    print(f"rows {len(table)}; converged {fit.converged}; identifiability {fit.identifiability}")
    print(f"optimum   objective {fit.objective:.6e}  " + _constants(fit.params))
    print(f"published objective {at_published:.6e}  " + _constants(PUBLISHED))

    began = time.perf_counter()
    boot = fit.bootstrap(n=args.resamples, seed=0).set_index("constant")
    print(f"bootstrap: {args.resamples} resamples in {time.perf_counter() - began:.1f} s")
    print(f"{'constant':<9}{'value':>11}{'se':>11}{'published se':>14}{'95% interval':>26}")
    for name, published in PUBLISHED_SE.items():
        row = boot.loc[name]
        shown = "" if published is None else f"{published:g}"
        band = f"[{row['lo']:.4g}, {row['hi']:.4g}]"
        print(f"{name:<9}{row['value']:>11.5g}{row['se']:>11.4g}{shown:>14}{band:>26}")


def _constants(params: dict) -> str:
    return ", ".join(f"{k}={params[k]:.5g}" for k in ("L0", "A", "B", "alpha", "beta"))


if __name__ == "__main__":
    main()
