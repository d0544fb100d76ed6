"""Turn the paper's factors (N, Na, G, S) into a concrete MoE architecture.

Given the widths fixed by the caller (d_model D, n_layers L, heads, seq_len), the factors fix:

* n_shared from S = n_shared / (n_shared + G), i.e. n_shared = round(S·G / (1 − S));
* the expert width F and the routed-expert count E from N and Na, via the counts of
  ``trainer/accounting.py``: with A = L·(4D² + 2D) + D (attention and norms),

      N  = A + L·D·E + (E + n_shared)·3·L·D·F
      Na = A + L·D·E + (G + n_shared)·3·L·D·F

A small exhaustive search over integer E (and the integers around the F each equation implies)
measures each (E, F) by the larger relative error of the achieved N and Na. Because the router's
L·D·E grows with E, two branches fit (few wide experts, or very many narrow ones); the
solver keeps to the wide-expert branch unless E is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from results.errors import InputError
from trainer.accounting import count_parameters
from trainer.config import ModelConfig

_E_LIMIT = 4096  # largest routed-expert count searched


@dataclass(frozen=True)
class Solution:
    """An architecture that realises the requested factors.

    Attributes:
        model: the model configuration.
        target: the requested factors (N, Na, G, S, and E when fixed).
        achieved: the factors the model has: N, Na (non-embedding), G, S, E.
        rel_error: max(|N/N_target − 1|, |Na/Na_target − 1|).
    """

    model: ModelConfig
    target: dict
    achieved: dict
    rel_error: float


def solve_architecture(
    N: float,
    Na: float,
    G: int,
    S: float,
    *,
    d_model: int,
    n_layers: int,
    n_heads: int,
    seq_len: int,
    vocab_size: int = 256,
    E: int | None = None,
    rel_tol: float = 0.1,
    s_tol: float = 0.05,
    renormalize_gates: bool = False,
) -> Solution:
    """Choose E, F and n_shared so the model has about N and Na non-embedding parameters.

    Args:
        N: target non-embedding parameters.
        Na: target activated non-embedding parameters per token (Na <= N).
        G: routed experts per token (top-k), >= 1.
        S: shared-expert ratio in [0, 1).
        d_model, n_layers, n_heads, seq_len, vocab_size: fixed shape of the transformer.
        E: fix the routed-expert count instead of searching for it.
        rel_tol: refuse when the best achieved N or Na is further than this from its target.
        s_tol: refuse when the nearest achievable S (for this G) is further than this from S.
        renormalize_gates: passed through to :class:`ModelConfig`.

    Returns:
        the :class:`Solution`.

    Raises:
        InputError: for impossible targets, naming the value and what would work.
    """
    G = _check_factors(N, Na, G, S, E)
    n_shared = _shared_experts(G, S, s_tol)
    shape = dict(d_model=d_model, n_layers=n_layers, n_heads=n_heads, seq_len=seq_len)
    shape.update(vocab_size=vocab_size, renormalize_gates=renormalize_gates)
    ModelConfig(n_experts=max(G, E or G), top_k=G, d_expert=1, n_shared=n_shared, **shape)
    _check_attention_fits(Na, G, n_shared, d_model, n_layers, E)

    # 1. The equations are quadratic in F (see _widest_branch): few wide experts or very many
    #    narrow ones can both fit. Keep the wide branch unless E is given.
    width_min = 1 if E is not None else _widest_branch(Na, G, n_shared, d_model, n_layers)

    # 2. Best integer F for each E (or for the given E); the smallest error wins.
    best = None
    for n_experts in [E] if E is not None else range(G, _E_LIMIT + 1):
        widths = _width_candidates(N, Na, G, n_experts, n_shared, d_model, n_layers)
        if max(widths) < width_min:
            break  # both equations' F only shrink as E grows
        for width in widths:
            if width < width_min:
                continue
            model = ModelConfig(
                n_experts=n_experts, top_k=G, d_expert=width, n_shared=n_shared, **shape
            )
            counts = count_parameters(model)
            err = max(abs(counts["N"] / N - 1), abs(counts["Na"] / Na - 1))
            if best is None or err < best[0]:
                best = (err, model, counts)
    return _accept(best, N, Na, G, S, E, rel_tol)


def _check_factors(N, Na, G, S, E) -> int:
    """Refuse targets that no architecture can meet; return G as an int."""
    if isinstance(G, bool) or not isinstance(G, int | float) or not float(G).is_integer() or G < 1:
        raise InputError(
            f"G (experts per token) must be an integer >= 1; got {G!r}. Use G=1 or more."
        )
    G = int(G)
    if not (math.isfinite(S) and 0 <= S < 1):
        raise InputError(
            f"S (shared ratio) must lie in [0, 1); got {S!r}. S=0 means no shared experts; "
            f"S=0.5 with G={G} means {G} shared experts."
        )
    if not (math.isfinite(N) and math.isfinite(Na) and N > 0 and Na > 0):
        raise InputError(f"N and Na must be positive and finite; got N={N!r}, Na={Na!r}.")
    if Na > N:
        raise InputError(
            f"Na={Na:g} exceeds N={N:g}; activated parameters cannot exceed the total. "
            f"Use Na <= N (Na = N is a model whose experts are all active)."
        )
    if E is not None and G > E:
        raise InputError(
            f"G={G} exceeds E={E}; a token cannot use more routed experts than exist. "
            f"Use E >= {G} or G <= {E}."
        )
    return G


def _shared_experts(G: int, S: float, s_tol: float) -> int:
    """n_shared = round(S·G / (1 − S)); refuse when the achieved S misses the target."""
    n_shared = round(S * G / (1 - S))
    achieved = n_shared / (n_shared + G)
    if abs(achieved - S) > s_tol:
        options = sorted(
            {round(k / (k + G), 4) for k in range(0, 4 * G + 4)}, key=lambda s: abs(s - S)
        )
        raise InputError(
            f"S={S:g} is not reachable with G={G}: S = n_shared/(n_shared+G) takes only the values "
            f"{sorted(options[:4])} near it (nearest {achieved:.4g} is further than {s_tol}). "
            f"Use one of those, or a G for which S·G/(1−S) is close to a whole number."
        )
    return n_shared


def _check_attention_fits(Na, G, n_shared, d_model, n_layers, E) -> None:
    """Refuse Na below attention + norms + router + experts of width 1."""
    n_experts = E if E is not None else G
    floor = n_layers * (4 * d_model**2 + 2 * d_model + d_model * n_experts) + d_model
    floor += n_layers * (G + n_shared) * 3 * d_model
    if Na < floor:
        fits = [
            d
            for d in range(2, d_model)
            if n_layers * (4 * d * d + 2 * d + d * n_experts + (G + n_shared) * 3 * d) + d <= Na
        ]
        hint = f"d_model <= {fits[-1]}" if fits else "fewer layers"
        raise InputError(
            f"Na={Na:g} is too small for d_model={d_model}, n_layers={n_layers}: attention, norms, "
            f"router and {G + n_shared} experts of width 1 already need {floor}. "
            f"Raise Na to at least {floor} or use {hint}."
        )


def _widest_branch(Na, G, n_shared, d_model, n_layers) -> int:
    """Smallest F on the wide-expert branch of the (E, F) solutions.

    With c = 3·L·D, R = L·D and E = G + (N − Na)/(c·F) from the difference of the two counts, the
    Na equation becomes (G + n_shared)·c·F² − (Na − A − R·G)·F + R·(N − Na)/c = 0. Its two roots
    sit either side of the vertex F = (Na − A − R·G) / (2·(G + n_shared)·c); the wide branch is
    the root above it.
    """
    A = n_layers * (4 * d_model**2 + 2 * d_model) + d_model
    c, R = 3 * n_layers * d_model, n_layers * d_model
    vertex = (Na - A - R * G) / (2 * (G + n_shared) * c)
    return max(1, math.floor(vertex))


def _width_candidates(N, Na, G, n_experts, n_shared, d_model, n_layers) -> set[int]:
    """Integer expert widths F near the best real F for this E."""
    base = n_layers * (4 * d_model**2 + 2 * d_model + d_model * n_experts) + d_model
    per_width = 3 * n_layers * d_model
    slope_N, slope_Na = per_width * (n_experts + n_shared), per_width * (G + n_shared)

    # Each equation's own solution, and the F where the two relative errors are equal and
    # opposite (the minimax point when they disagree).
    roots = [(N - base) / slope_N, (Na - base) / slope_Na]
    roots.append((2 - base / N - base / Na) / (slope_N / N + slope_Na / Na))
    return {max(1, f) for F in roots for f in (math.floor(F), math.ceil(F))}


def _accept(best, N, Na, G, S, E, rel_tol) -> Solution:
    """Wrap the best (error, model, counts) or refuse it when it misses the targets."""
    err, model, counts = best
    achieved = {
        "N": counts["N"],
        "Na": counts["Na"],
        "G": G,
        "S": model.shared_ratio,
        "E": model.n_experts,
    }
    if err > rel_tol:
        raise InputError(
            f"no architecture with d_model={model.d_model}, n_layers={model.n_layers} reaches "
            f"N={N:g}, Na={Na:g} within {rel_tol:.0%}: the closest is N={counts['N']}, "
            f"Na={counts['Na']} (E={model.n_experts}, F={model.d_expert}, error {err:.1%}). "
            f"Move N/Na apart by a whole number of experts, change d_model, or raise rel_tol."
        )
    target = {"N": N, "Na": Na, "G": G, "S": S}
    if E is not None:
        target["E"] = E
    return Solution(model=model, target=target, achieved=achieved, rel_error=err)
