"""Typed configuration of one training run: the model, the training recipe, and the two together.

Every dataclass here is frozen and checks itself in ``__post_init__``; a bad value raises
:class:`results.errors.InputError` naming the field, the rule, the value and a fix. Numbers are
normalised on construction (integral floats such as ``1e6`` become ``int``; ``lr=1`` becomes
``1.0``), so a configuration hashes the same however it was written.

Units: ``tokens`` and ``eval_tokens`` count byte tokens (vocabulary 256); ``lr`` is the peak
learning rate; the ``*_frac`` fields are fractions of the total number of optimiser steps.

Data files are checked for existence when they are read (:meth:`RunConfig.identity`, training),
not on construction, so a stored configuration can be loaded on a machine without the files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from results.errors import InputError

# Bump when a change to the trainer changes what a given configuration trains to, so that run ids
# computed before the change no longer match runs computed after it.
TRAINER_VERSION = 1


# ---------------------------------------------------------------------------------------------
# Field checks shared by the dataclasses
# ---------------------------------------------------------------------------------------------


def _as_int(owner: str, name: str, value: Any, minimum: int) -> int:
    """Return ``value`` as an int >= ``minimum`` (integral floats accepted), else raise."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and isinstance(value, float):
        ok = math.isfinite(value) and value.is_integer()
    if not ok:
        raise InputError(
            f"{owner}.{name} must be an integer; got {value!r} ({type(value).__name__}). "
            f"Pass a whole number such as {max(minimum, 1)}."
        )
    if int(value) < minimum:
        raise InputError(
            f"{owner}.{name} must be >= {minimum}; got {value!r}. "
            f"Pass a value of at least {minimum}."
        )
    return int(value)


def _as_float(owner: str, name: str, value: Any, lo: float, hi: float, *, lo_open=False) -> float:
    """Return ``value`` as a finite float in [lo, hi] (or (lo, hi] with ``lo_open``), else raise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{owner}.{name} must be a finite number; got {value!r}. Pass e.g. {hi}.")
    value = float(value)
    below = value <= lo if lo_open else value < lo
    if below or value > hi:
        bracket = "(" if lo_open else "["
        raise InputError(
            f"{owner}.{name} must lie in {bracket}{lo}, {hi}]; got {value!r}. "
            f"Pass a value inside that range."
        )
    return value


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"{name} must be one of {list(choices)}; got {value!r}. Pick one of them.")


def _normalise(obj: Any, rules: dict[str, tuple]) -> None:
    """Check and normalise the fields of a frozen dataclass in place, one rule per field."""
    owner = type(obj).__name__
    for name, rule in rules.items():
        kind, *args = rule
        value = getattr(obj, name)
        if kind == "int":
            value = _as_int(owner, name, value, *args)
        else:
            value = _as_float(owner, name, value, *args[:2], lo_open=bool(args[2:] and args[2]))
        object.__setattr__(obj, name, value)


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Shape of a decoder-only Mixture-of-Experts transformer (see ``trainer/model.py``).

    Attributes:
        d_model: residual width D.
        n_layers: number of transformer blocks.
        n_heads: attention heads; ``d_model / n_heads`` must be an even integer (rotary positions).
        n_experts: routed experts E per MoE layer.
        top_k: routed experts G activated per token (the paper's G; 1 <= G <= E).
        n_shared: shared experts every token uses, each as wide as a routed expert.
        d_expert: hidden width F of each SwiGLU expert (routed and shared).
        seq_len: context length T in tokens.
        vocab_size: byte vocabulary, 256.
        renormalize_gates: if True, the G selected router probabilities are rescaled to sum to 1
            (Mixtral style); if False (default), the gates are the raw softmax probabilities
            (Switch / OLMoE style). Renormalised gates are identically 1 when G = 1, so the router
            would then learn from the load-balancing loss alone; raw gates keep a language-model
            gradient on the router for every G, which matters for a study that varies G from 1.
    """

    d_model: int
    n_layers: int
    n_heads: int
    n_experts: int
    top_k: int
    d_expert: int
    seq_len: int
    n_shared: int = 0
    vocab_size: int = 256
    renormalize_gates: bool = False

    def __post_init__(self) -> None:
        _normalise(
            self,
            {
                "d_model": ("int", 1),
                "n_layers": ("int", 1),
                "n_heads": ("int", 1),
                "n_experts": ("int", 1),
                "top_k": ("int", 1),
                "d_expert": ("int", 1),
                "seq_len": ("int", 1),
                "n_shared": ("int", 0),
                "vocab_size": ("int", 1),
            },
        )
        self._check_relations()

    def _check_relations(self) -> None:
        if not isinstance(self.renormalize_gates, bool):
            raise InputError(
                f"ModelConfig.renormalize_gates must be True or False; "
                f"got {self.renormalize_gates!r}."
            )
        if self.top_k > self.n_experts:
            raise InputError(
                f"ModelConfig.top_k (G={self.top_k}) must not exceed n_experts "
                f"(E={self.n_experts}); lower top_k or raise n_experts to at least {self.top_k}."
            )
        head_dim, rest = divmod(self.d_model, self.n_heads)
        if rest or head_dim % 2:
            good = [h for h in range(1, self.d_model + 1) if self.d_model % (2 * h) == 0]
            raise InputError(
                f"ModelConfig.n_heads={self.n_heads} must split d_model={self.d_model} into heads "
                f"of even width (rotary positions need pairs); n_heads in {good[:8]} would work."
            )

    @property
    def head_dim(self) -> int:
        """Width of one attention head, d_model / n_heads."""
        return self.d_model // self.n_heads

    @property
    def shared_ratio(self) -> float:
        """The paper's S: shared experts / (shared + activated routed experts)."""
        return self.n_shared / (self.n_shared + self.top_k)


# ---------------------------------------------------------------------------------------------
# Training recipe
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How one model is trained: data, optimiser, schedule, evaluation.

    Attributes:
        tokens: training tokens D; the run takes tokens // (batch_size * seq_len) steps.
        data: paths of text files (read as bytes) or memory-mapped token arrays (``.npy`` uint8
            or uint16, ``.bin`` raw uint16; see ``trainer/data.py``); the last ``val_fraction``
            of each is held out.
        batch_size: sequences per optimiser step.
        lr: peak learning rate of AdamW.
        warmup_frac: fraction of steps spent warming up linearly from 0 to ``lr``.
        decay_frac: fraction of steps, at the end, spent decaying linearly to ``min_lr_frac * lr``.
        min_lr_frac: final learning rate as a fraction of ``lr``.
        weight_decay: AdamW decoupled weight decay, applied to matrices only.
        grad_clip: maximum global gradient norm (0 disables clipping).
        aux_loss_coef: weight of the load-balancing loss (summed over layers).
        eval_every: validate every this many steps, plus at the start and the end; 0 validates
            only at the end.
        eval_tokens: validation tokens per evaluation (whole windows of seq_len).
        seed: seeds initialisation and batch order.
        val_fraction: held-out tail of every file, the same for every run.
        threads: CPU threads for torch (not part of the run's identity).
        schedule: "wsd" (warmup-stable-decay, default) or "cosine" (linear warmup, then a
            cosine decay to ``min_lr_frac * lr`` over all remaining steps; ``decay_frac`` unused).
        z_loss_coef: weight of the router z-loss (mean squared log-sum-exp of router logits,
            summed over layers; Zoph et al. 2022); 0 disables it.
        bias_update_rate: auxiliary-loss-free balancing (DeepSeek-V3): after every step each
            expert's routing bias moves by this much towards equal load (sign of the load
            error); 0 disables it. Combine with ``aux_loss_coef=0`` for the loss-free recipe.
        precision: "auto" (bf16 autocast on CUDA, float32 elsewhere), "fp32" or "bf16"
            (autocast on any device).
        compile: run the training forward pass through ``torch.compile`` (a speed setting: not
            part of the run's identity).

    Fields after ``threads`` were added after trainer version 1; at their defaults they are
    left out of :meth:`RunConfig.identity`, so earlier run ids stay valid.
    """

    tokens: int
    data: tuple[str, ...]
    batch_size: int = 16
    lr: float = 3e-3
    warmup_frac: float = 0.05
    decay_frac: float = 0.2
    min_lr_frac: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    aux_loss_coef: float = 0.01
    eval_every: int = 0
    eval_tokens: int = 65536
    seed: int = 0
    val_fraction: float = 0.05
    threads: int = 1
    schedule: str = "wsd"
    z_loss_coef: float = 0.0
    bias_update_rate: float = 0.0
    precision: str = "auto"
    compile: bool = False

    def __post_init__(self) -> None:
        _normalise(
            self,
            {
                "tokens": ("int", 1),
                "batch_size": ("int", 1),
                "lr": ("float", 0.0, 10.0, True),
                "warmup_frac": ("float", 0.0, 1.0),
                "decay_frac": ("float", 0.0, 1.0),
                "min_lr_frac": ("float", 0.0, 1.0),
                "weight_decay": ("float", 0.0, 10.0),
                "grad_clip": ("float", 0.0, 1e6),
                "aux_loss_coef": ("float", 0.0, 1e3),
                "eval_every": ("int", 0),
                "eval_tokens": ("int", 1),
                "seed": ("int", 0),
                "val_fraction": ("float", 0.0, 0.5, True),
                "threads": ("int", 1),
                "z_loss_coef": ("float", 0.0, 1e3),
                "bias_update_rate": ("float", 0.0, 1.0),
            },
        )
        _check_choice("TrainConfig.schedule", self.schedule, ("wsd", "cosine"))
        _check_choice("TrainConfig.precision", self.precision, ("auto", "fp32", "bf16"))
        if not isinstance(self.compile, bool):
            raise InputError(f"TrainConfig.compile must be True or False; got {self.compile!r}.")
        object.__setattr__(self, "data", self._check_data(self.data))
        if self.warmup_frac + self.decay_frac > 1.0:
            raise InputError(
                f"TrainConfig.warmup_frac + decay_frac must be <= 1; got {self.warmup_frac} + "
                f"{self.decay_frac} = {self.warmup_frac + self.decay_frac}. Shorten one of them."
            )

    @staticmethod
    def _check_data(data: Any) -> tuple[str, ...]:
        if isinstance(data, str | os.PathLike):
            data = (data,)
        if not isinstance(data, tuple | list) or not data:
            raise InputError(
                f"TrainConfig.data must be a non-empty list of text-file paths; got {data!r}. "
                f"Pass e.g. data=('corpus/austen.txt',)."
            )
        bad = [d for d in data if not isinstance(d, str | os.PathLike)]
        if bad:
            raise InputError(f"TrainConfig.data entries must be paths; got {bad!r}.")
        return tuple(os.fspath(d) for d in data)


# ---------------------------------------------------------------------------------------------
# Run = model + recipe
# ---------------------------------------------------------------------------------------------

_SHA_CACHE: dict[tuple[str, int, int], str] = {}

# Settings that change speed, not what a run trains to: never part of the identity.
_SPEED_SETTINGS = ("threads", "compile")

# Fields added after trainer version 1, with the defaults that reproduce it: left out of the
# identity at these values so run ids computed before they existed still match.
_ADDED_AFTER_V1 = {
    "schedule": "wsd",
    "z_loss_coef": 0.0,
    "bias_update_rate": 0.0,
    "precision": "auto",
}


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, cached per (resolved path, size, modification time)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"data file {os.fspath(path)!r} does not exist or is not a file; "
            f"fix the path in TrainConfig.data (paths are relative to {os.getcwd()!r})."
        )
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


@dataclass(frozen=True)
class RunConfig:
    """One training run: a :class:`ModelConfig` and a :class:`TrainConfig`."""

    model: ModelConfig
    train: TrainConfig

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelConfig) or not isinstance(self.train, TrainConfig):
            raise InputError(
                f"RunConfig needs a ModelConfig and a TrainConfig; got "
                f"{type(self.model).__name__} and {type(self.train).__name__}. "
                f"Build them first or use RunConfig.from_dict(d)."
            )

    # -- serialisation ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain JSON-ready dict ``{"model": {...}, "train": {...}}`` (data as a list)."""
        train = dataclasses.asdict(self.train)
        train["data"] = list(self.train.data)
        return {"model": dataclasses.asdict(self.model), "train": train}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`; unknown or missing keys raise InputError naming them."""
        if not isinstance(d, Mapping):
            raise InputError(f"RunConfig.from_dict needs a mapping; got {type(d).__name__}.")
        _check_keys("run configuration", d, {"model", "train"}, {"model", "train"})
        parts = {}
        for key, klass in (("model", ModelConfig), ("train", TrainConfig)):
            section = d[key]
            if not isinstance(section, Mapping):
                raise InputError(f"section {key!r} must be a mapping; got {section!r}.")
            fields = {f.name for f in dataclasses.fields(klass)}
            required = {
                f.name
                for f in dataclasses.fields(klass)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            }
            _check_keys(f"section {key!r}", section, fields, required)
            parts[key] = klass(**section)
        return cls(parts["model"], parts["train"])

    def identity(self) -> dict[str, Any]:
        """What the run id hashes: everything that changes the trained model's loss.

        Data files appear by basename and sha256 of their bytes (not by path), so the same run on
        another machine has the same identity; ``threads`` and ``compile`` are left out, and so
        are fields added after trainer version 1 while they hold their defaults.
        """
        d = self.to_dict()
        for name in _SPEED_SETTINGS:
            d["train"].pop(name)
        for name, default in _ADDED_AFTER_V1.items():
            if d["train"][name] == default:
                d["train"].pop(name)
        d["train"]["data"] = [
            {"name": Path(p).name, "sha256": file_sha256(p)} for p in self.train.data
        ]
        d["trainer_version"] = TRAINER_VERSION
        return d

    # -- named configurations --------------------------------------------------------------

    @classmethod
    def tiny(cls, data: Any, **train_overrides: Any) -> RunConfig:
        """A run that trains in a few seconds on one CPU core (for tests and smoke checks).

        Two layers of width 32 with 4 routed experts (top-2) and one shared expert, on
        64-token windows, for 48 steps of 8 windows (24,576 tokens).
        """
        model = ModelConfig(
            d_model=32,
            n_layers=2,
            n_heads=2,
            n_experts=4,
            top_k=2,
            n_shared=1,
            d_expert=32,
            seq_len=64,
        )
        settings: dict[str, Any] = dict(
            tokens=48 * 8 * 64,
            data=data,
            batch_size=8,
            lr=1e-2,
            warmup_frac=0.1,
            decay_frac=0.3,
            eval_every=16,
            eval_tokens=4096,
        )
        settings.update(train_overrides)
        return cls(model, TrainConfig(**settings))


def _check_keys(where: str, d: Mapping[str, Any], valid: set[str], required: set[str]) -> None:
    """Raise InputError for keys of ``d`` outside ``valid`` or for missing ``required`` keys."""
    unknown = sorted(set(d) - valid, key=str)
    if unknown:
        raise InputError(
            f"{where} has unknown keys {unknown}; valid keys are {sorted(valid)}. "
            f"Remove or rename them."
        )
    missing = sorted(required - set(d))
    if missing:
        raise InputError(f"{where} is missing required keys {missing}; add them.")


# ----------------------------------------------------------------------------------------------
# Data files (no torch: sweeps check them when they are planned)


def token_count(path) -> int:
    """Tokens in a data file, from its size or array header alone (nothing is read or checked):
    bytes of a text file, two-byte tokens of a ``.bin``, the length of a ``.npy`` array."""
    p = Path(path)
    if p.suffix == ".npy":
        import numpy as np

        return int(np.load(p, mmap_mode="r").size)
    return p.stat().st_size // (2 if p.suffix == ".bin" else 1)


def check_length(path, n_tokens: int, seq_len: int, val_fraction: float) -> None:
    """Refuse a file of ``n_tokens`` whose training or validation part (the last
    ``ceil(n_tokens * val_fraction)`` tokens) is shorter than one window of ``seq_len + 1``.

    Raises:
        InputError: naming the file, both parts' lengths and the fixes.
    """
    val = math.ceil(n_tokens * val_fraction)
    train, need = n_tokens - val, seq_len + 1
    if train < need or val < need:
        raise InputError(
            f"data file {os.fspath(path)!r} is too short: its training part has {train} "
            f"bytes and its validation part {val}, each needs at least seq_len+1="
            f"{need}. Use a longer file, a shorter seq_len, or a larger val_fraction."
        )
