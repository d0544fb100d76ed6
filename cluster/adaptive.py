"""Adaptive design: choose the next runs where they shrink the law's uncertainty at the target most.

The question a study answers is usually one number: the loss of a model larger than any trained,
the extrapolation target (N_t, D_t). With a law fitted to the runs so far, B bootstrap refits give
B predictions at the target and at every candidate run not yet trained. Treating the predictions
as jointly Gaussian, training candidate c (measurement noise σ²) would shrink the variance of the
target's prediction by

    ΔVar_t(c) = Cov(L_c, L_t)² / (Var(L_c) + σ²)

(the Kalman / kriging update of one observation). Each step proposes the candidate with the
largest ΔVar_t(c) per training FLOP, C = 6·N·D, among those the remaining budget affords, so
uncertainty at the target falls fastest for the compute spent.

The fitted law is Chinchilla's form, L = L0 + A·N^-α + B·D^-β (Hoffmann et al. 2022), fitted in
log space by bounded least squares, warm-started from the previous fit; every bootstrap refit
starts from the full fit, which keeps a proposal step to a fraction of a second. To use another
law, pass ``model=`` an object with ``fit(X, y, start)`` and ``predict(params, X)``.

    .venv/bin/python -m cluster.adaptive          # the planted-law simulation (see simulate)
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from results.errors import InputError


class ChinchillaModel:
    """L = L0 + A·N^-α + B·D^-β on inputs X = [N, D] (columns), fitted in log-loss space."""

    names = ("L0", "log_A", "alpha", "log_B", "beta")

    def predict(self, params: np.ndarray, X: np.ndarray) -> np.ndarray:
        L0, log_A, alpha, log_B, beta = params
        return L0 + np.exp(log_A - alpha * np.log(X[:, 0])) + np.exp(log_B - beta * np.log(X[:, 1]))

    def fit(self, X: np.ndarray, y: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
        """Least squares on log L; several starts unless warm-started."""
        low = np.array([0.0, -10.0, 0.02, -10.0, 0.02])
        high = np.array([max(float(y.min()) * 0.999, 1e-6), 40.0, 2.0, 40.0, 2.0])
        starts = [start] if start is not None else self._starts(y)
        best = None
        for x0 in starts:
            x0 = np.clip(x0, low + 1e-9, high - 1e-9)
            res = least_squares(
                lambda p: np.log(self.predict(p, X)) - np.log(y), x0, bounds=(low, high)
            )
            if best is None or res.cost < best.cost:
                best = res
        return best.x

    def _starts(self, y: np.ndarray) -> list[np.ndarray]:
        starts = []
        for L0 in (0.5 * y.min(), 0.9 * y.min()):
            for alpha, beta in ((0.3, 0.3), (0.6, 0.2), (0.2, 0.6)):
                starts.append(np.array([L0, 5.0, alpha, 5.0, beta]))
        return starts


@dataclass
class Proposal:
    """One proposed run: its index among the candidates, score, and the target's spread now."""

    index: int
    score: float  # expected reduction of Var(L_target) per FLOP
    target_sd: float  # bootstrap standard deviation of the target's prediction before it


def bootstrap(model, X: np.ndarray, y: np.ndarray, n_boot: int, rng) -> np.ndarray:
    """The full fit and ``n_boot`` refits on resampled rows (rows of the result: parameters)."""
    full = model.fit(X, y)
    fits = [full]
    for _ in range(n_boot):
        rows = rng.integers(0, len(y), len(y))
        if len(np.unique(rows)) < len(full):  # too few distinct runs to pin the law
            continue
        fits.append(model.fit(X[rows], y[rows], start=full))
    return np.array(fits)


def propose(
    X: np.ndarray,
    y: np.ndarray,
    candidates: np.ndarray,
    cost: np.ndarray,
    target: np.ndarray,
    budget_left: float,
    *,
    model=None,
    n_boot: int = 32,
    seed: int = 0,
) -> Proposal | None:
    """The candidate that most reduces the target's bootstrap variance per FLOP, or None.

    Parameters
    ----------
    X, y : ndarray
        Inputs [N, D] and losses of the runs done so far.
    candidates : ndarray
        Inputs of the runs that may be trained next (rows).
    cost : ndarray
        Training FLOPs of each candidate.
    target : ndarray
        The extrapolation target [N_t, D_t].
    budget_left : float
        FLOPs still to spend; candidates costing more are not proposed.
    """
    model = model or ChinchillaModel()
    affordable = cost <= budget_left
    if not affordable.any():
        return None
    fits = bootstrap(model, X, y, n_boot, np.random.default_rng(seed))

    # 1. Predictions of every refit at the target and at each candidate.
    at_target = np.array([model.predict(p, target[None, :])[0] for p in fits])
    at_cands = np.array([model.predict(p, candidates) for p in fits])  # (B, n_cand)

    # 2. Expected variance reduction at the target per FLOP, with σ² from the full fit's residuals.
    residual = np.log(model.predict(fits[0], X)) - np.log(y)
    sigma2 = (float(np.mean(residual**2)) + 1e-8) * float(np.mean(y)) ** 2
    cov = ((at_cands - at_cands.mean(0)) * (at_target - at_target.mean())[:, None]).mean(0)
    gain = cov**2 / (at_cands.var(0) + sigma2)
    score = np.where(affordable, gain / cost, -np.inf)
    best = int(np.argmax(score))
    return Proposal(best, float(score[best]), float(at_target.std()))


def run_adaptive(
    measure, candidates, cost, target, budget, initial, *, model=None, n_boot=32, seed=0
):
    """Train ``initial`` runs, then proposed ones until nothing affordable is left.

    ``measure(i)`` trains (or looks up) candidate i and returns its loss. Returns the indices
    trained, in order, and the FLOPs spent.
    """
    model = model or ChinchillaModel()
    done = list(initial)
    losses = [measure(i) for i in done]
    spent = float(cost[done].sum())
    if spent > budget:
        raise InputError(f"the initial runs cost {spent:.3g} FLOPs, over the budget {budget:.3g}.")
    while True:
        left = np.setdiff1d(np.arange(len(candidates)), done)
        if len(left) == 0:
            break
        step = propose(candidates[done], np.array(losses), candidates[left], cost[left], target,
                       budget - spent, model=model, n_boot=n_boot, seed=seed + len(done))  # fmt: skip
        if step is None:
            break
        i = int(left[step.index])
        done.append(i)
        losses.append(measure(i))
        spent += float(cost[i])
    return done, spent


# ----------------------------------------------------------------------------------------------
# Simulation with a planted law


def simulate(replicates: int = 20, noise: float = 0.01, seed: int = 0, per_axis: int = 8) -> dict:
    """Adaptive design against the full grid on a planted Chinchilla law with instant "runs".

    Truth L = 1.69 + 406.4·N^-0.34 + 410.7·D^-0.28 (Hoffmann et al.'s fit), measured with
    multiplicative Gaussian noise of sd ``noise``. Candidates: a 5 × 5 grid, N 10^6-10^8, D
    10^8-10^10; target N = 10^9, D = 10^11 (ten times past the grid on both axes). The grid fits
    all 25 runs; the adaptive design starts from the six cheapest runs of the lower corner and
    may spend half the grid's FLOPs. Error = |predicted - true| / true at the target; both
    designs see the same noisy measurement of a run within one replicate.
    """
    model = ChinchillaModel()
    truth = np.array([1.69, math.log(406.4), 0.34, math.log(410.7), 0.28])
    n_axis, d_axis = np.logspace(6, 8, per_axis), np.logspace(8, 10, per_axis)
    candidates = np.array([[n, d] for n in n_axis for d in d_axis])
    cost = 6.0 * candidates[:, 0] * candidates[:, 1]
    target = np.array([1e9, 1e11])
    true_target = float(model.predict(truth, target[None, :])[0])
    initial = [i * per_axis + j for i in range(per_axis) for j in range(per_axis) if i + j <= 2]
    rng = np.random.default_rng(seed)

    grid_err, adapt_err, fractions = [], [], []
    for _ in range(replicates):
        measured = model.predict(truth, candidates) * np.exp(rng.normal(0, noise, len(cost)))
        full = model.fit(candidates, measured)
        grid_err.append(abs(model.predict(full, target[None, :])[0] / true_target - 1))
        done, spent = run_adaptive(lambda i: measured[i], candidates, cost, target,  # noqa: B023
                                   0.5 * cost.sum(), initial, model=model)  # fmt: skip
        fit = model.fit(candidates[done], measured[done])
        adapt_err.append(abs(model.predict(fit, target[None, :])[0] / true_target - 1))
        fractions.append(spent / cost.sum())
    return {
        "grid_median_error": float(np.median(grid_err)),
        "adaptive_median_error": float(np.median(adapt_err)),
        "grid_mean_error": float(np.mean(grid_err)),
        "adaptive_mean_error": float(np.mean(adapt_err)),
        "adaptive_flops_fraction": float(np.mean(fractions)),
        "adaptive_runs": len(done),
        "replicates": replicates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="planted-law simulation of the adaptive design")
    parser.add_argument("--replicates", type=int, default=20)
    parser.add_argument("--noise", type=float, default=0.01)
    args = parser.parse_args()
    result = simulate(args.replicates, args.noise)
    for key, value in result.items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")


if __name__ == "__main__":
    main()
