"""Multi-start fitting speed: moelaw's vectorised search against L-BFGS-B run once per start.

Run from the repository root:

    .venv/bin/python bench/fit_speed.py                 # 4,500 starts, the full loop
    .venv/bin/python bench/fit_speed.py --loop 500      # time 500 loop starts, scale to 4,500

Data: Epoch AI's Chinchilla points (``../shared/data/epoch_chinchilla/svg_extracted_data.csv``;
Besiroglu et al. 2024), D = C / (6 N), the 5 highest-loss points dropped. Objective: Huber loss
(delta = 1e-3) of log-loss residuals, summed; the Chinchilla form ``L0 + A/N^alpha + B/D^beta``
with A, B fitted in log space.

Both methods start from the same 4,500 scrambled Sobol points in the same box and use the same
analytic gradient. The baseline runs scipy's L-BFGS-B from every start, one after the other, and
keeps the best; moelaw evaluates all starts in one array computation and polishes the best few
(:func:`discover.fit.fit_law`). Printed: both times, their ratio, and the relative difference of
the two optima's objectives (target: ratio >= 20, difference <= 1e-9).
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.stats import qmc

from discover.fit import _problem, fit_law, one_blas_thread
from discover.laws import get_law

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "epoch_chinchilla"


def epoch_table() -> pd.DataFrame:
    raw = pd.read_csv(DATA / "svg_extracted_data.csv")
    N = raw["Model Size"].to_numpy(float)
    table = pd.DataFrame({"N": N, "D": raw["Training FLOP"] / (6 * N), "loss": raw["loss"]})
    return table.sort_values("loss").iloc[:-5].reset_index(drop=True)


def sobol_starts(problem, n_starts: int, seed: int) -> np.ndarray:
    """The starts fit_law draws: scrambled Sobol points in the transformed box."""
    sobol = qmc.Sobol(len(problem.lo), scramble=True, seed=np.random.default_rng(seed))
    unit = sobol.random_base2(math.ceil(math.log2(n_starts)))[:n_starts]
    return problem.lo + unit * (problem.hi - problem.lo)


def loop_baseline(problem, starts: np.ndarray) -> tuple[float, float]:
    """L-BFGS-B from every start in turn; (best objective, seconds)."""
    bounds = list(zip(problem.lo, problem.hi, strict=True))
    best, began = math.inf, time.perf_counter()
    with np.errstate(all="ignore"), one_blas_thread():  # the same BLAS setting as fit_law
        for theta0 in starts:
            result = optimize.minimize(
                problem.objective_and_gradient,
                theta0,
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": 3000, "ftol": 1e-15, "gtol": 1e-12},
            )
            best = min(best, problem.objective_and_gradient(result.x)[0])
    return best, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=4500, help="starting points (4500)")
    parser.add_argument(
        "--loop",
        type=int,
        default=None,
        help="time only this many loop starts and scale (default: all)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    table, law = epoch_table(), get_law("chinchilla")
    problem = _problem(law, table, "loss", "huber", 1e-3, None, {})

    # 1. moelaw: vectorised global search, then polish of the best few.
    began = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_law(law, table, n_starts=args.starts, seed=args.seed)
    ours = time.perf_counter() - began

    # 2. Baseline: L-BFGS-B once per start (all of them, or a timed sample scaled up).
    starts = sobol_starts(problem, args.starts, args.seed)
    sample = starts if args.loop is None else starts[:: max(1, len(starts) // args.loop)]
    best, seconds = loop_baseline(problem, sample)
    loop = seconds * len(starts) / len(sample)

    scaled = "" if len(sample) == len(starts) else f" (timed {len(sample)} starts, scaled)"
    print(f"rows {len(table)}, starts {args.starts}")
    print(f"moelaw fit_law          {ours:9.2f} s   objective {fit.objective:.12e}")
    print(f"L-BFGS-B per start      {loop:9.2f} s{scaled}   objective {best:.12e}")
    print(f"speed-up                {loop / ours:9.1f}x")
    print(f"objective difference    {abs(fit.objective - best) / best:.2e} (relative)")
    print("constants", {k: float(f"{v:.6g}") for k, v in fit.params.items()})


if __name__ == "__main__":
    main()
