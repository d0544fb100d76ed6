"""Whole training step of MoE models against a dense model of the same activated parameters.

    .venv/bin/python bench/moe_vs_dense.py                     # d_model 256, 4 layers, 2 threads
    .venv/bin/python bench/moe_vs_dense.py --repeats 9 --points 8x2 64x8

Every model trains on the same batches (same seed, same data) through the trainer's own step:
forward, backward, clipping, the finiteness check and AdamW. Expert width is F = 4·D/G, so each
MoE model activates the parameters of the dense model's SwiGLU of width 4·D (plus its router).
Steps of all models are interleaved, so a machine shared with other work slows every model
alike; the ratios use each model's fastest step (the least disturbed one) and the median is
printed beside it. Targets (issue 5): MoE/dense <= 1.3 at (8, 2) and
(16, 4), <= 1.6 at (64, 8); grouped dispatch no slower than the per-expert loop.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from trainer.accounting import count_parameters
from trainer.config import ModelConfig, RunConfig, TrainConfig
from trainer.train import Trainer

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "austen.txt"
TARGETS = {(8, 2): 1.3, (16, 4): 1.3, (64, 8): 1.6}


def make_trainer(E: int, G: int, dispatch: str, args) -> Trainer:
    """A trainer for one model of the comparison (E = G = 1 is the dense model)."""
    D = args.d_model
    model = ModelConfig(
        d_model=D,
        n_layers=args.layers,
        n_heads=D // 64,
        n_experts=E,
        top_k=G,
        d_expert=4 * D // G,
        seq_len=args.seq_len,
    )
    recipe = TrainConfig(
        tokens=10**9,
        data=(str(args.data),),
        batch_size=args.batch_size,
        eval_tokens=args.seq_len,
        threads=args.threads,
    )
    return Trainer(RunConfig(model, recipe), "cpu", None, dispatch)


def time_interleaved(trainers: dict, repeats: int, warmup: int) -> dict:
    """Seconds of every timed training step of each trainer, steps taken in turn."""
    times = {name: [] for name in trainers}
    for r in range(warmup + repeats):
        for name, trainer in trainers.items():
            started = time.perf_counter()
            trainer._train_step()
            if r >= warmup:
                times[name].append(time.perf_counter() - started)
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--points", nargs="+", default=["8x2", "16x4", "64x8"])
    parser.add_argument("--no-loop", action="store_true", help="skip the per-expert loop")
    parser.add_argument("--data", type=Path, default=CORPUS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    points = [tuple(int(v) for v in p.split("x")) for p in args.points]
    trainers = {("dense", 1, 1): make_trainer(1, 1, "auto", args)}
    for E, G in points:
        trainers[("grouped", E, G)] = make_trainer(E, G, "grouped", args)
        if not args.no_loop:
            trainers[("loop", E, G)] = make_trainer(E, G, "loop", args)
    times = time_interleaved(trainers, args.repeats, args.warmup)
    best = {name: min(t) for name, t in times.items()}
    median = {name: statistics.median(t) for name, t in times.items()}

    tokens = args.batch_size * args.seq_len
    print(f"threads {args.threads}, {tokens} tokens per step, best and median of {args.repeats}")
    print(
        f"{'model':>8} {'E':>3} {'G':>2} {'Na':>10} {'best ms':>8} {'tok/s':>8} {'vs dense':>8}"
        f" {'median ms':>9} {'vs dense':>8}"
    )
    dense, dense_median = best[("dense", 1, 1)], median[("dense", 1, 1)]
    for (kind, E, G), seconds in best.items():
        Na = count_parameters(trainers[(kind, E, G)].m)["Na"]
        mid = median[(kind, E, G)]
        print(
            f"{kind:>8} {E:>3} {G:>2} {Na:>10,} {seconds * 1e3:>8.1f} {tokens / seconds:>8.0f} "
            f"{seconds / dense:>8.2f} {mid * 1e3:>9.1f} {mid / dense_median:>8.2f}"
        )
    for E, G in points:
        ratio = best[("grouped", E, G)] / dense
        line = f"(E, G) = ({E}, {G}): MoE/dense {ratio:.2f} (target <= {TARGETS.get((E, G), '-')})"
        if not args.no_loop:
            line += f", grouped/loop {best[('grouped', E, G)] / best[('loop', E, G)]:.2f}"
        print(line)


if __name__ == "__main__":
    main()
