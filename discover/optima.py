"""Optimal values of one factor of a law, derived with sympy.

For a factor ``x`` (e.g. ``G`` or ``S``) the optimum solves ``dL/dx = 0`` with ``d2L/dx2 > 0`` (a
minimum
of the loss). For the joint MoE law the bracket ``e G + f/G + m S^2 + n S`` multiplies a positive
factor,
so ``G* = sqrt(f/e)`` and ``S* = -n/(2m)``, free of ``N``, ``Na`` and ``D``.
"""

from __future__ import annotations

import logging

import numpy as np
import sympy
from scipy import optimize

from discover.formula import symbol
from discover.laws import Law
from results.errors import InputError

log = logging.getLogger(__name__)

_GRID = 2001  # points of the numeric fallback's sign-change scan


def optimum(expr_or_fit, var, params=None, bounds=None) -> float | None:
    """The value of ``var`` that minimises the loss, or ``None`` if there is no interior minimum.

    Parameters
    ----------
    expr_or_fit : sympy.Expr, Law or FitResult
        The law. A :class:`~discover.fit.FitResult` uses its fitted constants; a :class:`Law` uses
        ``params`` or, if not given, its reference constants.
    var : str or sympy.Symbol
        The factor to optimise, e.g. ``"G"``.
    params : dict of str to float, optional
        Values substituted before solving: constants and, if the optimum depends on them, other
        inputs.
    bounds : tuple of float, optional
        ``(lo, hi)``: keep only minima inside, and scan this range numerically if sympy cannot
        solve.

    Returns
    -------
    float or None
        The minimiser (the one with the lowest loss if several), or ``None`` when the law does not
        depend on ``var`` or has no minimum in range.

    Raises
    ------
    InputError
        When the optimum depends on symbols without values (pass them in ``params``).

    Examples
    --------
    >>> from discover.laws import get_law
    >>> round(optimum(get_law("moe_joint"), "G"), 3)
    6.778
    """
    expr, x = _expression(expr_or_fit, params), symbol(str(var))
    if x not in expr.free_symbols:
        return None
    # 1. Stationary points: dL/dx = 0, in closed form or else scanned over bounds.
    d1, d2 = sympy.diff(expr, x), sympy.diff(expr, x, 2)
    roots = _symbolic_roots(d1, x)
    if roots is None:
        if bounds is None:
            raise InputError(
                f"dL/d{x} = 0 has no closed-form solution sympy can find; pass bounds=(lo, hi), "
                f"e.g. the range of {x} in the data, to search it numerically"
            )
        roots = _numeric_roots(d1, x, expr.free_symbols - {x}, bounds)

    # 2. Keep the real ones in range where d2L/dx2 > 0.
    return _best_minimum(expr, d2, x, roots, bounds)


def _expression(expr_or_fit, params) -> sympy.Expr:
    """The law as a sympy expression with ``params`` substituted."""
    if hasattr(expr_or_fit, "sympy") and hasattr(expr_or_fit, "params"):
        expr = expr_or_fit.sympy()
    elif isinstance(expr_or_fit, Law):
        values = params if params is not None else expr_or_fit.reference
        if values is None:
            raise InputError(f"law {expr_or_fit.name!r} has no reference constants; pass params=")
        expr = expr_or_fit.substitute(
            {k: v for k, v in values.items() if k in expr_or_fit.constants}
        )
    elif isinstance(expr_or_fit, sympy.Expr):
        expr = expr_or_fit
    else:
        raise InputError(f"optimum() takes a sympy expression, a Law or a FitResult, "
                         f"not {type(expr_or_fit).__name__}")  # fmt: skip
    if params:
        expr = expr.xreplace({symbol(k): sympy.Float(float(v), 17) for k, v in params.items()})
    return expr


def _symbolic_roots(d1, x) -> list | None:
    """Roots of dL/dx when its numerator is a polynomial in x of degree <= 4; else None.

    Restricting sympy.solve to this case keeps it fast: on sums of powers with non-integer exponents
    it can run for minutes.
    """
    numerator = sympy.together(d1).as_numer_denom()[0]
    try:
        degree = sympy.Poly(numerator, x).degree()
    except sympy.PolynomialError:
        return None
    if degree > 4:
        return None
    try:
        return sympy.solve(numerator, x)
    except NotImplementedError as err:
        log.debug("sympy could not solve d/d%s = 0 (%s)", x, err)
        return None


def _best_minimum(expr, d2, x, roots, bounds) -> float | None:
    """Among the candidate roots keep real minima in range; return the one with the lowest loss."""
    lo, hi = bounds if bounds is not None else (-np.inf, np.inf)
    minima = []
    for root in roots:
        _require_numeric(sympy.sympify(root), x)
        value = complex(sympy.N(root, 30))
        if abs(value.imag) > 1e-12 * max(1.0, abs(value.real)) or not lo <= value.real <= hi:
            continue
        at = {x: sympy.Float(value.real, 30)}
        if _is_positive(d2.xreplace(at), x):
            minima.append((value.real, expr.xreplace(at)))
    if len(minima) > 1:
        _require_numeric(sympy.Add(*(loss for _, loss in minima)), x)
        minima.sort(key=lambda m: float(m[1]))
    return minima[0][0] if minima else None


def _is_positive(curvature: sympy.Expr, x) -> bool:
    """Sign of d2L/dx2 at a root; symbols left over must be decided by their assumptions."""
    if not curvature.free_symbols:
        return float(curvature) > 0
    sign = curvature.is_positive
    if sign is None:
        _require_numeric(curvature, x)
    return bool(sign)


def _require_numeric(value: sympy.Expr, x) -> None:
    if value.free_symbols:
        names = sorted(s.name for s in value.free_symbols)
        raise InputError(f"the optimum of {x} depends on {names}; pass their values in params=")


def _numeric_roots(d1, x, others, bounds) -> list[float]:
    """Roots of dL/dx on a grid over bounds, refined with Brent's method."""
    if others:
        _require_numeric(sympy.Add(*others), x)
    f = sympy.lambdify(x, d1, "numpy")
    grid = np.linspace(float(bounds[0]), float(bounds[1]), _GRID)
    with np.errstate(all="ignore"):
        values = np.broadcast_to(np.asarray(f(grid), float), grid.shape)
    change = np.flatnonzero(np.isfinite(values[:-1]) & np.isfinite(values[1:])
                            & (np.sign(values[:-1]) != np.sign(values[1:])))  # fmt: skip
    return [optimize.brentq(f, grid[i], grid[i + 1], xtol=1e-14) for i in change]


def optimum_formula(law: Law, var: str, params: dict) -> sympy.Expr | None:
    """Closed form of the optimum of ``var`` in the law's constants, or ``None``.

    The root of ``dL/dvar = 0`` that :func:`optimum` picks at ``params`` (the minimum), kept as an
    expression of the constants so it can be evaluated at many constant sets at once (bootstrap).
    ``None`` when sympy finds no closed form, when the optimum depends on the inputs, or when
    there is no minimum at ``params``.
    """
    x = symbol(var)
    roots = _symbolic_roots(sympy.diff(law.expr, x), x)
    if roots is None:
        return None
    try:
        target = optimum(law, var, params=params)
    except InputError:
        return None
    inputs = {symbol(n) for n in law.inputs}
    values = {symbol(k): sympy.Float(float(v), 17) for k, v in params.items()}
    for root in roots:
        if target is None or root.free_symbols & inputs:
            continue
        value = complex(sympy.N(root.xreplace(values), 20))
        if abs(value - target) <= 1e-9 * max(1.0, abs(target)):
            return root
    return None
