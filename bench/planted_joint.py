"""The joint MoE law planted at 300 design points, re-fitted, with bootstrap intervals by method.

Run from the repository root:

    .venv/bin/python bench/planted_joint.py                    # noise seed 11, 1000 resamples
    .venv/bin/python bench/planted_joint.py --resamples 200
    .venv/bin/python bench/planted_joint.py --seeds 1-10 --out scratch/coverage.jsonl
    .venv/bin/python bench/planted_joint.py --summarise scratch/coverage.jsonl

Design: N 1.3e8-3.4e9, D 1e10-5e10, Na 3e7-2.2e9 with Na < N, G 1-20, S 0-0.7 (log-uniform
where the paper's ranges span decades), losses from the reference constants of
``discover.laws.get_law("moe_joint")``. Without noise the re-fit must recover every constant
within 1%; with 0.5% multiplicative noise it must reach an objective no higher than at the true
constants, and each 95% interval must contain the truth unless the constant is named as not
identifiable (by the fit's identifiability check, or censored at a bound by the bootstrap).

One seed: the recovery errors, both objectives, the identifiability findings, then per interval
method (percentile, basic, BC, BCa; all from the same resamples and jackknife) a table of value,
truth, interval, whether it holds the truth, and its relative width; then the G* and S* widths.

``--seeds``: the noisy part only, once per noise seed; one JSON line per seed is appended to
``--out`` as it lands, and the coverage table over the seeds is printed at the end: per method
and quantity, the share of seeds whose interval holds the truth, and (``ok``) the share that
holds it or names the constant as not identifiable (the acceptance); the row "every one" is
the share of seeds where that holds for all 14 quantities at once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_discover_fit import moe_table  # noqa: E402

from discover.bootstrap import METHODS, intervals, jackknife  # noqa: E402
from discover.fit import fit_law  # noqa: E402
from discover.laws import get_law  # noqa: E402
from discover.optima import optimum  # noqa: E402


def noisy_table(seed: int) -> pd.DataFrame:
    """The 300 planted points with 0.5% Gaussian multiplicative noise drawn from ``seed``."""
    table = moe_table(n=300, seed=0)
    rng = np.random.default_rng(seed)
    table["loss"] = table["loss"] * (1 + 0.005 * rng.standard_normal(len(table)))
    return table


def truth() -> dict[str, float]:
    law = get_law("moe_joint")
    return {**law.reference, "G*": optimum(law, "G"), "S*": optimum(law, "S")}


def measure(seed: int, resamples: int, workers=None, keep: Path | None = None) -> dict:
    """Fit one noisy draw, bootstrap it once, judge every method's intervals against the truth."""
    law, true = get_law("moe_joint"), truth()
    fit = fit_law(law, noisy_table(seed), n_starts=4096)
    problem = fit.problem
    truth_objective = problem.objective_and_gradient(problem.theta(law.reference))[0]
    began = time.perf_counter()
    fit.bootstrap(n=resamples, seed=0, workers=workers, method="percentile")
    middle = time.perf_counter()
    jackknife(fit, workers=workers)
    seconds = time.perf_counter() - began
    jack_seconds = time.perf_counter() - middle
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        fit.bootstrap_samples.to_parquet(keep / f"bootstrap-{seed}.parquet")
        fit.jackknife_samples.to_parquet(keep / f"jackknife-{seed}.parquet")
    named = set(" ".join(fit.identifiability).replace(",", " ").split())
    record = {"seed": seed, "objective": fit.objective, "truth_objective": truth_objective,
              "identifiability": fit.identifiability, "seconds": seconds,
              "jackknife_seconds": jack_seconds,
              "n_ok": int(fit.bootstrap_samples["converged"].sum()), "methods": {}}  # fmt: skip
    for method in METHODS:
        table = intervals(fit, method).set_index("constant")
        record["methods"][method] = {
            name: {"lo": table.loc[name, "lo"], "hi": table.loc[name, "hi"],
                   "value": table.loc[name, "value"], "censored": table.loc[name, "censored"],
                   "inside": bool(table.loc[name, "lo"] <= value <= table.loc[name, "hi"]),
                   "named": bool(name in named or table.loc[name, "censored"])}
            for name, value in true.items()
        }  # fmt: skip
    return record


def print_seed(record: dict) -> None:
    true = truth()
    for method, rows in record["methods"].items():
        frame = pd.DataFrame(rows).T
        frame.insert(1, "truth", [true[k] for k in frame.index])
        frame["width/|truth|"] = (frame["hi"] - frame["lo"]) / frame["truth"].abs()
        print(f"\n-- {method} (seed {record['seed']})")
        print(frame.to_string(float_format=lambda v: f"{v:.4g}"))
    print("\nwidths (hi - lo) of G* and S*:")
    for method, rows in record["methods"].items():
        g, s = rows["G*"], rows["S*"]
        print(f"  {method:<11} G* {g['hi'] - g['lo']:.4g} ({'in' if g['inside'] else 'MISS'})"
              f"   S* {s['hi'] - s['lo']:.4g} ({'in' if s['inside'] else 'MISS'})")  # fmt: skip


def coverage(records: list[dict]) -> pd.DataFrame:
    """Per method and quantity: share of seeds inside, and inside-or-named (``ok``)."""
    rows = []
    for method in METHODS:
        for name in truth():
            judged = [r["methods"][method][name] for r in records]
            rows.append({"method": method, "quantity": name,
                         "inside": np.mean([j["inside"] for j in judged]),
                         "ok": np.mean([j["inside"] or j["named"] for j in judged])})  # fmt: skip
    for method in METHODS:
        judged = [list(r["methods"][method].values()) for r in records]
        rows.append({"method": method, "quantity": "every one",
                     "inside": np.mean([all(j["inside"] for j in js) for js in judged]),
                     "ok": np.mean([all(j["inside"] or j["named"] for j in js)
                                    for js in judged])})  # fmt: skip
    frame = pd.DataFrame(rows)
    return pd.concat([frame.pivot(index="quantity", columns="method", values="inside"),
                      frame.pivot(index="quantity", columns="method", values="ok")
                      .add_suffix(" ok")], axis=1).loc[[*truth(), "every one"]]  # fmt: skip


def widths(records: list[dict]) -> pd.DataFrame:
    """Per method: median width (hi - lo) of the G* and S* intervals over the seeds."""
    return pd.DataFrame({
        method: {f"{q} width": np.median([r["methods"][method][q]["hi"]
                                          - r["methods"][method][q]["lo"] for r in records])
                 for q in ("G*", "S*")}
        for method in METHODS
    }).T  # fmt: skip


def summarise(records: list[dict]) -> None:
    print(f"coverage over {len(records)} noise seeds {[r['seed'] for r in records]}:")
    print(coverage(records).to_string(float_format=lambda v: f"{v:.2f}"))
    print("median interval widths:")
    print(widths(records).to_string(float_format=lambda v: f"{v:.4g}"))


def seed_range(text: str) -> list[int]:
    """``"1-10"`` or ``"1,2,11"``."""
    if "-" in text:
        first, last = map(int, text.split("-"))
        return list(range(first, last + 1))
    return [int(s) for s in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--noise-seed", type=int, default=11)
    parser.add_argument("--seeds", type=seed_range, help="e.g. 1-10: coverage over noise seeds")
    parser.add_argument("--out", type=Path, help="with --seeds: append one JSON line per seed")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--keep", type=Path, help="folder to save each seed's refits (parquet)")
    parser.add_argument("--summarise", type=Path, help="print the coverage of an --out file")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    if args.seeds:
        records = []
        for seed in args.seeds:
            records.append(measure(seed, args.resamples, args.workers, args.keep))
            misses = {m: [k for k, j in rows.items() if not (j["inside"] or j["named"])]
                      for m, rows in records[-1]["methods"].items()}  # fmt: skip
            print(
                f"seed {seed}: {records[-1]['seconds']:.0f} s, not covered nor named {misses}",
                flush=True,
            )
            if args.out:
                with args.out.open("a") as f:
                    f.write(json.dumps(records[-1], default=float) + "\n")
        summarise(records)
        return
    if args.summarise:
        summarise([json.loads(line) for line in args.summarise.read_text().splitlines()])
        return

    # 1. Noiseless: every constant within 1%.
    law = get_law("moe_joint")
    fit = fit_law(law, moe_table(n=300, seed=0), n_starts=4096)
    worst = max(abs(fit.params[k] / v - 1) for k, v in law.reference.items())
    print(f"noiseless: largest relative error {worst:.2e}, objective {fit.objective:.3e}")

    # 2. 0.5% multiplicative noise: objective, identifiability, intervals by method.
    record = measure(args.noise_seed, args.resamples, args.workers)
    print(f"noisy: objective {record['objective']:.6e} at fit, "
          f"{record['truth_objective']:.6e} at the truth")  # fmt: skip
    print(f"not identifiable: {record['identifiability']}")
    print(f"bootstrap ({args.resamples} resamples) and jackknife (300 refits): "
          f"{record['seconds']:.1f} s, of which jackknife {record['jackknife_seconds']:.1f} s; "
          f"{record['n_ok']} resamples converged")  # fmt: skip
    print_seed(record)


if __name__ == "__main__":
    main()
