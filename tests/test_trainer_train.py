"""Data windows, learning-rate schedule, and end-to-end training of the tiny configuration."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from results.errors import InputError
from trainer import train as train_module
from trainer.config import RunConfig, TrainConfig
from trainer.data import ByteData
from trainer.train import TrainingDivergedError, lr_at, train

pytestmark = pytest.mark.filterwarnings("ignore::trainer.train.RoutingCollapseWarning")

SHARED = Path(__file__).resolve().parents[2] / "shared"
AUSTEN = str(SHARED / "corpus" / "austen.txt")
KJV = str(SHARED / "corpus" / "kjv.txt")


# -- data ---------------------------------------------------------------------------------------


def test_validation_slice_is_the_tail_of_each_file(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(bytes(range(100)))
    b.write_bytes(bytes(range(100, 140)))
    data = ByteData([a, b], seq_len=3, val_fraction=0.1)
    assert data.val_parts[0].tolist() == list(range(90, 100))
    assert data.val_parts[1].tolist() == list(range(136, 140))
    assert data.train_tokens == 90 + 36 and data.val_tokens == 14


def test_validation_windows_are_fixed_and_come_from_the_held_out_tail():
    first = ByteData([AUSTEN, KJV], seq_len=64, val_fraction=0.05).val_windows(4096)
    again = ByteData([AUSTEN, KJV], seq_len=64, val_fraction=0.05).val_windows(4096)
    x, y = first
    assert x.shape == y.shape == (64, 64)
    assert torch.equal(x, again[0]) and torch.equal(y, again[1])
    assert torch.equal(x[:, 1:], y[:, :-1])

    # Every window is a substring of one file's last 5%.
    tails = []
    for path in (AUSTEN, KJV):
        raw = Path(path).read_bytes()
        tails.append(raw[len(raw) - math.ceil(len(raw) * 0.05) :])
    for row_x, row_y in zip(x.tolist(), y.tolist(), strict=True):
        window = bytes([*row_x, row_y[-1]])
        assert any(window in tail for tail in tails)


def test_training_batches_follow_the_seed():
    data = ByteData([AUSTEN], seq_len=32, val_fraction=0.05)
    a = data.train_batch(4, torch.Generator().manual_seed(5))
    b = data.train_batch(4, torch.Generator().manual_seed(5))
    c = data.train_batch(4, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])
    assert a[0].dtype == torch.int64 and a[0].shape == (4, 32)
    # Training windows never reach into the validation tail.
    train_part = bytes(np.asarray(data.train_parts[0]))
    assert bytes(a[0][0].tolist()) in train_part


def test_short_file_is_refused(tmp_path):
    short = tmp_path / "short.txt"
    short.write_bytes(b"tiny text")
    with pytest.raises(InputError, match="short.txt"):
        ByteData([short], seq_len=64, val_fraction=0.05)


# -- schedule -----------------------------------------------------------------------------------


def test_warmup_stable_decay_values():
    cfg = TrainConfig(
        tokens=1, data="a.txt", lr=1.0, warmup_frac=0.1, decay_frac=0.2, min_lr_frac=0.1
    )
    steps = 100
    assert lr_at(0, steps, cfg) == pytest.approx(0.1)
    assert lr_at(9, steps, cfg) == pytest.approx(1.0)
    assert lr_at(10, steps, cfg) == 1.0
    assert lr_at(79, steps, cfg) == 1.0
    assert lr_at(80, steps, cfg) == pytest.approx(1 - 0.9 / 20)
    assert lr_at(89, steps, cfg) == pytest.approx(0.55)
    assert lr_at(99, steps, cfg) == pytest.approx(0.1)


def test_schedule_without_warmup_or_decay_is_constant():
    cfg = TrainConfig(tokens=1, data="a.txt", lr=0.5, warmup_frac=0, decay_frac=0)
    assert {lr_at(s, 10, cfg) for s in range(10)} == {0.5}


# -- training -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_result():
    return train(RunConfig.tiny(data=(AUSTEN,)))


def test_tiny_run_learns(tiny_result):
    r = tiny_result
    assert r.extra["initial_loss"] == pytest.approx(math.log(256), abs=0.05)
    assert r.loss < math.log(256) - 2.0
    assert r.loss < 3.2
    assert r.steps == 48 and r.tokens == 48 * 8 * 64
    assert r.factors == {"N": 39328, "Na": 27040, "D": 24576, "G": 2, "S": 1 / 3, "E": 4}
    assert r.counts["N"] == r.factors["N"]
    assert r.tokens_per_s > 0 and r.wall_time_s > 0

    validation = [p for p in r.curve if p["split"] == "validation"]
    assert [p["step"] for p in validation] == [0, 16, 32, 48]
    assert validation[-1]["loss"] == r.loss
    train_steps = [p["step"] for p in r.curve if p["split"] == "train"]
    assert train_steps == sorted(train_steps) and train_steps[-1] == 48
    assert all(p["tokens"] == p["step"] * 8 * 64 for p in r.curve)


def test_same_seed_same_loss_other_seed_differs(tiny_result):
    again = train(RunConfig.tiny(data=(AUSTEN,)))
    assert abs(again.loss - tiny_result.loss) < 1e-6
    assert [p["loss"] for p in again.curve] == pytest.approx(
        [p["loss"] for p in tiny_result.curve], abs=1e-6
    )
    other = train(RunConfig.tiny(data=(AUSTEN,), seed=1))
    assert abs(other.loss - tiny_result.loss) > 1e-4


def test_loop_dispatch_trains_to_the_same_loss(tiny_result):
    loop = train(RunConfig.tiny(data=(AUSTEN,)), dispatch="loop")
    assert loop.extra["dispatch"] == "loop"
    assert loop.loss == pytest.approx(tiny_result.loss, abs=1e-3)


def test_non_finite_loss_names_the_step(monkeypatch):
    real_step = train_module._Trainer._train_step

    def poison_before_step_6(self):
        if self.step == 5:  # 0-based: the 6th step sees a NaN weight
            with torch.no_grad():
                self.model.head.weight[0, 0] = float("nan")
        real_step(self)

    monkeypatch.setattr(train_module._Trainer, "_train_step", poison_before_step_6)
    with pytest.raises(
        TrainingDivergedError, match=r"cross-entropy loss became nan at step 6 of 48 \(lr "
    ):
        train(RunConfig.tiny(data=(AUSTEN,)))


def test_checkpoint_resumes_to_the_same_result(tmp_path, monkeypatch, tiny_result):
    run = RunConfig.tiny(data=(AUSTEN,))

    # Interrupt the run after its step-32 evaluation and checkpoint.
    real_step = train_module._Trainer._train_step

    def crash_at_33(self):
        if self.step == 33:
            raise KeyboardInterrupt
        real_step(self)

    monkeypatch.setattr(train_module._Trainer, "_train_step", crash_at_33)
    with pytest.raises(KeyboardInterrupt):
        train(run, checkpoint_dir=tmp_path)
    monkeypatch.setattr(train_module._Trainer, "_train_step", real_step)

    resumed = train(run, checkpoint_dir=tmp_path)
    assert resumed.loss == pytest.approx(tiny_result.loss, abs=1e-6)
    assert [p["step"] for p in resumed.curve] == [p["step"] for p in tiny_result.curve]
    assert [p["loss"] for p in resumed.curve] == pytest.approx(
        [p["loss"] for p in tiny_result.curve], abs=1e-6
    )
    assert resumed.routing == tiny_result.routing
    finished = train(run, checkpoint_dir=tmp_path)  # already done: nothing is retrained
    assert finished.loss == resumed.loss


def test_too_few_tokens_for_one_step():
    with pytest.raises(InputError, match="tokens=100"):
        train(RunConfig.tiny(data=(AUSTEN,), tokens=100))


def test_threads_are_restored(tiny_result):
    before = torch.get_num_threads()
    train(RunConfig.tiny(data=(AUSTEN,), tokens=8 * 64 * 2, threads=1, eval_tokens=64))
    assert torch.get_num_threads() == before


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message of a machine without CUDA"
)
def test_cuda_on_a_machine_without_it_says_so_before_training():
    with pytest.raises(InputError) as caught:
        train(RunConfig.tiny(data=(AUSTEN,)), device="cuda")
    text = str(caught.value)
    assert text.startswith(f"device 'cuda': this torch ({torch.__version__}) ")
    assert "--device cpu" in text


def test_a_device_torch_does_not_know_is_named():
    with pytest.raises(InputError, match=r"device 'gpu0' is not a torch device .*'cuda:N'"):
        train(RunConfig.tiny(data=(AUSTEN,)), device="gpu0")
    if torch.cuda.is_available():  # on a GPU machine: an index past the last device
        with pytest.raises(InputError, match="pick one of cuda:0"):
            train(RunConfig.tiny(data=(AUSTEN,)), device=f"cuda:{torch.cuda.device_count()}")


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message of a machine without CUDA"
)
def test_moelaw_train_on_a_missing_device_writes_nothing(tmp_path, capsys):
    from cluster.cli import main

    store = tmp_path / "store"
    argv = ["train", "--data", AUSTEN, "--N", "1e5", "--Na-ratio", "0.4", "--D", "2e4", "--G", "2",
            "--store", str(store), "--device", "cuda"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("moelaw train: error: device 'cuda': this torch (")
    assert not store.exists()  # no failed run stored, no empty store created


def test_a_checkpoint_folder_removed_mid_run_does_not_end_the_run(
    tmp_path, monkeypatch, tiny_result
):
    # Two sweeps training the same run into one store: the one that finishes first removes the
    # run's checkpoint folder while the other is writing. The write is retried, then skipped.
    import shutil

    real_save = torch.save
    calls = {"n": 0}

    def save_after_the_folder_went(obj, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:  # the other sweep removes the folder just before the first write
            shutil.rmtree(Path(path).parent)
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_after_the_folder_went)
    result = train(RunConfig.tiny(data=(AUSTEN,)), checkpoint_dir=tmp_path / "ckpt")
    assert result.loss == pytest.approx(tiny_result.loss, abs=1e-6)
    assert calls["n"] >= 2 and (tmp_path / "ckpt").is_dir()

    def never(obj, path, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", never)
    with pytest.warns(train_module.CheckpointWarning, match="No space left on device"):
        again = train(RunConfig.tiny(data=(AUSTEN,)), checkpoint_dir=tmp_path / "other")
    assert again.loss == pytest.approx(tiny_result.loss, abs=1e-6)
