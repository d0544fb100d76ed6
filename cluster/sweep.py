"""Run a sweep on Ray: one task per configuration, each result stored the moment it lands.

    moelaw sweep results/bundled/cpu-moe-v2/spec.toml --workers 2

The sweep is idempotent: runs already in the store with status "ok" are not trained again, so a
sweep whose driver was killed is finished by running the same command again. Failed runs are tried
again on the next invocation unless ``retry_failed=False``.

By default a private Ray instance is started on this machine, bound to 127.0.0.1 with one worker
slot per core and no dashboard. With ``address`` the sweep joins an existing Ray cluster instead;
its authentication token is taken from ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH`` by Ray itself
and is never logged or stored. On a cluster, our packages reach the workers through the task's
runtime environment (``py_modules``) and the data files through Ray's object store (their bytes are
put there once), so no shared disk is assumed.

Fault tolerance, in layers:

1. A worker process that dies (killed, pre-empted node) is retried at once by Ray, up to
   ``[schedule] worker_retries`` times; the new attempt resumes from the run's last checkpoint
   (``<store>/checkpoints/<run_id>``, removed once the run's record is stored).
2. A run that ran out of memory, or whose worker died on every Ray retry, is submitted again by this
   driver after a backoff (``backoff_s``, doubling), up to ``[schedule] retries`` times.
3. A run whose configuration is at fault (class "config_error") or that fails otherwise is stored
   as failed with its error and class at once; the rest of the sweep goes on.
4. Each result is stored the moment it lands, once (the store keeps one file per run id), so a
   killed driver restarted with the same spec continues where it stopped.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cluster import runner
from cluster.runner import OOM, RETRYABLE, WORKER_DIED, classify, execute
from cluster.spec import PlannedRun, SweepSpec, describe, plan
from results.errors import InputError
from results.schema import RunRecord
from results.store import Store

log = logging.getLogger(__name__)


@dataclass
class SweepSummary:
    """What a sweep did: counts, the ids and errors of failed runs, and how often runs were retried.

    ``failed`` maps a run id to the first line of its error, which opens with the failure class in
    brackets ("[oom] ...", "[worker_died] ...", "[config_error] ...", "[error] ...").
    """

    planned: int
    skipped: int = 0
    done: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    retried: int = 0
    wall_time_s: float = 0.0
    run_time_s: float = 0.0  # sum of the stored runs' own wall times

    @property
    def ran(self) -> int:
        return self.done + len(self.failed)


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Start (or join) Ray for the duration of a ``with`` block, then shut it down.

    A local instance listens on 127.0.0.1 only: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps Ray
    from rewriting the loopback address to the machine's primary one, and the node address is
    pinned. The variable is set in this process's environment so that Ray's child processes
    inherit it. Inside another ``ray_session`` this does nothing: the outer one stays open.

    A local instance also runs its workers at normal priority (``RAY_worker_niceness=0``; Ray's
    default is 15, meant for interactive drivers): training runs are the sweep's whole point, and
    at niceness 15 any other busy process on the machine starves them.
    """
    try:
        import ray
    except ImportError:
        raise InputError(
            "sweeps run on Ray, which is not installed; "
            "install it with pip install 'moelaw[cluster]'."
        ) from None

    if ray.is_initialized():  # an enclosing session (the adaptive design's) stays open
        yield
        return
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    _sync_loopback_flag()
    if address is None:
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(
            num_cpus=num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            configure_logging=False,
            log_to_driver=False,
        )
    else:
        check_reachable(address, CONNECT_TIMEOUT_S)
        ray.init(
            address=address,
            configure_logging=False,
            log_to_driver=False,
            runtime_env={"py_modules": _our_packages()},
        )
    try:
        yield
    finally:
        ray.shutdown()


CONNECT_TIMEOUT_S = 30.0
"""Seconds to wait for the Ray cluster at ``--address`` to answer before refusing the sweep.

Ray itself retries a silent address for about ten minutes (20 attempts of 30 s in Ray 2.60), and
its ``ray.init`` takes no timeout for this."""

# Run in a child process: one GCS client, which starts no Ray process. Exit 0 when the GCS
# answered, 1 when it did not, 3 when this Ray has no such client (the check is then skipped).
_PROBE = """
import sys
try:
    from ray._raylet import GcsClient
except Exception:
    sys.exit(3)
try:
    GcsClient(address=sys.argv[1]).cluster_id
except Exception:
    sys.exit(1)
"""


#: Addresses that answered in this process: checked once, not again by each sweep or session.
_REACHED: set[str] = set()


def check_reachable(address: str, timeout_s: float) -> None:
    """Refuse an address where no Ray cluster answers within ``timeout_s`` seconds.

    The GCS (Ray's head service) is asked for the cluster's id from a child process that is
    killed at the deadline, so the wait is bounded whatever Ray's own retries would do. Ray reads
    its connect timeout from ``RAY_py_gcs_connect_timeout_s`` (default 30 s), which the child gets
    set to the same bound.
    """
    if address in _REACHED:
        return
    env = {**os.environ, "RAY_py_gcs_connect_timeout_s": str(max(1, math.ceil(timeout_s)))}
    child = subprocess.Popen(
        [sys.executable, "-c", _PROBE, address],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        status = child.wait(timeout_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        status = None
    if status in (0, 3):
        _REACHED.add(address)
        return
    raise InputError(
        f"cannot reach a Ray cluster at {address} within {timeout_s:g} s; start one with "
        "`python -m cluster.local_cluster SPEC` (see README: it runs the sweep on a local "
        "two-node cluster), drop --address to use a private local Ray, or check the address"
    )


def _sync_loopback_flag() -> None:
    """Make Ray's cached copy of RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER agree with the environment.

    Ray reads the variable once, when it is first imported; if that happened before the variable
    was set (another library, a test session), a driver would resolve 127.0.0.1 to the primary
    address and never reach a loopback cluster. This sets the value Ray would have read.
    """
    from ray._private import ray_constants

    wanted = os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"].lower() in ("1", "true")
    ray_constants.ENABLE_RAY_CLUSTER = wanted


def _our_packages() -> list:
    """The packages a worker needs, shipped with the job so that no shared disk is assumed."""
    import cluster
    import results
    import trainer

    return [cluster, results, trainer]


def _failed_record(planned: PlannedRun, source: str, error: str, kind: str) -> RunRecord:
    """A record for a run whose task died (for instance its worker was killed on every retry)."""
    run = planned.run_config
    from cluster.runner import _architecture

    return RunRecord(
        run_id=planned.run_id,
        source=source,
        status="failed",
        error=f"[{kind}] {error}",
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
        extra={**_targets(planned), "failure": kind},
    )


def _targets(planned: PlannedRun) -> dict:
    return {f"target_{k}": float(v) for k, v in planned.point.items() if k in ("N", "Na", "D")}


def order_runs(runs: list[PlannedRun], order: str) -> list[PlannedRun]:
    """Runs in the order they are submitted.

    "longest" (estimated FLOPs, largest first) keeps the last slot from idling behind one big run;
    "shortest" returns the most results soonest; "informative" takes the points that are farthest
    from every point taken before, in log factor space (greedy maximin), so that the first results
    already span the design; "spec" keeps the spec's order.
    """
    if order == "spec":
        return list(runs)
    if order in ("longest", "shortest"):
        return sorted(runs, key=lambda p: p.cost, reverse=order == "longest")
    return _maximin(runs)


def _maximin(runs: list[PlannedRun]) -> list[PlannedRun]:
    import numpy as np

    if len(runs) <= 2:
        return sorted(runs, key=lambda p: p.cost)

    def coordinates(p: PlannedRun) -> list[float]:
        a, tokens = p.achieved, p.run_config.train.tokens
        return [math.log(a["N"]), math.log(a["Na"]), math.log(tokens), math.log(a["G"]), a["S"]]

    X = np.array([coordinates(p) for p in runs])
    span = X.max(axis=0) - X.min(axis=0)
    X = (X - X.min(axis=0)) / np.where(span > 0, span, 1.0)

    # Start from the cheapest run, then always add the one farthest from all chosen so far.
    chosen = [int(np.argmin([p.cost for p in runs]))]
    distance = np.linalg.norm(X - X[chosen[0]], axis=1)
    while len(chosen) < len(runs):
        distance[chosen] = -1.0
        nxt = int(np.argmax(distance))
        chosen.append(nxt)
        distance = np.minimum(distance, np.linalg.norm(X - X[nxt], axis=1))
    return [runs[i] for i in chosen]


def pending_runs(
    spec: SweepSpec, store: Store, *, retry_failed: bool = True, planned: list | None = None
) -> list[PlannedRun]:
    """The planned runs of ``spec`` (or ``planned``) not in ``store`` yet, in the spec's order."""
    done = store.ids(status="ok") if retry_failed else store.ids(status=None)
    todo = [p for p in (plan(spec) if planned is None else planned) if p.run_id not in done]
    return order_runs(todo, spec.schedule.order)


def failure_class(exc: BaseException) -> str:
    """The failure class of an error Ray raised for a task (see :func:`cluster.runner.classify`)."""
    import ray.exceptions as rex

    if isinstance(exc, rex.RayTaskError) and exc.cause is not None:
        return classify(exc.cause)
    if isinstance(exc, rex.OutOfMemoryError):
        return OOM
    dead = (rex.WorkerCrashedError, rex.NodeDiedError, rex.LocalRayletDiedError, rex.OwnerDiedError)
    if isinstance(exc, dead):
        return WORKER_DIED
    return runner.ERROR


def _data_blob(spec: SweepSpec) -> dict[str, bytes]:
    """The data files' bytes by name, for workers that do not share the driver's disk."""
    blobs = {}
    for path in spec.files:
        if path.name in blobs:
            raise InputError(
                f"two data files of sweep '{spec.name}' are named '{path.name}'; on a Ray "
                "cluster files travel by name, so rename one of them."
            )
        blobs[path.name] = path.read_bytes()
    return blobs


@dataclass
class _Attempt:
    planned: PlannedRun
    number: int = 1  # this driver's attempt at the run, 1-based
    not_before: float = 0.0  # time.monotonic() before which it is not submitted


def run_sweep(
    spec: SweepSpec,
    *,
    store: Store | str | Path | None = None,
    address: str | None = None,
    workers: int | None = None,
    retry_failed: bool = True,
    max_retries: int | None = None,
    max_concurrent: int | None = None,
    checkpoints: bool = True,
    executor: Callable[..., RunRecord] | None = None,
    only: set[str] | None = None,
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
        Address of an existing Ray cluster ("127.0.0.1:6379"); default starts a private one on
        127.0.0.1. With an address, code travels as ``py_modules`` and data through the object
        store.
    workers : int, optional
        CPUs of the private instance (default: one per core).
    retry_failed : bool
        Train again runs stored as failed (default True).
    max_retries : int, optional
        Ray's retries of a run whose worker process died (default ``[schedule] worker_retries``).
    max_concurrent : int, optional
        Runs in flight at once (default ``[schedule] max_concurrent``, else all).
    checkpoints : bool
        Give each run a checkpoint folder under the store so that a retry resumes (default True).
    executor : callable, optional
        Replaces :func:`cluster.runner.execute` (same signature); for tests and benchmarks.
    only : set of str, optional
        Train only these run ids of the spec (the adaptive design's picks); default all. An
        ``[adaptive]`` table does not limit this function: :func:`cluster.adaptive.adaptive_sweep`
        decides what to train.
    on_update : callable, optional
        Called as ``on_update(event, planned, record)`` with event "start", "retry", "ok" or
        "failed"; the command-line program uses it for its progress bar.

    Returns
    -------
    SweepSummary
    """
    started = time.perf_counter()
    if max_concurrent is not None and max_concurrent < 1:
        raise InputError(f"max_concurrent is {max_concurrent}; it must be at least 1.")
    planned = plan(spec)  # refuses a bad spec before anything is created
    store = store if isinstance(store, Store) else Store(store or spec.store, create=True)
    store.check_writable()  # a read-only store fails here, before Ray starts or anything trains
    todo = pending_runs(spec, store, retry_failed=retry_failed, planned=planned)
    if only is not None:
        planned = [p for p in planned if p.run_id in only]
        todo = [p for p in todo if p.run_id in only]
    summary = SweepSummary(planned=len(planned), skipped=len(planned) - len(todo))
    if not todo:
        return summary

    with ray_session(address, workers):
        loop = _Loop(spec, store, summary, address, executor or execute, on_update)
        loop.run(todo, max_retries, max_concurrent, checkpoints)
    summary.wall_time_s = time.perf_counter() - started
    return summary


class _Loop:
    """The driver's loop: submit within the concurrency limit, store what lands, retry failures."""

    def __init__(self, spec, store, summary, address, executor, on_update) -> None:
        import ray

        from cluster.resources import Resources

        self.ray, self.spec, self.store, self.summary = ray, spec, store, summary
        self.on_update = on_update or (lambda *args: None)
        self.resources = spec.resources or Resources()
        self.task = ray.remote(executor)
        self.data = ray.put(_data_blob(spec)) if address else None
        self.remote_disk = address is not None

    def run(self, todo, max_retries, max_concurrent, checkpoints) -> None:
        schedule = self.spec.schedule
        self.worker_retries = schedule.worker_retries if max_retries is None else max_retries
        self.limit = max_concurrent or schedule.max_concurrent or len(todo)
        self.checkpoints = checkpoints
        waiting = [_Attempt(p) for p in todo]
        running: dict = {}
        while waiting or running:
            self._submit(waiting, running)
            timeout = self._next_wake(waiting, running)
            ready, _ = self.ray.wait(list(running), num_returns=1, timeout=timeout)
            for ref in ready:
                self._land(running.pop(ref), ref, waiting)

    def _submit(self, waiting: list[_Attempt], running: dict) -> None:
        """Submit waiting runs, in order, while there is room and their backoff is over."""
        now = time.monotonic()
        for attempt in list(waiting):
            if len(running) >= self.limit:
                return
            if attempt.not_before > now:
                continue
            waiting.remove(attempt)
            running[self._remote(attempt.planned)] = attempt
            self.on_update("start", attempt.planned, None)

    def _remote(self, p: PlannedRun):
        from cluster.resources import task_options

        options = task_options(self.resources, p.run_config)
        folder = self._checkpoint_dir(p)
        return self.task.options(max_retries=self.worker_retries, **options).remote(
            p.run_config.to_dict(),
            p.run_id,
            self.spec.name,
            p.achieved,
            extra=_targets(p),
            checkpoint_dir=str(folder) if folder else None,
            data=self.data,
            **({"remove_checkpoint": True} if self.remote_disk and folder else {}),
        )

    def _checkpoint_dir(self, p: PlannedRun) -> Path | None:
        """Under the store locally; on a cluster, in the worker's temp folder (no shared disk).

        On a cluster a retry on the same node resumes; on another node it starts afresh, and the
        worker removes its checkpoint itself once the run is done.
        """
        if not self.checkpoints:
            return None
        if self.remote_disk:
            return Path(tempfile.gettempdir()) / "moelaw-checkpoints" / p.run_id
        return self.store.path / "checkpoints" / p.run_id

    def _next_wake(self, waiting: list[_Attempt], running: dict) -> float | None:
        """Seconds to wait for a result: until the next backoff ends, or 1 s at most."""
        if not running:
            return max(0.0, min(a.not_before for a in waiting) - time.monotonic())
        return 1.0

    def _land(self, attempt: _Attempt, ref, waiting: list[_Attempt]) -> None:
        """Store a finished run, or send it back to wait for another attempt."""
        p = attempt.planned
        try:
            record = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            kind = failure_class(exc)
            record = _failed_record(p, self.spec.name, f"{type(exc).__name__}: {exc}", kind)
        kind = record.extra.get("failure", "")
        if (
            record.status != "ok"
            and kind in RETRYABLE
            and attempt.number <= self.spec.schedule.retries
        ):
            delay = self.spec.schedule.backoff_s * 2 ** (attempt.number - 1)
            log.warning("run %s failed (%s); trying again in %.1f s", p.run_id, kind, delay)
            waiting.insert(0, _Attempt(p, attempt.number + 1, time.monotonic() + delay))
            self.summary.retried += 1
            self.on_update("retry", p, record)
            return
        self._store(attempt, record)

    def _store(self, attempt: _Attempt, record: RunRecord) -> None:
        p = attempt.planned
        record.extra["driver_attempts"] = attempt.number
        self.store.write(record)
        if record.status == "ok":
            self.summary.done += 1
            self.summary.run_time_s += record.wall_time_s
            folder = self._checkpoint_dir(p)
            if folder is not None and not self.remote_disk:
                shutil.rmtree(folder, ignore_errors=True)
        else:
            self.summary.failed[p.run_id] = record.error.splitlines()[0]
            log.warning("run %s (%s) failed: %s", p.run_id, describe(p.point), record.error)
        self.on_update(record.status, p, record)
