"""Exact parameter counts and training FLOPs of the model in ``trainer/model.py``.

Conventions (the paper's N and Na, Kaplan et al. 2020 style):

* **N**, non-embedding parameters: per layer the attention projections 4·D² (q, k, v, output;
  no biases), two RMSNorm gains 2·D, the router D·E, and E routed + n_shared shared SwiGLU experts
  of 3·D·F each; plus the final RMSNorm gain D. The token embedding (V·D) and the untied
  language-model head (D·V) are excluded.
* **Na**, activated non-embedding parameters per token: the same with only the G routed experts a
  token uses, i.e. N − L·(E − G)·3·D·F. The router, attention and norms count in full.
* ``*_with_embeddings`` add the embedding and the head, 2·V·D, to both.

The router's D·E weights count even when E = 1 (the model keeps that router; it is inert).
"""

from __future__ import annotations

from trainer.config import ModelConfig


def count_parameters(model: ModelConfig) -> dict[str, int]:
    """Parameter counts of a model configuration.

    Args:
        model: the configuration.

    Returns:
        dict with ``N``, ``Na`` (non-embedding total and activated per token),
        ``N_with_embeddings`` and ``Na_with_embeddings``.
    """
    D, L, F = model.d_model, model.n_layers, model.d_expert
    E, G, n_shared = model.n_experts, model.top_k, model.n_shared

    # 1. Parts every token uses: attention, norms, router.
    per_layer_dense = 4 * D * D + 2 * D + D * E
    expert = 3 * D * F

    # 2. Totals over layers plus the final norm.
    N = L * (per_layer_dense + (E + n_shared) * expert) + D
    Na = L * (per_layer_dense + (G + n_shared) * expert) + D

    # 3. Embedding and head (untied).
    embed = 2 * model.vocab_size * D
    return {"N": N, "Na": Na, "N_with_embeddings": N + embed, "Na_with_embeddings": Na + embed}


def flops_per_token(model: ModelConfig, *, include_head: bool = False) -> float:
    """Training FLOPs per token (forward + backward), Kaplan et al. 2020 convention.

    C = 6·Na + 6·L·T·D: 2 FLOPs per multiply-add, backward twice the forward, and attention
    scores plus the weighted sum of values (forward 4·T·D per layer per token, Chinchilla's count)
    halved for the causal mask. Embedding look-ups and the router's softmax are ignored.

    Args:
        model: the configuration.
        include_head: add the language-model head, 6·D·V.

    Returns:
        FLOPs per training token.
    """
    Na = count_parameters(model)["Na"]
    attention = 6 * model.n_layers * model.seq_len * model.d_model
    head = 6 * model.d_model * model.vocab_size if include_head else 0
    return float(6 * Na + attention + head)
