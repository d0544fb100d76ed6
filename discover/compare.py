"""Fitted laws side by side: fit, extrapolation and derived optima in one table.

Example::

    from discover.compare import compare, format_side_by_side
    table = compare({"moe_joint": joint_fit, "discovered": result.best}, runs, "loss", holdout)
    print(format_side_by_side(table))
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from discover.fit import FitResult
from discover.metrics import r2, rmse
from discover.optima import optimum
from results.errors import InputError

COLUMNS = ("law", "formula", "n_constants", "fit_r2", "fit_rmse", "holdout_r2", "G_star", "S_star")

_HEADERS = {
    "law": "law", "formula": "formula", "n_constants": "constants", "fit_r2": "fit R²",
    "fit_rmse": "fit RMSE", "holdout_r2": "holdout R²", "G_star": "G*", "S_star": "S*",
}  # fmt: skip


def compare(
    fits: dict[str, FitResult],
    data: pd.DataFrame,
    target: str,
    holdout_mask,
    *,
    digits: int = 4,
) -> pd.DataFrame:
    """Score every fitted law on the fit rows and on the held-out rows; derive G* and S*.

    Parameters
    ----------
    fits : dict of str to FitResult
        Fitted laws by display name.
    data : pandas.DataFrame
        All rows, fit and held-out.
    target : str
        Measured loss column (nats).
    holdout_mask : array-like of bool
        True for held-out rows (scored as extrapolation); the others are the fit rows.
    digits : int, default 4
        Significant digits of the constants in ``formula``.

    Returns
    -------
    pandas.DataFrame
        One row per law with :data:`COLUMNS`: ``formula`` (fitted constants rounded to
        ``digits``), ``n_constants``, ``fit_r2`` and ``fit_rmse`` (fit rows; RMSE in nats),
        ``holdout_r2`` (held-out rows; NaN if there are none), ``G_star`` and ``S_star`` (the
        minimising G and S within the data's range, via :func:`discover.optima.optimum`, with the
        other inputs at their median over ``data``, which matters only for laws whose optimum
        depends on them; NaN when the law has no such input or no interior minimum).
    """
    holdout = np.asarray(holdout_mask, dtype=bool)
    if holdout.shape != (len(data),):
        raise InputError(f"holdout_mask has shape {holdout.shape} but data has {len(data)} rows; "
                         "pass one boolean per row")  # fmt: skip
    if target not in data.columns:
        raise InputError(f"target {target!r} is not a column (columns: {list(data.columns)})")
    rows = [_row(name, fit, data, target, holdout, digits) for name, fit in fits.items()]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _row(name, fit, data, target, holdout, digits) -> dict:
    """Scores and optima of one law."""
    fit_rows, held_rows = data[~holdout], data[holdout]
    y_fit = fit_rows[target].to_numpy(float)
    with np.errstate(all="ignore"):
        pred_fit = fit.predict(fit_rows)
        held_r2 = (r2(held_rows[target].to_numpy(float), fit.predict(held_rows))
                   if len(held_rows) else np.nan)  # fmt: skip
    return dict(
        law=name, formula=str(fit.sympy().evalf(digits)), n_constants=fit.n_constants,
        fit_r2=r2(y_fit, pred_fit), fit_rmse=rmse(y_fit, pred_fit), holdout_r2=held_r2,
        G_star=_optimum(fit, "G", data), S_star=_optimum(fit, "S", data),
    )  # fmt: skip


def _optimum(fit: FitResult, var: str, data: pd.DataFrame) -> float:
    """Minimiser of the law in ``var`` within the data's range of it; NaN if none."""
    if var not in fit.law.inputs:
        return np.nan
    column = fit.columns.get(var, var)
    bounds = (float(data[column].min()), float(data[column].max())) if column in data else None
    others = {name: float(np.median(data[fit.columns.get(name, name)]))
              for name in fit.law.inputs if name != var}  # fmt: skip
    try:
        value = optimum(fit, var, params=others, bounds=bounds)
    except (InputError, NotImplementedError, TypeError, ValueError):
        return np.nan  # the optimum depends on other inputs, or sympy could not solve it
    return np.nan if value is None else float(value)


def format_side_by_side(table: pd.DataFrame, width: int = 100, formula_width: int = 44) -> str:
    """Plain-text table of :func:`compare`'s output for a terminal, formulas wrapped.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`compare`.
    width : int, default 100
        Target line width; the formula column wraps at spaces (sympy puts them around ``+`` and
        ``-``) to ``formula_width`` or less, and a single longer product overflows it.
    formula_width : int, default 44
        Characters per line of the formula column.

    Returns
    -------
    str
        Header, rule, then one block per law (extra lines carry the rest of its formula).
    """
    numeric = [c for c in COLUMNS if c not in ("law", "formula")]
    name_width = max([len("law"), *(len(str(n)) for n in table["law"])])
    fwidth = max(12, min(formula_width, width - name_width - 11 * len(numeric) - 2))
    wrap = dict(width=fwidth, break_long_words=False, break_on_hyphens=False)
    cells = [[_HEADERS[c] for c in COLUMNS]]
    blocks = []
    for _, row in table.iterrows():
        lines = textwrap.wrap(str(row["formula"]), **wrap) or [""]
        values = [_cell(row[c], c) for c in numeric]
        blocks.append([[str(row["law"]), lines[0], *values]]
                      + [["", more, *[""] * len(numeric)] for more in lines[1:]])  # fmt: skip
    widths = [name_width, fwidth] + [max(9, len(_HEADERS[c])) for c in numeric]

    def render(cols: list[str]) -> str:
        parts = [cols[0].ljust(widths[0]), cols[1].ljust(widths[1])]
        parts += [c.rjust(w) for c, w in zip(cols[2:], widths[2:], strict=True)]
        return " ".join(parts).rstrip()

    out = [render(cells[0]), "-" * len(render(cells[0]))]
    for block in blocks:
        out += [render(line) for line in block]
    return "\n".join(out)


def _cell(value, column: str) -> str:
    """One numeric cell: integers plain, NaN as '-', scores to 4 decimals, optima to 3 digits."""
    if column == "n_constants":
        return str(int(value))
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if column in ("G_star", "S_star"):
        return f"{value:.3g}"
    return f"{value:.4f}"
