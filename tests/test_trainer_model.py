"""Model: dispatch paths agree, routing, load balance, causality (the dense limit, with its
gradients, is in test_trainer_moe.py)."""

import pytest
import torch
import torch.nn.functional as F

from trainer.config import ModelConfig
from trainer.model import MoE, MoETransformer, grouped_mm_supported

needs_grouped = pytest.mark.skipif(
    not grouped_mm_supported("cpu", torch.float32), reason="torch lacks CPU fp32 grouped_mm"
)


def cfg(**over):
    base = dict(d_model=32, n_layers=2, n_heads=2, n_experts=8, top_k=2, d_expert=16, seq_len=24)
    return ModelConfig(**{**base, **over})


@needs_grouped
@pytest.mark.parametrize("over", [dict(), dict(n_shared=2, top_k=3), dict(n_experts=16, top_k=1)])
def test_grouped_and_loop_dispatch_agree(over):
    torch.manual_seed(0)
    grouped = MoETransformer(cfg(**over), dispatch="grouped")
    loop = MoETransformer(cfg(**over), dispatch="loop")
    loop.load_state_dict(grouped.state_dict())
    idx = torch.randint(0, 256, (3, 24))

    outs = []
    for model in (grouped, loop):
        logits, balance = model(idx)
        (logits.square().mean() + balance.sum()).backward()
        outs.append((logits, balance, {n: p.grad.clone() for n, p in model.named_parameters()}))
    (lg, bg, gg), (ll, bl, gl) = outs
    torch.testing.assert_close(lg, ll, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(bg, bl)
    for name in gg:
        torch.testing.assert_close(gg[name], gl[name], atol=1e-5, rtol=1e-5, msg=name)
    assert gg["blocks.0.moe.w2_EFD"].abs().sum() > 0


@needs_grouped
def test_grouped_backward_survives_zero_stride_gradient():
    torch.manual_seed(0)
    moe = MoE(cfg(), dispatch="grouped")
    torch.nn.init.normal_(moe.w13_EDF, std=0.1)
    torch.nn.init.normal_(moe.w2_EFD, std=0.1)
    x = torch.randn(2, 5, 32, requires_grad=True)
    y, _ = moe(x)
    y.sum().backward()  # the gradient of .sum() has zero strides
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_routing_picks_top_k_with_ties_to_lower_index():
    moe = MoE(cfg(n_experts=4, top_k=2))
    with torch.no_grad():
        moe.router.weight.zero_()  # every probability is 1/4: a four-way tie
    gates, experts, balance = moe._route(torch.randn(5, 32))
    assert experts.tolist() == [[0, 1]] * 5
    torch.testing.assert_close(gates, torch.full((5, 2), 0.25))
    # Everything goes to experts 0 and 1: f = (1/2, 1/2, 0, 0), P = 1/4 each -> E·Σ f·P = 1.
    assert balance.item() == pytest.approx(1.0)


def test_gates_raw_or_renormalised():
    torch.manual_seed(2)
    x = torch.randn(6, 32)
    raw = MoE(cfg(n_experts=4, top_k=2))
    norm = MoE(cfg(n_experts=4, top_k=2, renormalize_gates=True))
    norm.load_state_dict(raw.state_dict())
    torch.nn.init.normal_(raw.router.weight)
    norm.router.weight.data.copy_(raw.router.weight)
    g_raw, e_raw, _ = raw._route(x)
    g_norm, e_norm, _ = norm._route(x)
    probs = F.softmax(x @ raw.router.weight.T, dim=-1)
    assert torch.equal(e_raw, e_norm)
    torch.testing.assert_close(g_raw, probs.gather(1, e_raw))
    torch.testing.assert_close(g_norm.sum(-1), torch.ones(6))
    assert torch.all(g_raw.sum(-1) < 1)


def test_load_balance_is_E_sum_f_P():
    moe = MoE(cfg(n_experts=4, top_k=1))
    with torch.no_grad():
        moe.router.weight.zero_()
        moe.router.weight[2, 0] = 10.0  # tokens with x[0] > 0 strongly prefer expert 2
    x = torch.zeros(4, 32)
    x[:2, 0] = 1.0
    probs = F.softmax(x @ moe.router.weight.T, dim=-1)
    _, experts, balance = moe._route(x)
    f = torch.bincount(experts.flatten(), minlength=4).float() / 4
    assert experts.flatten().tolist() == [2, 2, 0, 0]
    assert balance.item() == pytest.approx(4 * (f * probs.mean(0)).sum().item())


def test_model_is_causal():
    torch.manual_seed(3)
    model = MoETransformer(cfg(n_experts=4, top_k=1))
    idx = torch.randint(0, 256, (1, 24))
    changed = idx.clone()
    changed[0, 15] = (changed[0, 15] + 1) % 256
    # Routing is per token, so changing token 15 cannot affect earlier positions.
    a, _ = model(idx)
    b, _ = model(changed)
    torch.testing.assert_close(a[0, :15], b[0, :15])
    assert not torch.allclose(a[0, 15:], b[0, 15:])
