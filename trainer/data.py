"""Token streams: training batches and a fixed validation set.

Files are memory-mapped, never read whole:

* ``.npy``: a one-dimensional uint8 or uint16 token array (``np.save``);
* ``.bin``: raw little-endian uint16 tokens (the nanoGPT convention);
* anything else: text read as raw bytes (token = byte, vocabulary 256).

Every token must be below the model's vocabulary size (checked once per file). The last
``val_fraction`` of every file is held out for validation; the held-out slice depends only on the
file and ``val_fraction``, so it is the same for every run.

* Training windows of seq_len + 1 bytes start at positions drawn uniformly over every file's
  training part from a ``torch.Generator`` seeded by the run's seed: the same seed gives the same
  batches. A window never crosses the end of a file.
* Validation windows are evenly spaced over the held-out slices (no randomness): the same windows
  for every run and every evaluation with the same data, seq_len and eval_tokens, so validation
  losses are comparable across runs.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from results.errors import InputError
from trainer.config import check_length


class ByteData:
    """Training and validation windows over token files (text as bytes, or token arrays).

    Args:
        paths: text files, ``.npy`` or ``.bin`` token arrays.
        seq_len: tokens a model sees per window (each window holds seq_len + 1 tokens).
        val_fraction: held-out tail of each file.
        vocab_size: tokens must be smaller than this.
    """

    def __init__(self, paths, seq_len: int, val_fraction: float, vocab_size: int = 256) -> None:
        self.seq_len = seq_len
        self.train_parts: list[np.ndarray] = []
        self.val_parts: list[np.ndarray] = []
        for path in paths:
            tokens = read_tokens(path, vocab_size)
            cut = len(tokens) - math.ceil(len(tokens) * val_fraction)
            self.train_parts.append(tokens[:cut])
            self.val_parts.append(tokens[cut:])
            check_length(path, len(tokens), seq_len, val_fraction)

        # Number of valid window starts per part, and their running totals for lookup.
        self._train_starts = _start_counts(self.train_parts, seq_len)
        self._train_offsets = np.cumsum([0, *self._train_starts])

    @property
    def train_tokens(self) -> int:
        """Bytes available for training (all files)."""
        return sum(len(p) for p in self.train_parts)

    @property
    def val_tokens(self) -> int:
        """Bytes held out for validation (all files)."""
        return sum(len(p) for p in self.val_parts)

    def train_batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Draw a batch of training windows.

        Args:
            batch_size: windows B.
            generator: the run's generator (advanced by one draw of B integers).

        Returns:
            (inputs_BT, targets_BT), int64, targets shifted by one byte.
        """
        picks = torch.randint(int(self._train_offsets[-1]), (batch_size,), generator=generator)
        return self._gather(self.train_parts, self._train_offsets, picks.numpy())

    def val_windows(self, eval_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed validation windows: ceil(eval_tokens / seq_len) of them, evenly spaced.

        Returns:
            (inputs_WT, targets_WT), int64; W windows of seq_len predicted tokens.
        """
        counts = _start_counts(self.val_parts, self.seq_len)
        offsets = np.cumsum([0, *counts])
        n_windows = math.ceil(eval_tokens / self.seq_len)
        picks = np.floor(np.arange(n_windows) * (offsets[-1] / n_windows)).astype(np.int64)
        return self._gather(self.val_parts, offsets, picks)

    def _gather(self, parts, offsets, picks) -> tuple[torch.Tensor, torch.Tensor]:
        """Cut windows of seq_len + 1 bytes at global start indices ``picks``."""
        which = np.searchsorted(offsets, picks, side="right") - 1
        rows = [
            parts[p][s - offsets[p] : s - offsets[p] + self.seq_len + 1]
            for p, s in zip(which, picks, strict=True)
        ]
        windows = torch.from_numpy(np.stack(rows).astype(np.int64))
        return windows[:, :-1], windows[:, 1:]


TokenData = ByteData

_CHUNK = 1 << 24  # tokens per pass when checking a file's largest token


def read_tokens(path, vocab_size: int = 256) -> np.ndarray:
    """Memory-map a file's tokens (see the module docstring for the formats).

    Raises:
        InputError: a missing file, an array of another dtype or shape, or a token >= vocab_size.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"data file {os.fspath(path)!r} does not exist or is not a file; fix the path in "
            f"TrainConfig.data (relative paths resolve against {os.getcwd()!r})."
        )
    if p.suffix == ".npy":
        tokens = np.load(p, mmap_mode="r")
    elif p.stat().st_size == 0:
        return np.zeros(0, dtype=np.uint8)
    elif p.suffix == ".bin":
        tokens = np.memmap(p, dtype="<u2", mode="r")
    else:
        return np.memmap(p, dtype=np.uint8, mode="r")
    _check_token_array(p, tokens, vocab_size)
    return tokens


def _check_token_array(path: Path, tokens: np.ndarray, vocab_size: int) -> None:
    if tokens.ndim != 1 or tokens.dtype not in (np.uint8, np.dtype("<u2")):
        raise InputError(
            f"token array {os.fspath(path)!r} has dtype {tokens.dtype} and shape {tokens.shape}; "
            f"it must be one-dimensional uint8 or uint16. Save it with "
            f"np.save(path, tokens.astype(np.uint16).ravel())."
        )
    top = max((int(tokens[i : i + _CHUNK].max()) for i in range(0, len(tokens), _CHUNK)), default=0)
    if top >= vocab_size:
        raise InputError(
            f"token array {os.fspath(path)!r} holds token {top}, but the model's vocabulary has "
            f"{vocab_size} entries; raise ModelConfig.vocab_size to at least {top + 1}."
        )


def _start_counts(parts, seq_len: int) -> list[int]:
    """Valid window starts per part: a window of seq_len + 1 bytes must fit inside it."""
    return [max(0, len(p) - seq_len) for p in parts]
