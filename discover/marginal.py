"""Optimal G and S read off each one-factor-at-a-time block of runs, with bootstrap intervals.

A one-factor-at-a-time (OAT) block is a set of runs at one size ``N`` (non-embedding parameters)
and one token budget ``D`` (tokens, bytes here) in which a single factor moves around the base
configuration ``G = 4``, ``S = 0``, ``Na/N = 0.3``. For each block the marginal forms of Zhao et
al. 2025 (arXiv 2509.23678, the bracket of their joint law) are fitted to the loss (nats/byte):

    L(G) = u + e G + f / G          G* = sqrt(f / e)       (a minimum when e > 0 and f > 0)
    L(S) = u + m S^2 + n S          S* = -n / (2 m)        (a minimum when m > 0)

with :func:`discover.fit.fit_law` (Huber loss on log residuals). The intervals are percentile
bootstrap intervals: the block's runs are drawn with replacement, the form is refitted on each
resample (batched Levenberg-Marquardt warm-started at the full fit, :func:`discover.lm.refine`),
and the optimum is read off each refit. Resamples that keep fewer distinct levels of the factor
than the form has constants cannot identify it and are left out (their number is reported).

An optimum outside the sampled range is not returned as a number: its ``where`` says
``"above"`` or ``"below"`` the range, the point value is NaN, and in the interval an optimum
beyond the range counts as +inf or -inf.

Example::

    from discover.data import load_table
    from discover.marginal import block_optima, format_block_optima
    optima = block_optima(load_table())
    print(format_block_optima(optima))
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from discover.laws import law_from_expr
from results.errors import InputError

log = logging.getLogger(__name__)

BASE = {"G": 4.0, "S": 0.0, "ratio": 0.3}
"""The base configuration every OAT block varies one factor around (ratio is Na/N)."""

FORMS = {"G": "u + e*G + f/G", "S": "u + m*S**2 + n*S"}
"""Marginal forms of the loss in G and in S (Zhao et al. 2025's bracket, plus a level u)."""

RATIO_TOLERANCE = 0.05
"""Largest |Na/N - base| of a run still counted at the base activation ratio."""

SIZE_TOLERANCE = 1.1
"""Achieved sizes within this factor of each other share a target when no target is stored."""

_COLUMNS = ("N", "Na", "D", "G", "S", "loss", "seed")
_MIN_LEVELS = 3  # distinct levels needed to identify a three-constant form


def block_optima(
    table: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    *,
    level: float = 0.95,
    base: dict | None = None,
) -> pd.DataFrame:
    """G* and S* of every one-factor-at-a-time block, with bootstrap percentile intervals.

    Parameters
    ----------
    table : pandas.DataFrame
        Runs with columns ``N, Na, D, G, S, loss, seed`` (``Store.runs()``). Blocks are keyed by
        the targets ``extra_target_N`` and ``extra_target_D`` where stored, else by achieved
        ``N`` and ``D`` within 10% of each other.
    n_boot : int, default 1000
        Bootstrap resamples per block and factor.
    seed : int, default 0
        Seed of the resampling; the result is deterministic given it.
    level : float, default 0.95
        Coverage of the intervals.
    base : dict, optional
        The base configuration, default :data:`BASE` (``G=4, S=0, ratio=0.3``).

    Returns
    -------
    pandas.DataFrame
        One row per block, sorted by ``D`` then ``N``. Columns: ``N``, ``D`` (targets),
        ``n_runs``, ``n_seeds``; then for ``x`` in ``G``, ``S``: ``x_runs``, ``x_min``,
        ``x_max`` (sampled range), ``x*`` (NaN unless inside the range), ``x*_lo``, ``x*_hi``
        (±inf where the interval runs beyond the range), ``x*_where`` (``"inside"``,
        ``"above"``, ``"below"`` or ``"not swept"``), ``x*_boot`` (resamples used),
        ``x*_note`` (why an interval is missing, else empty) and the fitted constants
        (``G_e, G_f`` or ``S_m, S_n``).

    Raises
    ------
    InputError
        Missing columns, non-finite or non-positive values, ``n_boot`` below 2, or no block that
        varies G or S over at least three levels.
    """
    table = _checked(table, n_boot, level)
    base = {**BASE, **(base or {})}
    rng = np.random.default_rng(seed)
    rows = []
    for (n_target, d_target), runs in _blocks(table):
        row = {"N": n_target, "D": d_target, "n_runs": 0, "n_seeds": 0}
        used = []
        for var in ("G", "S"):
            sweep = _sweep(runs, var, base)
            row.update(_optimum_of_sweep(sweep, var, n_boot, rng, level))
            used.append(sweep)
        if row["G*_where"] == "not swept" and row["S*_where"] == "not swept":
            continue
        both = runs.loc[sorted(set(used[0].index) | set(used[1].index))]
        row["n_runs"], row["n_seeds"] = len(both), int(both["seed"].nunique())
        rows.append(row)
    if not rows:
        raise InputError(_no_block_message(table, base))
    return pd.DataFrame(rows).sort_values(["D", "N"]).reset_index(drop=True)


def _checked(table, n_boot, level) -> pd.DataFrame:
    """The table, if it has finite factor columns and positive losses."""
    from discover.data import check_table

    if not isinstance(table, pd.DataFrame):
        raise InputError(
            f"block_optima takes a pandas DataFrame of runs, not {type(table).__name__}; "
            "pass Store(path).runs() or discover.data.load_table(path)"
        )
    if int(n_boot) < 2:
        raise InputError(f"n_boot must be at least 2, got {n_boot!r}; 1000 is the default")
    if not 0 < level < 1:
        raise InputError(f"level must be in (0, 1), got {level!r}; 0.95 gives 95% intervals")
    check_table(table, list(_COLUMNS[:-2]), "loss", positive=["N", "Na", "D", "G"])
    if "seed" not in table.columns:
        raise InputError(
            f"the table has no 'seed' column (columns: {list(table.columns)}); runs from a "
            "results store carry one; add seed=0 for a table of single runs"
        )
    return table.reset_index(drop=True)


# ----------------------------------------------------------------------------------------------
# Finding the blocks


def _targets(table: pd.DataFrame, factor: str) -> np.ndarray:
    """Target value of ``factor`` per row: the stored target, else a cluster of achieved values."""
    column = f"extra_target_{factor}"
    if column in table.columns:
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(float)
        if np.isfinite(values).all():
            return values
    achieved = table[factor].to_numpy(float)
    order = np.sort(np.unique(achieved))
    starts, labels = [], {}
    for value in order:
        if not starts or value > starts[-1] * SIZE_TOLERANCE:
            starts.append(value)
        labels[value] = starts[-1]
    groups = {s: [v for v in order if labels[v] == s] for s in starts}
    centre = {s: float(np.exp(np.mean(np.log(vs)))) for s, vs in groups.items()}
    return np.array([centre[labels[v]] for v in achieved])


def _blocks(table: pd.DataFrame):
    """(target N, target D) and the runs of each, in sorted order."""
    keys = pd.DataFrame({"N": _targets(table, "N"), "D": _targets(table, "D")})
    for key, index in keys.groupby(["N", "D"]).groups.items():
        yield (float(key[0]), float(key[1])), table.loc[index]


def _sweep(runs: pd.DataFrame, var: str, base: dict) -> pd.DataFrame:
    """The runs of a block where only ``var`` moves away from the base configuration."""
    ratio = runs["Na"].to_numpy(float) / runs["N"].to_numpy(float)
    keep = np.abs(ratio - base["ratio"]) <= RATIO_TOLERANCE
    for other in ("G", "S"):
        if other != var:
            keep &= np.isclose(runs[other].to_numpy(float), base[other], atol=1e-6)
    return runs[keep]


def oat_sweeps(table: pd.DataFrame, var: str, base: dict | None = None) -> list:
    """The sweeps of ``var`` (``"G"`` or ``"S"``) that span at least three levels.

    Returns
    -------
    list of ((float, float), pandas.DataFrame)
        ``((N target, D target), runs)`` per block, sorted by ``D`` then ``N``.
    """
    if var not in FORMS:
        raise InputError(f"var must be one of {sorted(FORMS)}, got {var!r}")
    base = {**BASE, **(base or {})}
    found = []
    for key, runs in _blocks(table.reset_index(drop=True)):
        sweep = _sweep(runs, var, base)
        if sweep[var].nunique() >= _MIN_LEVELS:
            found.append((key, sweep))
    return sorted(found, key=lambda item: (item[0][1], item[0][0]))


def _no_block_message(table: pd.DataFrame, base: dict) -> str:
    return (
        f"no one-factor-at-a-time block in the {len(table)} runs: none varies G (at S="
        f"{base['S']:g}, Na/N={base['ratio']:g}) or S (at G={base['G']:g}, Na/N={base['ratio']:g}) "
        f"over {_MIN_LEVELS} or more levels at one N and D; G values present: "
        f"{sorted(table['G'].unique().tolist())}, S values: {sorted(table['S'].unique().tolist())}."
        " Add runs that sweep G or S around the base (in Python, block_optima(table, "
        "base={...}) takes a study's own base)"
    )


# ----------------------------------------------------------------------------------------------
# Fitting one sweep


def _optimum_of_sweep(sweep, var, n_boot, rng, level) -> dict:
    """Point optimum, interval, where it lies and the fitted constants of one sweep."""
    levels = np.unique(sweep[var].to_numpy(float))
    out = {f"{var}_runs": len(sweep), f"{var}_min": np.nan, f"{var}_max": np.nan,
           f"{var}*": np.nan, f"{var}*_lo": np.nan, f"{var}*_hi": np.nan,
           f"{var}*_where": "not swept", f"{var}*_boot": 0, f"{var}*_note": ""}  # fmt: skip
    if len(levels) < _MIN_LEVELS:
        return out
    lo, hi = float(levels[0]), float(levels[-1])
    out.update({f"{var}_min": lo, f"{var}_max": hi})

    # 1. The marginal form on every run of the sweep.
    fit = _fit_form(var, sweep)
    names = list(fit.law.constants)
    point = np.array([[fit.params[c] for c in names]])
    value = _optima(var, names, point, lo, hi)[0]
    out[f"{var}*"] = value if np.isfinite(value) else np.nan
    out[f"{var}*_where"] = _where(value)
    out.update({f"{var}_{c}": fit.params[c] for c in names if c != "u"})

    # 2. Bootstrap: refit on resamples that keep enough levels to identify the form. With as
    #    many runs as constants the form passes through every run and no resample differs.
    if len(sweep) <= len(names):
        out[f"{var}*_note"] = (
            f"{len(sweep)} runs for {len(names)} constants: the form interpolates them, so the "
            "bootstrap cannot measure noise; train replicate seeds for an interval"
        )
        return out
    draws = _bootstrap(fit, sweep[var].to_numpy(float), n_boot, rng)
    if len(draws):
        q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
        band = np.percentile(_optima(var, names, draws, lo, hi), q, method="inverted_cdf")
        out.update({f"{var}*_lo": float(band[0]), f"{var}*_hi": float(band[1])})
    out[f"{var}*_boot"] = len(draws)
    if sweep.groupby(var).size().max() == 1:
        out[f"{var}*_note"] = (
            "one run per level: the interval shows how the fit moves when levels drop out of a "
            "resample, not run-to-run noise; train replicate seeds for a noise interval"
        )
    return out


def _fit_form(var: str, sweep: pd.DataFrame):
    """Fit the marginal form of ``var``; warnings from the fitter are logged, not raised."""
    from discover.fit import fit_law

    law = law_from_expr(FORMS[var], [var], name=f"marginal_{var}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Three constants, linear in the loss: a few starts find the one minimum.
        fit = fit_law(law, sweep.reset_index(drop=True), "loss", n_starts=128, n_polish=2)
    for w in caught:
        log.info("marginal fit in %s: %s", var, w.message)
    return fit


def _bootstrap(fit, x: np.ndarray, n_boot: int, rng) -> np.ndarray:
    """Constants refitted on each usable resample, shape (n_used, n_constants)."""
    from discover.lm import refine

    n = len(x)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=int(n_boot))
    levels = np.unique(x)
    present = (counts[:, None, :] > 0) & (x[None, None, :] == levels[None, :, None])
    usable = present.any(axis=2).sum(axis=1) >= _MIN_LEVELS
    if not usable.any():
        return np.empty((0, len(fit.law.constants)))
    problem = fit.problem
    theta, ok = refine(problem, problem.theta(fit.params), problem.w[None, :] * counts[usable])
    if not ok.all():
        log.info("%d of %d resample refits did not converge; left out", (~ok).sum(), ok.size)
    return problem.constants(theta[ok])


def _optima(var: str, names: list[str], constants: np.ndarray, lo: float, hi: float):
    """Minimiser of the fitted marginal form over each row of constants; ±inf beyond [lo, hi].

    A stationary minimum inside [lo, hi] is returned as it is. Otherwise the lowest loss on the
    range lies at one of its ends (the form is monotone there, or its minimum lies outside), and
    the result is -inf for the low end, +inf for the high end.
    """
    c = dict(zip(names, constants.T, strict=True))
    with np.errstate(all="ignore"):
        if var == "G":
            e, f = c["e"], c["f"]
            is_min = (e > 0) & (f > 0)
            stationary = np.sqrt(np.where(is_min, f / e, np.nan))
            at_lo, at_hi = e * lo + f / lo, e * hi + f / hi
        else:
            m, n = c["m"], c["n"]
            is_min = m > 0
            stationary = np.where(is_min, -n / (2 * m), np.nan)
            at_lo, at_hi = m * lo**2 + n * lo, m * hi**2 + n * hi
    inside = is_min & (stationary >= lo) & (stationary <= hi)
    end = np.where(at_lo <= at_hi, -np.inf, np.inf)
    return np.where(inside, stationary, end)


def _where(value: float) -> str:
    if np.isposinf(value):
        return "above"
    if np.isneginf(value):
        return "below"
    return "inside"


# ----------------------------------------------------------------------------------------------
# Text


def format_interval(row, var: str) -> str:
    """``"6.1 [4.2, 9.9]"``, with ``"> max"``/``"< min"`` where the optimum or a bound is beyond."""
    where = row[f"{var}*_where"]
    if where == "not swept":
        return "not swept"
    lo_end, hi_end = row[f"{var}_min"], row[f"{var}_max"]
    point = {"above": f"> {hi_end:g}", "below": f"< {lo_end:g}"}.get(where)
    point = point or f"{row[f'{var}*']:.3g}"

    def bound(v):
        if np.isposinf(v):
            return f"> {hi_end:g}"
        if np.isneginf(v):
            return f"< {lo_end:g}"
        return "n/a" if not np.isfinite(v) else f"{v:.3g}"

    return f"{point} [{bound(row[f'{var}*_lo'])}, {bound(row[f'{var}*_hi'])}]"


def format_block_optima(optima: pd.DataFrame) -> str:
    """One line per block: N, D, runs, seeds, G* and S* with their intervals."""
    header = (
        f"{'N':>9} {'D':>9} {'runs':>5} {'seeds':>5}  {'G* [95% interval]':<26}S* [95% interval]"
    )
    lines = [header]
    for _, row in optima.iterrows():
        lines.append(
            f"{row['N']:>9.3g} {row['D']:>9.3g} {row['n_runs']:>5d} {row['n_seeds']:>5d}  "
            f"{format_interval(row, 'G'):<26}{format_interval(row, 'S')}"
        )
    return "\n".join(lines)
