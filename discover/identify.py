"""Which constants of a fitted law the data can pin down.

At the optimum, the Jacobian ``J`` of the log predictions with respect to the fitted coordinates
(log of positive constants, the others as they are) says how each constant moves the predictions.
Weighted by ``sqrt(w)`` and with each column scaled to unit length, it gives:

1. flat directions: a singular value of the scaled ``J`` below :data:`FLAT` times the largest means
   some combination of constants barely changes any prediction; the constants that dominate that
   combination are named;
2. correlated pairs: the Gauss-Newton covariance ``(J^T W J)^-1`` turned into correlations; a pair
   with ``|corr| > CORRELATED`` cannot be told apart by the data.

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
