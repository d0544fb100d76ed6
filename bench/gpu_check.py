"""MFU of the trainer on one CUDA GPU: a ~100M-activated-parameter MoE model in bf16 autocast.

    bash bench/gpu_check.sh                  # the whole check, under 8 minutes on an H200
    python bench/gpu_check.py --steps 30 --no-compile

Trains through the trainer's own step (forward, backward, finiteness check, clipping, AdamW) on
random bytes, first eagerly and then with torch.compile, and prints tokens/s and the model FLOP
utilisation MFU = (6·Na + attention + head FLOPs per token) · tokens/s / peak, against the dense
bf16 peak of an H200 (989 TFLOP/s, the H100/H200 SXM figure without sparsity). Target: >= 35%.
Before timing it checks that grouped and per-expert dispatch agree on this GPU in bf16.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from trainer.accounting import count_parameters, flops_per_token
from trainer.config import ModelConfig, RunConfig, TrainConfig
from trainer.model import MoE, grouped_mm_supported
from trainer.train import Trainer

PEAK_FLOPS = 989e12
TARGET_MFU = 0.35


def model_config(args) -> ModelConfig:
    """d_model 768, 12 layers, 8 experts top-2 of width 1280: Na ~ 99M (non-embedding)."""
    return ModelConfig(
        d_model=args.d_model,
        n_layers=args.layers,
        n_heads=args.d_model // 64,
        n_experts=args.experts,
        top_k=args.top_k,
        d_expert=args.d_expert,
        seq_len=args.seq_len,
    )


def check_dispatch_agrees(cfg: ModelConfig) -> float:
    """Largest difference between grouped and loop dispatch outputs (bf16, one layer)."""
    torch.manual_seed(0)
    grouped = MoE(cfg, dispatch="grouped").cuda()
    loop = MoE(cfg, dispatch="loop").cuda()
    for p in grouped.parameters():
        torch.nn.init.normal_(p, std=0.02)
    loop.load_state_dict(grouped.state_dict())
    x = torch.randn(4, 256, cfg.d_model, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        a, _ = grouped(x)
        b, _ = loop(x)
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


def measure(cfg: ModelConfig, data: Path, args, *, compile: bool) -> float:
    """Median tokens/s over args.steps training steps after args.warmup steps."""
    recipe = TrainConfig(
        tokens=10**12,
        data=(str(data),),
        batch_size=args.batch_size,
        lr=3e-4,
        eval_tokens=cfg.seq_len,
        precision="bf16",
        compile=compile,
    )
    trainer = Trainer(RunConfig(cfg, recipe), "cuda", None, "auto")
    for _ in range(args.warmup):
        trainer._train_step()
    torch.cuda.synchronize()
    times = []
    for _ in range(args.steps):
        started = time.perf_counter()
        trainer._train_step()  # ends in a host sync (the finiteness check)
        times.append(time.perf_counter() - started)
    return args.batch_size * cfg.seq_len / float(np.median(times))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--d-expert", type=int, default=1280)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args(argv)

    if not torch.cuda.is_available():
        print(
            f"gpu_check needs a CUDA GPU, and torch {torch.__version__} sees none "
            f"(torch.cuda.is_available() is False); run it on the GPU machine.",
            file=sys.stderr,
        )
        return 2

    cfg = model_config(args)
    counts = count_parameters(cfg)
    per_token = flops_per_token(cfg, include_head=True)
    print(f"device {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(
        f"Na {counts['Na'] / 1e6:.1f}M, N {counts['N'] / 1e6:.1f}M (non-embedding), "
        f"{per_token / 1e9:.3f} GFLOP per token, {args.batch_size * args.seq_len} tokens/step"
    )
    print(
        f"grouped_mm bf16: {grouped_mm_supported('cuda', torch.bfloat16)}; "
        f"grouped vs loop relative difference {check_dispatch_agrees(cfg):.2e}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "random.bin.txt"
        data.write_bytes(np.random.default_rng(0).integers(0, 256, 1 << 26, np.uint8).tobytes())
        best = 0.0
        for compile in (False,) if args.no_compile else (False, True):
            started = time.perf_counter()
            rate = measure(cfg, data, args, compile=compile)
            mfu = rate * per_token / PEAK_FLOPS
            best = max(best, mfu)
            print(
                f"compile={compile}: {rate:,.0f} tokens/s, MFU {mfu:.1%} of 989 TFLOP/s "
                f"({time.perf_counter() - started:.0f} s including warm-up)",
                flush=True,
            )
    verdict = "meets" if best >= TARGET_MFU else "falls short of"
    print(f"best MFU {best:.1%}: {verdict} the {TARGET_MFU:.0%} target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
