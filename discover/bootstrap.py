"""Bootstrap standard errors and confidence intervals of a fitted law's constants.

Each resample draws the runs with replacement (``n_rows`` draws); a resample is the fitting
problem with each row weighted by how often it was drawn. The law is refitted on each resample
with L-BFGS-B, warm-started from the full-data optimum, and the refits are spread over worker
processes. From the refitted constants:

- ``se``: standard deviation over the resamples whose refit converged;
- ``lo``, ``hi``: the ``(1 - level)/2`` and ``(1 + level)/2`` percentiles (percentile intervals);
- derived optima (``G*``, ``S*``) where the law gives them in closed form, free of the inputs:
  the closed form evaluated at every resample's constants.

Example::

    fit = fit_law(get_law("chinchilla"), table)
    fit.bootstrap(n=1000)          # constant, value, se, lo, hi, n_ok
    fit.bootstrap_samples          # one row per resample

Reference: Efron and Tibshirani 1993, *An Introduction to the Bootstrap*, ch. 6 and 13; Besiroglu
et al. 2024 (arXiv 2404.10102) report Chinchilla's constants with bootstrap standard errors.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import sympy

from discover.formula import symbol
from discover.lm import GRAD_TOL, refine
from results.errors import InputError

log = logging.getLogger(__name__)

_MIN_PER_WORKER = 25  # fewer resamples than this per worker are run in this process
_MAX_WORKERS = 8


def bootstrap(fit, n: int = 1000, *, seed: int = 0, level: float = 0.95, workers=None,
              derived: bool = True, maxiter: int = 1000) -> pd.DataFrame:  # fmt: skip
    """Bootstrap a fitted law: standard errors and percentile intervals of every constant.

    Parameters
    ----------
    fit : FitResult
        A result of :func:`discover.fit.fit_law` (it carries the data it was fitted on).
    n : int, default 1000
        Resamples.
    seed : int, default 0
        Seed of the resampling; the result is deterministic given it.
    level : float, default 0.95
        Coverage of the intervals.
    workers : int, optional
        Worker processes; default the CPU count (at most 8). ``1`` runs in this process.
    derived : bool, default True
        Also bootstrap ``G*`` and ``S*`` where the law gives them in closed form.
    maxiter : int, default 1000
        Iteration limit of each refit.

    Returns
    -------
    pandas.DataFrame
        Columns ``constant, value, se, lo, hi, n_ok`` (``n_ok`` resamples whose refit
        converged). The refitted constants of every resample are kept in
        ``fit.bootstrap_samples``.
    """
    problem = _checked(fit, n, level)
    theta0 = problem.theta(fit.params)
    counts = np.random.default_rng(seed).multinomial(
        len(problem.w), np.full(len(problem.w), 1.0 / len(problem.w)), size=n
    )
    thetas, ok = _refit_all(problem, theta0, counts, workers, maxiter)
    names = list(fit.law.constants)
    samples = pd.DataFrame(problem.constants(thetas), columns=names)
    samples["converged"] = ok
    values = dict(fit.params)
    if derived:
        for name, column, value in _derived(fit, samples[names]):
            samples[name], values[name] = column, value
    fit.bootstrap_samples = samples
    return _summary(samples, values, level)


def _checked(fit, n, level):
    if getattr(fit, "problem", None) is None:
        raise InputError(
            "this FitResult carries no data to resample (it was loaded or built by hand); "
            "refit it with discover.fit.fit_law and bootstrap that"
        )
    if int(n) < 2:
        raise InputError(f"bootstrap needs at least 2 resamples, got n={n}; 1000 is the default")
    if not 0 < level < 1:
        raise InputError(f"level must be in (0, 1), got {level!r}; 0.95 gives 95% intervals")
    return fit.problem


def _refit_all(problem, theta0, counts, workers, maxiter):
    """Refit every resample: a batched Gauss-Newton pass, then L-BFGS-B for any left unconverged.

    The batched pass moves all resamples at once (one array computation per iteration); the few
    it does not settle are polished one by one, in worker processes when there are enough.
    """
    thetas, ok = refine(problem, theta0, problem.w[None, :] * counts, maxiter)
    todo = np.flatnonzero(~ok)
    if todo.size:
        log.info("%d of %d resamples left to L-BFGS-B", todo.size, len(counts))
        workers = min(os.cpu_count() or 1, _MAX_WORKERS) if workers is None else int(workers)
        workers = max(1, min(workers, todo.size // _MIN_PER_WORKER))
        starts = thetas[todo]
        if workers == 1:
            fixed = _polish_chunk(problem, starts, counts[todo], maxiter)
        else:
            parts = np.array_split(np.arange(todo.size), workers)
            with ProcessPoolExecutor(max_workers=workers) as pool:
                done = list(pool.map(_polish_chunk, [problem] * workers,
                                     [starts[i] for i in parts], [counts[todo][i] for i in parts],
                                     [maxiter] * workers))  # fmt: skip
            fixed = (np.concatenate([d[0] for d in done]), np.concatenate([d[1] for d in done]))
        thetas[todo], ok[todo] = fixed
    return thetas, ok


def _polish_chunk(problem, starts, counts, maxiter):
    """L-BFGS-B refits, one per row of ``counts``, each from its row of ``starts``.

    A refit counts as converged when the checker passes it, or when its only complaint is a
    constant resting on a bound (a constrained optimum is a valid bootstrap replicate).
    """
    from discover.fit import _polish, one_blas_thread

    thetas, ok = np.empty_like(starts), np.empty(len(counts), bool)
    with one_blas_thread():
        for i, c in enumerate(counts):
            run = _polish(problem.with_weights(problem.w * c), starts[i], maxiter, GRAD_TOL)
            message = run["message"]
            thetas[i] = run["theta"]
            ok[i] = run["converged"] or ("bound" in message and "gradient" not in message
                                         and "stopped" not in message)  # fmt: skip
    return thetas, ok


def _derived(fit, samples: pd.DataFrame):
    """(name, per-resample values, point value) of G* and S* where a closed form exists."""
    from discover.optima import optimum_formula

    out = []
    for var in ("G", "S"):
        if var not in fit.law.inputs:
            continue
        formula = optimum_formula(fit.law, var, fit.params)
        if formula is None:
            continue
        f = sympy.lambdify([symbol(c) for c in fit.law.constants], formula, "numpy")
        with np.errstate(all="ignore"):
            args = [samples[c].to_numpy(complex) for c in fit.law.constants]
            column = np.asarray(f(*args), complex)
            point = complex(f(*[complex(fit.params[c]) for c in fit.law.constants]))
        column = np.where(np.abs(np.imag(column)) > 1e-12, np.nan, np.real(column))
        out.append((f"{var}*", np.broadcast_to(column, len(samples)), point.real))
    return out


def _summary(samples: pd.DataFrame, values: dict, level: float) -> pd.DataFrame:
    """One row per constant: point value, standard error and percentile interval."""
    ok = samples["converged"].to_numpy(bool)
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    rows = []
    for name, value in values.items():
        column = samples[name].to_numpy(float)[ok]
        column = column[np.isfinite(column)]
        lo, hi = np.percentile(column, q) if column.size else (np.nan, np.nan)
        se = float(np.std(column, ddof=1)) if column.size > 1 else np.nan
        rows.append({"constant": name, "value": float(value), "se": se, "lo": float(lo),
                     "hi": float(hi), "n_ok": int(column.size)})  # fmt: skip
    if not ok.all():
        log.warning("%d of %d bootstrap refits did not converge; they are left out",
                    int((~ok).sum()), len(ok))  # fmt: skip
    return pd.DataFrame(rows)
