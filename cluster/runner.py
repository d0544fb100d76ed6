"""Run one planned configuration and turn the outcome into a stored record.

This is the unit of work of a sweep (one Ray task) and of ``moelaw train``. A configuration that
raises is not retried here: it becomes a record with ``status="failed"``, the error and its class
(:func:`classify`), so one bad configuration cannot stop a sweep and its failure is visible in the
store. The sweep driver decides from the class whether to try again (out of memory: yes, after a
backoff; an error in the configuration: no).

With a ``checkpoint_dir`` the trainer saves its state at every evaluation and a later attempt of the
same run (Ray's retry after the worker process died, or the next sweep) resumes from it. Each
attempt leaves ``attempts`` and ``worker.pid`` in that folder; the record's extra says which attempt
finished the run and from which step it resumed (``attempt``, ``resumed_from_step``).
"""

from __future__ import annotations

import logging
import math
import os
import time
import traceback
from pathlib import Path

from results.schema import RunRecord

log = logging.getLogger(__name__)


def _architecture(model) -> dict:
    return {
        "d_model": model.d_model,
        "n_layers": model.n_layers,
        "n_heads": model.n_heads,
        "n_experts": model.n_experts,
        "top_k": model.top_k,
        "n_shared": model.n_shared,
        "d_expert": model.d_expert,
        "vocab_size": model.vocab_size,
        "seq_len": model.seq_len,
    }


# Failure classes stored in a failed record's error text (first word, in brackets) and extra.
OOM, WORKER_DIED, CONFIG_ERROR, ERROR = "oom", "worker_died", "config_error", "error"
RETRYABLE = frozenset({OOM, WORKER_DIED})


def classify(exc: BaseException) -> str:
    """The failure class of an exception raised while training one run.

    "oom" for running out of host or accelerator memory (``MemoryError``,
    ``torch.OutOfMemoryError``, or a message saying "out of memory"), "config_error" for errors a
    configuration causes (``InputError``, ``ValueError``, ``TypeError``, a diverged loss), and
    "error" for anything else.
    """
    from results.errors import InputError

    name = type(exc).__name__
    if isinstance(exc, MemoryError) or name == "OutOfMemoryError" or "out of memory" in str(exc):
        return OOM
    if isinstance(exc, InputError | ValueError | TypeError) or name == "TrainingDivergedError":
        return CONFIG_ERROR
    return ERROR


def _start_attempt(checkpoint_dir: str | None) -> dict:
    """Count this attempt and note where it resumes; returns the record's extra fields."""
    if checkpoint_dir is None:
        return {"attempt": 1}
    folder = Path(checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    counter = folder / "attempts"
    attempt = int(counter.read_text() or 0) + 1 if counter.exists() else 1
    counter.write_text(str(attempt))
    (folder / "worker.pid").write_text(str(os.getpid()))
    return {"attempt": attempt, "resumed_from_step": _checkpoint_step(folder)}


def _checkpoint_step(folder: Path) -> int:
    """The optimiser step a checkpoint in ``folder`` holds (0 if none)."""
    path = folder / "checkpoint.pt"
    if not path.exists():
        return 0
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["step"])
    except Exception:  # an unreadable checkpoint is ignored by the trainer as well
        return 0


def _node_id() -> str:
    """The Ray node this process runs on, or "" outside Ray."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
    except Exception:
        return ""


def _local_data(run_config: dict, data: dict[str, bytes] | None) -> dict:
    """Point the run at local copies of shipped data files (same names, so the same run id)."""
    if not data:
        return run_config
    import hashlib
    import tempfile

    paths = []
    for path in run_config["train"]["data"]:
        name = Path(path).name
        blob = data[name]
        folder = Path(tempfile.gettempdir()) / "moelaw-data" / hashlib.sha256(blob).hexdigest()[:16]
        local = folder / name
        if not local.exists() or local.stat().st_size != len(blob):
            folder.mkdir(parents=True, exist_ok=True)
            tmp = local.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(blob)
            os.replace(tmp, local)
        paths.append(str(local))
    return {**run_config, "train": {**run_config["train"], "data": paths}}


def execute(
    run_config: dict,
    run_id: str,
    source: str,
    achieved: dict,
    *,
    device: str = "cpu",
    extra: dict | None = None,
    checkpoint_dir: str | None = None,
    data: dict[str, bytes] | None = None,
    remove_checkpoint: bool = False,
) -> RunRecord:
    """Train one configuration and return its record (status "ok" or "failed").

    Parameters
    ----------
    run_config : dict
        ``trainer.config.RunConfig.to_dict()`` of the run.
    run_id : str
        The run's id (hash of ``RunConfig.identity()``).
    source : str
        Name of the sweep, stored with the record.
    achieved : dict
        Factors the architecture achieves (N, Na, G, S, E), used if training fails early.
    device : str
        Torch device to train on.
    extra : dict, optional
        Scalars to store beside the run (the spec's targets, for instance).
    checkpoint_dir : str, optional
        Folder for this run's checkpoint; a later attempt resumes from it.
    data : dict of str to bytes, optional
        The bytes of the run's data files by file name, for workers that do not share the
        driver's disk: they are written to a local cache folder and the run reads them there.
    remove_checkpoint : bool
        Remove ``checkpoint_dir`` once the run has succeeded (on a cluster, where the driver
        cannot reach the worker's disk); locally the driver removes it after storing the record.
    """
    from trainer.config import RunConfig
    from trainer.train import train

    run = RunConfig.from_dict(run_config)
    started = time.perf_counter()
    extra = {**(extra or {}), **_start_attempt(checkpoint_dir), "node_id": _node_id()}
    try:
        local = RunConfig.from_dict(_local_data(run_config, data))
        result = train(local, device=device, checkpoint_dir=checkpoint_dir)
    except Exception as exc:  # a failed configuration is data, not a crash of the sweep
        kind = classify(exc)
        log.info("run %s failed (%s): %s", run_id, kind, exc)
        return RunRecord(
            run_id=run_id,
            source=source,
            status="failed",
            error=f"[{kind}] {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}",
            N=float(achieved.get("N", math.nan)),
            Na=float(achieved.get("Na", math.nan)),
            D=float(run.train.tokens),
            G=float(achieved.get("G", math.nan)),
            S=float(achieved.get("S", math.nan)),
            E=float(achieved.get("E", math.nan)),
            loss=math.nan,
            seed=run.train.seed,
            wall_time_s=time.perf_counter() - started,
            config=run.to_dict(),
            architecture=_architecture(run.model),
            curve=[],
            extra={**extra, "failure": kind},
        )

    if remove_checkpoint and checkpoint_dir:
        import shutil

        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    factors = {k: float(v) for k, v in result.factors.items()}
    counts = {f"count_{k}": float(v) for k, v in result.counts.items()}
    return RunRecord(
        run_id=run_id,
        source=source,
        status="ok",
        **factors,
        loss=float(result.loss),
        seed=run.train.seed,
        wall_time_s=float(result.wall_time_s),
        config=run.to_dict(),
        architecture=_architecture(run.model),
        curve=list(result.curve),
        extra={
            **_scalars(getattr(result, "extra", {})),
            **counts,
            "tokens_per_s": float(result.tokens_per_s),
            "steps": int(result.steps),
            **extra,
        },
    )


def _scalars(values: dict) -> dict:
    """The finite numbers, booleans and strings of a training result's extra fields (routing
    statistics, FLOPs, device), as a stored record can hold them."""
    kept = {}
    for key, value in values.items():
        if isinstance(value, bool | str) or isinstance(value, int | float) and math.isfinite(value):
            kept[key] = value
    return kept
