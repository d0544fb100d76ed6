"""Train one MoE language model for one :class:`~trainer.config.RunConfig`.

    .venv/bin/python -c "from trainer.config import RunConfig; from trainer.train import train; \\
        print(train(RunConfig.tiny(data=('../shared/corpus/austen.txt',))).loss)"

Recipe: AdamW (weight decay on matrices only), warmup-stable-decay learning rate, global gradient
norm clipping, loss = cross-entropy + aux_loss_coef · Σ_layers load-balance. Steps =
tokens // (batch_size · seq_len). Losses are in nats per byte. On CUDA the forward pass runs under
bf16 autocast; on CPU everything is float32 and a run is deterministic for a given seed and thread
count.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from results.errors import InputError
from trainer.accounting import count_parameters
from trainer.config import RunConfig, TrainConfig
from trainer.data import ByteData
from trainer.model import MoETransformer

log = logging.getLogger(__name__)

_CURVE_POINTS = 100  # about this many averaged training-loss points per run
_CHECKPOINT = "checkpoint.pt"


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainResult:
    """What one training run produced.

    Attributes:
        loss: final validation loss, nats per byte.
        curve: points {"split": "train" | "validation", "step", "tokens", "loss"}; train points
            average the steps since the previous point.
        steps: optimiser steps taken.
        tokens: training tokens seen, steps · batch_size · seq_len (the achieved D).
        wall_time_s: seconds for the whole call, evaluations included.
        tokens_per_s: training tokens per second of training steps (evaluations excluded).
        factors: the paper's N, Na (non-embedding), D, G, S, E.
        counts: :func:`trainer.accounting.count_parameters` of the model.
        architecture: model shape (d_model, n_layers, n_heads, n_experts, top_k, n_shared,
            d_expert, seq_len, vocab_size, renormalize_gates).
        extra: device, dtype, dispatch, threads, torch version, initial validation loss.
    """

    loss: float
    curve: list[dict]
    steps: int
    tokens: int
    wall_time_s: float
    tokens_per_s: float
    factors: dict
    counts: dict
    architecture: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Schedule and optimiser
# ---------------------------------------------------------------------------------------------


def lr_at(step: int, steps: int, cfg: TrainConfig) -> float:
    """Warmup-stable-decay learning rate for 0-based ``step`` of ``steps``.

    Linear warmup over round(warmup_frac·steps) steps (reaching lr at the last warmup step),
    constant lr, then a linear decay over the last round(decay_frac·steps) steps that reaches
    min_lr_frac·lr at the final step.
    """
    warmup = round(cfg.warmup_frac * steps)
    decay = round(cfg.decay_frac * steps)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    decay_start = steps - decay
    if decay and step >= decay_start:
        progress = (step - decay_start + 1) / decay
        return cfg.lr * (1.0 - progress * (1.0 - cfg.min_lr_frac))
    return cfg.lr


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (ndim >= 2) only: not on norm gains."""
    matrices = [p for p in model.parameters() if p.ndim >= 2]
    vectors = [p for p in model.parameters() if p.ndim < 2]
    groups = [
        {"params": matrices, "weight_decay": cfg.weight_decay},
        {"params": vectors, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def train(
    run: RunConfig, *, device: str = "cpu", checkpoint_dir=None, dispatch: str = "auto"
) -> TrainResult:
    """Train the model of ``run`` and measure its validation loss.

    Args:
        run: the configuration.
        device: torch device string, e.g. "cpu" or "cuda".
        checkpoint_dir: if given, state is saved there at every evaluation and at the end, and a
            run with the same identity found there resumes from it.
        dispatch: expert dispatch, "auto" (grouped matmul when torch supports it, else a loop),
            "grouped" or "loop"; both give the same result up to float rounding.

    Returns:
        the :class:`TrainResult`.

    Raises:
        InputError: bad data files or a run too short for one step.
        TrainingDivergedError: the training loss became non-finite (names the step).
    """
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(run.train.threads)
    try:
        return _Trainer(run, device, checkpoint_dir, dispatch).run()
    finally:
        torch.set_num_threads(previous_threads)


class _Trainer:
    """One training run's state; :meth:`run` does the work."""

    def __init__(self, run: RunConfig, device: str, checkpoint_dir, dispatch: str) -> None:
        self.t0 = time.perf_counter()
        self.run_cfg, self.m, self.t = run, run.model, run.train
        self.device = torch.device(device)
        self.steps = self.t.tokens // (self.t.batch_size * self.m.seq_len)
        if self.steps < 1:
            raise InputError(
                f"TrainConfig.tokens={self.t.tokens} is less than one step of batch_size·seq_len="
                f"{self.t.batch_size * self.m.seq_len} tokens; raise tokens or lower batch_size."
            )
        self.data = ByteData(self.t.data, self.m.seq_len, self.t.val_fraction)
        self.val_x, self.val_y = self.data.val_windows(self.t.eval_tokens)
        self.checkpoint = Path(checkpoint_dir) / _CHECKPOINT if checkpoint_dir else None

        # Seeded initialisation and batch order.
        torch.manual_seed(self.t.seed)
        self.model = MoETransformer(self.m, dispatch).to(self.device)
        self.opt = _optimizer(self.model, self.t)
        self.gen = torch.Generator().manual_seed(self.t.seed)
        self.autocast = self.device.type == "cuda"
        self.step, self.curve, self.train_time = 0, [], 0.0
        self.losses = torch.zeros(self.steps, device=self.device)
        self.log_every = max(1, self.steps // _CURVE_POINTS)

    def run(self) -> TrainResult:
        resumed = self._resume()
        if self.t.eval_every and not resumed:
            self._evaluate()
        while self.step < self.steps:
            started = time.perf_counter()
            self._train_step()
            self.train_time += time.perf_counter() - started
            if self.step % self.log_every == 0 or self.step == self.steps:
                self._log_train()
            if self.t.eval_every and self.step % self.t.eval_every == 0:
                self._evaluate()
                self._save()
        if self._last_validation() is None:
            self._evaluate()
            self._save()
        return self._result()

    def _train_step(self) -> None:
        """One optimiser step on a fresh batch."""
        x_BT, y_BT = self.data.train_batch(self.t.batch_size, self.gen)
        x_BT, y_BT = x_BT.to(self.device), y_BT.to(self.device)
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.step, self.steps, self.t)

        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits_BTV, balance_L = self.model(x_BT)
        ce = F.cross_entropy(logits_BTV.float().flatten(0, 1), y_BT.flatten())
        loss = ce + self.t.aux_loss_coef * balance_L.sum()

        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.t.grad_clip)
        self.opt.step()
        self.losses[self.step] = ce.detach()
        self.step += 1

    def _log_train(self) -> None:
        """Average the cross-entropy since the last point; stop on a non-finite loss."""
        done = [p for p in self.curve if p["split"] == "train"]
        first = done[-1]["step"] if done else 0
        window = self.losses[first : self.step].cpu()
        bad = (~torch.isfinite(window)).nonzero()
        if len(bad):
            step = first + int(bad[0]) + 1
            raise TrainingDivergedError(
                f"training loss became {float(window[bad[0]])} at step {step} of {self.steps} "
                f"(lr {lr_at(step - 1, self.steps, self.t):.3g}); lower TrainConfig.lr "
                f"(now {self.t.lr}) or raise warmup_frac (now {self.t.warmup_frac})."
            )
        self._point("train", float(window.mean()))

    @torch.no_grad()
    def _evaluate(self) -> float:
        """Mean cross-entropy over the fixed validation windows, in nats per byte."""
        self.model.eval()
        total, count = 0.0, 0
        for i in range(0, len(self.val_x), self.t.batch_size):
            x_BT = self.val_x[i : i + self.t.batch_size].to(self.device)
            y_BT = self.val_y[i : i + self.t.batch_size].to(self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                logits_BTV, _ = self.model(x_BT)
            ce = F.cross_entropy(logits_BTV.float().flatten(0, 1), y_BT.flatten(), reduction="sum")
            total, count = total + float(ce), count + y_BT.numel()
        self.model.train()
        loss = total / count
        self._point("validation", loss)
        return loss

    def _point(self, split: str, loss: float) -> None:
        tokens = self.step * self.t.batch_size * self.m.seq_len
        self.curve.append({"split": split, "step": self.step, "tokens": tokens, "loss": loss})

    def _last_validation(self) -> dict | None:
        points = [p for p in self.curve if p["split"] == "validation" and p["step"] == self.steps]
        return points[-1] if points else None

    # -- checkpoints ---------------------------------------------------------------------------

    def _save(self) -> None:
        """Write model, optimiser, generator and curve atomically (when checkpointing)."""
        if self.checkpoint is None:
            return
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "identity": self.run_cfg.identity(),
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "generator": self.gen.get_state(),
            "curve": self.curve,
            "losses": self.losses.cpu(),
            "train_time": self.train_time,
        }
        tmp = self.checkpoint.with_suffix(f".tmp{os.getpid()}")
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint)

    def _resume(self) -> bool:
        """Load a checkpoint of this same run, if one exists; return whether one was loaded."""
        if self.checkpoint is None or not self.checkpoint.exists():
            return False
        state = torch.load(self.checkpoint, map_location=self.device, weights_only=False)
        if state["identity"] != self.run_cfg.identity():
            log.warning("ignoring %s: it belongs to a different run", self.checkpoint)
            return False
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.gen.set_state(state["generator"])
        self.step, self.curve = state["step"], state["curve"]
        self.losses = state["losses"].to(self.device)
        self.train_time = state["train_time"]
        log.info("resumed %s at step %d of %d", self.checkpoint, self.step, self.steps)
        return True

    # -- result --------------------------------------------------------------------------------

    def _result(self) -> TrainResult:
        counts = count_parameters(self.m)
        tokens = self.steps * self.t.batch_size * self.m.seq_len
        factors = {
            "N": counts["N"],
            "Na": counts["Na"],
            "D": tokens,
            "G": self.m.top_k,
            "S": self.m.shared_ratio,
            "E": self.m.n_experts,
        }
        validation = [p for p in self.curve if p["split"] == "validation"]
        dtype = torch.bfloat16 if self.autocast else torch.float32
        grouped = self.model.blocks[0].moe._use_grouped(self.device, dtype, self.m.d_model)
        extra = {
            "device": str(self.device),
            "dtype": str(dtype).removeprefix("torch."),
            "dispatch": "grouped" if grouped else "loop",
            "threads": self.t.threads,
            "torch": torch.__version__,
            "initial_loss": validation[0]["loss"] if self.t.eval_every else math.nan,
        }
        return TrainResult(
            loss=validation[-1]["loss"],
            curve=self.curve,
            steps=self.steps,
            tokens=tokens,
            wall_time_s=time.perf_counter() - self.t0,
            tokens_per_s=(self.step * self.t.batch_size * self.m.seq_len)
            / max(self.train_time, 1e-9),
            factors=factors,
            counts=counts,
            architecture=self.run_cfg.to_dict()["model"],
            extra=extra,
        )
