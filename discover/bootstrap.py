"""Bootstrap standard errors and confidence intervals of a fitted law's constants.

Each resample draws the runs with replacement (``n_rows`` draws); a resample is the fitting
problem with each row weighted by how often it was drawn. The law is refitted on each resample
with batched Levenberg-Marquardt (then L-BFGS-B for any left unconverged), warm-started from the
full-data optimum, and the L-BFGS-B refits are spread over worker processes. From the refitted
constants ``theta*_b`` (``b = 1..B``, converged refits only) and the full-data fit ``theta``:

- ``se``: standard deviation of ``theta*_b``;
- derived optima (``G*``, ``S*``) where the law gives its stationary points in closed form,
  free of the inputs: per resample, the minimiser over the range of the factor in the fitted
  rows, or beyond its lower / upper end where the loss has no minimum inside and is lowest at
  that end (:func:`discover.optima.optima_in_range`); then treated like a constant whose search
  bounds are the ends of that range (below);
- ``lo``, ``hi``: the interval of ``method`` at coverage ``level`` (two-sided, ``alpha = (1 -
  level)/2`` in each tail; ``Phi`` the standard normal distribution function):

  - ``"percentile"`` (default): the ``alpha`` and ``1 - alpha`` quantiles of ``theta*_b``;
  - ``"basic"``: those quantiles reflected about the fit, ``2 theta - q(1 - alpha)`` and
    ``2 theta - q(alpha)``;
  - ``"bc"``: bias-corrected percentile: quantiles ``Phi(2 z0 + z_alpha)`` and ``Phi(2 z0 +
    z_(1-alpha))`` with ``z0 = Phi^-1(share of theta*_b below theta)`` (ties count half);
  - ``"bca"``: bias-corrected and accelerated: quantiles ``Phi(z0 + (z0 + z) / (1 -
    a (z0 + z)))`` with the acceleration ``a = sum d^3 / (6 (sum d^2)^(3/2))``, ``d_i`` the
    deviations of the leave-one-out (jackknife) refits from their mean. The jackknife costs one
    refit per row (per group of rows beyond :data:`JACKKNIFE_GROUPS` rows), batched and
    warm-started like the resamples.

  The default was chosen by coverage of planted truths (``bench/planted_joint.py --seeds
  1-20``: the joint MoE law, 300 points, 0.5% noise): over the noise draws the percentile
  interval held the truth, or named the constant, most often. BC and BCa moved the intervals
  of ``a, alpha, c, epsilon`` away from the truth where the fit itself was off (their median
  bias correction pushes further in the direction of the fit's error), and the basic interval
  gave negative ends to positive constants.

A constant that the fit leaves on a bound of its search interval, or that more than ``alpha`` of
the refits leave there, is not determined by the data (:func:`discover.identify.at_bound`): its
interval is one-sided, from the bound to the ``level`` quantile of the refits on the other side
(``censored`` is ``"lower"`` or ``"upper"``, the end that is the bound, or ``"both"`` when that
quantile is the other bound), and an :class:`~discover.fit.IdentifiabilityWarning` names it.
Where at least ``level`` of the refits rest on the bound, the quantile is the bound itself; the
free end is then the farthest refit, so the interval never collapses to ``[bound, bound]``.

A derived optimum is censored the same way at an end of the sampled range: when the fit has no
minimum inside the range, or more than ``alpha`` of the resamples lie beyond an end, its interval
runs from the ``level`` quantile to that end (the resamples beyond it counted at it), ``se`` is
NaN, and so is ``value`` when the fit's optimum lies beyond. Its ``note`` says where, e.g. ``"no
minimum inside [1, 16]; > 16 at the fit and in 83% of resamples"``; the refits keep ``-inf`` /
``+inf`` for those beyond the lower / upper end. With fewer beyond, those are placed on the end
they lie beyond and the two-sided interval is taken as usual (quantiles inside the range do not
move).

Example::

    fit = fit_law(get_law("chinchilla"), table)
    fit.bootstrap(n=1000)          # constant, value, se, lo, hi, n_ok, method, censored
    fit.bootstrap_samples          # one row per resample
    intervals(fit, "percentile")   # other intervals from the same resamples, no refits

References: Efron and Tibshirani 1993, *An Introduction to the Bootstrap*, ch. 13-14 (percentile,
BC and BCa intervals; eq. 14.15 for the acceleration); Efron 1987, "Better bootstrap confidence
intervals", JASA 82:171; Besiroglu et al. 2024 (arXiv 2404.10102) report Chinchilla's constants
with bootstrap standard errors.
"""

from __future__ import annotations

import logging
import os
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from discover.identify import at_bound, bound_finding
from discover.laws import Bounds
from discover.lm import GRAD_TOL, refine
from results.errors import InputError

log = logging.getLogger(__name__)

METHODS = ("percentile", "basic", "bc", "bca")
"""Interval methods of :func:`interval` (see the module docstring)."""

METHOD = "percentile"
"""Default interval method."""

JACKKNIFE_GROUPS = 1000
"""Most jackknife refits: with more rows than this, groups of rows are left out together."""

_MIN_PER_WORKER = 25  # fewer refits than this per worker are run in this process
_MAX_WORKERS = 8


def bootstrap(fit, n: int = 1000, *, seed: int = 0, level: float = 0.95, workers=None,
              derived: bool = True, maxiter: int = 1000,
              method: str = METHOD) -> pd.DataFrame:  # fmt: skip
    """Bootstrap a fitted law: standard errors and confidence intervals of every constant.

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
    method : {"percentile", "basic", "bc", "bca"}, default "percentile"
        Interval method (module docstring); ``"bca"`` also runs :func:`jackknife`.

    Returns
    -------
    pandas.DataFrame
        Columns ``constant, value, se, lo, hi, n_ok, method, censored, note`` (``n_ok``
        resamples whose refit converged; ``censored`` ``"lower"``/``"upper"`` for a one-sided
        interval whose end is that bound of the search interval, or that end of the sampled
        range for ``G*`` and ``S*``, ``"both"`` when both ends are bounds, else ``""``;
        ``note`` where ``G*`` or ``S*`` lies beyond the sampled range, else ``""``). The
        refitted constants of every resample are kept in ``fit.bootstrap_samples``.

    Warns
    -----
    IdentifiabilityWarning
        Naming every constant whose interval is censored at a bound.
    """
    problem = _checked(fit, n, level, method)
    counts = np.random.default_rng(seed).multinomial(
        len(problem.w), np.full(len(problem.w), 1.0 / len(problem.w)), size=n
    )
    fit.bootstrap_samples = _replicates(fit, counts, workers, maxiter, derived)
    ok = fit.bootstrap_samples["converged"].to_numpy(bool)
    if not ok.all():
        trust = "" if 2 * ok.sum() >= len(ok) else " (too few to trust)"
        log.warning("%d of %d bootstrap refits did not converge; the intervals rest on the "
                    "other %d%s", int((~ok).sum()), len(ok), int(ok.sum()), trust)  # fmt: skip
    if method == "bca":
        jackknife(fit, workers=workers, derived=derived, maxiter=maxiter)
    return intervals(fit, method, level)


def jackknife(fit, *, workers=None, derived: bool = True, maxiter: int = 1000,
              max_groups: int = JACKKNIFE_GROUPS) -> pd.DataFrame:  # fmt: skip
    """Refit the law with each row left out in turn (the jackknife), warm-started from the fit.

    Parameters
    ----------
    fit : FitResult
        A result of :func:`discover.fit.fit_law`.
    workers, derived, maxiter
        As for :func:`bootstrap`.
    max_groups : int, default :data:`JACKKNIFE_GROUPS`
        With more rows than this, row ``i`` falls in group ``i % max_groups`` and each group is
        left out together (the delete-d jackknife; the acceleration formula is unchanged).

    Returns
    -------
    pandas.DataFrame
        One row per left-out row (or group): the constants, ``converged``, and the derived
        optima; also kept in ``fit.jackknife_samples``.
    """
    problem = _checked(fit, 2, 0.5, "bca")
    n_rows = len(problem.w)
    groups = min(n_rows, int(max_groups))
    if groups < 3:
        raise InputError(f"the jackknife needs at least 3 rows (or max_groups >= 3); got "
                         f"{n_rows} rows and max_groups={max_groups}")  # fmt: skip
    counts = np.ones((groups, n_rows))
    counts[np.arange(n_rows) % groups, np.arange(n_rows)] = 0.0
    fit.jackknife_samples = _replicates(fit, counts, workers, maxiter, derived)
    return fit.jackknife_samples


def intervals(fit, method: str = METHOD, level: float = 0.95) -> pd.DataFrame:
    """Intervals from the refits already stored on ``fit`` (no refitting).

    Parameters
    ----------
    fit : FitResult
        A fit whose :meth:`~discover.fit.FitResult.bootstrap` has run (and, for ``"bca"``,
        :func:`jackknife`).
    method : {"percentile", "basic", "bc", "bca"}, default "percentile"
    level : float, default 0.95

    Returns
    -------
    pandas.DataFrame
        As :func:`bootstrap` returns.
    """
    _checked(fit, 2, level, method)
    samples = fit.bootstrap_samples
    if samples is None:
        raise InputError("this fit has no bootstrap refits yet; call fit.bootstrap(n=1000) first")
    jack = fit.jackknife_samples if method == "bca" else None
    missing = [] if jack is None else sorted(set(samples.attrs["values"]) - set(jack.columns))
    if method == "bca" and (jack is None or missing):
        raise InputError(
            f"BCa intervals need the jackknife refits{' of ' + str(missing) if missing else ''}; "
            "call discover.bootstrap.jackknife(fit) first (with the same derived=), or "
            "fit.bootstrap(method='bca')"
        )
    table = _summary(fit, samples, jack, level, method)
    _warn_censored(fit, table)
    return table


def interval(replicates, value: float, level: float = 0.95, method: str = METHOD,
             jackknife=None) -> tuple[float, float]:  # fmt: skip
    """Two-sided bootstrap interval of one quantity.

    Parameters
    ----------
    replicates : array-like, shape (B,)
        The quantity computed on each resample.
    value : float
        The quantity computed on the full data.
    level : float, default 0.95
    method : {"percentile", "basic", "bc", "bca"}, default "percentile"
    jackknife : array-like, shape (n,), optional
        The quantity with each row left out; required for ``"bca"``.

    Returns
    -------
    (float, float)
        ``lo, hi``; quantiles of ``replicates`` interpolated linearly (``numpy.percentile``).

    Examples
    --------
    >>> lo, hi = interval(np.arange(1.0, 102.0), 51.0, level=0.9, method="percentile")
    >>> round(lo, 9), round(hi, 9)
    (6.0, 96.0)
    """
    theta_b = np.asarray(replicates, dtype=float)
    alpha = (1 - level) / 2
    if method in ("percentile", "basic"):
        lo, hi = np.percentile(theta_b, [100 * alpha, 100 * (1 - alpha)])
        return (
            (float(lo), float(hi)) if method == "percentile" else (2 * value - hi, 2 * value - lo)
        )
    z0 = _bias(theta_b, value)
    a = _acceleration(jackknife) if method == "bca" else 0.0
    z = ndtri(np.array([alpha, 1 - alpha]))
    q = ndtr(z0 + (z0 + z) / (1 - a * (z0 + z)))
    lo, hi = np.percentile(theta_b, 100 * q)
    return float(lo), float(hi)


def _bias(theta_b: np.ndarray, value: float) -> float:
    """``z0 = Phi^-1(p)``, ``p`` the share of replicates below ``value`` (ties count half).

    ``p`` is kept within half a replicate of 0 and 1, where ``z0`` would be infinite.
    """
    B = theta_b.size
    p = (np.count_nonzero(theta_b < value) + np.count_nonzero(theta_b <= value)) / (2 * B)
    return float(ndtri(np.clip(p, 0.5 / B, 1 - 0.5 / B)))


def _acceleration(jackknife) -> float:
    """``a = sum d^3 / (6 (sum d^2)^(3/2))``, ``d`` the jackknife values' deviations from their mean
    (Efron and Tibshirani 1993, eq. 14.15); 0 when they do not vary."""
    if jackknife is None:
        raise InputError("the BCa interval needs the jackknife values (jackknife=...)")
    theta_i = np.asarray(jackknife, dtype=float)
    theta_i = theta_i[np.isfinite(theta_i)]
    d = theta_i.mean() - theta_i
    spread = float((d**2).sum())
    return float((d**3).sum() / (6 * spread**1.5)) if spread > 0 else 0.0


def _checked(fit, n, level, method):
    if getattr(fit, "problem", None) is None:
        raise InputError(
            "this FitResult carries no data to resample (it was loaded or built by hand); "
            "refit it with discover.fit.fit_law and bootstrap that"
        )
    if int(n) < 2:
        raise InputError(f"bootstrap needs at least 2 resamples, got n={n}; 1000 is the default")
    if not 0 < level < 1:
        raise InputError(f"level must be in (0, 1), got {level!r}; 0.95 gives 95% intervals")
    if method not in METHODS:
        raise InputError(f"unknown interval method {method!r}; choose one of {METHODS}")
    return fit.problem


def _replicates(fit, counts, workers, maxiter, derived) -> pd.DataFrame:
    """Refit the law once per row of ``counts`` (row weights); constants and derived optima.

    The full-data values of every column are kept in the frame's ``attrs["values"]``, the
    sampled range of each derived optimum's factor in ``attrs["ranges"]``.
    """
    problem = fit.problem
    thetas, ok = _refit_all(problem, problem.theta(fit.params), counts, workers, maxiter)
    names = list(fit.law.constants)
    samples = pd.DataFrame(problem.constants(thetas), columns=names)
    samples["converged"] = ok
    values, ranges = dict(fit.params), {}
    if derived:
        for name, column, value, span in _derived(fit, samples[names]):
            samples[name], values[name], ranges[name] = column, value, span
    samples.attrs["values"], samples.attrs["ranges"] = values, ranges
    return samples


def _refit_all(problem, theta0, counts, workers, maxiter):
    """Refit every resample: a batched Gauss-Newton pass, then L-BFGS-B for any left unconverged.

    The batched pass moves all resamples at once (one array computation per iteration); the few
    it does not settle are polished one by one, in worker processes when there are enough.
    """
    thetas, ok = refine(problem, theta0, problem.w[None, :] * counts, maxiter)
    todo = np.flatnonzero(~ok)
    if todo.size:
        log.info("%d of %d refits left to L-BFGS-B", todo.size, len(counts))
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
    """(name, per-resample values, point value, sampled range) of G* and S*, where the law gives
    its stationary points in closed form.

    Each value is the minimiser over the range of the factor in the fitted rows, or -inf / +inf
    where the lowest loss on that range is at its lower / upper end
    (:func:`discover.optima.optima_in_range`; curvature and losses at the medians of the other
    inputs).
    """
    from discover.optima import optima_in_range

    inputs, x = list(fit.law.inputs), fit.problem.x
    medians = {name: float(np.median(values)) for name, values in zip(inputs, x, strict=True)}
    # The full-data fit first, then every resample.
    constants = {c: np.concatenate([[fit.params[c]], samples[c].to_numpy(float)])
                 for c in fit.law.constants}  # fmt: skip
    out = []
    for var in ("G", "S"):
        if var not in inputs:
            continue
        span = (float(np.min(x[inputs.index(var)])), float(np.max(x[inputs.index(var)])))
        if not span[0] < span[1]:
            log.info("%s takes one value in the fitted rows; %s* is not bootstrapped", var, var)
            continue
        found = optima_in_range(fit.law, var, constants, span, medians)
        if found is not None:
            out.append((f"{var}*", found[1:], float(found[0]), span))
    return out


def _summary(fit, samples, jack, level, method) -> pd.DataFrame:
    """One row per constant (and derived optimum): value, standard error, interval, censoring."""
    ok = samples["converged"].to_numpy(bool)
    jack_ok = jack["converged"].to_numpy(bool) if jack is not None else None
    ranges = samples.attrs.get("ranges", {})
    rows = []
    for name, value in samples.attrs["values"].items():
        if name in ranges:
            loo = None if jack is None else jack[name].to_numpy(float)[jack_ok]
            rows.append(_optimum_row(name, value, samples[name].to_numpy(float)[ok], ranges[name],
                                     loo, level, method))  # fmt: skip
            continue
        column = samples[name].to_numpy(float)[ok]
        column = column[np.isfinite(column)]
        bounds = fit.law.constants.get(name)
        side = _censoring(value, column, bounds, level) if column.size else 0
        loo = None if jack is None else jack[name].to_numpy(float)[jack_ok]
        lo, hi, side = _censored_interval(column, value, bounds, side, level, method, loo)
        se = float(np.std(column, ddof=1)) if column.size > 1 else np.nan
        rows.append({"constant": name, "value": float(value), "se": se, "lo": float(lo),
                     "hi": float(hi), "n_ok": int(column.size), "method": method,
                     "censored": _SIDES.get(side, ""), "note": ""})  # fmt: skip
    return pd.DataFrame(rows)


_SIDES = {-1: "lower", 1: "upper", 2: "both"}


def _censored_interval(column, value, bounds, side, level, method, loo):
    """``(lo, hi, side)``: one-sided at ``side`` (-1 / +1) of ``bounds`` (``side`` becomes 2 when
    the free end also reaches a bound), else the two-sided interval of ``method``."""
    if not column.size:
        return np.nan, np.nan, side
    if side:
        lo, hi = _one_sided(column, bounds, side, level)
        return lo, hi, 2 if int(at_bound(hi if side < 0 else lo, bounds)) == -side else side
    lo, hi = interval(column, value, level, method, loo)
    return lo, hi, side


def _optimum_row(name, value, replicates, span, loo, level, method) -> dict:
    """The summary row of a derived optimum (``G*``, ``S*``), censored at the ends of ``span``.

    ``value`` and ``replicates`` are minimisers inside ``span``, or -inf / +inf where the lowest
    loss on it is at its lower / upper end. These count as censored at that end, by the rule for
    constants at a bound (:func:`_censoring`, :func:`_one_sided`, with the ends of the range as
    the bounds): the interval is one-sided when the fit, or more than ``(1 - level)/2`` of the
    resamples, lie beyond an end. Otherwise the interval of ``method`` is taken with those beyond
    an end placed on it (quantiles inside the range do not move).
    """
    column = replicates[~np.isnan(replicates)]
    edges = Bounds(*span)
    clipped = np.clip(column, *span)
    share = {s: float(np.mean(column == s * np.inf)) if column.size else 0.0 for s in (-1, 1)}
    fitted = int(np.sign(value)) if np.isinf(value) else 0
    side = fitted or max(share, key=share.get)
    if not fitted and share[side] <= (1 - level) / 2:
        side = 0
    loo = None if loo is None else np.clip(loo[~np.isnan(loo)], *span)
    lo, hi, side = _censored_interval(clipped, value, edges, side, level, method, loo)
    se = float(np.std(clipped, ddof=1)) if column.size > 1 and not side else np.nan
    return {"constant": name, "value": float(value) if np.isfinite(value) else np.nan, "se": se,
            "lo": float(lo), "hi": float(hi), "n_ok": int(column.size), "method": method,
            "censored": _SIDES.get(side, ""),
            "note": _beyond_note(span, fitted, share)}  # fmt: skip


def _beyond_note(span, fitted: int, share: dict) -> str:
    """Where the optimum lies beyond the sampled range, e.g. ``"no minimum inside [1, 16]; > 16
    at the fit and in 83% of resamples"`` (``share``: side -1 / +1 to the share of resamples
    beyond that end); empty when the fit and every resample are inside."""
    ends = {1: (f"> {span[1]:g}", share[1]), -1: (f"< {span[0]:g}", share[-1])}
    parts = []
    for side in sorted((1, -1), key=lambda s: (s != fitted, -ends[s][1])):
        end, share = ends[side]
        if side == fitted:
            parts.append(f"{end} at the fit and in {_percent(share)}")
        elif share > 0:
            parts.append(f"{end} in {_percent(share)}")
    if not parts:
        return ""
    head = "no minimum" if fitted else "minimum"
    return f"{head} inside [{span[0]:g}, {span[1]:g}]; " + ", ".join(parts) + " of resamples"


def _percent(share: float) -> str:
    return f"{100 * share:.3g}%"


def _censoring(value, column, bounds, level) -> int:
    """-1 / +1 when the fit, or more than ``(1 - level)/2`` of the refits, rest on the lower /
    upper bound (then that end of any two-sided interval would be the bound itself); else 0."""
    if bounds is None:
        return 0
    fitted = int(at_bound(value, bounds))
    sides = at_bound(column, bounds)
    share = {-1: np.mean(sides == -1), 1: np.mean(sides == 1)}
    if fitted:
        return fitted
    side = max(share, key=share.get)
    return side if share[side] > (1 - level) / 2 else 0


def _one_sided(column, bounds, side, level) -> tuple[float, float]:
    """From the bound to the ``level`` quantile of the refits on the other side (to the
    farthest refit where that quantile is the bound itself)."""
    if side < 0:
        free = float(np.percentile(column, 100 * level))
        free = free if at_bound(free, bounds) != -1 else float(column.max())
        return float(bounds.lo), free
    free = float(np.percentile(column, 100 * (1 - level)))
    free = free if at_bound(free, bounds) != 1 else float(column.min())
    return free, float(bounds.hi)


def _warn_censored(fit, table: pd.DataFrame) -> None:
    from discover.fit import IdentifiabilityWarning

    sides = {"lower": (-1,), "upper": (1,), "both": (-1, 1)}
    findings = [bound_finding(row.constant, side, fit.law.constants[row.constant])
                for row in table.itertuples() if row.censored and row.constant in fit.law.constants
                for side in sides[row.censored]]  # fmt: skip
    if findings:
        warnings.warn(f"law {fit.law.name!r}, bootstrap: " + "; ".join(findings)
                      + "; their intervals are one-sided (column 'censored')",
                      IdentifiabilityWarning, stacklevel=3)  # fmt: skip
