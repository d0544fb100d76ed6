"""Batched Levenberg-Marquardt: many fits of one law that differ only in their row weights.

Used for the bootstrap (one problem per resample, all moved in one array computation per
iteration) and to finish a fit: from an L-BFGS-B optimum, a few Gauss-Newton steps reach the
exact minimum of a small-residual problem, where L-BFGS-B's stopping rule gives up early.

Each step, for a problem with row weights ``v``: gradient ``g = J^T (v psi(r) dr)``, curvature
``H = J^T diag(v psi(r)/r) J`` (iteratively reweighted least squares: the Huber, squared, absolute
and asymmetric losses all have this form), step ``(H + lam diag(H)) s = -g`` clipped to the
bounds, kept only if the objective falls (then ``lam /= 3``, else ``lam *= 4``). ``J`` is the
derivative of the residual in the fitted coordinates (sympy gradient of the law).

Reference: Moré 1978, "The Levenberg-Marquardt algorithm: implementation and theory"; Holland and
Welsch 1977 (iteratively reweighted least squares for M-estimators).
"""

from __future__ import annotations

import numpy as np

MAX_ITER = 300
"""Most iterations of one batched run."""

GRAD_TOL = 1e-6
"""Largest projected gradient, relative to the sum of weights, counted as converged."""


def refine(problem, theta0: np.ndarray, v: np.ndarray, maxiter: int = 300):
    """Levenberg-Marquardt on a batch of problems that differ only in their row weights.

    Parameters
    ----------
    problem : discover.fit._Problem
        The law bound to its data.
    theta0 : numpy.ndarray, shape (k,) or (B, k)
        Starting point(s) in the fitted coordinates.
    v : numpy.ndarray, shape (B, n_rows)
        Row weights of each problem of the batch.
    maxiter : int, default 300
        Iteration limit (at most :data:`MAX_ITER`).

    Returns
    -------
    theta : numpy.ndarray, shape (B, k)
    converged : numpy.ndarray of bool, shape (B,)
        Projected gradient within ``GRAD_TOL`` times the sum of weights (a constant may rest on
        a bound, as the first-order conditions allow).
    """
    B, k = v.shape[0], problem.lo.size
    theta = np.broadcast_to(theta0, (B, k)).copy()
    lam = np.full(B, 1e-3)
    f, g, H = _batched_state(problem, theta, v)
    active = np.ones(B, bool)
    for _ in range(min(maxiter, MAX_ITER)):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        step = _steps(H[idx], g[idx], lam[idx])
        trial = np.clip(theta[idx] + np.nan_to_num(step), problem.lo, problem.hi)
        f_t, g_t, H_t = _batched_state(problem, trial, v[idx])
        better = f_t < f[idx]
        keep = idx[better]
        change = np.zeros(idx.size)
        change[better] = (f[keep] - f_t[better]) / np.maximum(f[keep], 1e-300)
        theta[keep], f[keep], g[keep], H[keep] = (
            trial[better],
            f_t[better],
            g_t[better],
            H_t[better],
        )
        lam[keep] /= 3.0
        lam[idx[~better]] *= 4.0
        done = (better & (change < 1e-13)) | (lam[idx] > 1e12)
        active[idx[done]] = False
    ok = _batched_converged(problem, theta, g, v)
    return theta, ok


def _steps(H, g, lam):
    """Damped Gauss-Newton steps ``-(H + lam diag(H))^-1 g`` for a batch (pinv if singular)."""
    k = H.shape[-1]
    diag = np.einsum("bii->bi", H)
    A = H + (lam[:, None] * diag + 1e-300)[:, :, None] * np.eye(k)
    with np.errstate(all="ignore"):
        try:
            return np.linalg.solve(A, -g[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            return np.einsum("bkl,bl->bk", np.linalg.pinv(A), -g)


def _batched_state(problem, theta, v):
    """Objective (B,), gradient (B, k) and IRLS curvature (B, k, k) at a batch of points."""
    with np.errstate(all="ignore"):
        pred = problem.predict(theta)
        r = problem.residuals(pred)
        psi = problem.psi(r)
        u = np.where(np.abs(r) > 1e-300, psi / np.where(r == 0, 1.0, r), 1.0)
        u = np.where(r == 0, _curvature_at_zero(problem), u)
        J = _batched_jacobian(problem, theta, pred)
        f = (v * problem.rho(r)).sum(axis=1)
        g = np.einsum("bnk,bn->bk", J, v * psi)
        H = np.einsum("bnk,bn,bnl->bkl", J, v * u, J)
    bad = ~np.isfinite(f)
    f[bad] = np.inf
    return f, np.nan_to_num(g), np.nan_to_num(H)


def _curvature_at_zero(problem) -> float:
    return float(problem.psi(np.array([1e-300]))[0] / 1e-300)


def _batched_jacobian(problem, theta, pred):
    """d log L / d theta for a batch of points: shape (B, n_rows, k)."""
    from discover.fit import _compile

    law = problem.law
    c = problem.constants(theta)
    _, gradient = _compile(law.expr, law.inputs, tuple(law.constants))
    x = [xi[None, :] for xi in problem.x]
    partials = gradient(*x, *[c[:, j : j + 1] for j in range(c.shape[1])])
    jac = np.stack([np.broadcast_to(np.asarray(p, float), pred.shape) for p in partials], axis=-1)
    return (
        jac * problem.dr_dpred(pred)[:, :, None] * np.where(problem.log_space, c, 1.0)[:, None, :]
    )


def _batched_converged(problem, theta, g, v):
    """The convergence rule of :func:`discover.fit._check_convergence`, for every resample."""
    span = problem.hi - problem.lo
    at_lo = theta <= problem.lo + 1e-7 * span
    at_hi = theta >= problem.hi - 1e-7 * span
    projected = np.where((at_lo & (g > 0)) | (at_hi & (g < 0)), 0.0, g)
    return np.abs(projected).max(axis=1) <= GRAD_TOL * v.sum(axis=1)
