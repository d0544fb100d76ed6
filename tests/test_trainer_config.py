"""Configuration: validation messages, exact round trip, identity."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from results.errors import InputError
from trainer.config import ModelConfig, RunConfig, TrainConfig, file_sha256

SHARED = Path(__file__).resolve().parents[2] / "shared"
AUSTEN = SHARED / "corpus" / "austen.txt"


def model(**over):
    base = dict(d_model=32, n_layers=2, n_heads=2, n_experts=4, top_k=2, d_expert=16, seq_len=32)
    return ModelConfig(**{**base, **over})


def test_round_trip_is_exact_through_json():
    run = RunConfig.tiny(data=(str(AUSTEN),), seed=7, lr=2e-3)
    d = json.loads(json.dumps(run.to_dict()))
    back = RunConfig.from_dict(d)
    assert back == run
    assert back.to_dict() == run.to_dict()
    assert back.train.data == (str(AUSTEN),)


def test_numbers_are_normalised():
    t = TrainConfig(tokens=1e6, data="a.txt", lr=1, seed=3.0)
    assert t.tokens == 1_000_000 and isinstance(t.tokens, int)
    assert t.lr == 1.0 and isinstance(t.lr, float)
    assert t.data == ("a.txt",)


@pytest.mark.parametrize(
    "over, words",
    [
        (dict(top_k=5), ["top_k", "G=5", "E=4"]),
        (dict(n_heads=3), ["n_heads=3", "d_model=32"]),
        (dict(d_model=0), ["d_model", ">= 1", "0"]),
        (dict(n_shared=-1), ["n_shared", "-1"]),
        (dict(d_expert=2.5), ["d_expert", "2.5"]),
        (dict(n_layers=True), ["n_layers", "True"]),
    ],
)
def test_model_config_refuses(over, words):
    with pytest.raises(InputError) as err:
        model(**over)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize(
    "over, words",
    [
        (dict(lr=0), ["lr", "0.0"]),
        (dict(warmup_frac=0.6, decay_frac=0.6), ["warmup_frac + decay_frac", "1.2"]),
        (dict(val_fraction=0.0), ["val_fraction"]),
        (dict(data=()), ["data", "non-empty"]),
        (dict(lr=float("nan")), ["lr", "nan"]),
    ],
)
def test_train_config_refuses(over, words):
    with pytest.raises(InputError) as err:
        TrainConfig(**{"tokens": 1000, "data": ("a.txt",), **over})
    for word in words:
        assert word in str(err.value)


def test_from_dict_names_unknown_and_valid_keys():
    d = RunConfig.tiny(data="a.txt").to_dict()
    d["model"]["n_expert"] = 3
    with pytest.raises(InputError) as err:
        RunConfig.from_dict(d)
    msg = str(err.value)
    assert "'n_expert'" in msg and "n_experts" in msg and "top_k" in msg

    d = RunConfig.tiny(data="a.txt").to_dict()
    d["extra"] = {}
    with pytest.raises(InputError, match="'extra'"):
        RunConfig.from_dict(d)


def test_identity_names_data_by_content_not_path(tmp_path):
    copy = tmp_path / "elsewhere" / AUSTEN.name
    copy.parent.mkdir()
    shutil.copyfile(AUSTEN, copy)
    a = RunConfig.tiny(data=(str(AUSTEN),), threads=1).identity()
    b = RunConfig.tiny(data=(str(copy),), threads=2).identity()
    assert a == b
    assert "threads" not in a["train"]
    assert a["train"]["data"] == [{"name": "austen.txt", "sha256": file_sha256(AUSTEN)}]
    assert len(a["train"]["data"][0]["sha256"]) == 64

    # Anything that changes the result changes the identity.
    c = RunConfig.tiny(data=(str(AUSTEN),), seed=1).identity()
    assert c != a
    copy.write_bytes(b"different bytes" * 1000)
    assert RunConfig.tiny(data=(str(copy),)).identity() != a


def test_identity_of_missing_file_says_which():
    with pytest.raises(InputError, match="nope.txt"):
        RunConfig.tiny(data=("nope.txt",)).identity()


def test_configs_are_frozen():
    run = RunConfig.tiny(data="a.txt")
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.model.d_model = 8
    assert run.model.shared_ratio == pytest.approx(1 / 3)
