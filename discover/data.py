"""Load a table of runs and check it is fit for fitting a law.

A table has one row per training run, the factor columns ``N, Na, D, G, S, E`` (see :mod:`discover`)
and the target column ``loss``; it comes from a results store, a Parquet file or a CSV file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from results.errors import InputError

log = logging.getLogger(__name__)

_SHOWN = 5  # rows named in an error message before "..."


def load_table(source=None) -> pd.DataFrame:
    """Read a table of runs.

    Parameters
    ----------
    source : str or Path, optional
        A results-store folder (its ``ok`` runs are read), a ``.parquet`` file or a ``.csv`` file.
        Default ``None`` reads the store bundled with moelaw (``results.bundled_store_path()``).

    Returns
    -------
    pandas.DataFrame
        One row per run.

    Raises
    ------
    InputError
        When the path does not exist, has an unknown type, or holds no runs.
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
    table = _read(path)
    if len(table) == 0:
        raise InputError(
            f"the table at {str(path)!r} has no ok runs; fill it with `moelaw sweep SPEC` "
            "or point at another store or file"
        )
    log.debug("read %d rows from %s", len(table), path)
    return table


def _read(path: Path) -> pd.DataFrame:
    """Read one source by its kind: store folder, Parquet or CSV."""
    if path.is_dir():
        from results.store import Store

        return Store(path, create=False).runs()
    suffix = path.suffix.lower()
    readers = {".parquet": pd.read_parquet, ".csv": pd.read_csv}
    if suffix in readers:
        try:
            return readers[suffix](path)
        except (ValueError, OSError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            # pandas and pyarrow raise subclasses of these for empty, truncated or garbled files
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise InputError(
                f"cannot read {str(path)!r} as {suffix[1:]}: {reason}; "
                f"check that it is a complete {suffix[1:]} file with a header row"
            ) from None
    raise InputError(
        f"cannot read {str(path)!r}: unknown file type {suffix!r}; "
        "use a store folder, .parquet or .csv"
    )


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
        raise InputError(
            f"column(s) {missing} missing from the table; available columns: {list(df.columns)}"
        )
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


def _numeric(df, column) -> np.ndarray:
    try:
        return df[column].to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise InputError(
            f"column {column!r} is not numeric (dtype {df[column].dtype}); convert or drop it"
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
