"""Training throughput (tokens/s) of small MoE configurations on CPU, one thread by default.

    .venv/bin/python bench/trainer_throughput.py                 # the default grid
    .venv/bin/python bench/trainer_throughput.py --steps 20 --threads 2 --dispatch loop

Each configuration trains for --steps optimiser steps (batch 16 × seq_len 128 by default) on
../shared/corpus/austen.txt and reports training tokens per second (evaluation excluded), N and
Na (non-embedding) and the seconds a 1M-token run would take at that rate. Expert width F is
4·D/G, so Na stays about the same as G changes (a dense E=1 model of the same Na is listed too).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from trainer.accounting import count_parameters, flops_per_token
from trainer.config import ModelConfig, RunConfig, TrainConfig
from trainer.train import train

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "austen.txt"


def grid():
    """(d_model, n_layers, E, G) of the default grid, plus dense references (E=G=1)."""
    for D, L in itertools.product((64, 96), (2, 4)):
        yield D, L, 1, 1
        for E, G in ((8, 1), (8, 2), (16, 2), (16, 4)):
            yield D, L, E, G


def measure(D, L, E, G, args) -> dict:
    """Train briefly and return the throughput row for one configuration."""
    model = ModelConfig(
        d_model=D,
        n_layers=L,
        n_heads=max(1, D // 32),
        n_experts=E,
        top_k=G,
        d_expert=4 * D // G,
        seq_len=args.seq_len,
    )
    tokens = args.steps * args.batch_size * args.seq_len
    recipe = TrainConfig(
        tokens=tokens,
        data=(str(args.data),),
        batch_size=args.batch_size,
        eval_tokens=args.seq_len,
        threads=args.threads,
    )
    result = train(RunConfig(model, recipe), dispatch=args.dispatch)
    counts = count_parameters(model)
    rate = result.tokens_per_s
    return {
        "D": D,
        "L": L,
        "E": E,
        "G": G,
        "F": model.d_expert,
        "N": counts["N"],
        "Na": counts["Na"],
        "tok/s": rate,
        "GFLOP/s": rate * flops_per_token(model, include_head=True) / 1e9,
        "s per 1M tok": 1e6 / rate,
        "dispatch": result.extra["dispatch"],
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dispatch", choices=("auto", "loop"), default="auto")
    parser.add_argument("--data", type=Path, default=CORPUS)
    args = parser.parse_args(argv)

    header = f"{'D':>4} {'L':>2} {'E':>3} {'G':>2} {'F':>4} {'N':>9} {'Na':>9} {'tok/s':>8}"
    print(header + f" {'GFLOP/s':>8} {'s/1M tok':>9} dispatch")
    for D, L, E, G in grid():
        r = measure(D, L, E, G, args)
        print(
            f"{r['D']:>4} {r['L']:>2} {r['E']:>3} {r['G']:>2} {r['F']:>4} {r['N']:>9,} "
            f"{r['Na']:>9,} {r['tok/s']:>8,.0f} {r['GFLOP/s']:>8.2f} {r['s per 1M tok']:>9.1f} "
            f"{r['dispatch']}"
        )


if __name__ == "__main__":
    main()
