"""Fit the constants of a scaling law: a vectorised global search, then gradient polishing.

The objective is the sum over runs of a loss of the residual

    r_i = log L(x_i; theta) - log y_i,    objective = sum_i w_i * rho(r_i)

(``residual="linear"`` uses ``r_i = L(x_i; theta) - y_i``), with ``rho`` one of (``loss=``):

- ``"huber"`` (default): ``r^2/2`` for ``|r| <= delta``, ``delta (|r| - delta/2)`` beyond, as in
  Hoffmann et al. 2022 and Besiroglu et al. 2024;
- ``"squared"``: ``r^2/2``;
- ``"absolute"``: ``|r|``, rounded off inside ``|r| <= 1e-9`` (``r^2/2e-9 + 5e-10``) so that its
  gradient exists everywhere;
- ``"asymmetric"``: ``kappa r^2/2`` for ``r > 0`` (the law over-predicts the loss) and ``r^2/2``
  otherwise, ``kappa = asymmetry`` (default 4): over-prediction costs ``kappa`` times as much,
  so the law settles below the bulk of the points (the ``1/(1 + kappa)`` expectile; Newey and
  Powell 1987).

``reduction="mean"`` divides the objective by the sum of weights. The optimiser works on the
objective divided by its value at the starting point, so summed and averaged objectives stop at
the same optimum (the early stop that an averaged objective caused in published fits cannot
happen here). Steps:

1. Draw ``n_starts`` points of a scrambled Sobol sequence inside the constants' bounds (log space
   for ``positive`` constants) and evaluate the objective at all of them in one numpy
   computation: constants shaped (n_starts, 1) broadcast against input columns (1, n_rows).
2. Give the best ``8 n_polish`` points a short L-BFGS-B polish and the best ``n_polish`` of those
   a full one, using the analytic gradient of the law (sympy derivatives, lambdified) in the same
   transformed coordinates and bounds.
3. Finish every polished point with Levenberg-Marquardt steps (:mod:`discover.lm`), which reach
   the exact minimum where L-BFGS-B's stopping rule leaves a small-residual fit short of it.
4. Pass every result through :func:`_check_convergence`; keep the lowest objective; warn with
   :class:`FitConvergenceWarning` if it did not converge.
5. Check that the data identify every constant (:func:`discover.identify.identifiability`); warn
   with :class:`IdentifiabilityWarning` naming flat directions and strongly correlated pairs.

Bootstrap intervals of every constant: :meth:`FitResult.bootstrap` (see :mod:`discover.bootstrap`).

Example::

    from discover.fit import fit_law
    from discover.laws import get_law
    fit = fit_law(get_law("chinchilla"), table)   # table has columns N, D, loss
    fit.params, fit.metrics(table)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sympy
from scipy import optimize
from scipy.stats import qmc

from discover.data import check_table
from discover.formula import symbol
from discover.laws import IRREDUCIBLE_NAMES, Law
from discover.metrics import scores
from results.errors import InputError

log = logging.getLogger(__name__)

LOSSES = ("huber", "squared", "absolute", "asymmetric")
REDUCTIONS = ("sum", "mean")
RESIDUALS = ("log", "linear")
_ABS_SMOOTH = 1e-9  # half-width of the rounded-off kink of the absolute loss
_CHUNK = 2_000_000  # largest n_starts * n_rows block evaluated at once (16 MB of float64)
_SCOUTS = 8  # starts given a short polish for every start fully polished
_SCOUT_ITER = 60  # iterations of a short polish
_AT_BOUND = 1e-7  # a constant within this fraction of its interval from a bound is "at the bound"


class FitConvergenceWarning(UserWarning):
    """The optimiser did not reach a minimum it can vouch for; see ``FitResult.message``."""


class IdentifiabilityWarning(UserWarning):
    """The data cannot pin down some constants; see ``FitResult.identifiability``."""


@functools.lru_cache(maxsize=128)
def _compile(expr: sympy.Expr, inputs: tuple, constants: tuple):
    """numpy functions for the law and for its gradient in the constants (same argument order)."""
    args = [symbol(n) for n in (*inputs, *constants)]
    value = sympy.lambdify(args, expr, "numpy")
    partials = [sympy.diff(expr, symbol(c)) for c in constants]
    gradient = sympy.lambdify(args, partials, "numpy", cse=True)
    return value, gradient


@dataclass
class _Problem:
    """A law bound to data: inputs, log targets, weights, and the transformed search box."""

    law: Law
    x: list  # one float64 array (n_rows,) per input, in law.inputs order
    log_y: np.ndarray  # log of the targets ("log" residuals) or the targets ("linear")
    w: np.ndarray
    loss: str
    delta: float
    asymmetry: float
    log_space: np.ndarray  # bool per constant: fitted as log(c)
    lo: np.ndarray  # bounds in the transformed coordinates
    hi: np.ndarray
    residual: str = "log"

    def residuals(self, pred: np.ndarray) -> np.ndarray:
        """``log pred - log y`` (default) or ``pred - y`` (``residual="linear"``)."""
        return (np.log(pred) if self.residual == "log" else pred) - self.log_y

    def dr_dpred(self, pred: np.ndarray) -> np.ndarray:
        """Derivative of the residual with respect to the prediction."""
        return 1.0 / pred if self.residual == "log" else np.ones_like(pred)

    def constants(self, theta: np.ndarray) -> np.ndarray:
        """Constants from transformed coordinates (any leading shape)."""
        return np.where(self.log_space, np.exp(theta), theta)

    def predict(self, theta: np.ndarray, x=None) -> np.ndarray:
        """Law value: theta (k, n_const) gives (k, n_rows); theta (n_const,) gives (n_rows,)."""
        x = self.x if x is None else x
        c = self.constants(theta)
        if c.ndim == 2:
            x = [xi[None, :] for xi in x]
            c_args = [c[:, j : j + 1] for j in range(c.shape[1])]
            shape = (c.shape[0], x[0].shape[1]) if x else (c.shape[0], 1)
        else:
            c_args = list(c)
            shape = x[0].shape if x else (1,)
        value, _ = _compile(self.law.expr, self.law.inputs, tuple(self.law.constants))
        return np.broadcast_to(np.asarray(value(*x, *c_args), dtype=float), shape)

    def rho(self, r: np.ndarray) -> np.ndarray:
        """Loss of each residual (see the module docstring for the four forms)."""
        if self.loss == "squared":
            return 0.5 * r**2
        if self.loss == "asymmetric":
            return 0.5 * r**2 * np.where(r > 0, self.asymmetry, 1.0)
        delta = self.delta if self.loss == "huber" else _ABS_SMOOTH
        a = np.abs(r)
        huber = np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))
        return huber if self.loss == "huber" else huber / delta

    def psi(self, r: np.ndarray) -> np.ndarray:
        """Derivative of rho."""
        if self.loss == "squared":
            return r
        if self.loss == "asymmetric":
            return r * np.where(r > 0, self.asymmetry, 1.0)
        if self.loss == "huber":
            return np.clip(r, -self.delta, self.delta)
        return np.clip(r, -_ABS_SMOOTH, _ABS_SMOOTH) / _ABS_SMOOTH

    def with_weights(self, w: np.ndarray) -> _Problem:
        """The same problem with other row weights (a bootstrap resample is a weight vector)."""
        return dataclasses.replace(self, w=np.asarray(w, dtype=float))

    def theta(self, params: dict) -> np.ndarray:
        """Transformed coordinates of a dict of constants."""
        theta = np.array([float(params[n]) for n in self.law.constants])
        # Only the log-space constants are logged: a linear one may be 0 (epsilon at its bound)
        theta[self.log_space] = np.log(np.abs(theta[self.log_space]))
        return theta

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        """d log L / d theta at every row, shape (n_rows, n_const)."""
        with np.errstate(all="ignore"):
            pred = self.predict(theta)
            _, gradient = _compile(self.law.expr, self.law.inputs, tuple(self.law.constants))
            partials = gradient(*self.x, *self.constants(theta))
            jac = np.stack([np.broadcast_to(np.asarray(p, float), pred.shape) for p in partials])
            return (jac * self.dr_dpred(pred)).T * np.where(
                self.log_space, self.constants(theta), 1.0
            )

    def objective_many(self, theta: np.ndarray) -> np.ndarray:
        """Objective at every row of theta (k, n_const), inf where a prediction is not positive."""
        out = np.empty(len(theta))
        step = max(1, _CHUNK // max(1, len(self.log_y)))
        with np.errstate(all="ignore"):
            for i in range(0, len(theta), step):
                pred = self.predict(theta[i : i + step])
                r = self.residuals(pred)
                obj = (self.rho(r) * self.w).sum(axis=1)
                bad = ~(np.isfinite(pred) & (pred > 0)).all(axis=1)
                out[i : i + step] = np.where(bad | ~np.isfinite(obj), np.inf, obj)
        return out

    def objective_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Objective and its gradient in transformed coordinates at one point."""
        with np.errstate(all="ignore"):
            pred = self.predict(theta)
            if not (np.isfinite(pred).all() and (pred > 0).all()):
                return math.inf, np.zeros_like(theta)
            r = self.residuals(pred)
            _, gradient = _compile(self.law.expr, self.law.inputs, tuple(self.law.constants))
            partials = gradient(*self.x, *self.constants(theta))
            jac = np.stack([np.broadcast_to(np.asarray(p, float), pred.shape) for p in partials])
            g_c = jac @ (self.w * self.psi(r) * self.dr_dpred(pred))
            g = g_c * np.where(self.log_space, self.constants(theta), 1.0)
            obj = float((self.w * self.rho(r)).sum())
        if not (np.isfinite(obj) and np.isfinite(g).all()):
            return math.inf, np.zeros_like(theta)
        return obj, g


@dataclass
class FitResult:
    """A fitted law.

    Attributes
    ----------
    law : Law
        The law that was fitted.
    params : dict of str to float
        Fitted constants.
    objective : float
        Sum of the (weighted) loss of log residuals at ``params``.
    converged : bool
        Whether the chosen optimum passed :func:`_check_convergence`.
    message : str
        What the convergence check found ("converged" or the problems).
    n_starts : int
        Starting points of the global search.
    columns : dict of str to str
        Data column read for each input symbol.
    polished : list of dict
        Objective, convergence and message of every polished start, best first.
    seconds : float
        Wall time of the fit.
    identifiability : list of str
        Flat directions, strongly correlated pairs and constants resting on a bound, found at
        the optimum; empty if none.
    bootstrap_samples : pandas.DataFrame or None
        Constants refitted on each resample by the last :meth:`bootstrap` call.
    groups : dict or None
        For a fit of :func:`discover.groups.fit_grouped`: ``by``, ``levels``, ``per_group``.
    jackknife_samples : pandas.DataFrame or None
        Constants refitted with each row (or group of rows) left out, by the last
        :func:`discover.bootstrap.jackknife` call (BCa intervals use them).
    """

    law: Law
    params: dict[str, float]
    objective: float
    converged: bool
    message: str
    n_starts: int
    columns: dict[str, str] = field(default_factory=dict)
    loss: str = "huber"
    delta: float = 1e-3
    polished: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    identifiability: list[str] = field(default_factory=list)
    bootstrap_samples: pd.DataFrame | None = field(default=None, repr=False)
    problem: _Problem | None = field(default=None, repr=False, compare=False)
    groups: dict | None = None
    jackknife_samples: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def n_constants(self) -> int:
        """Number of fitted constants."""
        return self.law.n_constants

    def predict(self, data) -> np.ndarray:
        """Predicted loss for every row of ``data`` (a DataFrame or a dict of arrays)."""
        if self.groups:
            from discover.groups import with_indicators

            data = with_indicators(pd.DataFrame(data), self.groups["by"], self.groups["levels"])
        x = [_column(data, self.columns.get(n, n)) for n in self.law.inputs]
        n_rows = len(x[0]) if x else len(data)
        theta = np.array([self.params[c] for c in self.law.constants], dtype=float)
        value, _ = _compile(self.law.expr, self.law.inputs, tuple(self.law.constants))
        with np.errstate(all="ignore"):
            return np.broadcast_to(np.asarray(value(*x, *theta), float), (n_rows,)).copy()

    def metrics(self, data, target: str = "loss") -> dict[str, float]:
        """``dict(r2, rmse, mape)`` of the prediction against ``data[target]``."""
        return scores(_column(data, target), self.predict(data))

    def sympy(self) -> sympy.Expr:
        """The law with its constants replaced by the fitted values, at 17 significant digits."""
        return self.law.substitute(self.params)

    def bootstrap(self, n: int = 1000, *, seed: int = 0, level: float = 0.95, workers=None,
                  derived: bool = True, method: str | None = None) -> pd.DataFrame:  # fmt: skip
        """Bootstrap standard errors and intervals of every constant (and of G*, S* if defined).

        Runs are resampled with replacement ``n`` times and the law refitted on each resample from
        the fitted constants; see :func:`discover.bootstrap.bootstrap` for the parameters
        (``method=None`` takes its default interval method).

        Returns
        -------
        pandas.DataFrame
            One row per constant: ``constant, value, se, lo, hi, n_ok, method, censored``.
        """
        from discover.bootstrap import METHOD, bootstrap

        return bootstrap(self, n, seed=seed, level=level, workers=workers, derived=derived,
                         method=method or METHOD)  # fmt: skip


def one_blas_thread():
    """Context that limits BLAS/OpenMP pools to one thread (if threadpoolctl is installed).

    L-BFGS-B takes thousands of steps on 5-12 numbers; each calls BLAS on tiny matrices, and
    with BLAS threads spinning on a busy machine a step cost 2.4 ms instead of 0.1 ms (measured:
    a 4,500-start Epoch fit took 24 s against 2 s on 2 shared cores).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def _column(data, name) -> np.ndarray:
    try:
        return np.asarray(data[name], dtype=float)
    except KeyError:
        available = list(data.columns) if isinstance(data, pd.DataFrame) else list(data)
        raise InputError(f"no column {name!r} in the data; available: {available}") from None


def fit_law(
    law: Law,
    data: pd.DataFrame,
    target: str = "loss",
    *,
    loss: str = "huber",
    delta: float = 1e-3,
    n_starts: int = 1024,
    seed: int = 0,
    weights=None,
    columns: dict[str, str] | None = None,
    n_polish: int = 8,
    maxiter: int = 3000,
    start: dict[str, float] | None = None,
    grad_tol: float = 1e-6,
    asymmetry: float = 4.0,
    reduction: str = "sum",
    check_identifiability: bool = True,
    residual: str = "log",
) -> FitResult:
    """Fit a law's constants to measured losses.

    Parameters
    ----------
    law : Law
        The law, e.g. ``get_law("moe_joint")``.
    data : pandas.DataFrame
        One row per run, with a column per input (see ``columns``) and ``target``.
    target : str, default "loss"
        Measured loss column; must be positive.
    loss : {"huber", "squared", "absolute", "asymmetric"}, default "huber"
        Loss applied to each log-space residual (forms in the module docstring).
    delta : float, default 1e-3
        Huber threshold, in log-loss units.
    n_starts : int, default 1024
        Sobol starting points of the global search.
    seed : int, default 0
        Scrambling seed of the Sobol sequence; the fit is deterministic given it.
    weights : array-like or str, optional
        Weight per row, or the name of a weight column. Default: all ones.
    columns : dict of str to str, optional
        Data column for an input symbol, e.g. ``{"N": "Na"}`` reads ``N`` from column ``Na``.
    n_polish : int, default 8
        Best starts polished with L-BFGS-B.
    maxiter : int, default 3000
        Iteration limit of each polish.
    start : dict of str to float, optional
        An extra starting point (e.g. published constants), always polished.
    grad_tol : float, default 1e-6
        Largest projected gradient, relative to the sum of weights, accepted as converged.
    asymmetry : float, default 4.0
        For ``loss="asymmetric"``: how many times more an over-prediction costs than an
        under-prediction of the same size.
    reduction : {"sum", "mean"}, default "sum"
        Sum the per-row losses, or average them (weights normalised to sum to one). Both reach
        the same optimum.
    check_identifiability : bool, default True
        Look for constants the data cannot separate and warn about them.
    residual : {"log", "linear"}, default "log"
        Residual of each row: ``log L - log y``, or ``L - y`` (plain least squares on the loss
        with ``loss="squared"``, as some published comparisons fit).

    Returns
    -------
    FitResult

    Warns
    -----
    FitConvergenceWarning
        When the best polished result fails the convergence check.
    IdentifiabilityWarning
        When the data leave a direction of the constants flat or two constants almost perfectly
        correlated; fix one of them (:meth:`Law.fix`) or tie them.

    References
    ----------
    Hoffmann et al. 2022, arXiv 2203.15556 (Huber loss of log residuals, grid of starts);
    Besiroglu et al. 2024, arXiv 2404.10102 (the replication that motivates a global search).
    """
    began = time.perf_counter()
    columns = dict(columns or {})
    problem = _problem(law, data, target, loss, delta, weights, columns, asymmetry, reduction,
                       residual)  # fmt: skip
    scouts = _global_search(problem, n_starts, seed, _SCOUTS * n_polish, start)
    with one_blas_thread():
        scouted = [_polish(problem, t, _SCOUT_ITER, grad_tol)["theta"] for t in scouts]
        scouted.sort(key=lambda t: problem.objective_and_gradient(t)[0])
        runs = [_polish(problem, t, maxiter, grad_tol) for t in scouted[:n_polish]]
        runs = _finish(problem, runs, maxiter, grad_tol)
    best = runs[0]
    # exp(log(bound)) can land an ulp outside the bound: report values inside their interval
    values = problem.constants(best["theta"])
    params = {name: min(max(float(value), b.lo), b.hi)
              for (name, b), value in zip(law.constants.items(), values, strict=True)}  # fmt: skip
    if not best["converged"]:
        warnings.warn(
            f"fit of law {law.name!r} did not converge: {best['message']}",
            FitConvergenceWarning,
            stacklevel=2,
        )
    issues = _identify(problem, best["theta"]) if check_identifiability else []
    polished = [{k: v for k, v in run.items() if k != "theta"} for run in runs]
    seconds = time.perf_counter() - began
    log.info("fitted %s on %d rows in %.2f s: objective %.6g", law.name, len(data), seconds,
             best["objective"])  # fmt: skip
    return FitResult(law, params, best["objective"], best["converged"], best["message"], n_starts,
                     columns, loss, delta, polished, seconds, issues, None, problem)  # fmt: skip


def _finish(problem: _Problem, runs: list[dict], maxiter: int, grad_tol: float) -> list[dict]:
    """Levenberg-Marquardt from every polished point; re-judge the ones it improved; sort.

    L-BFGS-B stops on a relative change of the objective, which leaves small-residual problems
    short of their minimum; Gauss-Newton steps converge fast there.
    """
    from discover.lm import refine

    thetas = np.array([run["theta"] for run in runs])
    refined, _ = refine(problem, thetas, np.repeat(problem.w[None, :], len(runs), axis=0), maxiter)
    for i, theta in enumerate(refined):
        if problem.objective_and_gradient(theta)[0] < runs[i]["objective"]:
            runs[i] = _polish(problem, theta, maxiter, grad_tol)
    return sorted(runs, key=lambda run: run["objective"])


def _identify(problem: _Problem, theta: np.ndarray) -> list[str]:
    """Run the identifiability check; warn once naming what it found."""
    from discover.identify import bounds_findings, identifiability

    issues = identifiability(problem.jacobian(theta), problem.w, list(problem.law.constants))
    params = dict(zip(problem.law.constants, problem.constants(theta), strict=True))
    issues += bounds_findings(params, problem.law.constants)
    if issues:
        warnings.warn(
            f"law {problem.law.name!r}: the data cannot identify every constant: "
            + "; ".join(issues)
            + ". Fix one constant of each group (write its value into `moelaw fit --formula` "
            "on the command line, law.fix(NAME=value) in Python) or tie them, "
            "or add runs that vary the inputs they multiply",
            IdentifiabilityWarning,
            stacklevel=3,
        )
    return issues


def _problem(law, data, target, loss, delta, weights, columns, asymmetry=4.0,
             reduction="sum", residual="log") -> _Problem:  # fmt: skip
    """Validate the arguments and data; bind the law to arrays and its transformed bounds."""
    if loss not in LOSSES:
        raise InputError(f"unknown loss {loss!r}; choose one of {LOSSES}")
    if reduction not in REDUCTIONS:
        raise InputError(f"unknown reduction {reduction!r}; choose one of {REDUCTIONS}")
    if residual not in RESIDUALS:
        raise InputError(f"unknown residual {residual!r}; choose one of {RESIDUALS}")
    if not delta > 0:
        raise InputError(f"delta must be positive, got {delta!r}")
    if not asymmetry > 0:
        raise InputError(f"asymmetry must be positive (4 makes over-prediction cost 4x), "
                         f"got {asymmetry!r}")  # fmt: skip
    unknown = set(columns) - set(law.inputs)
    if unknown:
        raise InputError(f"columns= maps {sorted(unknown)}, which are not inputs of {law.name!r}: "
                         f"{list(law.inputs)}")  # fmt: skip
    col = [columns.get(n, n) for n in law.inputs]
    check_table(data, col, target, positive=[columns.get(n, n) for n in law.positive_inputs],
                varying=col)  # fmt: skip
    x = [data[c].to_numpy(dtype=float) for c in col]
    y = data[target].to_numpy(dtype=float)
    log_y = np.log(y) if residual == "log" else y
    w = _weights(weights, data)
    if reduction == "mean":
        w = w / w.sum()
    bounds = list(law.constants.values())
    log_space = np.array([b.positive for b in bounds])
    lo = np.array([math.log(b.lo) if b.positive else b.lo for b in bounds])
    hi = np.array([math.log(b.hi) if b.positive else b.hi for b in bounds])
    return _Problem(law, x, log_y, w, loss, float(delta), float(asymmetry), log_space, lo, hi,
                    residual)  # fmt: skip


def _weights(weights, data) -> np.ndarray:
    if weights is None:
        return np.ones(len(data))
    w = np.asarray(data[weights] if isinstance(weights, str) else weights, dtype=float).ravel()
    if w.shape != (len(data),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() == 0:
        raise InputError(
            f"weights must be {len(data)} finite non-negative numbers, not all zero; got shape "
            f"{w.shape}, min {np.nanmin(w) if w.size else 'n/a'}"
        )
    return w


def _global_search(problem: _Problem, n_starts, seed, n_polish, start) -> list[np.ndarray]:
    """Best ``n_polish`` Sobol points by objective (plus ``start``), in transformed coordinates."""
    if n_starts < 1 or n_polish < 1:
        raise InputError(f"n_starts and n_polish must be >= 1, got {n_starts} and {n_polish}")
    dim = len(problem.lo)
    sobol = qmc.Sobol(dim, scramble=True, seed=np.random.default_rng(seed))
    unit = sobol.random_base2(max(0, math.ceil(math.log2(n_starts))))[:n_starts]
    theta = problem.lo + unit * (problem.hi - problem.lo)
    objective = problem.objective_many(theta)
    finite = np.flatnonzero(np.isfinite(objective))
    if finite.size == 0 and start is None:
        raise InputError(
            f"law {problem.law.name!r} predicts a non-positive or non-finite loss "
            f"at all {n_starts} "
            "starting points; check the inputs' units or widen the constants' bounds"
        )
    order = finite[np.argsort(objective[finite])][:n_polish]
    chosen = [theta[i] for i in order]
    if start is not None:
        chosen.append(_start_theta(problem, start))
    return chosen


def _start_theta(problem: _Problem, start: dict) -> np.ndarray:
    names = list(problem.law.constants)
    if set(start) != set(names):
        raise InputError(f"start= must give every constant {names}; got {sorted(start)}")
    c = np.array([float(start[n]) for n in names])
    if (c[problem.log_space] <= 0).any():
        raise InputError(f"start= gives a non-positive value to a log-space constant: {start}")
    theta = np.where(problem.log_space, np.log(np.abs(c)), c)
    return np.clip(theta, problem.lo, problem.hi)


def _polish(problem: _Problem, theta0: np.ndarray, maxiter: int, grad_tol: float) -> dict:
    """One L-BFGS-B run from theta0, checked for convergence."""
    scale = max(problem.objective_and_gradient(theta0)[0], 1e-300)
    if not np.isfinite(scale):
        scale = 1.0

    def scaled(theta):
        obj, g = problem.objective_and_gradient(theta)
        return obj / scale, g / scale

    with np.errstate(all="ignore"):
        result = optimize.minimize(
            scaled, theta0, jac=True, method="L-BFGS-B",
            bounds=list(zip(problem.lo, problem.hi, strict=True)),
            options={"maxiter": maxiter, "ftol": 1e-15, "gtol": 1e-12, "maxcor": 30},
        )  # fmt: skip
    objective, gradient = problem.objective_and_gradient(result.x)
    converged, message = _check_convergence(result, gradient, problem, grad_tol)
    return {"theta": result.x, "objective": objective, "converged": converged,
            "message": message, "iterations": int(result.nit)}  # fmt: skip


def _check_convergence(result, gradient, problem: _Problem, grad_tol: float) -> tuple[bool, str]:
    """The one judge of an optimiser result: success flag, gradient, constants at bounds."""
    issues = []
    theta, span = result.x, problem.hi - problem.lo
    at_lo = theta <= problem.lo + _AT_BOUND * span
    at_hi = theta >= problem.hi - _AT_BOUND * span
    projected = np.where((at_lo & (gradient > 0)) | (at_hi & (gradient < 0)), 0.0, gradient)
    g_max, tol = float(np.abs(projected).max(initial=0.0)), grad_tol * problem.w.sum()
    gradient_ok = np.isfinite(g_max) and g_max <= tol
    # A line search that fails at a point with a vanishing gradient has hit rounding, not a problem.
    if not result.success and not (gradient_ok and "ABNORMAL" in str(result.message)):
        issues.append(f"L-BFGS-B stopped after {result.nit} iterations: {result.message}")
    if not gradient_ok:
        issues.append(f"projected gradient {g_max:.3g} exceeds {tol:.3g}")
    constants = problem.law.constants
    edge = {n: ("lower", constants[n].lo) if lo else ("upper", constants[n].hi)
            for n, lo, hi in zip(constants, at_lo, at_hi, strict=True) if lo or hi}  # fmt: skip
    # A loss floor at 0 sits on a limit of the law, not of the search: nothing to widen
    floors = [n for n, (side, value) in edge.items()
              if side == "lower" and value == 0.0 and n in IRREDUCIBLE_NAMES]  # fmt: skip
    if floors:
        issues.append(", ".join(floors) + " at 0, the lowest a loss floor can be: the data do "
                      "not locate an irreducible loss above 0")  # fmt: skip
    edge = {n: v for n, v in edge.items() if n not in floors}
    if edge:
        where = [f"{n} at its {side} bound {value:.4g}" for n, (side, value) in edge.items()]
        wider = " ".join(f"--bounds {n}=LO:HI" for n in edge)
        issues.append(
            ", ".join(where) + "; the data do not pin these down within their bounds: where a "
            f"bound is not a limit the law needs, widen it (`{wider}` with `moelaw fit --law` or "
            "`--formula`; law.with_bounds(NAME=Bounds(lo, hi)) in Python)"
        )
    return not issues, "; ".join(issues) if issues else "converged"
