"""Load a table of runs and check it is fit for fitting a law.

A table has one row per training run, the factor columns ``N, Na, D, G, S, E`` (see :mod:`discover`)
and the target column ``loss``; it comes from a results store, a Parquet file or a CSV file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from results.errors import InputError, StoreError
from results.tables import read_csv

log = logging.getLogger(__name__)

_SHOWN = 5  # rows named in an error message before "..."

COUNTS = {"N": "parameters", "Na": "parameters", "D": "tokens"}
"""Inputs that count single parameters or tokens, so their values are never small."""

SMALLEST_COUNT = 1e4
"""A count column whose largest value is below this was probably given in thousands or more."""

_AT_BOUND = 1e-6  # a constant this close to a bound, as a fraction of its (log) interval


def load_table(source=None, *, skip_corrupt: bool = False) -> pd.DataFrame:
    """Read a table of runs.

    Parameters
    ----------
    source : str or Path, optional
        A results-store folder (its ``ok`` runs are read), a ``.parquet`` file or a ``.csv``
        (or ``.csv.gz``) file; lines of a CSV starting with ``#`` are comments. Default ``None``
        reads the store bundled with moelaw (``results.bundled_store_path()``).
    skip_corrupt : bool, default False
        For a store: warn about truncated or corrupted run files and read the others, instead of
        raising.

    Returns
    -------
    pandas.DataFrame
        One row per run.

    Raises
    ------
    InputError
        When the path does not exist, has an unknown type, holds no runs, or (a store) holds
        unreadable run files, named by run id.
    """
    if source is None:
        import results

        path = Path(results.bundled_store_path())
    else:
        path = Path(source)
    if not path.exists():
        raise InputError(
            f"no table at {str(path)!r}: the path does not exist; pass a results-store folder, "
            "a .parquet or a .csv file"
        )
    table = _read(path, skip_corrupt)
    if len(table) == 0 and path.is_dir():
        raise InputError(
            f"the table at {str(path)!r} has no ok runs; fill it with `moelaw sweep SPEC` "
            "or point at another store or file"
        )
    if len(table) == 0:
        raise InputError(f"the table at {str(path)!r} has a header but no rows; add the runs")
    log.debug("read %d rows from %s", len(table), path)
    return table


def _read(path: Path, skip_corrupt: bool = False) -> pd.DataFrame:
    """Read one source by its kind: store folder, Parquet or CSV."""
    if path.is_dir():
        return _read_store(path, skip_corrupt)
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return read_csv(path, "a table of runs (CSV)")
    if name.endswith(".parquet"):
        try:
            return pd.read_parquet(path)
        except (ValueError, OSError, pa.ArrowException) as exc:
            # pyarrow raises subclasses of these for empty, truncated or garbled files
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise InputError(
                f"cannot read {str(path)!r} as parquet: {reason}; "
                "check that it is a complete parquet file"
            ) from None
    raise InputError(
        f"cannot read {str(path)!r}: unknown file type {path.suffix!r}; "
        "use a store folder, .parquet or .csv"
    )


def _read_store(path: Path, skip_corrupt: bool) -> pd.DataFrame:
    """The ok runs of a store; unreadable run files are named by id with the fix."""
    from results.store import Store

    store = Store(path, create=False)
    try:
        return store.runs(skip_corrupt=skip_corrupt)
    except StoreError:
        bad = store.verify()
        if not bad:
            raise
    files = ", ".join(f"runs/{run_id}.parquet" for run_id in bad[:_SHOWN])
    more = f" (and {len(bad) - _SHOWN} more)" if len(bad) > _SHOWN else ""
    raise StoreError(
        f"results store {str(path)!r} has {len(bad)} truncated or corrupted run file(s), run ids "
        f"{', '.join(bad)}; delete {files}{more} in the store and train those runs again "
        "(`moelaw sweep SPEC` re-runs only missing runs), or read the others in Python with "
        "discover.data.load_table(path, skip_corrupt=True)"
    ) from None


def check_table(df, inputs, target="loss", *, positive=None, varying=()) -> pd.DataFrame:
    """Check that the columns a law needs are present, finite and in range.

    Parameters
    ----------
    df : pandas.DataFrame
        The runs.
    inputs : sequence of str
        Input columns the law reads.
    target : str, default "loss"
        The column the law predicts; it must be positive (losses are fitted in log space).
    positive : sequence of str, optional
        Inputs that must be positive (used under a logarithm or a non-integer power). Default: all
        ``inputs``.
    varying : sequence of str, default ()
        Inputs that must take more than one value, because the law's constants for them could not be
        identified otherwise.

    Returns
    -------
    pandas.DataFrame
        ``df`` itself, unchanged, when every check passes.

    Raises
    ------
    InputError
        Naming the column, the offending rows and values, and the fix.
    """
    inputs = list(inputs)
    columns = [*inputs, target]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(_missing_message(missing, target, list(df.columns)))
    if len(df) == 0:
        raise InputError("the table has no rows; nothing to fit")
    for column in columns:
        _check_finite(df, column)
    for column in [target, *(inputs if positive is None else positive)]:
        _check_positive(df, column, "losses are fitted in log space" if column == target else
                        "the law takes its logarithm or a non-integer power")  # fmt: skip
    for column in varying:
        if df[column].nunique() < 2:
            raise InputError(
                f"column {column!r} is constant ({df[column].iloc[0]} in all {len(df)} rows) but "
                "the law needs it to vary to identify its constants; "
                "add runs that vary it or fit a "
                "law without it"
            )
    return df


def _missing_message(missing: list[str], target: str, available: list[str]) -> str:
    """Name the missing columns and the options that read them from other columns."""
    fixes = []
    for name in missing:
        likely = _likely_column(name, available, is_target=name == target)
        column = likely or "COLUMN"
        if name == target:
            fixes.append(f"--target {column}")
        else:
            fixes.append(f"--use {name}={column}")
    return (
        f"column(s) {missing} missing from the table; available columns: {available}; read "
        f"them from other columns with {' '.join(fixes)}"
    )


def _likely_column(name: str, available: list[str], is_target: bool) -> str | None:
    """The one column a missing ``name`` most likely is: equal up to case, or (for the target)
    the only column whose name contains it, such as ``val_loss`` for ``loss`` (of several, the
    only validation one)."""
    same = [c for c in available if c.lower() == name.lower()]
    if len(same) == 1:
        return same[0]
    if is_target:
        holding = [c for c in available if name.lower() in c.lower()]
        validation = [c for c in holding if c.lower().startswith(("val", "eval"))]
        for found in (holding, validation):
            if len(found) == 1:
                return found[0]
    return None


def _numeric(df, column) -> np.ndarray:
    try:
        return df[column].to_numpy(dtype=float)
    except (TypeError, ValueError):
        pass
    # Name the cells that are not numbers, e.g. "1.2B" or "n/a" in a column of parameter counts.
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(values) & df[column].notna().to_numpy()
    if not bad.any():
        return values
    labels = list(df.index[bad][:_SHOWN])
    cells = [repr(v) for v in df[column][bad].iloc[:_SHOWN]]
    more = ", ..." if bad.sum() > _SHOWN else ""
    raise InputError(
        f"column {column!r} is not numeric: {bad.sum()} cell(s) are not numbers (rows "
        f"{', '.join(map(str, labels))}{more}: {', '.join(cells)}{more}); write them as plain "
        "numbers (1.2e9, not 1.2B) or drop those rows"
    ) from None


def _check_finite(df, column) -> None:
    values = _numeric(df, column)
    bad = ~np.isfinite(values)
    if bad.any():
        raise InputError(
            f"column {column!r} has {bad.sum()} NaN or infinite value(s) "
            f"({_rows(df, bad, values)}); "
            "drop those rows"
        )


def _check_positive(df, column, why) -> None:
    values = _numeric(df, column)
    bad = values <= 0
    if bad.any():
        raise InputError(
            f"column {column!r} has {bad.sum()} non-positive value(s) ({_rows(df, bad, values)}); "
            f"it must be positive because {why} — drop those rows"
        )


def _rows(df, bad, values) -> str:
    """'rows 3, 17: -0.1, 0.0' for the first few offending rows, by index label."""
    labels = list(df.index[bad][:_SHOWN])
    shown = [repr(float(v)) for v in values[bad][:_SHOWN]]
    more = ", ..." if bad.sum() > _SHOWN else ""
    return f"rows {', '.join(map(str, labels))}{more}: {', '.join(shown)}{more}"


def constants_at_bounds(params, bounds) -> list[str]:
    """Names of fitted constants that sit on a bound of their search interval.

    Parameters
    ----------
    params : dict of str to float
        Fitted constants.
    bounds : dict of str to discover.laws.Bounds
        Their search intervals (``lo``, ``hi``, ``positive`` for log space).

    Returns
    -------
    list of str
    """
    names = []
    for name, box in bounds.items():
        value = params.get(name)
        if value is None or not np.isfinite(value):
            continue
        if box.positive and value > 0:
            x, lo, hi = np.log(value), np.log(box.lo), np.log(box.hi)
        else:
            x, lo, hi = value, box.lo, box.hi
        if min(x - lo, hi - x) <= _AT_BOUND * (hi - lo):
            names.append(name)
    return names


def unit_hints(df, columns=None, at_bounds=()) -> list[str]:
    """Notes on count columns that look given in thousands, millions or billions.

    A table copied from a paper often gives tokens as "300" meaning 300B. Power laws absorb
    such a factor into their scale constants, which then land at a search bound; this names the
    column and the fix.

    Parameters
    ----------
    df : pandas.DataFrame
        The fitted rows.
    columns : dict of str to str, optional
        Column read for each input symbol (``FitResult.columns``); default the symbol itself.
    at_bounds : sequence of str, default ()
        Constants found at a bound (see :func:`constants_at_bounds`); named in the note.

    Returns
    -------
    list of str
        One note per suspicious column; empty when none.
    """
    columns = dict(columns or {})
    notes = []
    for symbol, unit in COUNTS.items():
        column = columns.get(symbol, symbol)
        if column not in df.columns or not pd.api.types.is_numeric_dtype(df[column]):
            continue
        top = float(df[column].max())
        if not np.isfinite(top) or top >= SMALLEST_COUNT:
            continue
        cause = f"constants {', '.join(at_bounds)} landed at a bound and " if at_bounds else ""
        notes.append(
            f"{cause}column {column!r} ({symbol}, counted in {unit}) is at most {top:.4g}: it "
            f"is probably in millions or billions of {unit}; multiply it by 1e6 or 1e9 and fit "
            "again"
        )
    return notes
