"""Trainer features: halting on non-finite gradients, routing statistics, opt-in recipes, data."""

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from results.errors import InputError
from results.schema import run_id
from trainer import train as train_module
from trainer.config import RunConfig, TrainConfig
from trainer.data import ByteData
from trainer.train import (
    RoutingCollapseWarning,
    TrainingDivergedError,
    lr_at,
    routing_statistics,
    train,
)

pytestmark = pytest.mark.filterwarnings("ignore::trainer.train.RoutingCollapseWarning")

SHARED = Path(__file__).resolve().parents[2] / "shared"
AUSTEN = str(SHARED / "corpus" / "austen.txt")
SHORT = dict(tokens=16 * 8 * 64, eval_every=0, eval_tokens=1024)


def test_planted_nan_gradient_halts_naming_step_and_parameter(monkeypatch):
    real_step = train_module._Trainer._train_step

    def poison_gradient_at_step_4(self):
        if self.step == 3:
            w2 = self.model.blocks[1].moe.w2_EFD
            handle = w2.register_hook(lambda g: g.index_fill(0, torch.tensor([2]), math.nan))
            try:
                return real_step(self)
            finally:
                handle.remove()
        return real_step(self)

    monkeypatch.setattr(train_module._Trainer, "_train_step", poison_gradient_at_step_4)
    with pytest.raises(TrainingDivergedError) as err:
        train(RunConfig.tiny(data=(AUSTEN,), **SHORT))
    message = str(err.value)
    assert "gradient of blocks.1.moe.w2_EFD" in message
    assert "1024 non-finite of 4096" in message  # expert 2 of 4: its F x D = 32 x 32 block
    assert "at step 4 of 16" in message and "every loss was finite" in message


def test_planted_nan_loss_names_the_loss(monkeypatch):
    real_step = train_module._Trainer._train_step

    def poison_weight(self):
        if self.step == 2:
            with torch.no_grad():
                self.model.head.weight[0, 0] = math.nan
        real_step(self)

    monkeypatch.setattr(train_module._Trainer, "_train_step", poison_weight)
    with pytest.raises(TrainingDivergedError, match=r"the cross-entropy loss became nan at step 3"):
        train(RunConfig.tiny(data=(AUSTEN,), **SHORT))


def test_routing_statistics_by_hand():
    counts = torch.tensor([[10, 10, 10, 10], [37, 1, 1, 1]])
    balanced, skewed = routing_statistics(counts, top_k=1)
    assert balanced["tokens_per_expert"] == [10, 10, 10, 10]
    assert balanced["load_entropy"] == pytest.approx(math.log(4))
    assert balanced["load_entropy_norm"] == pytest.approx(1.0)
    assert balanced["max_over_mean"] == pytest.approx(1.0)
    assert not balanced["collapsed"]
    assert skewed["max_token_share"] == pytest.approx(37 / 40)
    assert skewed["max_over_mean"] == pytest.approx(37 / 10)
    assert skewed["collapsed"]  # 0.925 > (1 + 1/4) / 2
    # Top-2 of 4: an expert used by 70% of tokens is below the line (1 + 1/2) / 2 = 0.75.
    (fair,) = routing_statistics(torch.tensor([[14, 10, 8, 8]]), top_k=2)
    assert fair["max_token_share"] == pytest.approx(0.7) and not fair["collapsed"]


def test_run_records_routing_and_flops():
    r = train(RunConfig.tiny(data=(AUSTEN,), **SHORT))
    assert len(r.routing["all"]) == 2 and len(r.routing["late"]) == 2
    for layer in r.routing["all"]:
        # Every step routes 8·64 tokens to 2 experts each.
        assert sum(layer["tokens_per_expert"]) == 16 * 8 * 64 * 2
        assert 0 < layer["load_entropy_norm"] <= 1
    assert sum(r.routing["late"][0]["tokens_per_expert"]) == 1 * 8 * 64 * 2  # last 16 // 10 step
    assert r.flops_per_token == 6 * 27040 + 6 * 2 * 64 * 32
    assert r.flops == r.flops_per_token * r.tokens
    assert r.extra["train_flops"] == r.flops
    assert r.extra["N_with_embeddings"] == 39328 + 2 * 256 * 32
    assert r.extra["Na_with_embeddings"] == 27040 + 2 * 256 * 32
    assert isinstance(r.extra["routing_collapse"], bool)


def test_collapse_is_warned_and_flagged(monkeypatch):
    real_init = train_module._Trainer.__init__

    def steer_everything_to_expert_3(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        for moe in self.model.moe_layers:
            moe.use_bias = True
            moe.expert_bias_E[3] = 10.0  # chosen first by every token

    monkeypatch.setattr(train_module._Trainer, "__init__", steer_everything_to_expert_3)
    with pytest.warns(RoutingCollapseWarning, match="layer 0: one expert took 100%"):
        r = train(RunConfig.tiny(data=(AUSTEN,), **SHORT))
    assert r.extra["routing_collapse"] is True
    assert r.routing["late"][0]["max_token_share"] == 1.0


def test_bias_balancing_moves_towards_equal_load():
    run = RunConfig.tiny(data=(AUSTEN,), aux_loss_coef=0.0, bias_update_rate=1e-3, **SHORT)
    off = train(RunConfig.tiny(data=(AUSTEN,), aux_loss_coef=0.0, **SHORT))
    on = train(run)
    spread_on = max(s["max_over_mean"] for s in on.routing["all"])
    spread_off = max(s["max_over_mean"] for s in off.routing["all"])
    assert spread_on < spread_off
    assert math.isfinite(on.loss)


def test_z_loss_trains_and_changes_the_result():
    base = train(RunConfig.tiny(data=(AUSTEN,), **SHORT))
    with_z = train(RunConfig.tiny(data=(AUSTEN,), z_loss_coef=1e-2, **SHORT))
    assert math.isfinite(with_z.loss) and with_z.loss != base.loss


def test_cosine_schedule_values():
    cfg = TrainConfig(
        tokens=1, data="a.txt", lr=1.0, warmup_frac=0.1, min_lr_frac=0.1, schedule="cosine"
    )
    assert lr_at(9, 100, cfg) == pytest.approx(1.0)
    assert lr_at(99, 100, cfg) == pytest.approx(0.1)
    # Halfway through the 90 decay steps: the midpoint of lr and lr_min.
    assert lr_at(9 + 45, 100, cfg) == pytest.approx(0.55)
    values = [lr_at(s, 100, cfg) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_new_fields_at_defaults_keep_the_run_id():
    # The id of the tiny run under trainer version 1, before these fields existed.
    assert run_id(RunConfig.tiny(data=(AUSTEN,)).identity()) == "8d0cb920b0f35e4d"
    assert run_id(RunConfig.tiny(data=(AUSTEN,), compile=True).identity()) == "8d0cb920b0f35e4d"
    assert run_id(RunConfig.tiny(data=(AUSTEN,), schedule="cosine").identity()) != (
        "8d0cb920b0f35e4d"
    )


def test_bad_choices_are_refused():
    with pytest.raises(InputError, match="schedule must be one of"):
        TrainConfig(tokens=1, data="a.txt", schedule="linear")
    with pytest.raises(InputError, match="precision must be one of"):
        TrainConfig(tokens=1, data="a.txt", precision="fp8")


def test_token_arrays_are_memory_mapped(tmp_path):
    tokens = (np.arange(5000) * 7 % 300).astype(np.uint16)
    np.save(tmp_path / "t.npy", tokens)
    tokens.astype("<u2").tofile(tmp_path / "t.bin")
    for name in ("t.npy", "t.bin"):
        data = ByteData([tmp_path / name], seq_len=16, val_fraction=0.1, vocab_size=300)
        assert isinstance(data.train_parts[0], np.memmap)
        assert data.val_parts[0].tolist() == tokens[4500:].tolist()
        x, y = data.val_windows(64)
        assert x.dtype == torch.int64 and int(x.max()) < 300
    with pytest.raises(InputError, match="holds token 299.*at least 300"):
        ByteData([tmp_path / "t.npy"], seq_len=16, val_fraction=0.1, vocab_size=256)
    np.save(tmp_path / "f.npy", tokens.astype(np.float32))
    with pytest.raises(InputError, match="uint8 or uint16"):
        ByteData([tmp_path / "f.npy"], seq_len=16, val_fraction=0.1)


def test_two_threads_are_deterministic_too():
    run = RunConfig.tiny(data=(AUSTEN,), threads=2, **SHORT)
    a, b = train(run), train(run)
    assert a.loss == b.loss
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RoutingCollapseWarning)
        assert [p["loss"] for p in a.curve] == [p["loss"] for p in b.curve]
