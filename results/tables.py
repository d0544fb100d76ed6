"""Read CSV tables from papers and colleagues, tolerating comment lines.

A line whose first non-blank character is ``#`` is a comment and is skipped, wherever it sits
(above the header, between rows, at the end); a ``#`` inside a cell is kept, so a column of free
text may contain it. Files ending in ``.gz`` are decompressed. Anything pandas cannot parse
becomes one :class:`~results.errors.InputError` naming the file, the reason and the fix.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import pandas as pd

from results.errors import InputError

__all__ = ["read_csv"]

COMMENT = "#"


def read_csv(path: str | os.PathLike, what: str = "a CSV table", fix: str | None = None):
    """Read a CSV file with a header row, skipping ``#`` comment lines.

    Parameters
    ----------
    path : str or os.PathLike
        The file; ``.gz`` files are decompressed.
    what : str, default "a CSV table"
        What the file should be, for the error message.
    fix : str, optional
        The fix named in the error message. Default: check that the file is a complete CSV file
        with a header row.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    InputError
        When the file cannot be opened, decoded (UTF-8) or parsed, or holds no header.
    """
    path = Path(path)
    fix = fix or "check that it is a complete CSV file (UTF-8) with a header row"
    try:
        text = _without_comments(path)
        return pd.read_csv(io.StringIO(text))
    except (ValueError, OSError, EOFError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        # gzip raises OSError/EOFError for damaged archives, pandas ValueError subclasses for bad
        # or empty tables
        reason = str(exc).splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read {str(path)!r} as {what}: {reason}; {fix}") from None


def _without_comments(path: Path) -> str:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
        lines = [line for line in handle if not line.lstrip().startswith(COMMENT)]
    if not lines:
        raise ValueError("the file holds no header row (it is empty or only comments)")
    return "".join(lines)
