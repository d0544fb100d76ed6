"""MoE layer bookkeeping and load balancing: fake router, dense limit, padding, ties."""

import pytest
import torch

from trainer.config import ModelConfig
from trainer.model import MoE, MoETransformer, SwiGLU, grouped_mm_supported

DISPATCHES = ["loop"] + (["grouped"] if grouped_mm_supported("cpu", torch.float32) else [])


def cfg(**over):
    base = dict(d_model=32, n_layers=2, n_heads=2, n_experts=8, top_k=2, d_expert=16, seq_len=24)
    return ModelConfig(**{**base, **over})


class PassThroughMoE(MoE):
    """Fixed routing and experts that return their input times (expert index + 1)."""

    def __init__(self, experts_NK, gates_NK, **over):
        super().__init__(cfg(**over), dispatch="loop")
        self.fixed = experts_NK, gates_NK
        self.seen_counts = None

    def _route(self, x_ND, mask_N=None):
        experts_NK, gates_NK = self.fixed
        return gates_NK, experts_NK, torch.zeros(())

    def _run_experts(self, xs_MD, counts_E, dtype):
        self.seen_counts = counts_E.tolist()
        scale_M = torch.repeat_interleave(torch.arange(1.0, self.E + 1), counts_E)
        return xs_MD * scale_M.unsqueeze(-1)


@pytest.mark.parametrize("K", [1, 2, 3])
def test_token_bookkeeping_with_fixed_router_and_pass_through_experts(K):
    torch.manual_seed(0)
    N, E = 10, 8
    experts_NK = torch.stack([torch.randperm(E)[:K] for _ in range(N)])
    gates_NK = torch.rand(N, K)
    moe = PassThroughMoE(experts_NK, gates_NK, top_k=K)
    x = torch.randn(2, 5, 32)

    y, _ = moe(x)

    # Each token comes back as Σ_k g_nk · (e_nk + 1) · x_n, in its own row.
    factor_N = (gates_NK * (experts_NK + 1).float()).sum(dim=1)
    torch.testing.assert_close(y.reshape(N, 32), factor_N.unsqueeze(-1) * x.reshape(N, 32))
    assert moe.seen_counts == torch.bincount(experts_NK.flatten(), minlength=E).tolist()


@pytest.mark.parametrize("dispatch", DISPATCHES)
def test_one_expert_top_one_no_shared_is_the_dense_ffn_with_its_gradients(dispatch):
    torch.manual_seed(1)
    moe = MoE(cfg(n_experts=1, top_k=1, d_expert=64), dispatch=dispatch)
    torch.nn.init.normal_(moe.w13_EDF, std=0.1)
    torch.nn.init.normal_(moe.w2_EFD, std=0.1)
    dense = SwiGLU(32, 64)
    with torch.no_grad():
        dense.w13.weight.copy_(moe.w13_EDF[0].T)
        dense.w2.weight.copy_(moe.w2_EFD[0].T)
    x = torch.randn(2, 7, 32)
    x_moe, x_dense = x.clone().requires_grad_(), x.clone().requires_grad_()
    target = torch.randn(2, 7, 32)

    y_moe, balance = moe(x_moe)
    y_dense = dense(x_dense)
    ((y_moe - target).square().sum()).backward()
    ((y_dense - target).square().sum()).backward()

    # One expert with gate softmax([z]) = 1: the same function, the same gradients.
    torch.testing.assert_close(y_moe, y_dense, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(x_moe.grad, x_dense.grad, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(moe.w13_EDF.grad[0].T, dense.w13.weight.grad, atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(moe.w2_EFD.grad[0].T, dense.w2.weight.grad, atol=1e-5, rtol=1e-6)
    assert torch.count_nonzero(moe.router.weight.grad) == 0
    assert balance.item() == 1.0


def test_balance_loss_ignores_padding_at_any_length():
    torch.manual_seed(2)
    model = MoETransformer(cfg())
    idx = torch.randint(0, 256, (3, 16))
    _, balance_real = model(idx)
    counts_real = [m.counts_E.clone() for m in model.moe_layers]

    balances = []
    for pad in (3, 8):
        padded = torch.cat([idx, torch.zeros(3, pad, dtype=torch.long)], dim=1)
        mask = torch.arange(16 + pad) < 16
        _, balance = model(padded, mask.expand(3, -1))
        balances.append(balance)
        for layer, moe in enumerate(model.moe_layers):
            assert torch.equal(moe.counts_E, counts_real[layer])
    torch.testing.assert_close(balances[0], balance_real, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(balances[1], balance_real, atol=1e-6, rtol=1e-6)

    # Without the mask, padding would count: the loss differs.
    _, unmasked = model(torch.cat([idx, torch.zeros(3, 8, dtype=torch.long)], dim=1))
    assert not torch.allclose(unmasked, balance_real, atol=1e-4)


def test_all_padding_is_refused_not_skipped():
    moe = MoE(cfg())
    with pytest.raises(ValueError, match="every token as padding"):
        moe(torch.randn(2, 4, 32), torch.zeros(2, 4, dtype=torch.bool))


@pytest.mark.parametrize("threads", [1, 2])
def test_all_zero_router_row_routes_identically_every_run(threads):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(3)
        moe = MoE(cfg(n_experts=16, top_k=4))
        torch.nn.init.normal_(moe.router.weight)
        x = torch.randn(64, 32)
        x[[5, 17, 40]] = 0.0  # zero logits: a 16-way tie in these rows
        runs = [moe._route(x)[1] for _ in range(20)]
    finally:
        torch.set_num_threads(previous)
    assert all(torch.equal(r, runs[0]) for r in runs)
    for row in (5, 17, 40):
        assert runs[0][row].tolist() == [0, 1, 2, 3]


def test_z_loss_is_mean_squared_logsumexp_over_real_tokens():
    torch.manual_seed(4)
    moe = MoE(cfg())
    torch.nn.init.normal_(moe.router.weight)
    moe.want_z_loss = True
    x = torch.randn(1, 6, 32)
    mask = torch.tensor([[True, True, True, True, False, False]])
    moe(x, mask)
    logits = x[0, :4] @ moe.router.weight.T
    expected = torch.logsumexp(logits, dim=-1).square().mean()
    torch.testing.assert_close(moe.z_loss, expected)


def test_expert_bias_changes_the_choice_not_the_gate():
    moe = MoE(cfg(n_experts=4, top_k=1))
    with torch.no_grad():
        moe.router.weight.zero_()
    moe.use_bias = True
    moe.expert_bias_E[3] = 0.5
    gates, experts, _ = moe._route(torch.randn(5, 32))
    assert experts.flatten().tolist() == [3] * 5
    torch.testing.assert_close(gates, torch.full((5, 1), 0.25))
