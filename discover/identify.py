"""Which constants of a fitted law the data can pin down.

At the optimum, the Jacobian ``J`` of the log predictions with respect to the fitted coordinates
(log of positive constants, the others as they are) says how each constant moves the predictions.
Weighted by ``sqrt(w)`` and with each column scaled to unit length, it gives:

1. flat directions: a singular value of the scaled ``J`` below :data:`FLAT` times the largest means
   some combination of constants barely changes any prediction; the constants that dominate that
   combination are named;
2. correlated pairs: the Gauss-Newton covariance ``(J^T W J)^-1`` turned into correlations; a pair
   with ``|corr| > CORRELATED`` cannot be told apart by the data;
3. constants at a bound (:func:`at_bound`, :func:`bound_finding`): a constant that the fit, or
   the bootstrap refits, leave on an end of its search interval is not determined by the data
   (its optimum lies at or beyond the end); the fit and :mod:`discover.bootstrap` name it in the
   same words.

Scaling the columns makes both checks blind to the units of the constants. The Gauss-Newton
curvature is used whatever the fitting loss, as the Huber curvature vanishes for every residual
beyond ``delta`` and would call well-determined constants flat.
"""

from __future__ import annotations

import numpy as np

FLAT = 1e-6
"""Relative singular value below which a direction counts as flat."""

CORRELATED = 0.9999
"""Absolute correlation above which a pair of constants counts as not separable."""

BOUND_TOL = 1e-6
"""A constant within this fraction of its search interval from an end of it is at that bound.

Measured in the fitted coordinates (log of positive constants), so the test is relative."""

_SHARE = 0.3  # a constant whose component in a flat direction exceeds this is named


def identifiability(jacobian: np.ndarray, w: np.ndarray, names: list[str]) -> list[str]:
    """Flat directions and strongly correlated pairs of constants.

    Parameters
    ----------
    jacobian : numpy.ndarray, shape (n_rows, n_constants)
        ``d log L / d theta`` at the optimum, in the fitted coordinates.
    w : numpy.ndarray, shape (n_rows,)
        Row weights.
    names : list of str
        Constant names, in column order.

    Returns
    -------
    list of str
        One sentence per problem found, e.g. ``"alpha and beta are correlated (r = 0.99998)"``;
        empty when every constant is identified.
    """
    J = jacobian * np.sqrt(w)[:, None]
    if not np.isfinite(J).all():
        return ["the Jacobian at the optimum is not finite, so identifiability was not checked"]
    norms = np.linalg.norm(J, axis=0)
    issues = [f"{n} does not change any prediction" for n, v in zip(names, norms, strict=True)
              if v == 0]  # fmt: skip
    live = norms > 0
    Js, live_names = J[:, live] / norms[live], [n for n, k in zip(names, live, strict=True) if k]
    if Js.shape[1] == 0:
        return issues
    issues += _flat_directions(Js, live_names)
    issues += _correlated_pairs(Js, live_names)
    return issues


def _flat_directions(Js: np.ndarray, names: list[str]) -> list[str]:
    """Right singular vectors whose singular value is tiny relative to the largest."""
    _, s, vt = np.linalg.svd(Js, full_matrices=False)
    out = []
    for value, vector in zip(s, vt, strict=True):
        if value <= FLAT * s[0]:
            involved = [n for n, c in zip(names, vector, strict=True) if abs(c) > _SHARE]
            out.append(f"a flat direction (relative singular value {value / s[0]:.2g}) moves "
                       f"{' and '.join(involved)} together")  # fmt: skip
    return out


def _correlated_pairs(Js: np.ndarray, names: list[str]) -> list[str]:
    """Pairs whose Gauss-Newton correlation exceeds :data:`CORRELATED` in size."""
    cov = np.linalg.pinv(Js.T @ Js)
    sd = np.sqrt(np.clip(np.diag(cov), 1e-300, None))
    corr = cov / np.outer(sd, sd)
    out = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if abs(corr[i, j]) > CORRELATED:
                out.append(f"{names[i]} and {names[j]} are correlated (r = {corr[i, j]:.6f})")
    return out


def at_bound(values, bounds) -> np.ndarray:
    """Which end of its search interval each value rests on.

    Parameters
    ----------
    values : array-like
        Values of one constant (e.g. its bootstrap replicates), in the constant's units.
    bounds : discover.laws.Bounds
        The constant's search interval.

    Returns
    -------
    numpy.ndarray of int, same shape as ``values``
        ``-1`` at the lower bound, ``+1`` at the upper bound, ``0`` inside (within
        :data:`BOUND_TOL` of the interval's width, in the fitted coordinates).
    """
    values = np.asarray(values, dtype=float)
    lo, hi = float(bounds.lo), float(bounds.hi)
    if bounds.positive:
        with np.errstate(all="ignore"):
            values = np.log(np.where(values > 0, values, lo))
        lo, hi = np.log(lo), np.log(hi)
    tol = BOUND_TOL * (hi - lo)
    return np.where(values <= lo + tol, -1, np.where(values >= hi - tol, 1, 0))


def bound_finding(name: str, side: int, bounds) -> str:
    """The sentence that names a constant resting on a bound (``side`` -1 lower, +1 upper).

    Examples
    --------
    >>> from discover.laws import Bounds
    >>> bound_finding("k", -1, Bounds(1e-6, 1e2, positive=True))
    'k is at its lower bound 1e-06: not identifiable from these data; fix or tie it'
    """
    edge, word = (bounds.lo, "lower") if side < 0 else (bounds.hi, "upper")
    return (
        f"{name} is at its {word} bound {edge:.4g}: not identifiable from these data; fix or tie it"
    )


def bounds_findings(params: dict, constants: dict) -> list[str]:
    """:func:`bound_finding` for every fitted constant that rests on a bound of its interval."""
    out = []
    for name, bounds in constants.items():
        side = int(at_bound(params[name], bounds))
        if side:
            out.append(bound_finding(name, side, bounds))
    return out
