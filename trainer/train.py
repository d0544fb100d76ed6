"""Train one MoE language model for one :class:`~trainer.config.RunConfig`.

    .venv/bin/python -c "from trainer.config import RunConfig; from trainer.train import train; \\
        print(train(RunConfig.tiny(data=('../shared/corpus/austen.txt',))).loss)"

Recipe: AdamW (weight decay on matrices only), warmup-stable-decay (or cosine) learning rate,
global gradient norm clipping, loss = cross-entropy + aux_loss_coef · Σ_layers load-balance
(+ z_loss_coef · Σ_layers router z-loss when enabled). Steps = tokens // (batch_size · seq_len).
Losses are in nats per token (per byte for text). With ``precision="auto"`` the forward pass runs
under bf16 autocast on CUDA and in float32 elsewhere; on CPU a run is deterministic for a given seed
and thread count.

Every step checks the losses and the global gradient norm before the optimiser moves: the first
non-finite value stops training with an error naming the step and the tensor (which loss, or which
parameter's gradient). Per-layer routing statistics (tokens per expert, load entropy, max/mean
load) are recorded in the result, and a routing collapse is reported with a warning.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from results.errors import InputError
from trainer.accounting import count_parameters, flops_per_token
from trainer.config import RunConfig, TrainConfig
from trainer.data import ByteData
from trainer.model import MoETransformer

log = logging.getLogger(__name__)

_CURVE_POINTS = 100  # about this many averaged training-loss points per run
_CHECKPOINT = "checkpoint.pt"


class TrainingDivergedError(RuntimeError):
    """A training loss or gradient became NaN or infinite."""


class RoutingCollapseWarning(UserWarning):
    """One expert took most of a layer's tokens."""


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
        extra: device, dtype, dispatch, threads, torch version, initial validation loss, and
            scalars for the store: flops_per_token, train_flops, N/Na with embeddings,
            routing_collapse, routing_max_over_mean, routing_min_entropy.
        routing: per-layer routing statistics over all training steps and over the last tenth
            of them, see :func:`routing_statistics`.
        flops_per_token: training FLOPs per token, 6·Na + attention
            (:func:`trainer.accounting.flops_per_token`, head excluded).
        flops: total training FLOPs, flops_per_token · tokens.
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
    routing: dict = field(default_factory=dict)
    flops_per_token: float = 0.0
    flops: float = 0.0


# ---------------------------------------------------------------------------------------------
# Schedule and optimiser
# ---------------------------------------------------------------------------------------------


def lr_at(step: int, steps: int, cfg: TrainConfig) -> float:
    """Learning rate for 0-based ``step`` of ``steps``.

    Both schedules warm up linearly over round(warmup_frac·steps) steps (reaching lr at the last
    warmup step). Warmup-stable-decay then holds lr and decays linearly over the last
    round(decay_frac·steps) steps to min_lr_frac·lr at the final step. Cosine decays over every
    remaining step, lr_min + (lr - lr_min)·(1 + cos(π·p))/2 with p reaching 1 at the final step.
    """
    warmup = round(cfg.warmup_frac * steps)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    if cfg.schedule == "cosine":
        progress = (step - warmup + 1) / max(1, steps - warmup)
        lr_min = cfg.min_lr_frac * cfg.lr
        return lr_min + (cfg.lr - lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))
    decay = round(cfg.decay_frac * steps)
    decay_start = steps - decay
    if decay and step >= decay_start:
        progress = (step - decay_start + 1) / decay
        return cfg.lr * (1.0 - progress * (1.0 - cfg.min_lr_frac))
    return cfg.lr


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (ndim >= 2) only: not on norm gains."""
    matrices = [p for p in model.parameters() if p.ndim >= 2]
    vectors = [p for p in model.parameters() if p.ndim < 2]
    groups = [
        {"params": matrices, "weight_decay": cfg.weight_decay},
        {"params": vectors, "weight_decay": 0.0},
    ]
    try:
        # The fused kernel is several times faster than the per-tensor loop torch uses on CPU
        # by default, and gave bit-identical losses on CPU (tests/test_trainer_pinned.py).
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    except (RuntimeError, ValueError, TypeError) as err:
        log.info("fused AdamW unavailable (%s); using the foreach implementation", err)
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)


_optimizer = make_optimizer


def routing_statistics(counts_LE: torch.Tensor, top_k: int) -> list[dict]:
    """Load statistics of each layer from its token-expert assignment counts.

    Args:
        counts_LE: assignments per expert, one row per layer (each token counts once for each of
            the top_k experts it uses).
        top_k: K, experts per token.

    Returns:
        one dict per layer: ``tokens_per_expert`` (list), ``load_entropy`` (nats, of the
        assignment shares; log E when perfectly balanced), ``load_entropy_norm`` (divided by
        log E; 1 when balanced), ``max_over_mean`` (largest load over the mean load; 1 when
        balanced), ``max_token_share`` (fraction of tokens that use the busiest expert) and
        ``collapsed``: the busiest expert takes more than halfway from its fair share K/E to
        every token, i.e. max_token_share > (1 + K/E) / 2 (never when E = K).
    """
    stats = []
    counts_LE = counts_LE.detach().double().cpu()
    for counts_E in counts_LE:
        E, total = len(counts_E), float(counts_E.sum())
        share_E = counts_E / max(total, 1.0)
        entropy = float(-(share_E * share_E.clamp_min(1e-300).log()).sum())
        token_share = float(counts_E.max()) * top_k / max(total, 1.0)
        stats.append(
            {
                "tokens_per_expert": [int(c) for c in counts_E.tolist()],
                "load_entropy": entropy,
                "load_entropy_norm": entropy / math.log(E) if E > 1 else 1.0,
                "max_over_mean": float(counts_E.max()) / max(total / E, 1e-300),
                "max_token_share": token_share,
                "collapsed": bool(top_k < E and total > 0 and token_share > (1 + top_k / E) / 2),
            }
        )
    return stats


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


def torch_device(name: str) -> torch.device:
    """The torch device ``name`` ("cpu", "cuda", "cuda:1", "mps"), checked to be usable here.

    Raises:
        InputError: a name torch does not know, or a device this torch build or machine lacks
            (a CPU-only wheel asked for "cuda"), naming what is missing and the fix.
    """
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise InputError(
            f"device {name!r} is not a torch device ({err}); use 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "has no CUDA support" if torch.version.cuda is None else "sees no CUDA GPU"
            raise InputError(
                f"device {name!r}: this torch ({torch.__version__}) {build}; train with "
                "--device cpu, or install a CUDA build of torch on a machine with a GPU"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(
                f"device {name!r}: there are {torch.cuda.device_count()} CUDA device(s), "
                f"numbered from 0; pick one of cuda:0..cuda:{torch.cuda.device_count() - 1}"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {name!r}: MPS is not available here; train with --device cpu")
    return device


class CheckpointWarning(UserWarning):
    """A checkpoint could not be written; training went on without it."""


class _Trainer:
    """One training run's state; :meth:`run` does the work, :meth:`_train_step` one step."""

    def __init__(self, run: RunConfig, device: str, checkpoint_dir, dispatch: str) -> None:
        self.t0 = time.perf_counter()
        self.run_cfg, self.m, self.t = run, run.model, run.train
        self.device = torch_device(device)
        self.steps = self.t.tokens // (self.t.batch_size * self.m.seq_len)
        if self.steps < 1:
            raise InputError(
                f"TrainConfig.tokens={self.t.tokens} is less than one step of batch_size·seq_len="
                f"{self.t.batch_size * self.m.seq_len} tokens; raise tokens or lower batch_size."
            )
        self.data = ByteData(self.t.data, self.m.seq_len, self.t.val_fraction, self.m.vocab_size)
        self.val_x, self.val_y = self.data.val_windows(self.t.eval_tokens)
        self.checkpoint = Path(checkpoint_dir) / _CHECKPOINT if checkpoint_dir else None

        # Seeded initialisation and batch order.
        torch.manual_seed(self.t.seed)
        self.model = MoETransformer(self.m, dispatch).to(self.device)
        self.opt = make_optimizer(self.model, self.t)
        self.gen = torch.Generator().manual_seed(self.t.seed)
        self._configure_model()
        self.step, self.curve, self.train_time = 0, [], 0.0
        self.losses = torch.zeros(self.steps, device=self.device)
        self.log_every = max(1, self.steps // _CURVE_POINTS)

        # Routing counts over all steps and over the last tenth of them (collapse shows late).
        shape = (self.m.n_layers, self.m.n_experts)
        self.counts_LE = torch.zeros(shape, dtype=torch.int64, device=self.device)
        self.late_counts_LE = torch.zeros_like(self.counts_LE)
        self.late_start = self.steps - max(1, self.steps // 10)

    def _configure_model(self) -> None:
        """Precision, opt-in routing features and compilation."""
        cuda = self.device.type == "cuda"
        self.autocast = self.t.precision == "bf16" or (self.t.precision == "auto" and cuda)
        for moe in self.model.moe_layers:
            moe.want_z_loss = self.t.z_loss_coef > 0
            moe.use_bias = self.t.bias_update_rate > 0
        self.forward = self.model
        if self.t.compile:
            self.forward = torch.compile(self.model)

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
        """One optimiser step on a fresh batch; halts before the update on a non-finite value."""
        x_BT, y_BT = self.data.train_batch(self.t.batch_size, self.gen)
        x_BT, y_BT = x_BT.to(self.device), y_BT.to(self.device)
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.step, self.steps, self.t)

        # 1. Forward: cross-entropy plus the auxiliary losses.
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits_BTV, balance_L = self.forward(x_BT)
        ce = F.cross_entropy(logits_BTV.float().flatten(0, 1), y_BT.flatten())
        loss = ce + self.t.aux_loss_coef * balance_L.sum()
        parts = {"cross-entropy loss": ce, "load-balance loss": balance_L.sum()}
        if self.t.z_loss_coef > 0:
            z = torch.stack([moe.z_loss for moe in self.model.moe_layers]).sum()
            loss = loss + self.t.z_loss_coef * z
            parts["router z-loss"] = z

        # 2. Backward, clip, check, update.
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        params = list(self.model.parameters())
        norm = _total_norm(params)
        self._check_finite(parts, norm)
        if self.t.grad_clip > 0:
            _clip(params, self.t.grad_clip, norm)
        self.opt.step()

        # 3. Routing bookkeeping and bias balancing.
        counts_LE = torch.stack([moe.counts_E for moe in self.model.moe_layers])
        self.counts_LE += counts_LE
        if self.step >= self.late_start:
            self.late_counts_LE += counts_LE
        if self.t.bias_update_rate > 0:
            self._update_bias(counts_LE)
        self.losses[self.step] = ce.detach()
        self.step += 1

    def _check_finite(self, parts: dict, norm: torch.Tensor) -> None:
        """Raise TrainingDivergedError naming the first non-finite loss or gradient."""
        parts = {name: value.detach() for name, value in parts.items()}
        values = torch.stack([v.float() for v in parts.values()] + [norm.float()])
        if bool(torch.isfinite(values).all()):
            return
        step = self.step + 1
        where = f"at step {step} of {self.steps} (lr {lr_at(self.step, self.steps, self.t):.3g})"
        fix = (
            f"lower TrainConfig.lr (now {self.t.lr}) or raise warmup_frac "
            f"(now {self.t.warmup_frac})"
        )
        for name, value in parts.items():
            if not math.isfinite(float(value)):
                raise TrainingDivergedError(
                    f"training stopped: the {name} became {float(value)} {where}; {fix}."
                )
        for name, p in self.model.named_parameters():
            if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                bad = int((~torch.isfinite(p.grad)).sum())
                raise TrainingDivergedError(
                    f"training stopped: the gradient of {name} has {bad} non-finite of "
                    f"{p.grad.numel()} entries {where} while every loss was finite; {fix}, "
                    f"and check that parameter's layer."
                )
        raise TrainingDivergedError(f"training stopped: the gradient norm became {norm} {where}.")

    @torch.no_grad()
    def _update_bias(self, counts_LE: torch.Tensor) -> None:
        """DeepSeek-V3 balancing: raise the bias of under-loaded experts, lower over-loaded."""
        load_LE = counts_LE.float()
        error_LE = load_LE.mean(dim=1, keepdim=True) - load_LE
        for moe, error_E in zip(self.model.moe_layers, error_LE, strict=True):
            moe.expert_bias_E += self.t.bias_update_rate * error_E.sign()

    def _log_train(self) -> None:
        """Average the cross-entropy since the last point."""
        done = [p for p in self.curve if p["split"] == "train"]
        first = done[-1]["step"] if done else 0
        window = self.losses[first : self.step].cpu()
        self._point("train", float(window.mean()))

    @torch.no_grad()
    def _evaluate(self) -> float:
        """Mean cross-entropy over the fixed validation windows, in nats per token."""
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
        state = {
            "identity": self.run_cfg.identity(),
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "generator": self.gen.get_state(),
            "curve": self.curve,
            "losses": self.losses.cpu(),
            "train_time": self.train_time,
            "counts": self.counts_LE.cpu(),
            "late_counts": self.late_counts_LE.cpu(),
        }
        tmp = self.checkpoint.with_suffix(f".tmp{os.getpid()}")
        # Another sweep training the same run into the same store removes the folder when its
        # copy finishes; a checkpoint only saves time, so a failed write is retried once and
        # then skipped with a warning, never the end of the run.
        for attempt in (1, 2):
            try:
                self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
                torch.save(state, tmp)
                os.replace(tmp, self.checkpoint)
                return
            except (OSError, RuntimeError) as err:
                if tmp.parent.is_dir():
                    tmp.unlink(missing_ok=True)
                if attempt == 2:
                    message = f"checkpoint at step {self.step} not written ({err}); the run "
                    message += "goes on, and can only resume from an earlier checkpoint"
                    warnings.warn(message, CheckpointWarning, stacklevel=2)

    def _resume(self) -> bool:
        """Load a checkpoint of this same run, if one exists; return whether one was loaded."""
        if self.checkpoint is None or not self.checkpoint.exists():
            return False
        state = torch.load(self.checkpoint, map_location=self.device, weights_only=True)
        if state["identity"] != self.run_cfg.identity():
            log.warning("ignoring %s: it belongs to a different run", self.checkpoint)
            return False
        self._load_model_state(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.gen.set_state(state["generator"].cpu())
        self.step, self.curve = state["step"], state["curve"]
        self.losses = state["losses"].to(self.device)
        self.train_time = state["train_time"]
        if "counts" in state:
            self.counts_LE = state["counts"].to(self.device)
            self.late_counts_LE = state["late_counts"].to(self.device)
        log.info("resumed %s at step %d of %d", self.checkpoint, self.step, self.steps)
        return True

    def _load_model_state(self, model_state: dict) -> None:
        """Load weights; checkpoints written before bias balancing existed lack only its buffer."""
        missing, unexpected = self.model.load_state_dict(model_state, strict=False)
        missing = [k for k in missing if not k.endswith("expert_bias_E")]
        if missing or unexpected:
            raise InputError(
                f"checkpoint {self.checkpoint} does not fit this model (missing {missing}, "
                f"unexpected {unexpected}); delete it to train from the start."
            )

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
        per_token = flops_per_token(self.m)
        routing = self._routing()
        extra = {
            **self._environment(),
            "initial_loss": validation[0]["loss"] if self.t.eval_every else math.nan,
            "flops_per_token": per_token,
            "train_flops": per_token * tokens,
            "N_with_embeddings": counts["N_with_embeddings"],
            "Na_with_embeddings": counts["Na_with_embeddings"],
            "routing_collapse": any(s["collapsed"] for s in routing["late"]),
            "routing_max_over_mean": max(s["max_over_mean"] for s in routing["late"]),
            "routing_min_entropy": min(s["load_entropy_norm"] for s in routing["late"]),
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
            routing=routing,
            flops_per_token=per_token,
            flops=per_token * tokens,
        )

    def _environment(self) -> dict:
        dtype = torch.bfloat16 if self.autocast else torch.float32
        grouped = self.model.moe_layers[0]._use_grouped(self.device, dtype, self.m.d_model)
        return {
            "device": str(self.device),
            "dtype": str(dtype).removeprefix("torch."),
            "dispatch": "grouped" if grouped else "loop",
            "threads": self.t.threads,
            "torch": torch.__version__,
            "compile": self.t.compile,
        }

    def _routing(self) -> dict:
        """Routing statistics over the run and its last tenth; warn about a collapse."""
        routing = {
            "all": routing_statistics(self.counts_LE, self.m.top_k),
            "late": routing_statistics(self.late_counts_LE, self.m.top_k),
        }
        for layer, stats in enumerate(routing["late"]):
            if stats["collapsed"]:
                message = (
                    f"routing collapsed in layer {layer}: one expert took "
                    f"{stats['max_token_share']:.0%} of the tokens over the last tenth of "
                    f"training (fair share {self.m.top_k / self.m.n_experts:.0%}); raise "
                    f"TrainConfig.aux_loss_coef (now {self.t.aux_loss_coef}) or enable "
                    f"bias_update_rate"
                )
                log.warning(message)
                warnings.warn(message, RoutingCollapseWarning, stacklevel=3)
        return routing


def _total_norm(params) -> torch.Tensor:
    """Global 2-norm of the gradients, measured before clipping (which would spread a NaN)."""
    grads = [p.grad for p in params if p.grad is not None]
    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6
        return torch.nn.utils.get_total_norm(grads, 2.0)
    norms = torch.stack([torch.linalg.vector_norm(g) for g in grads])
    return torch.linalg.vector_norm(norms)


def _clip(params, max_norm: float, norm: torch.Tensor) -> None:
    """Scale gradients by min(1, max_norm / (norm + 1e-6)), as clip_grad_norm_ does."""
    if hasattr(torch.nn.utils, "clip_grads_with_norm_"):  # torch >= 2.6
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
        return
    coef = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    for p in params:
        if p.grad is not None:
            p.grad.mul_(coef)


# Public name for benchmarks that time the trainer's own step.
Trainer = _Trainer
