"""Adaptive design: choose the next runs where they shrink the law's uncertainty at the target most.

The question a study answers is usually one number: the loss of a model larger than any trained,
the extrapolation target (N_t, D_t). Fit the law to the runs so far; with J the gradient of
log L with respect to the constants at each run, g_t at the target and σ the relative run-to-run
noise, the constants' covariance is Σ = σ²·(JᵀJ)⁻¹ and training candidate c (gradient j_c) would
shrink the variance of log L_t by

    ΔVar_t(c) = (g_tᵀ Σ j_c)² / (σ² + j_cᵀ Σ j_c)

(the Kalman / kriging update of one observation). Each step proposes the candidate with the
largest ΔVar_t(c) per training FLOP, C = 6·N·D, among those the remaining budget affords, so the
target's uncertainty falls fastest for the compute spent; each proposal also reports the
bootstrap standard deviation of the target's prediction (refits on resampled runs), the number
to watch while the design runs.

Measured on the planted law of :func:`simulate`: the same greedy rule with Σ taken from bootstrap
refits instead of the linearisation did worse (it trusts resamples of five or six runs), so
the linearisation chooses and the bootstrap reports.

The fitted law is Chinchilla's form, L = L0 + A·N^-α + B·D^-β (Hoffmann et al. 2022), fitted in
log space by bounded least squares; to use another law, pass ``model=`` an object with
``fit(X, y, start)`` and ``predict(params, X)``.

    .venv/bin/python -m cluster.adaptive --replicates 20     # the planted-law simulation
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
    score: float  # expected reduction of Var(log L_target) per FLOP
    target_sd: float  # bootstrap standard deviation of the target's prediction before it


def bootstrap(model, X: np.ndarray, y: np.ndarray, n_boot: int, rng, full=None) -> np.ndarray:
    """The full fit and ``n_boot`` refits on resampled rows (rows of the result: parameters)."""
    full = model.fit(X, y) if full is None else full
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
    noise_sd: float | None = None,
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
    noise_sd : float, optional
        Relative run-to-run noise of a loss (from replicate seeds); default: the full fit's
        root-mean-square log residual, which is too small while runs are few.
    """
    model = model or ChinchillaModel()
    affordable = cost <= budget_left
    if not affordable.any():
        return None
    full = model.fit(X, y)

    # 1. Noise: given, or the fit's root-mean-square log residual.
    if noise_sd is None:
        residual = np.log(model.predict(full, X)) - np.log(y)
        noise_sd = math.sqrt(float(np.mean(residual**2)) + 1e-8)
    sigma2 = noise_sd**2

    # 2. Covariance of the constants, and the variance each candidate would remove at the target.
    J = _log_gradient(model, full, X)
    Sigma = np.linalg.pinv(J.T @ J / sigma2 + 1e-9 * np.eye(len(full)))
    g_t = _log_gradient(model, full, target[None, :])[0]
    J_c = _log_gradient(model, full, candidates)
    gain = (J_c @ Sigma @ g_t) ** 2 / (sigma2 + np.einsum("ij,jk,ik->i", J_c, Sigma, J_c))
    score = np.where(affordable, gain / cost, -np.inf)
    best = int(np.argmax(score))

    # 3. The bootstrap spread at the target, for the record (skipped with n_boot=0).
    if n_boot == 0:
        return Proposal(best, float(score[best]), math.nan)
    fits = bootstrap(model, X, y, n_boot, np.random.default_rng(seed), full=full)
    at_target = np.array([model.predict(p, target[None, :])[0] for p in fits])
    return Proposal(best, float(score[best]), float(at_target.std()))


def _log_gradient(model, params: np.ndarray, X: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """d log L / d constants at each row of X, by forward differences (rows × constants)."""
    base = np.log(model.predict(params, X))
    columns = []
    for k in range(len(params)):
        shifted = params.copy()
        shifted[k] += step
        columns.append((np.log(model.predict(shifted, X)) - base) / step)
    return np.array(columns).T


def run_adaptive(
    measure,
    candidates,
    cost,
    target,
    budget,
    initial,
    *,
    model=None,
    n_boot=32,
    seed=0,
    noise_sd=None,
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
                       budget - spent, model=model, n_boot=n_boot, seed=seed + len(done),
                       noise_sd=noise_sd)  # fmt: skip
        if step is None:
            break
        i = int(left[step.index])
        done.append(i)
        losses.append(measure(i))
        spent += float(cost[i])
    return done, spent


# ----------------------------------------------------------------------------------------------
# Simulation with a planted law


def simulate(
    replicates: int = 20,
    noise: float = 0.01,
    seed: int = 0,
    per_axis: int = 8,
    seeds_per_point: int = 3,
    fractions: tuple = (0.1, 0.2, 0.3, 0.4, 0.5),
) -> dict:
    """Adaptive design against the full grid on a planted Chinchilla law with instant "runs".

    The bootstrap report is skipped here (n_boot=0): it does not change the choices.

    Truth L = 1.69 + 406.4·N^-0.34 + 410.7·D^-0.28 (Hoffmann et al.'s fit), measured with
    multiplicative Gaussian noise of sd ``noise`` (the run-to-run spread of seeds). The grid is
    ``per_axis`` × ``per_axis`` points, N 10^6-10^8, D 10^8-10^10, each trained once; the target
    is N = 10^9, D = 10^11 (ten times past the grid on both axes). The adaptive design picks from
    the same points, each with up to ``seeds_per_point`` seeds (replicates), starting from the
    six cheapest runs of the lower corner, and may spend half the grid's FLOPs. Error =
    |predicted - true| / true at the target; within one replicate both designs see the same
    measurement of a (point, seed).

    Returns the grid's median error and the adaptive design's median error once it has spent
    each of ``fractions`` of the grid's FLOPs.
    """
    model = ChinchillaModel()
    truth = np.array([1.69, math.log(406.4), 0.34, math.log(410.7), 0.28])
    axis_n, axis_d = np.logspace(6, 8, per_axis), np.logspace(8, 10, per_axis)
    grid = np.array([[n, d] for n in axis_n for d in axis_d])
    candidates = np.tile(grid, (seeds_per_point, 1))  # row k·len(grid) + i: point i, seed k
    cost = 6.0 * candidates[:, 0] * candidates[:, 1]
    grid_cost = float(cost[: len(grid)].sum())
    target = np.array([1e9, 1e11])
    true_target = float(model.predict(truth, target[None, :])[0])
    initial = [i * per_axis + j for i in range(per_axis) for j in range(per_axis) if i + j <= 2]
    rng = np.random.default_rng(seed)

    def error(rows, measured) -> float:
        fit = model.fit(candidates[rows], measured[rows])
        return abs(model.predict(fit, target[None, :])[0] / true_target - 1)

    grid_err, curves, runs = [], [], []
    for _ in range(replicates):
        measured = model.predict(truth, candidates) * np.exp(rng.normal(0, noise, len(cost)))
        grid_err.append(error(list(range(len(grid))), measured))
        done, _ = run_adaptive(lambda i: measured[i], candidates, cost, target,  # noqa: B023
                               max(fractions) * grid_cost, initial, model=model,
                               noise_sd=noise, n_boot=0)  # fmt: skip
        spent = np.cumsum(cost[done])
        curves.append([error(done[: int(np.searchsorted(spent, f * grid_cost, "right"))], measured)
                       for f in fractions])  # fmt: skip
        runs.append(len(done))
    adaptive = np.median(np.array(curves), axis=0)
    return {
        "grid_runs": len(grid),
        "grid_median_error": float(np.median(grid_err)),
        **{
            f"adaptive_median_error_at_{f:g}": float(e)
            for f, e in zip(fractions, adaptive, strict=True)
        },
        "adaptive_runs_at_max": float(np.mean(runs)),
        "replicates": replicates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="planted-law simulation of the adaptive design")
    parser.add_argument("--replicates", type=int, default=20)
    parser.add_argument("--noise", type=float, default=0.01)
    args = parser.parse_args()
    result = simulate(args.replicates, args.noise)
    print(f"planted-law simulation, {args.replicates} replicates, noise {args.noise:g}")
    for key, value in result.items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")


if __name__ == "__main__":
    main()


# ----------------------------------------------------------------------------------------------
# On a real sweep


def adaptive_sweep(spec, *, store=None, model=None, seed: int = 0, **sweep_options) -> dict:
    """Run a spec's ``[adaptive]`` design: its points (× seeds) are the candidates.

    First the ``initial`` cheapest runs, spread out (the "informative" order among the cheaper
    half), then one proposal at a time until no candidate fits in what is left of
    ``budget_flops``. Runs already stored count as done and their FLOPs as spent, so a stopped
    design resumes where it was. Each step is a :func:`cluster.sweep.run_sweep` of one run;
    ``sweep_options`` go to it (address, workers, ...).

    Returns a dict: runs trained by this call, FLOPs spent in all, and the run ids of the design
    in the order they were chosen.
    """
    from cluster.spec import plan
    from cluster.sweep import order_runs, run_sweep
    from results.store import Store

    design = spec.adaptive
    if design is None:
        raise InputError(f"sweep '{spec.name}' has no [adaptive] table; add one or use run_sweep.")
    store = store if isinstance(store, Store) else Store(store or spec.store, create=True)
    pool = plan(spec)
    cost = np.array([p.cost for p in pool])
    X = np.array([[p.achieved["N"], p.run_config.train.tokens] for p in pool], dtype=float)
    target = np.array([design["target"]["N"], design["target"]["D"]])
    ids = [p.run_id for p in pool]
    history = {"trained": 0}

    def measure(i: int) -> float:
        if ids[i] not in store.ids():
            run_sweep(spec, store=store, only={ids[i]}, **sweep_options)
            history["trained"] += 1
        record = store.get(ids[i])
        if record.status != "ok":
            raise InputError(f"run {ids[i]} of the adaptive design failed: {record.error}")
        return float(record.loss)

    # 1. The first runs: whatever is stored already, topped up with cheap, spread-out ones.
    stored = [i for i, run_id in enumerate(ids) if run_id in store.ids()]
    cheap = [p for p in pool if p.cost <= np.median(cost) and p.run_id not in store.ids()]
    extra = order_runs(cheap, "informative")[: max(0, design["initial"] - len(stored))]
    initial = stored + [ids.index(p.run_id) for p in extra]

    # 2. Proposals until the budget is spent, all in one Ray session.
    from cluster.sweep import ray_session

    options = {k: sweep_options.get(k) for k in ("address", "workers")}
    with ray_session(options["address"], options["workers"]):
        done, spent = run_adaptive(measure, X, cost, target, design["budget_flops"], initial,
                                   model=model, n_boot=design["bootstrap"], seed=seed,
                                   noise_sd=design.get("noise_sd"))  # fmt: skip
    return {"trained": history["trained"], "flops": spent, "runs": [ids[i] for i in done]}
