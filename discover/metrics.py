"""Scores of a prediction and the extrapolation split that every score that matters uses.

All scores compare a prediction with measured losses over the rows scored, on the loss scale (nats).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from results.errors import InputError


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_pred, dtype=float).ravel()
    if y.shape != p.shape:
        raise InputError(f"{y.size} measured values but {p.size} predictions; pass one per row")
    if y.size == 0:
        raise InputError("no rows to score; the selection is empty")
    return y, p


def r2(y_true, y_pred) -> float:
    """Coefficient of determination, ``1 - mean((y - p)^2) / var(y)`` over the rows scored.

    With one row, or rows of one value, the variance is zero and the result is ``-inf`` (or ``nan``
    for a perfect prediction), as the ratio is undefined.
    """
    y, p = _pair(y_true, y_pred)
    mse = np.mean((y - p) ** 2)
    var = np.var(y)
    if var == 0:
        return float("nan") if mse == 0 else float("-inf")
    return float(1.0 - mse / var)


def rmse(y_true, y_pred) -> float:
    """Root mean squared error, in the units of the loss."""
    y, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((y - p) ** 2)))


def mape(y_true, y_pred) -> float:
    """Mean absolute percentage error, in percent: ``100 * mean(|y - p| / |y|)``."""
    y, p = _pair(y_true, y_pred)
    return float(100.0 * np.mean(np.abs(y - p) / np.abs(y)))


def scores(y_true, y_pred) -> dict[str, float]:
    """``dict(r2=..., rmse=..., mape=...)`` of one prediction."""
    return {"r2": r2(y_true, y_pred), "rmse": rmse(y_true, y_pred), "mape": mape(y_true, y_pred)}


def extrapolation_split(df: pd.DataFrame, factor: str, quantile=None, threshold=None):
    """Hold out the runs that are largest in one factor, to score extrapolation.

    Parameters
    ----------
    df : pandas.DataFrame
        The runs.
    factor : str
        Column to split on, e.g. ``"N"``.
    quantile : float or "max", optional
        Hold out rows whose ``factor`` is above this quantile of the column (``0.8`` holds out the
        top fifth); ``"max"`` holds out the rows at the largest value only.
    threshold : float, optional
        Hold out rows whose ``factor`` is strictly above this value. Give exactly one of
        ``quantile`` and ``threshold``.

    Returns
    -------
    fit_mask, holdout_mask : numpy.ndarray of bool
        Complementary masks over the rows of ``df``.

    Raises
    ------
    InputError
        Unknown column, both or neither of ``quantile``/``threshold``, or a split that leaves one
        side empty.
    """
    if factor not in df.columns:
        raise InputError(f"no column {factor!r} to split on; available: {list(df.columns)}")
    if (quantile is None) == (threshold is None):
        raise InputError("give exactly one of quantile= and threshold= for the extrapolation split")
    values = df[factor].to_numpy(dtype=float)
    if quantile == "max":
        holdout = values == values.max()
    elif quantile is not None:
        if not 0 < float(quantile) < 1:
            raise InputError(f"quantile must be in (0, 1) or 'max', got {quantile!r}")
        holdout = values > np.quantile(values, float(quantile))
    else:
        holdout = values > float(threshold)
    if holdout.all() or not holdout.any():
        cut = threshold if threshold is not None else quantile
        raise InputError(
            f"splitting on {factor} at {cut!r} leaves {int(holdout.sum())} of {len(values)} "
            f"rows held "
            f"out; {factor} spans {values.min():.4g} to {values.max():.4g} — choose a cut inside it"
        )
    return ~holdout, holdout


def leave_largest_out(df: pd.DataFrame, factor: str, fit, target: str = "loss", folds: int = 3):
    """Leave-the-largest-out cross-validation: fit below each of the largest values, score on it.

    Fold ``i`` (``i = 1..folds``) holds out the rows at the ``i``-th largest distinct value of
    ``factor`` and fits on every row strictly below that value, so each score is an
    extrapolation one step beyond the rows fitted, at a different scale.

    Parameters
    ----------
    df : pandas.DataFrame
        The runs.
    factor : str
        Column to order by, e.g. ``"N"``.
    fit : callable
        ``fit(rows) -> model`` with ``model.predict(rows) -> array``; e.g.
        ``lambda rows: fit_law(law, rows)``.
    target : str, default "loss"
    folds : int, default 3
        Number of largest values held out in turn.

    Returns
    -------
    pandas.DataFrame
        One row per fold: ``held_out`` (the value of ``factor``), ``n_fit``, ``n_test``, ``r2``,
        ``rmse``, ``mape``; ``r2`` is over the held-out rows (``nan``/``-inf`` if they share one
        loss value).
    """
    if factor not in df.columns:
        raise InputError(f"no column {factor!r} to order by; available: {list(df.columns)}")
    values = np.sort(df[factor].unique())[::-1]
    if len(values) < folds + 1:
        raise InputError(
            f"{factor} has {len(values)} distinct values; leave-the-largest-out with "
            f"{folds} folds needs at least {folds + 1} — pass fewer folds"
        )
    rows = []
    for value in values[:folds]:
        train, test = df[df[factor] < value], df[df[factor] == value]
        model = fit(train.reset_index(drop=True))
        result = scores(test[target].to_numpy(float), model.predict(test.reset_index(drop=True)))
        rows.append({"held_out": float(value), "n_fit": len(train), "n_test": len(test), **result})
    return pd.DataFrame(rows)
