"""Optimal values of one factor of a law, derived with sympy.

For a factor ``x`` (e.g. ``G`` or ``S``) the optimum solves ``dL/dx = 0`` with ``d2L/dx2 > 0`` (a
minimum of the loss). For the joint MoE law the bracket ``e G + f/G + m S^2 + n S`` multiplies a
positive factor, so ``G* = sqrt(f/e)`` and ``S* = -n/(2m)``, free of ``N``, ``Na`` and ``D``.
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


def optima_in_range(law: Law, var: str, constants: dict, bounds, inputs=None) -> np.ndarray | None:
    """Minimiser of the loss over ``var`` in ``[lo, hi]`` for many sets of constants at once.

    The vectorised form of ``optimum(law, var, params=..., bounds=bounds)``, told apart by where
    the lowest loss on the range lies when there is no interior minimum (the bootstrap of
    ``G*`` and ``S*`` calls it once for all resamples):

    1. the roots of ``dL/dvar = 0`` in closed form, in the constants;
    2. per set of constants, the real roots inside ``[lo, hi]`` with ``d2L/dvar2 > 0``; the one
       with the lowest loss is the minimiser;
    3. without one, the loss is lowest at an end of the range (it is monotone there, its
       minimum lies beyond, or its stationary point is a maximum): ``-inf`` for the lower end,
       ``+inf`` for the upper end, as in :func:`discover.marginal.block_optima`.

    Parameters
    ----------
    law : Law
        The law; its roots must not depend on its inputs.
    var : str
        The factor to optimise, e.g. ``"G"``.
    constants : dict of str to float or array-like
        Every constant of the law; arrays (one value per set) broadcast together.
    bounds : tuple of float
        ``(lo, hi)``, the range of ``var`` searched, e.g. its range in the data.
    inputs : dict of str to float, optional
        Values of the other inputs where the curvature and the losses are compared (for laws in
        which ``var`` only scales a positive factor, as the joint MoE law, any values give the
        same answer). Required when the law has other inputs.

    Returns
    -------
    numpy.ndarray or None
        One value per set of constants: the minimiser inside ``[lo, hi]``, ``-inf`` or ``+inf``,
        or NaN where the loss is not finite at either end. ``None`` when sympy finds no closed
        form for the roots or they depend on the inputs.

    Examples
    --------
    >>> from discover.laws import law_from_expr
    >>> law = law_from_expr("e*G + f/G", ["G"])
    >>> optima_in_range(law, "G", {"e": [1.0, 0.01, -1.0], "f": [4.0, 4.0, 4.0]}, (1, 16))
    array([ 2., inf, inf])
    """
    x, lo, hi = symbol(var), float(bounds[0]), float(bounds[1])
    roots = _symbolic_roots(sympy.diff(law.expr, x), x)
    given = {symbol(n) for n in law.inputs}
    if roots is None or any(sympy.sympify(root).free_symbols & given for root in roots):
        return None
    names = [symbol(c) for c in law.constants]
    others = [n for n in law.inputs if n != var]
    missing = [n for n in others if inputs is None or n not in inputs]
    if missing:
        raise InputError(f"optima_in_range needs the values of the other inputs {missing}; "
                         "pass inputs={name: value}, e.g. their medians in the data")  # fmt: skip
    at = [float(inputs[n]) for n in others]
    values = [np.asarray(constants[c.name], float) for c in names]
    shape = np.broadcast_shapes(*(v.shape for v in values))
    loss = sympy.lambdify([x, *map(symbol, others), *names], law.expr, "numpy")
    curvature = sympy.lambdify([x, *map(symbol, others), *names], sympy.diff(law.expr, x, 2),
                                 "numpy")  # fmt: skip

    # 1-2. The interior minimum with the lowest loss, per set of constants.
    best, lowest = np.full(shape, np.nan), np.full(shape, np.inf)
    with np.errstate(all="ignore"):
        for root in roots:
            where = sympy.lambdify(names, root, "numpy")(*(v.astype(complex) for v in values))
            where = np.broadcast_to(np.asarray(where, complex), shape)
            real = np.abs(where.imag) <= 1e-12 * np.maximum(1.0, np.abs(where.real))
            r = np.where(real, where.real, np.nan)
            at_root = np.broadcast_to(loss(r, *at, *values), shape)
            bend = np.broadcast_to(curvature(r, *at, *values), shape)
            better = (r >= lo) & (r <= hi) & (bend > 0) & (at_root < lowest)
            best, lowest = np.where(better, r, best), np.where(better, at_root, lowest)

        # 3. No interior minimum: the end of the range with the lower loss.
        at_lo = np.broadcast_to(loss(lo, *at, *values), shape)
        at_hi = np.broadcast_to(loss(hi, *at, *values), shape)
    end = np.where(at_lo <= at_hi, -np.inf, np.where(at_hi < at_lo, np.inf, np.nan))
    return np.where(np.isnan(best), end, best)


# ----------------------------------------------------------------------------------------------
# Derived allocations: optimal activation ratio Na/N, compute-optimal N(C) and D(C)

C = sympy.Symbol("C", positive=True)
"""Training compute in FLOPs, the symbol of :func:`compute_optimal` results."""


def _law_and_values(law_or_fit, params):
    """The law and the constants to use: a fit's, ``params``, or the law's reference."""
    if hasattr(law_or_fit, "params") and hasattr(law_or_fit, "law"):
        return law_or_fit.law, {**law_or_fit.params, **(params or {})}
    values = params if params is not None else law_or_fit.reference
    if values is None:
        raise InputError(f"law {law_or_fit.name!r} has no reference constants; pass params=")
    return law_or_fit, dict(values)


def _numbers(values: dict) -> dict:
    return {symbol(k): sympy.Float(float(v), 17) for k, v in values.items()}


def _stationary(expr: sympy.Expr, x: sympy.Symbol) -> sympy.Expr | None:
    """The one positive root of dL/dx = 0 that sympy finds with the constants symbolic."""
    try:
        roots = sympy.solve(sympy.diff(expr, x), x)
    except (NotImplementedError, ValueError) as err:
        log.debug("sympy could not solve dL/d%s = 0 (%s)", x, err)
        return None
    return roots[0] if len(roots) == 1 else None


def optimal_activation(law_or_fit, params=None) -> sympy.Expr | None:
    """Closed form of the loss-minimising ratio ``Na*/N`` as a function of ``N`` (and G, S, D).

    Solves ``dL/dNa = 0`` with the constants symbolic, then substitutes them. The ratio may
    exceed 1 where the law's minimum lies beyond ``Na = N``; the usable optimum is then
    ``Na = N`` (see :func:`optimal_activation_numeric`).

    Parameters
    ----------
    law_or_fit : Law or FitResult
        A law with inputs ``N`` and ``Na`` (``params`` or its reference constants), or a fit.
    params : dict, optional
        Constants, and any inputs to fix (e.g. ``G``, ``S``).

    Returns
    -------
    sympy.Expr or None
        ``Na*/N``; ``None`` when sympy finds no single closed-form root or the stationary point
        is not a minimum.

    Examples
    --------
    >>> from discover.laws import get_law
    >>> law = get_law("moe_joint")
    >>> ratio = optimal_activation(law, {**law.reference, "G": 6.78, "S": 0.315})
    >>> round(float(ratio.subs(symbol("N"), 1e10)), 4)
    0.4951
    """
    law, values = _law_and_values(law_or_fit, params)
    N, Na = symbol("N"), symbol("Na")
    if not {N, Na} <= law.expr.free_symbols:
        raise InputError(f"law {law.name!r} does not take both N and Na; it has {law.inputs}")
    root = _stationary(law.expr, Na)
    if root is None:
        return None
    numbers = _numbers(values)
    curvature = sympy.diff(law.expr, Na, 2).xreplace(numbers)
    at_root = curvature.xreplace({Na: root.xreplace(numbers)})
    probe = {s: sympy.Float(1e9) for s in at_root.free_symbols}  # the sign at a typical size
    if not float(at_root.xreplace(probe)) > 0:
        return None
    return sympy.powsimp(sympy.expand_power_base(root.xreplace(numbers) / N, force=True))


def optimal_activation_numeric(law_or_fit, N, params=None, lowest: float = 1e-4) -> np.ndarray:
    """Loss-minimising ``Na/N`` at each ``N``, by bounded minimisation over ``Na`` in
    ``[lowest N, N]`` (log scale).

    The numeric check of :func:`optimal_activation`, and the answer where it has no closed form;
    ``1.0`` means the best is a dense model.
    """
    law, values = _law_and_values(law_or_fit, params)
    x = symbol("Na")
    # Terms free of Na do not move its optimum: drop them, so D need not be given.
    expr = sympy.Add(*(t for t in sympy.Add.make_args(law.expr) if t.has(x)))
    expr = expr.xreplace(_numbers(values))
    _require_numeric(expr.xreplace({symbol("N"): 1, x: 1}), x)
    f = sympy.lambdify([symbol("N"), x], expr, "numpy")
    out = []
    for n in np.atleast_1d(np.asarray(N, float)):
        result = optimize.minimize_scalar(lambda u, n=n: f(n, n * np.exp(u)),
                                          bounds=(np.log(lowest), 0.0), method="bounded",
                                          options={"xatol": 1e-12})  # fmt: skip
        out.append(float(np.exp(result.x)))
    return np.array(out)


def compute_optimal(law_or_fit, params=None, flops_per_token_parameter: float = 6.0):
    """Compute-optimal ``N(C)`` and ``D(C)`` of a law in ``N`` and ``D``, with ``C = k N D``.

    Substitutes ``D = C / (k N)`` (``k = 6``: forward and backward FLOPs per parameter and
    token, Kaplan et al. 2020), solves ``dL/dN = 0`` with the constants symbolic, then
    substitutes them. For Chinchilla this gives ``N* = G (C/6)^(beta/(alpha+beta))`` with
    ``G = (alpha A / (beta B))^(1/(alpha+beta))`` (Hoffmann et al. 2022, eq. 4).

    Returns
    -------
    (sympy.Expr, sympy.Expr) or None
        ``N*(C)`` and ``D*(C)`` in the symbol :data:`C`; ``None`` without a closed form.
    """
    law, values = _law_and_values(law_or_fit, params)
    N, D = symbol("N"), symbol("D")
    if not {N, D} <= law.expr.free_symbols:
        raise InputError(f"law {law.name!r} does not take both N and D; it has {law.inputs}")
    k = sympy.Float(flops_per_token_parameter, 17)
    root = _stationary(law.expr.xreplace({D: C / (k * N)}), N)
    if root is None:
        return None
    n_star = root.xreplace(_numbers(values))
    return n_star, C / (k * n_star)


def compute_optimal_numeric(law_or_fit, compute, params=None, flops_per_token_parameter=6.0):
    """``(N*, D*)`` arrays at each compute budget, by minimising the loss over ``log N``."""
    law, values = _law_and_values(law_or_fit, params)
    N, D = symbol("N"), symbol("D")
    expr = law.expr.xreplace(_numbers(values))
    _require_numeric(expr.xreplace({N: 1, D: 1}), N)
    f = sympy.lambdify([N, D], expr, "numpy")
    best_n = []
    for c in np.atleast_1d(np.asarray(compute, float)):
        tokens = lambda u, c=c: c / (flops_per_token_parameter * np.exp(u))  # noqa: E731
        span = np.log(c / flops_per_token_parameter)
        result = optimize.minimize_scalar(lambda u, t=tokens: f(np.exp(u), t(u)),
                                          bounds=(0.0, span), method="bounded",
                                          options={"xatol": 1e-12})  # fmt: skip
        best_n.append(float(np.exp(result.x)))
    best_n = np.array(best_n)
    return best_n, np.asarray(compute, float) / (flops_per_token_parameter * best_n)
