"""The figures behind the README's findings on the bundled study.

Run from the repository root:

    .venv/bin/python bench/study_findings.py                 # the default bundled study
    .venv/bin/python bench/study_findings.py --data results/bundled/cpu-moe-v1/store

Prints, from the runs alone (no training):

1. run-to-run noise: the standard deviation of the final loss across seeds at every point that
   was trained more than once, and its median (nats/byte);
2. G* and S* of every one-factor-at-a-time block (``discover.marginal.block_optima``: the
   marginal forms u + e*G + f/G and u + m*S^2 + n*S fitted per block, 95% percentile intervals
   from 1000 row resamples), so that their dependence on N and D can be read off;
3. the loss against G and against S per block, averaged over seeds, for the eye.
"""

from __future__ import annotations

import argparse

import pandas as pd

from discover.data import load_table
from discover.marginal import block_optima, format_block_optima, oat_sweeps


def noise(table: pd.DataFrame) -> pd.DataFrame:
    """Spread of the final loss across seeds, per replicated configuration."""
    keys = ["N", "Na", "D", "G", "S", "E"]
    grouped = table.groupby(keys)["loss"]
    spread = grouped.agg(["count", "mean", "std"]).reset_index()
    return spread[spread["count"] > 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="a results store (default: bundled study)")
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    table = load_table(args.data)
    print(f"{len(table)} runs; N {table['N'].min():.3g}-{table['N'].max():.3g}, "
          f"D {table['D'].min():.3g}-{table['D'].max():.3g}, loss "
          f"{table['loss'].min():.3f}-{table['loss'].max():.3f} nats/byte")  # fmt: skip

    spread = noise(table)
    if len(spread):
        relative = 100 * (spread["std"] / spread["mean"]).median()
        print(f"\nrun-to-run noise over {len(spread)} replicated configurations: median sd "
              f"{spread['std'].median():.4f}, max {spread['std'].max():.4f} nats/byte "
              f"(median {relative:.2f}% of the loss)")  # fmt: skip

    optima = block_optima(table, n_boot=args.resamples, seed=0)
    print("\nG* and S* per one-factor-at-a-time block (95% percentile intervals):")
    print(format_block_optima(optima))

    print("\nmean loss (nats/byte) over seeds at each level of each sweep (runs):")
    for var in ("G", "S"):
        for (n, d), runs in oat_sweeps(table, var):
            levels = runs.groupby(var)["loss"].agg(["mean", "count"])
            cells = "  ".join(f"{k:g}: {m:.4f} ({c})" for k, (m, c) in levels.iterrows())
            print(f"  {var} at N {n:.3g}, D {d:.3g}:  {cells}")


if __name__ == "__main__":
    main()
