"""A folder of training runs, safe for many concurrent writers.

Layout of a store folder::

    <store>/moelaw-store.json       marker: {"kind": "moelaw results store", "schema_version": 1}
    <store>/runs/<run_id>.parquet   one run per file, one row in results.schema.ARROW_SCHEMA
    <store>/runs/.<run_id>.*.tmp    a write in progress (or one whose writer died): never read
    <store>/runs/.lock              serialises the final check-and-rename of concurrent writers

Writes are atomic: a run is written to a temporary file in ``runs/``, flushed and fsynced, then
renamed over its final name with :func:`os.replace`. A writer killed at any moment leaves either
the complete file or no file (plus a stray temporary file, which readers ignore and a later writer
deletes once it is a minute old). Writers of different runs never touch the same file, so a sweep
can write from many processes, or many machines sharing a POSIX file system, without a database.

Example
-------
>>> store = Store("runs/my-sweep")                                  # doctest: +SKIP
>>> store.write(record)                                             # doctest: +SKIP
True
>>> store.runs()[["run_id", "N", "D", "loss"]]                      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from results.errors import InputError, StoreError
from results.schema import ARROW_SCHEMA, SCHEMA_VERSION, STATUSES, RunRecord

try:
    import fcntl
except ImportError:  # not POSIX: the rename is still atomic, only the ok-over-failed race is open
    fcntl = None

__all__ = ["MARKER_NAME", "Store"]

logger = logging.getLogger(__name__)

MARKER_NAME = "moelaw-store.json"
STORE_KIND = "moelaw results store"
RUNS_DIR = "runs"
LOCK_NAME = ".lock"
TEMP_SUFFIX = ".tmp"
STALE_TEMP_S = 60.0

# Columns of runs(): everything but the curve; architecture and extra are expanded afterwards.
_RUN_COLUMNS = [name for name in ARROW_SCHEMA.names if name != "curve"]
_SCALARS = (type(None), bool, int, float, str)


class Store:
    """A results store: one Parquet file per run under ``<path>/runs``.

    Parameters
    ----------
    path : str or os.PathLike
        The store folder.
    create : bool, default True
        Create the store when ``path`` does not exist or is an empty folder. With ``False`` a
        missing store is an error.

    Raises
    ------
    StoreError
        When ``path`` is a file, a non-empty folder that is not a store, a store written by a
        newer schema, missing (with ``create=False``) or cannot be created.

    Notes
    -----
    ``run_id in store`` and :meth:`ids` count successful runs by default, like :meth:`runs`, so
    a sweep that skips the runs in the store retries the failed ones.
    """

    def __init__(self, path, create: bool = True):
        self.path = Path(path).expanduser()
        self._runs_dir = self.path / RUNS_DIR
        self._last_cleanup = 0.0

        marker = self.path / MARKER_NAME
        if marker.is_file():
            self._check_marker(marker)
        elif create and self._is_new_folder():
            self._create()
        else:
            raise StoreError(self._not_a_store_message(create))

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # ----- opening -------------------------------------------------------------------------

    def _is_new_folder(self) -> bool:
        if not self.path.exists():
            return True
        return self.path.is_dir() and not any(self.path.iterdir())

    def _not_a_store_message(self, create: bool) -> str:
        if not self.path.exists():
            return (
                f"no results store at {self.path} (the path does not exist); check the path, or "
                f"create one: {_creating_commands(self.path)}"
            )
        if not self.path.is_dir():
            return f"{self.path} is a file, not a results store folder; pass the store's folder"
        if create:
            return (
                f"{self.path} is a non-empty folder without {MARKER_NAME}, so it is not a moelaw "
                "results store; pass a store folder, or a new or empty folder to create one"
            )
        return (
            f"{self.path} is not a moelaw results store (no {MARKER_NAME}); pass a store folder, "
            f"or create one in a new or empty folder NEW: {_creating_commands('NEW')}"
        )

    def _check_marker(self, marker: Path) -> None:
        try:
            info = json.loads(marker.read_text())
            kind, version = info["kind"], int(info["schema_version"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"store marker {marker} is unreadable ({exc}); restore it as "
                f'{{"kind": "{STORE_KIND}", "schema_version": {SCHEMA_VERSION}}}'
            ) from None
        if kind != STORE_KIND:
            raise StoreError(f"{marker} names kind {kind!r}, not {STORE_KIND!r}; not a store")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path} has schema version {version}, newer than this moelaw reads "
                f"({SCHEMA_VERSION}); upgrade moelaw"
            )

    def _create(self) -> None:
        text = json.dumps({"kind": STORE_KIND, "schema_version": SCHEMA_VERSION}) + "\n"
        try:
            self._runs_dir.mkdir(parents=True, exist_ok=True)
            temp = self.path / f".{MARKER_NAME}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
            temp.write_text(text)
            os.replace(temp, self.path / MARKER_NAME)
        except OSError as exc:
            raise StoreError(
                f"cannot create a results store at {self.path}: {exc.strerror or exc}; choose a "
                "folder you can write to"
            ) from None
        logger.info("created results store %s", self.path)

    # ----- listing -------------------------------------------------------------------------

    def _files(self) -> dict[str, Path]:
        """Run id -> file, for every finished run file (temporary files are skipped)."""
        if not self._runs_dir.is_dir():
            return {}
        files = {}
        with os.scandir(self._runs_dir) as entries:
            for entry in entries:
                if entry.name.endswith(".parquet") and not entry.name.startswith("."):
                    files[entry.name[: -len(".parquet")]] = Path(entry.path)
        return files

    def _path_of(self, run_id: str) -> Path:
        return self._runs_dir / f"{run_id}.parquet"

    def ids(self, status: str | None = "ok") -> set[str]:
        """Run ids in the store.

        Parameters
        ----------
        status : {"ok", "failed", None}, default "ok"
            Only runs with this status; ``None`` for every stored run (without reading files).

        Returns
        -------
        set of str
        """
        files = self._files()
        if status is None:
            return set(files)
        _check_status(status)
        table = self._read(files, ["run_id", "status"], skip_corrupt=False)
        mask = pc.equal(table.column("status"), status)
        return set(table.filter(mask).column("run_id").to_pylist())

    def __contains__(self, run_id: object) -> bool:
        """Whether a successful run with this id is stored."""
        return isinstance(run_id, str) and self._stored_status(self._path_of(run_id)) == "ok"

    def _stored_status(self, path: Path) -> str | None:
        """Status in an existing run file; None when absent or unreadable."""
        if not path.is_file():
            return None
        try:
            return pq.read_table(path, columns=["status"]).column("status")[0].as_py()
        except (pa.ArrowException, OSError, KeyError, IndexError) as exc:
            logger.warning(
                "run file %s is unreadable (%s); treating the run as not stored", path, exc
            )
            return None

    # ----- writing -------------------------------------------------------------------------

    def write(self, record: RunRecord) -> bool:
        """Store one run atomically.

        Parameters
        ----------
        record : RunRecord

        Returns
        -------
        bool
            False (and nothing written) when a run with this id is already stored with status
            ``"ok"``; True otherwise. An ``"ok"`` record replaces a ``"failed"`` one, a later
            failure replaces an earlier one, and any record replaces an unreadable file.

        Raises
        ------
        StoreError
            When the store folder is not writable.
        """
        if not isinstance(record, RunRecord):
            raise InputError(
                f"Store.write takes a RunRecord, got {type(record).__name__}; build one with "
                "results.RunRecord(...)"
            )
        target = self._path_of(record.run_id)
        if self._stored_status(target) == "ok":
            return False

        # Write the whole file beside its final name, then rename under the lock.
        self._remove_stale_temps()
        temp = self._write_temp(record)
        try:
            with self._lock():
                if self._stored_status(target) == "ok":
                    return False
                os.replace(temp, target)
                temp = None
        finally:
            if temp is not None:
                temp.unlink(missing_ok=True)
        self._fsync_runs_dir()
        return True

    def check_writable(self) -> None:
        """Raise :class:`StoreError` now if runs cannot be written (call before long work)."""
        path = self._create_temp("probe")
        path.unlink(missing_ok=True)

    def _create_temp(self, run_id: str) -> Path:
        """Create an empty temporary file in ``runs/``; permission problems become StoreError."""
        name = f".{run_id}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        path = self._runs_dir / name
        try:
            self._runs_dir.mkdir(exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError as exc:
            raise StoreError(
                f"results store {self.path} is not writable: cannot create a file in "
                f"{self._runs_dir} ({exc.strerror or exc}); make the folder writable or open a "
                "store in another folder"
            ) from None
        return path

    def _write_temp(self, record: RunRecord) -> Path:
        path = self._create_temp(record.run_id)
        try:
            table = pa.Table.from_pylist([record.to_row()], schema=ARROW_SCHEMA)
            with open(path, "wb") as handle:
                pq.write_table(table, handle)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    @contextlib.contextmanager
    def _lock(self):
        """Exclusive lock across processes for the check-then-rename step of write()."""
        if fcntl is None:
            yield
            return
        fd = os.open(self._runs_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _fsync_runs_dir(self) -> None:
        # Makes the rename itself durable; some platforms cannot open folders, which is harmless.
        try:
            fd = os.open(self._runs_dir, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def _remove_stale_temps(self) -> None:
        """Delete temporary files left by dead writers (older than STALE_TEMP_S); once a minute."""
        now = time.time()
        if now - self._last_cleanup < STALE_TEMP_S or not self._runs_dir.is_dir():
            return
        self._last_cleanup = now
        with os.scandir(self._runs_dir) as entries:
            stale = [
                entry.path
                for entry in entries
                if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX)
            ]
        for path in stale:
            with contextlib.suppress(OSError):
                if now - os.stat(path).st_mtime > STALE_TEMP_S:
                    os.unlink(path)
                    logger.info("removed stale temporary file %s", path)

    # ----- reading -------------------------------------------------------------------------

    def _read(self, files: dict[str, Path], columns: list[str], skip_corrupt: bool) -> pa.Table:
        """Read ``columns`` of ``files`` in one pyarrow scan, falling back to per-file checks."""
        table = None
        if files:
            with contextlib.suppress(pa.ArrowException, OSError):
                paths = [str(path) for path in files.values()]
                dataset = ds.dataset(paths, schema=ARROW_SCHEMA, format="parquet")
                table = dataset.to_table(columns=columns)
        else:
            table = ARROW_SCHEMA.empty_table().select(columns)
        if table is not None and table.column("run_id").null_count == 0:
            return table

        # Something is wrong with at least one file: find which, then fail or read the rest.
        bad = {run_id: problem for run_id, problem in self._problems(files).items() if problem}
        if not bad:
            raise StoreError(
                f"reading results store {self.path} failed, yet each run file reads alone; run "
                "the command again (a run may have been written meanwhile), or list unreadable "
                "files with Store.verify() in Python"
            )
        if not skip_corrupt:
            raise StoreError(self._corrupt_message(bad))
        warnings.warn(self._corrupt_message(bad) + " — skipped them", stacklevel=3)
        good = {run_id: path for run_id, path in files.items() if run_id not in bad}
        return self._read(good, columns, skip_corrupt=False)

    def _corrupt_message(self, bad: dict[str, str]) -> str:
        ids = sorted(bad)
        shown = "; ".join(f"{run_id}: {bad[run_id]}" for run_id in ids[:10])
        more = f" (and {len(ids) - 10} more)" if len(ids) > 10 else ""
        return (
            f"results store {self.path} has {len(ids)} unreadable run file(s), run ids "
            f"{', '.join(ids)} ({shown}{more}); delete those files under {self._runs_dir} and "
            "re-run those runs (`moelaw sweep SPEC` runs only the missing ones), or read the "
            "others with skip_corrupt=True in Python"
        )

    def _problems(self, files: dict[str, Path]) -> dict[str, str | None]:
        """Per file: None when it is a complete, well-formed run file, else what is wrong."""
        problems = {}
        for run_id, path in files.items():
            try:
                table = pq.read_table(path)
            except (pa.ArrowException, OSError) as exc:
                problems[run_id] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
                continue
            if not table.schema.equals(ARROW_SCHEMA, check_metadata=False):
                problems[run_id] = "columns differ from results.schema.ARROW_SCHEMA"
            elif table.num_rows != 1 or table.column("run_id")[0].as_py() != run_id:
                problems[run_id] = "file does not hold exactly the run its name says"
            else:
                problems[run_id] = None
        return problems

    def verify(self) -> list[str]:
        """Read every run file completely and return the ids of those that are unreadable.

        Returns
        -------
        list of str
            Sorted run ids whose files are truncated, corrupted, or not run files; empty when
            the store is sound.
        """
        return sorted(run_id for run_id, bad in self._problems(self._files()).items() if bad)

    def get(self, run_id: str) -> RunRecord:
        """The stored record of one run (any status), with every field as written."""
        path = self._path_of(run_id)
        if not path.is_file():
            raise InputError(f"no run {run_id!r} in results store {self.path}; see Store.ids(None)")
        table = self._read({run_id: path}, ARROW_SCHEMA.names, skip_corrupt=False)
        return RunRecord.from_row(table.to_pylist()[0])

    def runs(self, status: str | None = "ok", skip_corrupt: bool = False) -> pd.DataFrame:
        """One row per stored run.

        Parameters
        ----------
        status : {"ok", "failed", None}, default "ok"
            Keep only runs with this status; ``None`` keeps all.
        skip_corrupt : bool, default False
            Warn about unreadable run files and read the rest, instead of raising StoreError.

        Returns
        -------
        pandas.DataFrame
            Columns ``run_id, source, status, error, N, Na, D, G, S, E, loss, seed, wall_time_s,
            version, created_at, config`` (config as canonical JSON), then ``arch_<key>`` for each
            architecture key and ``extra_<key>`` for each scalar extra (missing keys are NaN).
            Sorted by run id. An empty store gives an empty frame with the fixed columns.
        """
        if status is not None:
            _check_status(status)
        table = self._read(self._files(), _RUN_COLUMNS, skip_corrupt)
        if status is not None:
            table = table.filter(pc.equal(table.column("status"), status))
        table = table.sort_by("run_id")

        frame = table.drop_columns(["architecture", "extra"]).to_pandas()
        arch = _expand(table.column("architecture").to_pylist(), "arch_", scalars_only=False)
        extra = _expand(table.column("extra").to_pylist(), "extra_", scalars_only=True)
        return pd.concat([frame, arch, extra], axis=1)

    def curves(self, run_ids: Iterable[str] | None = None, skip_corrupt: bool = False):
        """Training and validation curves in long format.

        Parameters
        ----------
        run_ids : iterable of str, optional
            Runs to read (any status); all stored runs by default.
        skip_corrupt : bool, default False
            As in :meth:`runs`.

        Returns
        -------
        pandas.DataFrame
            Columns ``run_id, split, step, tokens, loss`` (tokens seen, loss in nats per token),
            sorted by run id, split and step.
        """
        files = self._files()
        if run_ids is not None:
            wanted = sorted(set(run_ids))
            unknown = [run_id for run_id in wanted if run_id not in files]
            if unknown:
                raise InputError(
                    f"runs {unknown[:10]} are not in results store {self.path}; "
                    "pass ids from Store.ids(None)"
                )
            files = {run_id: files[run_id] for run_id in wanted}
        table = self._read(files, ["run_id", "curve"], skip_corrupt)

        # Flatten list<struct> to one row per point, repeating each run id.
        curve = table.column("curve").combine_chunks()
        points = pc.list_flatten(curve)
        long = pa.table(
            {
                "run_id": pc.take(table.column("run_id"), pc.list_parent_indices(curve)),
                **{name: points.field(name) for name in ("split", "step", "tokens", "loss")},
            }
        )
        long = long.sort_by(
            [("run_id", "ascending"), ("split", "ascending"), ("step", "ascending")]
        )
        return long.to_pandas()


def _creating_commands(path) -> str:
    """How to create a store at ``path``, on the command line and in Python."""
    return (
        f"`moelaw sweep SPEC --store {path}` or `moelaw data import-clark curves.csv.gz --store "
        f"{path}` on the command line, Store(path, create=True) in Python"
    )


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise InputError(f"status {status!r} is not one of {STATUSES} or None; pick one of them")


def _expand(texts: list[str], prefix: str, scalars_only: bool) -> pd.DataFrame:
    """JSON objects -> one column per key, named prefix + key (keys sorted)."""
    rows = [json.loads(text) for text in texts]
    if scalars_only:
        rows = [{k: v for k, v in row.items() if isinstance(v, _SCALARS)} for row in rows]
    keys = sorted({key for row in rows for key in row})
    data = {prefix + key: [row.get(key) for row in rows] for key in keys}
    return pd.DataFrame(data, index=pd.RangeIndex(len(rows)))
