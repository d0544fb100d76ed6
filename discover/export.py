"""Write a fitted law to disk as sympy, plain text, LaTeX and JSON.

Files written into ``out_dir`` (each atomically: a temporary file in the same folder, fsync,
rename):

- ``law.srepr``: ``sympy.srepr`` of the law with fitted constants (exact sympy tree, symbol
  assumptions included). Reading it back needs sympy's own ``eval``-based parser: only do that for
  files you wrote yourself.
- ``law.txt``: the same expression as plain sympy text at full precision; read it back safely with
  :func:`read_law_txt` (uses :func:`discover.formula.parse_formula`, never ``eval``).
- ``law.tex``: ``sympy.latex`` of it.
- ``law.json``: name, inputs, columns, symbolic formula, constants with values and bounds, metrics,
  convergence.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import sympy

from discover.formula import parse_formula
from results.errors import InputError


def export_law(fit, out_dir, metrics=None) -> dict[str, Path]:
    """Export a fitted law.

    Parameters
    ----------
    fit : FitResult
        The fitted law.
    out_dir : str or Path
        Folder to write into; created if missing.
    metrics : dict, optional
        Scores to record (e.g. ``{"fit": fit.metrics(train), "holdout": fit.metrics(test)}``).

    Returns
    -------
    dict of str to Path
        ``{"srepr": ..., "txt": ..., "tex": ..., "json": ...}``.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create the export folder {str(out)!r}: {err.strerror}; "
                         "choose a writable folder") from None  # fmt: skip
    expr = fit.sympy()
    texts = {
        "srepr": sympy.srepr(expr),
        "txt": sympy.sstr(expr, full_prec=True),
        "tex": sympy.latex(expr),
        "json": json.dumps(_summary(fit, metrics), indent=2, sort_keys=True, allow_nan=False),
    }
    paths = {}
    for kind, text in texts.items():
        paths[kind] = out / f"law.{kind}"
        write_atomic(paths[kind], text + "\n")
    return paths


def read_law_txt(path) -> sympy.Expr:
    """Read a ``law.txt`` back into sympy with the safe parser."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no law file at {str(path)!r}; export one with export_law(fit, folder)")
    return parse_formula(path.read_text().strip())


def _summary(fit, metrics) -> dict:
    law = fit.law
    constants = {
        name: {
            "value": fit.params[name],
            "lo": b.lo,
            "hi": b.hi,
            "log_space": b.positive,
            "reference": (law.reference or {}).get(name),
        }  # fmt: skip
        for name, b in law.constants.items()
    }
    return {
        "name": law.name,
        "inputs": list(law.inputs),
        "columns": {n: fit.columns.get(n, n) for n in law.inputs},
        "formula": sympy.sstr(law.expr),
        "fitted": sympy.sstr(fit.sympy(), full_prec=True),
        "constants": constants,
        "n_constants": law.n_constants,
        "objective": _finite(fit.objective),
        "loss": fit.loss,
        "delta": fit.delta,
        "n_starts": fit.n_starts,
        "converged": bool(fit.converged),
        "message": fit.message,
        "metrics": _clean(metrics or {}),
        "units": dict(law.units),
        "doc": law.doc,
    }


def _clean(obj):
    """JSON-safe copy: non-finite floats become null."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float | int) and not isinstance(obj, bool):
        return _finite(float(obj)) if isinstance(obj, float) else obj
    if hasattr(obj, "item"):
        return _clean(obj.item())
    return obj


def _finite(value: float):
    return value if math.isfinite(value) else None


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are meant to be shared
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
