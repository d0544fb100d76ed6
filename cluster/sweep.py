"""Run a sweep on Ray: one task per configuration, each result stored the moment it lands.

    moelaw sweep results/bundled/cpu-moe-v1/spec.toml --workers 2

The sweep is idempotent: runs already in the store with status "ok" are not trained again, so a
sweep whose driver was killed is finished by running the same command again. Failed runs are tried
again on the next invocation unless ``retry_failed=False``.

By default a private Ray instance is started on this machine, bound to 127.0.0.1 with one worker
slot per core and no dashboard. With ``address`` the sweep joins an existing Ray cluster instead;
its authentication token is taken from ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH`` by Ray itself
and is never logged or stored.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cluster.runner import execute
from cluster.spec import PlannedRun, SweepSpec, describe, plan
from results.errors import InputError
from results.schema import RunRecord
from results.store import Store

log = logging.getLogger(__name__)


@dataclass
class SweepSummary:
    """What a sweep did: counts, and the ids and errors of failed runs."""

    planned: int
    skipped: int = 0
    done: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    wall_time_s: float = 0.0

    @property
    def ran(self) -> int:
        return self.done + len(self.failed)


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Start (or join) Ray for the duration of a ``with`` block, then shut it down.

    A local instance listens on 127.0.0.1 only: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps Ray
    from rewriting the loopback address to the machine's primary one, and the node address is
    pinned. The variable is set in this process's environment so that Ray's child processes
    inherit it.
    """
    try:
        import ray
    except ImportError:
        raise InputError(
            "sweeps run on Ray, which is not installed; "
            "install it with pip install 'moelaw[cluster]'."
        ) from None

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if address is None:
        ray.init(
            num_cpus=num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            configure_logging=False,
            log_to_driver=False,
        )
    else:
        ray.init(address=address, configure_logging=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _failed_record(planned: PlannedRun, source: str, error: str) -> RunRecord:
    """A record for a run whose task died (for instance its worker was killed on every retry)."""
    run = planned.run_config
    from cluster.runner import _architecture

    return RunRecord(
        run_id=planned.run_id,
        source=source,
        status="failed",
        error=error,
        N=float(planned.achieved["N"]),
        Na=float(planned.achieved["Na"]),
        D=float(run.train.tokens),
        G=float(planned.achieved["G"]),
        S=float(planned.achieved["S"]),
        E=float(planned.achieved["E"]),
        loss=math.nan,
        seed=run.train.seed,
        wall_time_s=0.0,
        config=run.to_dict(),
        architecture=_architecture(run.model),
        curve=[],
    )


def _targets(planned: PlannedRun) -> dict:
    return {f"target_{k}": float(v) for k, v in planned.point.items() if k in ("N", "Na", "D")}


def pending_runs(spec: SweepSpec, store: Store, *, retry_failed: bool = True) -> list[PlannedRun]:
    """The planned runs of ``spec`` that ``store`` does not hold yet, costliest first."""
    done = store.ids(status="ok") if retry_failed else store.ids(status=None)
    todo = [p for p in plan(spec) if p.run_id not in done]
    # Longest first keeps the last slot from idling behind one big run.
    return sorted(todo, key=lambda p: p.cost, reverse=True)


def run_sweep(
    spec: SweepSpec,
    *,
    store: Store | str | Path | None = None,
    address: str | None = None,
    workers: int | None = None,
    retry_failed: bool = True,
    max_retries: int = 2,
    on_update: Callable[[str, PlannedRun, RunRecord | None], None] | None = None,
) -> SweepSummary:
    """Train every run of ``spec`` that is not in the store yet, on Ray.

    Parameters
    ----------
    spec : SweepSpec
        The checked sweep (see :func:`cluster.spec.load_spec`).
    store : Store or path, optional
        Where results go; defaults to ``spec.store``.
    address : str, optional
        Address of an existing Ray cluster; default starts a private one on 127.0.0.1.
    workers : int, optional
        Worker slots of the private instance (default: one per core). Each run uses one CPU.
    retry_failed : bool
        Train again runs stored as failed (default True).
    max_retries : int
        How often Ray retries a run whose worker process died.
    on_update : callable, optional
        Called as ``on_update(event, planned, record)`` with event "start", "ok" or "failed"; the
        command-line program uses it for its progress bar.

    Returns
    -------
    SweepSummary
    """
    started = time.perf_counter()
    planned = plan(spec)  # refuses a bad spec before anything is created
    store = store if isinstance(store, Store) else Store(store or spec.store, create=True)
    todo = pending_runs(spec, store, retry_failed=retry_failed)
    summary = SweepSummary(planned=len(planned), skipped=len(planned) - len(todo))
    if not todo:
        return summary

    import ray

    with ray_session(address, workers):
        task = ray.remote(num_cpus=1, max_retries=max_retries)(execute)
        refs = {}
        for p in todo:
            ref = task.remote(
                p.run_config.to_dict(), p.run_id, spec.name, p.achieved, extra=_targets(p)
            )
            refs[ref] = p
            if on_update:
                on_update("start", p, None)

        # Store each result as soon as it lands.
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=5.0)
            for ref in ready:
                p = refs.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    record = _failed_record(p, spec.name, f"{type(exc).__name__}: {exc}")
                store.write(record)
                if record.status == "ok":
                    summary.done += 1
                else:
                    summary.failed[p.run_id] = record.error.splitlines()[0]
                    log.warning("run %s (%s) failed: %s", p.run_id, describe(p.point), record.error)
                if on_update:
                    on_update(record.status, p, record)

    summary.wall_time_s = time.perf_counter() - started
    return summary
