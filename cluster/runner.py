"""Run one planned configuration and turn the outcome into a stored record.

This is the unit of work of a sweep (one Ray task) and of ``moelaw train``. A configuration that
raises is not retried here: it becomes a record with ``status="failed"`` and the error, so one bad
configuration cannot stop a sweep and its failure is visible in the store.
"""

from __future__ import annotations

import logging
import math
import time
import traceback

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


def execute(
    run_config: dict,
    run_id: str,
    source: str,
    achieved: dict,
    *,
    device: str = "cpu",
    extra: dict | None = None,
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
    """
    from trainer.config import RunConfig
    from trainer.train import train

    run = RunConfig.from_dict(run_config)
    started = time.perf_counter()
    try:
        result = train(run, device=device)
    except Exception as exc:  # a failed configuration is data, not a crash of the sweep
        log.info("run %s failed: %s", run_id, exc)
        return RunRecord(
            run_id=run_id,
            source=source,
            status="failed",
            error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}",
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
            extra=dict(extra or {}),
        )

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
        extra={**counts, "tokens_per_s": float(result.tokens_per_s), **(extra or {})},
    )
