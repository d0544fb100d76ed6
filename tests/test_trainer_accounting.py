"""Parameter accounting against the built model, FLOPs, and the architecture solver."""

import pytest

from results.errors import InputError
from trainer.accounting import count_parameters, flops_per_token
from trainer.config import ModelConfig
from trainer.model import MoETransformer
from trainer.solve import solve_architecture

CONFIGS = [
    dict(d_model=32, n_layers=2, n_heads=2, n_experts=4, top_k=2, n_shared=1, d_expert=24),
    dict(d_model=48, n_layers=3, n_heads=4, n_experts=8, top_k=1, n_shared=0, d_expert=40),
    dict(d_model=64, n_layers=1, n_heads=4, n_experts=1, top_k=1, n_shared=0, d_expert=256),
    dict(d_model=16, n_layers=2, n_heads=1, n_experts=16, top_k=4, n_shared=3, d_expert=8),
]


@pytest.mark.parametrize("kw", CONFIGS)
def test_counts_match_the_model(kw):
    cfg = ModelConfig(seq_len=16, **kw)
    model = MoETransformer(cfg)
    counts = count_parameters(cfg)
    assert counts["N"] == model.non_embedding_parameters()
    assert counts["N_with_embeddings"] == sum(p.numel() for p in model.parameters())

    # Na = N minus the (E - G) experts a token does not use, in every layer.
    moe = model.blocks[0].moe
    per_expert = (moe.w13_EDF[0].numel() + moe.w2_EFD[0].numel()) * cfg.n_layers
    assert counts["Na"] == counts["N"] - (cfg.n_experts - cfg.top_k) * per_expert
    assert counts["Na_with_embeddings"] - counts["Na"] == 2 * 256 * cfg.d_model


def test_counts_by_hand():
    cfg = ModelConfig(**CONFIGS[0], seq_len=16)
    D, F = 32, 24
    layer = 4 * D * D + 2 * D + D * 4
    assert count_parameters(cfg)["N"] == 2 * (layer + 5 * 3 * D * F) + D
    assert count_parameters(cfg)["Na"] == 2 * (layer + 3 * 3 * D * F) + D


def test_flops_per_token_convention():
    cfg = ModelConfig(**CONFIGS[1], seq_len=128)
    Na = count_parameters(cfg)["Na"]
    assert flops_per_token(cfg) == 6 * Na + 6 * 3 * 128 * 48
    assert flops_per_token(cfg, include_head=True) == flops_per_token(cfg) + 6 * 48 * 256


SHAPE = dict(d_model=64, n_layers=2, n_heads=4, seq_len=128)


@pytest.mark.parametrize(
    "N, Na, G, S",
    [
        (1e5, 5e4, 2, 0.0),
        (2e6, 5e5, 4, 0.5),
        (3e5, 1e5, 2, 1 / 3),
        (1e6, 2e5, 8, 0.2),
        (2e6, 1e5, 1, 0.0),
        (1e6, 1e6, 2, 0.0),
    ],
)
def test_solve_reaches_targets(N, Na, G, S):
    sol = solve_architecture(N, Na, G, S, **SHAPE)
    counts = count_parameters(sol.model)
    assert sol.achieved["N"] == counts["N"] and sol.achieved["Na"] == counts["Na"]
    assert abs(counts["N"] / N - 1) <= 0.02
    assert abs(counts["Na"] / Na - 1) <= 0.02
    assert sol.achieved["G"] == sol.model.top_k == G
    assert sol.achieved["S"] == pytest.approx(S, abs=0.05)
    assert sol.achieved["E"] == sol.model.n_experts >= G
    # Wide-expert branch: experts are not degenerate slivers.
    assert sol.model.d_expert >= 16


def test_solve_dense_when_N_equals_Na():
    sol = solve_architecture(1e6, 1e6, 2, 0.0, **SHAPE)
    assert sol.model.n_experts == 2


def test_solve_with_fixed_E():
    sol = solve_architecture(6e5, 2e5, 2, 0.0, E=8, **SHAPE)
    assert sol.model.n_experts == 8
    assert sol.rel_error <= 0.1


@pytest.mark.parametrize(
    "args, kw, words",
    [
        ((1e6, 2e5, 4, 0.0), dict(E=2), ["G=4", "E=2"]),
        ((1e6, 2e5, 2, 1.0), {}, ["S", "1.0", "[0, 1)"]),
        ((1e6, 2e5, 2, -0.1), {}, ["-0.1"]),
        ((1e6, 2e5, 0, 0.0), {}, ["G", "0"]),
        ((1e5, 2e5, 2, 0.0), {}, ["Na=200000", "N=100000"]),
        ((1e5, 2e4, 2, 0.0), {}, ["Na=20000", "at least", "d_model <="]),
        ((1e6, 2e5, 1, 0.3), {}, ["S=0.3", "G=1", "0.5"]),
        ((1.5e6, 1e6, 1, 0.0), {}, ["within 10%", "closest"]),
    ],
)
def test_solve_refuses_impossible_targets(args, kw, words):
    with pytest.raises(InputError) as err:
        solve_architecture(*args, **SHAPE, **kw)
    for word in words:
        assert word in str(err.value)
