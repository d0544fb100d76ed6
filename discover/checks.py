"""Checks of a discovered law against the hand-designed one, with sympy.

A discovered law can fit and still be useless for planning: it may predict that a larger model is
worse, level off at a negative loss, or hide an optimum of G where the hand-designed law has one.
:func:`check_law` asks each fitted law the same questions, symbolically where sympy can answer
and on a grid of the data's range where it cannot:

* ``n_constants``: the number of fitted constants;
* ``sign``: the sign of ∂L/∂x for every size factor x (N, Na, D) over the data's range and up
  to 1000 times past its largest value (``"negative"`` everywhere, ``"positive"``, ``"mixed"``);
* ``limit``: the loss as N and D grow without bound together (``sympy.limit`` with the other
  inputs at their medians; a numeric probe at 1e30 when sympy cannot decide);
* ``G*``, ``S*``: the minimising G and S (:func:`discover.optima.optimum`), where defined;

and :func:`compare_laws` adds, for two laws, whether their forms are the same after
simplification (``same_form``: equal up to the names of the constants) and whether the fitted
expressions are identical (``equivalent``).

Example::

    from discover.checks import compare_laws
    report = compare_laws(discovered_fit, reference_fit, runs)
    report["discovered"]["sign"]["N"], report["same_form"]
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading

import numpy as np
import pandas as pd
import sympy as sp

from discover.candidates import factor_symbol, parametrize
from discover.optima import optimum
from results.errors import InputError

SIZE_FACTORS = ("N", "Na", "D")

#: How far past the largest value of each size factor the sign of its derivative is checked.
BEYOND = 1000.0


def check_law(fit, data: pd.DataFrame, n_grid: int = 64) -> dict:
    """The answers of one fitted law to the checks of the module docstring.

    Parameters
    ----------
    fit : discover.fit.FitResult
        A fitted law.
    data : pandas.DataFrame
        The runs it describes (their ranges and medians are used).
    n_grid : int, default 64
        Points per size factor of the grid on which derivatives are evaluated.

    Returns
    -------
    dict
        ``n_constants``, ``sign`` (factor -> "negative" | "positive" | "mixed" | "zero"),
        ``limit`` (float, or None if undecided), ``limit_method`` ("symbolic" or "numeric"),
        ``G*`` and ``S*`` (float or None).
    """
    expr = fit.sympy()
    inputs = [x for x in fit.law.inputs]
    missing = [fit.columns.get(x, x) for x in inputs if fit.columns.get(x, x) not in data]
    if missing:
        raise InputError(f"data lacks the columns {missing} of the law {fit.law.name!r}")
    medians = {x: float(np.median(data[fit.columns.get(x, x)])) for x in inputs}
    out = {"n_constants": fit.n_constants, "sign": {}}
    for x in inputs:
        if x in SIZE_FACTORS:
            out["sign"][x] = _derivative_sign(expr, x, data[fit.columns.get(x, x)], medians,
                                              data, fit, n_grid)  # fmt: skip
    out["limit"], out["limit_method"] = _limit(expr, inputs, medians)
    for var, key in (("G", "G*"), ("S", "S*")):
        out[key] = _optimum(fit, var, data, medians) if var in inputs else None
    return out


def _derivative_sign(expr, x, column, medians, data, fit, n_grid) -> str:
    """Sign of dL/dx over the rows' other inputs and a grid of x up to BEYOND times its maximum."""
    sym = factor_symbol(x)
    derivative = sp.diff(expr, sym)
    if derivative == 0:
        return "zero"
    others = [s for s in derivative.free_symbols if s != sym]
    f = sp.lambdify([sym, *others], derivative, "numpy")
    grid = np.geomspace(float(column.min()), float(column.max()) * BEYOND, n_grid)
    rows = data.drop_duplicates(subset=[fit.columns.get(s.name, s.name) for s in others]) \
        if others else data.iloc[:1]  # fmt: skip
    values = []
    with np.errstate(all="ignore"):
        for _, row in rows.iterrows():
            args = [float(row[fit.columns.get(s.name, s.name)]) for s in others]
            values.append(np.broadcast_to(np.asarray(f(grid, *args), float), grid.shape))
    values = np.concatenate(values)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return "undefined"
    scale = np.max(np.abs(values))
    if np.all(values <= 1e-12 * scale):
        return "negative"
    if np.all(values >= -1e-12 * scale):
        return "positive"
    return "mixed"


def _limit(expr, inputs, medians) -> tuple[float | None, str]:
    """L as N and D (and Na with N) grow without bound; the other inputs at their medians."""
    sizes = [x for x in inputs if x in SIZE_FACTORS]
    if not sizes:
        return None, "none"
    t = sp.Symbol("t", positive=True)
    scaled = expr.subs({factor_symbol(x): medians[x] * t for x in sizes})
    scaled = scaled.subs({factor_symbol(x): v for x, v in medians.items() if x not in sizes})
    try:
        with _time_limit(LIMIT_SECONDS):
            value = sp.limit(scaled, t, sp.oo)
        if value.is_real and value.is_finite:
            return float(value), "symbolic"
        if value in (sp.oo, -sp.oo):
            return (math.inf if value == sp.oo else -math.inf), "symbolic"
    except (NotImplementedError, TypeError, ValueError, RecursionError, TimeoutError):
        pass
    # Numeric: the value at t = 1e100, 1e200, 1e300 must settle (relative change < 1e-6); power
    # laws with small exponents approach their floor slowly, so the probes go far out
    with np.errstate(all="ignore"):
        probes = np.asarray(sp.lambdify(t, scaled, "numpy")(np.array(NUMERIC_PROBES)), float)
    last = probes[-1]
    settled = np.all(np.isfinite(probes)) and abs(last - probes[-2]) <= 1e-6 * max(abs(last), 1e-12)
    return (float(last) if settled else None), "numeric"


#: Scale factors of N and D at which a limit that sympy cannot take is read off numerically.
NUMERIC_PROBES = (1e100, 1e200, 1e300)


#: Seconds sympy may spend on one limit before the numeric probe is used instead.
LIMIT_SECONDS = 5


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise TimeoutError after ``seconds`` (main thread on POSIX only; elsewhere no limit)."""
    usable = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def _expire(signum, frame):
        raise TimeoutError("sympy took too long")

    previous = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _optimum(fit, var, data, medians) -> float | None:
    column = fit.columns.get(var, var)
    bounds = (float(data[column].min()), float(data[column].max()))
    others = {k: v for k, v in medians.items() if k != var}
    try:
        value = optimum(fit, var, params=others, bounds=bounds)
    except (InputError, NotImplementedError, TypeError, ValueError):
        return None
    return None if value is None else float(value)


def _expression(expr) -> sp.Expr:
    """A sympy expression as it is, or a formula read by the whitelist parser (never eval)."""
    if isinstance(expr, str):
        from discover.formula import parse_formula

        return parse_formula(expr)
    if not isinstance(expr, sp.Basic):
        raise InputError(f"expected a sympy expression or a formula string, got {expr!r}")
    return expr


def same_form(a: sp.Expr, b: sp.Expr, inputs) -> bool:
    """Whether two laws have the same form: equal once their constants are renamed c0, c1, ...

    Both are expanded and simplified, their numbers replaced by free constants in a canonical
    order, and compared; the names of the inputs must match.
    """
    keep = {factor_symbol(x) for x in inputs}
    forms = []
    for expr in (a, b):
        expr = _expression(expr)
        constants = [s for s in expr.free_symbols if s not in keep]
        numbered = expr.subs({s: sp.Float(1.0 + 0.1 * i) for i, s in enumerate(constants)})
        try:
            with _time_limit(LIMIT_SECONDS):
                numbered = sp.simplify(sp.expand(numbered))
        except TimeoutError:
            numbered = sp.expand(numbered)
        forms.append(parametrize(numbered)[0])
    return sp.srepr(forms[0]) == sp.srepr(forms[1])


def compare_laws(discovered, reference, data: pd.DataFrame) -> dict:
    """Both laws' checks, and whether their forms and fitted expressions coincide.

    Parameters
    ----------
    discovered, reference : discover.fit.FitResult
    data : pandas.DataFrame
        The runs both describe.

    Returns
    -------
    dict
        ``discovered`` and ``reference`` (each :func:`check_law`), ``same_form`` (bool) and
        ``equivalent`` (bool: the fitted expressions simplify to the same one).
    """
    inputs = sorted(set(discovered.law.inputs) | set(reference.law.inputs))
    a, b = discovered.sympy(), reference.sympy()
    try:
        with _time_limit(LIMIT_SECONDS):
            equivalent = bool(sp.simplify(a - b) == 0)
    except (TypeError, ValueError, RecursionError, TimeoutError):
        equivalent = False
    return {
        "discovered": check_law(discovered, data),
        "reference": check_law(reference, data),
        "same_form": same_form(discovered.law.expr, reference.law.expr, inputs),
        "equivalent": equivalent,
    }
