"""Decoder-only Mixture-of-Experts language model.

Shape legend (suffixes on tensor names):
    B batch, T tokens in a window (seq_len), D model width, H heads, Dh head width,
    E routed experts, K experts per token (the paper's G), F expert hidden width,
    N flattened tokens (B·T), M token-expert slots (N·K), V vocabulary, L layers.

Block: x + Attention(RMSNorm(x)), then x + MoE(RMSNorm(x)). Attention is causal with rotary
positions. The MoE layer routes every token to its K most probable experts among E SwiGLU experts,
adds n_shared always-on SwiGLU experts (fused into one SwiGLU of width n_shared·F), and reports a
Switch-style load-balancing loss.

Gates: the K selected softmax probabilities, used as they are by default, or renormalised to sum
to one with ``ModelConfig.renormalize_gates`` (see that field for why the default is raw).

Dispatch is dropless: the N·K token-expert slots are sorted by expert (stable, so the order is
deterministic), every expert runs on its contiguous segment (one grouped matmul per projection,
or a loop over experts), and the gated outputs are added back into their tokens. No padding
slot exists, so nothing uninitialised can reach a result. An optional mask marks right padding,
which the balance loss, the z-loss and the routing counts leave out.
"""

from __future__ import annotations

import functools
import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from trainer.config import ModelConfig

log = logging.getLogger(__name__)

_INIT_STD = 0.02


# ---------------------------------------------------------------------------------------------
# Grouped matmul: feature detection
# ---------------------------------------------------------------------------------------------


def _grouped_mm_function():
    """torch's grouped matmul (public name first), or None on versions without one."""
    fn = getattr(F, "grouped_mm", None) or getattr(torch, "_grouped_mm", None)
    return fn


@functools.cache
def grouped_mm_supported(device_type: str, dtype: torch.dtype) -> bool:
    """Whether grouped matmul runs forward and backward on this device type and dtype.

    Probed once with a tiny problem (two groups, one empty), because support differs across torch
    versions and devices (e.g. CUDA wants bf16; CPU accepts fp32 since 2.13).
    """
    fn = _grouped_mm_function()
    if fn is None:
        return False
    try:
        with torch.enable_grad(), torch.autocast(device_type, enabled=False):
            a = torch.randn(6, 8, device=device_type, dtype=dtype, requires_grad=True)
            b = torch.randn(2, 8, 8, device=device_type, dtype=dtype, requires_grad=True)
            offs = torch.tensor([0, 6], device=device_type, dtype=torch.int32)
            out = _ContiguousGrad.apply(fn(a, b, offs=offs))
            out.sum().backward()
            ok = bool(torch.isfinite(b.grad).all())
    except (RuntimeError, NotImplementedError, TypeError) as err:
        log.info(
            "grouped matmul unavailable on %s/%s (%s); using a per-expert loop",
            device_type,
            dtype,
            err,
        )
        return False
    return ok


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous.

    Grouped matmul's backward rejects gradients with zero strides (e.g. from ``out.sum()``).
    """

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned gain (no bias).

    Args:
        d: width D.
        eps: added to the mean square.
    """

    def __init__(self, d: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x_BTD: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x_BTD, (x_BTD.shape[-1],), self.weight, self.eps)


class SwiGLU(nn.Module):
    """Dense SwiGLU feed-forward: W2 (silu(W1 x) * (W3 x)), W1 and W3 fused into one matrix.

    Args:
        d_model: D.
        d_hidden: hidden width.
    """

    def __init__(self, d_model: int, d_hidden: int) -> None:
        super().__init__()
        self.w13 = nn.Linear(d_model, 2 * d_hidden, bias=False)
        self.w2 = nn.Linear(d_hidden, d_model, bias=False)

    def forward(self, x_ND: torch.Tensor) -> torch.Tensor:
        gate, up = self.w13(x_ND).chunk(2, dim=-1)
        return self.w2(F.silu(gate) * up)


def _rotary_tables(seq_len: int, head_dim: int, base: float = 10000.0):
    """cos and sin tables, each (T, Dh/2), for rotary positions."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles_TH = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return angles_TH.cos(), angles_TH.sin()


def _rotate(x_BHTD: torch.Tensor, cos_TH: torch.Tensor, sin_TH: torch.Tensor) -> torch.Tensor:
    """Apply rotary positions to queries or keys (halves convention)."""
    x1, x2 = x_BHTD.chunk(2, dim=-1)
    cos, sin = cos_TH.to(x_BHTD.dtype), sin_TH.to(x_BHTD.dtype)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class Attention(nn.Module):
    """Causal multi-head self-attention with rotary positions (q, k, v fused; no biases).

    Args:
        cfg: model configuration.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.wqkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.wo = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        cos, sin = _rotary_tables(cfg.seq_len, cfg.head_dim)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x_BTD: torch.Tensor) -> torch.Tensor:
        B, T, D = x_BTD.shape
        qkv = self.wqkv(x_BTD).view(B, T, 3, self.n_heads, D // self.n_heads)
        q_BHTD, k_BHTD, v_BHTD = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        q_BHTD = _rotate(q_BHTD, self.cos[:T], self.sin[:T])
        k_BHTD = _rotate(k_BHTD, self.cos[:T], self.sin[:T])
        y_BHTD = F.scaled_dot_product_attention(q_BHTD, k_BHTD, v_BHTD, is_causal=True)
        return self.wo(y_BHTD.transpose(1, 2).reshape(B, T, D))


# ---------------------------------------------------------------------------------------------
# Mixture of experts
# ---------------------------------------------------------------------------------------------


class MoE(nn.Module):
    """Routed SwiGLU experts (top-K of E) plus always-on shared experts.

    After each forward pass the layer keeps, detached, what the trainer records: ``counts_E``
    (token-expert assignments of the real tokens per expert) and, when enabled, ``z_loss`` (the
    router z-loss of Zoph et al. 2022, mean squared log-sum-exp of the router logits).

    Args:
        cfg: model configuration (n_experts E, top_k K, n_shared, d_expert F).
        dispatch: "auto" (grouped matmul when supported, else loop), "grouped" or "loop".
    """

    def __init__(self, cfg: ModelConfig, dispatch: str = "auto") -> None:
        super().__init__()
        if dispatch not in ("auto", "grouped", "loop"):
            raise ValueError(f"dispatch must be 'auto', 'grouped' or 'loop'; got {dispatch!r}")
        self.E, self.K, self.F = cfg.n_experts, cfg.top_k, cfg.d_expert
        self.renormalize = cfg.renormalize_gates
        self.dispatch = dispatch
        D = cfg.d_model
        self.router = nn.Linear(D, self.E, bias=False)
        self.w13_EDF = nn.Parameter(torch.empty(self.E, D, 2 * self.F))  # F = 2·F here: gate|up
        self.w2_EFD = nn.Parameter(torch.empty(self.E, self.F, D))
        self.shared = SwiGLU(D, cfg.n_shared * self.F) if cfg.n_shared else None

        # Auxiliary-loss-free balancing (DeepSeek-V3): a per-expert bias added to the scores
        # only when choosing experts, nudged by the trainer; off unless enabled.
        self.register_buffer("expert_bias_E", torch.zeros(self.E))
        self.use_bias = False
        self.want_z_loss = False
        self.counts_E: torch.Tensor | None = None
        self.z_loss: torch.Tensor | None = None

    def forward(
        self, x_BTD: torch.Tensor, mask_BT: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Route, run experts, combine.

        Args:
            x_BTD: normalised hidden states.
            mask_BT: True for real tokens, False for padding; None means all are real. Padding
                is routed and computed like any token but left out of the balance loss, the
                z-loss and the routing counts.

        Returns:
            (y_BTD, balance) where balance is the scalar load-balancing loss E·Σ_e f_e·P_e.
        """
        B, T, D = x_BTD.shape
        x_ND = x_BTD.reshape(B * T, D)
        mask_N = None if mask_BT is None else mask_BT.reshape(B * T).bool()
        gates_NK, experts_NK, balance = self._route(x_ND, mask_N)
        y_ND = self._experts(x_ND, gates_NK, experts_NK)
        if self.shared is not None:
            y_ND = y_ND + self.shared(x_ND)
        return y_ND.view(B, T, D), balance

    def _route(self, x_ND: torch.Tensor, mask_N: torch.Tensor | None = None):
        """Top-K routing in float32 with a deterministic tie-break (lower expert index first)."""
        logits_NE = F.linear(x_ND.float(), self.router.weight.float())
        probs_NE = logits_NE.softmax(dim=-1)
        scores_NE = probs_NE + self.expert_bias_E if self.use_bias else probs_NE

        # A stable descending sort keeps equal scores in expert order.
        order_NE = torch.sort(scores_NE, dim=-1, descending=True, stable=True).indices
        experts_NK = order_NE[:, : self.K]
        gates_NK = probs_NE.gather(1, experts_NK)
        if self.renormalize:
            gates_NK = gates_NK / gates_NK.sum(dim=-1, keepdim=True)

        balance, counts_E = self._balance(probs_NE, experts_NK, mask_N)
        self.counts_E = counts_E.detach()
        if self.want_z_loss:
            self.z_loss = _masked_mean(torch.logsumexp(logits_NE, dim=-1).square(), mask_N)
        return gates_NK, experts_NK, balance

    def _balance(self, probs_NE, experts_NK, mask_N):
        """Switch load balance over real tokens: f_e = share of assignments, P_e = mean prob."""
        if mask_N is None:
            counts_E = torch.bincount(experts_NK.reshape(-1), minlength=self.E)
            f_E = counts_E.float() / experts_NK.numel()
            return self.E * (f_E * probs_NE.mean(dim=0)).sum(), counts_E

        n_real = int(mask_N.sum())
        if n_real == 0:
            raise ValueError(
                "the balance loss needs at least one real token, but mask_BT marks every token "
                "as padding; drop empty batches before the forward pass"
            )
        counts_E = torch.bincount(experts_NK[mask_N].reshape(-1), minlength=self.E)
        f_E = counts_E.float() / (n_real * self.K)
        P_E = (probs_NE * mask_N.unsqueeze(-1)).sum(dim=0) / n_real
        return self.E * (f_E * P_E).sum(), counts_E

    def _experts(self, x_ND, gates_NK, experts_NK) -> torch.Tensor:
        """Sort token-expert slots by expert, run each expert on its segment, combine by gates."""
        N, D = x_ND.shape
        experts_M = experts_NK.reshape(-1)
        order_M = torch.argsort(experts_M, stable=True)
        token_M = order_M // self.K
        counts_E = torch.bincount(experts_M, minlength=self.E)

        dtype = _compute_dtype(x_ND)
        xs_MD = x_ND.index_select(0, token_M).to(dtype)
        ys_MD = self._run_experts(xs_MD, counts_E, dtype).to(x_ND.dtype)
        gates_M = gates_NK.reshape(-1)[order_M].to(x_ND.dtype)
        return self._combine(ys_MD * gates_M.unsqueeze(-1), token_M, order_M, N)

    def _run_experts(self, xs_MD, counts_E, dtype) -> torch.Tensor:
        """Every expert on its contiguous segment of the expert-sorted slots."""
        w13, w2 = self.w13_EDF.to(dtype), self.w2_EFD.to(dtype)
        if self._use_grouped(xs_MD.device, dtype, xs_MD.shape[1]):
            return self._grouped(xs_MD, w13, w2, counts_E)
        return self._loop(xs_MD, w13, w2, counts_E)

    def _combine(self, weighted_MD, token_M, order_M, N) -> torch.Tensor:
        """Sum each token's K gated outputs back into token order.

        CPU adds the slots into their tokens (index_add_, sequential there); other devices undo
        the sort with a gather and sum over K, because their index_add_ uses atomics and is not
        run-to-run deterministic.
        """
        D = weighted_MD.shape[1]
        if weighted_MD.device.type == "cpu":
            y_ND = weighted_MD.new_zeros(N, D)
            return y_ND.index_add(0, token_M, weighted_MD)
        unsort_M = torch.empty_like(order_M)
        unsort_M[order_M] = torch.arange(order_M.numel(), device=order_M.device)
        return weighted_MD[unsort_M].view(N, self.K, D).sum(dim=1)

    def _use_grouped(self, device: torch.device, dtype: torch.dtype, D: int) -> bool:
        if self.dispatch == "loop":
            return False
        if _compiling() and dtype != torch.bfloat16:
            return False  # torch.compile traces grouped_mm for bf16 only (torch 2.13)
        aligned = (D * dtype.itemsize) % 16 == 0 and (self.F * dtype.itemsize) % 16 == 0
        ok = aligned and grouped_mm_supported(device.type, dtype)
        if self.dispatch == "grouped" and not ok:
            raise RuntimeError(
                f"grouped dispatch unavailable for {device.type}/{dtype} with D={D}, F={self.F} "
                f"(needs torch grouped_mm support and widths whose rows are multiples of 16 bytes)"
            )
        return ok

    def _grouped(self, xs_MD, w13_EDF, w2_EFD, counts_E) -> torch.Tensor:
        """All experts in two grouped matmuls over the expert-sorted slots."""
        fn = _grouped_mm_function()
        offs_E = torch.cumsum(counts_E, 0).to(torch.int32)
        h_MF = _ContiguousGrad.apply(fn(xs_MD, w13_EDF, offs=offs_E))
        gate_MF, up_MF = h_MF.chunk(2, dim=-1)
        hidden_MF = (F.silu(gate_MF) * up_MF).contiguous()
        return _ContiguousGrad.apply(fn(hidden_MF, w2_EFD, offs=offs_E))

    def _loop(self, xs_MD, w13_EDF, w2_EFD, counts_E) -> torch.Tensor:
        """One expert at a time over its contiguous segment of sorted slots."""
        outs = []
        start = 0
        for e, count in enumerate(counts_E.tolist()):
            if count:
                gate, up = (xs_MD[start : start + count] @ w13_EDF[e]).chunk(2, dim=-1)
                outs.append((F.silu(gate) * up) @ w2_EFD[e])
            start += count
        return torch.cat(outs, dim=0)


def _masked_mean(v_N: torch.Tensor, mask_N: torch.Tensor | None) -> torch.Tensor:
    """Mean of v over the real tokens (all tokens when mask_N is None)."""
    if mask_N is None:
        return v_N.mean()
    return (v_N * mask_N).sum() / mask_N.sum()


def _compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler and hasattr(compiler, "is_compiling") and compiler.is_compiling())


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The autocast dtype when autocast is on for x's device, else x's own dtype."""
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return x.dtype


# ---------------------------------------------------------------------------------------------
# The language model
# ---------------------------------------------------------------------------------------------


class Block(nn.Module):
    """Pre-norm transformer block: attention then MoE, each with a residual connection."""

    def __init__(self, cfg: ModelConfig, dispatch: str = "auto") -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.d_model)
        self.moe = MoE(cfg, dispatch)

    def forward(self, x_BTD: torch.Tensor, mask_BT=None) -> tuple[torch.Tensor, torch.Tensor]:
        x_BTD = x_BTD + self.attn(self.attn_norm(x_BTD))
        y_BTD, balance = self.moe(self.ffn_norm(x_BTD), mask_BT)
        return x_BTD + y_BTD, balance


class MoETransformer(nn.Module):
    """Token embedding, L blocks, final RMSNorm, untied language-model head.

    Args:
        cfg: model configuration.
        dispatch: expert dispatch, see :class:`MoE`.
    """

    def __init__(self, cfg: ModelConfig, dispatch: str = "auto") -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, dispatch) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Normal(0, 0.02) weights; projections into the residual stream scaled by 1/sqrt(2L)."""
        out_std = _INIT_STD / math.sqrt(2 * self.cfg.n_layers)
        for name, p in self.named_parameters():
            if p.ndim == 1:
                nn.init.ones_(p)
            elif name.endswith(("wo.weight", "w2_EFD", "w2.weight")):
                nn.init.normal_(p, std=out_std)
            else:
                nn.init.normal_(p, std=_INIT_STD)

    def forward(self, idx_BT: torch.Tensor, mask_BT=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Next-token logits and per-layer load-balancing losses.

        Args:
            idx_BT: int64 tokens.
            mask_BT: True for real tokens, False for right padding; None when all are real.

        Returns:
            (logits_BTV, balance_L).
        """
        x_BTD = self.embed(idx_BT)
        balances = []
        for block in self.blocks:
            x_BTD, balance = block(x_BTD, mask_BT)
            balances.append(balance)
        return self.head(self.norm(x_BTD)), torch.stack(balances)

    @property
    def moe_layers(self) -> list[MoE]:
        """The MoE layer of every block, first to last."""
        return [block.moe for block in self.blocks]

    def non_embedding_parameters(self) -> int:
        """Parameters outside the token embedding and the head (the paper's N)."""
        skip = {id(self.embed.weight), id(self.head.weight)}
        return sum(p.numel() for p in self.parameters() if id(p) not in skip)
