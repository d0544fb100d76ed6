"""What one run asks Ray for: CPUs, a GPU fraction sized by its memory footprint, custom resources.

A spec's ``[resources]`` table declares them (see :mod:`cluster.spec`)::

    [resources]
    cpus = 1                  # CPUs per run (also its torch thread count on Ray)
    gpus = "auto"             # a fraction per run, or "auto": estimated memory / gpu_memory_gb
    gpu_memory_gb = 80        # memory of one GPU, for "auto"
    custom = { gpu_slot = 1 } # custom Ray resources per run

With ``gpus = "auto"`` small runs share a GPU: a run estimated at 6 GB on an 80 GB GPU asks for
0.1 of it, so Ray packs up to ten of them and never more than fit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from results.errors import InputError

RESOURCE_KEYS = ("cpus", "gpus", "gpu_memory_gb", "custom")

# Bytes per parameter while training in fp32 with AdamW: weights, gradients, two moments.
_BYTES_PER_PARAM = 16
# Head room over the estimate: allocator fragmentation, CUDA context, temporary buffers.
_SAFETY = 1.5
_CUDA_CONTEXT_BYTES = 500e6
# GPU fractions are rounded up to this step so that Ray's accounting stays exact.
_GPU_STEP = 0.01


@dataclass(frozen=True)
class Resources:
    """Per-run resource requests of a sweep.

    Attributes
    ----------
    cpus : float
        CPUs per run.
    gpus : float or "auto"
        GPU fraction per run; "auto" sizes it from :func:`estimate_memory_bytes`.
    gpu_memory_gb : float
        Memory of one GPU in GB (10^9 bytes), used by "auto".
    custom : dict of str to float
        Custom Ray resources per run.
    """

    cpus: float = 1.0
    gpus: float | str = 0.0
    gpu_memory_gb: float = 80.0
    custom: dict = field(default_factory=dict)


def parse_resources(table: Any, where: str) -> Resources:
    """Check a ``[resources]`` table; refuse unknown keys and impossible amounts."""
    from cluster.spec import _refuse_unknown

    if not isinstance(table, Mapping):
        raise InputError(f"[resources] of {where} must be a table, got {table!r}.")
    _refuse_unknown(table, RESOURCE_KEYS, f"[resources] of {where}")
    cpus = _amount(table.get("cpus", 1.0), "cpus", where)
    if cpus <= 0:
        raise InputError(
            f"[resources] cpus of {where} must be positive, got {cpus}; write cpus = 1."
        )
    gpus = table.get("gpus", 0.0)
    if gpus != "auto":
        gpus = _amount(gpus, "gpus", where)
        if gpus > 1 and gpus != int(gpus):
            raise InputError(
                f"[resources] gpus of {where} is {gpus}; above 1 it must be a whole number."
            )
    memory = _amount(table.get("gpu_memory_gb", 80.0), "gpu_memory_gb", where)
    custom = table.get("custom", {})
    if not isinstance(custom, Mapping):
        raise InputError(f"[resources] custom of {where} must be a table like {{ slot = 1 }}.")
    custom = {str(k): _amount(v, f"custom.{k}", where) for k, v in custom.items()}
    return Resources(cpus, gpus, memory, custom)


def _amount(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InputError(
            f"[resources] {key} of {where} must be a non-negative number, got {value!r}."
        )
    return float(value)


def estimate_memory_bytes(model, batch_size: int) -> float:
    """Rough peak accelerator memory of training ``model`` (a ModelConfig), in bytes.

    Weights, gradients and AdamW's two moments in fp32 (16 bytes per parameter, embeddings
    included), plus the activations kept for the backward pass: per layer and token about
    34·D values for attention and norms, 5·heads·T for attention scores and 3·F per active
    expert (Korthikanti et al. 2022's count, extended to experts), and the logits (2·V per token).
    Multiplied by a safety factor of 1.5 and offset by a CUDA context of 0.5 GB.
    """
    from trainer.accounting import count_parameters

    counts = count_parameters(model)
    active = model.top_k + model.n_shared
    per_token_layer = 34 * model.d_model + 5 * model.n_heads * model.seq_len
    per_token_layer += 3 * model.d_expert * active
    per_token = model.n_layers * per_token_layer + 2 * model.vocab_size
    activations = 2.0 * batch_size * model.seq_len * per_token  # bf16 / fp16 activations
    weights = _BYTES_PER_PARAM * counts["N_with_embeddings"]
    return _SAFETY * (weights + activations) + _CUDA_CONTEXT_BYTES


def gpu_fraction(model, batch_size: int, gpu_memory_gb: float) -> float:
    """The fraction of one GPU a run needs, rounded up to 0.01 (at most 1)."""
    need = estimate_memory_bytes(model, batch_size) / (gpu_memory_gb * 1e9)
    return min(1.0, math.ceil(need / _GPU_STEP) * _GPU_STEP)


def task_options(resources: Resources, run_config) -> dict:
    """Ray ``.options(...)`` for one run: num_cpus, num_gpus and custom resources."""
    gpus = resources.gpus
    if gpus == "auto":
        gpus = gpu_fraction(run_config.model, run_config.train.batch_size, resources.gpu_memory_gb)
    options: dict = {"num_cpus": resources.cpus, "num_gpus": float(gpus)}
    if resources.custom:
        options["resources"] = dict(resources.custom)
    return options
