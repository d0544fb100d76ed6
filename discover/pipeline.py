"""Discover a closed-form scaling law: symbolic regression, then selection by inner extrapolation.

A law that fits the runs it was fitted on says little; what matters is how it predicts larger runs.
So the pipeline never selects on fit. Given the rows it may use (the caller has already set the real
test rows aside), it:

1. splits off an *inner holdout*: the rows largest in ``holdout_factor`` (top ``holdout_quantile``
   of the rows, whole groups of equal values);
2. runs the engine (pyoperon) on the remaining *inner-fit* rows, once per seed;
3. pools every Pareto front, converts it to sympy, parametrizes, de-duplicates and drops forms with
   more than ``max_constants`` constants (:mod:`discover.candidates`);
4. re-fits every form's constants with :func:`discover.fit.fit_law` on the inner-fit rows (the
   engine's values are one of the starts) and scores R² on the inner-holdout rows;
5. picks the form with the best inner-holdout R²; among forms tied with it (within
   ``tie_tolerance`` or one standard error of the R² difference) the one with fewer constants;
6. re-fits the chosen form on all the rows given and returns it.

Example::

    from discover.pipeline import discover_law
    result = discover_law(train, inputs=["N", "E"], holdout_factor="N", max_constants=6)
    result.best.sympy(), result.front
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from discover.candidates import Candidate, Form, prepare_candidates
from discover.fit import FitResult, fit_law, one_blas_thread
from discover.formula import FACTORS
from discover.laws import Bounds, law_from_expr
from discover.metrics import r2
from results.errors import InputError

log = logging.getLogger(__name__)

#: Engines the pipeline can run; see :mod:`discover.engines`.
ENGINES = ("pyoperon", "structured", "pysr")

#: Engines run when none are named: generic search and the structured search over known shapes.
DEFAULT_ENGINES = ("pyoperon", "structured")

#: Engines whose result does not depend on the seed beyond their fits' starts: run once.
SEEDLESS_ENGINES = ("structured",)


@dataclass
class DiscoveryResult:
    """What :func:`discover_law` found.

    Attributes
    ----------
    best : FitResult
        The chosen form, re-fitted on all rows given.
    front : pandas.DataFrame
        One row per unique form: ``formula`` (with free constants), ``n_constants``, ``length``
        (engine tree nodes), ``engine_r2``, ``fit_r2`` (after re-fitting, inner-fit rows),
        ``inner_extrap_r2`` (inner-holdout rows), ``converged``, ``seed``, ``duplicates``,
        ``fitted`` (the form with its inner-fit constants), ``positive_beyond`` (whether
        it still predicts a positive loss with N, Na, D scaled up 10-1000 times; forms that do
        not are chosen only if no form does), ``tie_margin`` (how far below the
        best R² it still counted as tied) and ``chosen``; chosen first, then by R².
    inputs : tuple of str
        The input columns searched over.
    settings : dict
        Every setting of the run (JSON-serialisable).
    timings : dict of str to float
        Seconds spent in ``engine``, ``prepare``, ``refit``, ``final`` and ``total``.
    inner_holdout : numpy.ndarray of bool
        Which rows of the data given formed the inner holdout.
    inner_fits : dict of str to FitResult
        Each form of ``front`` (by ``formula``) fitted on the inner-fit rows; its ``law`` carries
        the form's constants and search bounds, so any form of the front can be re-fitted.
    """

    best: FitResult
    front: pd.DataFrame
    inputs: tuple[str, ...]
    settings: dict
    timings: dict[str, float]
    inner_holdout: np.ndarray = field(repr=False)
    inner_fits: dict = field(default_factory=dict, repr=False)


def discover_law(
    data: pd.DataFrame,
    inputs: list[str] | tuple[str, ...] | None = None,
    target: str = "loss",
    *,
    holdout_factor: str = "N",
    holdout_quantile: float = 0.2,
    max_constants: int = 8,
    seeds: tuple[int, ...] | list[int] = (0,),
    engine: str | None = None,
    engine_options: dict | None = None,
    engines: tuple[str, ...] | list[str] | None = None,
    n_starts: int = 64,
    n_polish: int = 4,
    refit_maxiter: int = 400,
    tie_tolerance: float = 1e-3,
    one_se: bool = False,
    n_jobs: int = 1,
    weighting: str = "rows",
) -> DiscoveryResult:
    """Search for a closed-form law and select it by how well it extrapolates inside ``data``.

    Parameters
    ----------
    data : pandas.DataFrame
        The rows the pipeline may use; hold out the real test rows before calling.
    inputs : sequence of str, optional
        Input columns. Default: the factors ``N, Na, D, G, S, E`` that are columns of ``data`` and
        take more than one value.
    target : str, default "loss"
        Column to predict (loss in nats; must be positive, as the re-fit works in log space).
    holdout_factor : str, default "N"
        Column whose largest values form the inner holdout.
    holdout_quantile : float, default 0.2
        Fraction of the rows held out (rounded up to whole groups of equal ``holdout_factor``).
    max_constants : int, default 8
        Forms with more free constants are dropped before re-fitting.
    seeds : sequence of int, default (0,)
        One run of each engine per seed (the structured search runs once, with the first seed);
        their Pareto fronts are pooled.
    engine : str, optional
        Run this one engine only (same as ``engines=(engine,)``).
    engine_options : dict, optional
        Keyword arguments per engine, ``{"pyoperon": {"generations": 100}, "structured":
        {"n_starts": 128}}``; a dict whose keys are not engine names is taken as pyoperon's (see
        :func:`discover.engines.pyoperon.run_pyoperon`,
        :func:`discover.engines.structured.run_structured`).
    engines : sequence of str, optional
        Engines to run and pool, from :data:`ENGINES`. Default :data:`DEFAULT_ENGINES`:
        pyoperon and the structured search.
    n_starts : int, default 64
        Sobol starts of each re-fit (the engine's constants are always one more start).
    n_polish : int, default 4
        Starts polished per re-fit.
    refit_maxiter : int, default 400
        L-BFGS-B iteration limit per polish; bounds the time of each re-fit.
    tie_tolerance : float, default 1e-3
        Forms within this of the best inner-holdout R² count as tied; the fewest constants wins.
    one_se : bool, default False
        Also count as tied the forms within one standard error of the best inner-holdout R²
        (standard error of the difference, from the per-row squared errors): the holdout is a few
        dozen rows, and R² differences smaller than that are noise, so the simpler law is taken.
    weighting : {"rows", "configurations"}, default "rows"
        How rows count in every re-fit: ``"rows"``, each row once; ``"configurations"``, each
        distinct combination of the inputs once, its rows sharing one unit of weight (so a
        configuration run many times, perhaps with settings that are not among the inputs, does not
        outweigh one run once; with replicate seeds this fits the mean of the replicates).
    n_jobs : int, default 1
        With ``n_jobs > 1`` and Ray installed, seeds run as Ray tasks on a private local Ray
        (``n_jobs`` CPUs, 127.0.0.1, no dashboard), shut down afterwards. Otherwise sequential.

    Returns
    -------
    DiscoveryResult

    Raises
    ------
    InputError
        Missing or constant columns, a split that leaves no rows on one side, no usable form.
    """
    began = time.perf_counter()
    timings: dict[str, float] = {}
    inputs = _inputs(data, inputs, target)
    engines = _engines(engine, engines)
    options = per_engine_options(engine_options, engines)
    if weighting not in WEIGHTINGS:
        raise InputError(f"weighting={weighting!r} is not one of {list(WEIGHTINGS)}")
    settings = dict(inputs=list(inputs), target=target, holdout_factor=holdout_factor,
                    holdout_quantile=holdout_quantile, max_constants=max_constants,
                    seeds=list(seeds), engines=list(engines), engine_options=options,
                    n_starts=n_starts,
                    n_polish=n_polish, refit_maxiter=refit_maxiter, tie_tolerance=tie_tolerance,
                    one_se=one_se, n_jobs=n_jobs, weighting=weighting,
                    n_rows=len(data))  # fmt: skip

    # 1. Inner split, inside the rows given
    data = data.reset_index(drop=True)
    holdout = inner_split(data, holdout_factor, holdout_quantile)
    fit_rows, held_rows = data[~holdout], data[holdout]

    # 2. Engine runs on the inner-fit rows
    tick = time.perf_counter()
    options.setdefault("pyoperon", {}).setdefault("max_coefficients", max_constants + 2)
    options.setdefault("structured", {}).setdefault("max_coefficients", max_constants)
    jobs = _jobs(engines, tuple(seeds), options)
    candidates = _run_engines(fit_rows, target, inputs, jobs, n_jobs)
    timings["engine"] = time.perf_counter() - tick

    # 3. Pool, parametrize, de-duplicate, drop forms with too many constants
    tick = time.perf_counter()
    forms = prepare_candidates(candidates, inputs, max_constants=max_constants)
    timings["prepare"] = time.perf_counter() - tick
    if not forms:
        raise InputError(
            f"the engine found no usable form with at most {max_constants} constants "
            f"among {len(candidates)} candidates; raise max_constants or run longer"
        )

    # 4. Re-fit each form on the inner-fit rows, score on the inner holdout
    tick = time.perf_counter()
    refit = dict(n_starts=n_starts, n_polish=n_polish, maxiter=refit_maxiter,
                 weighting=(weighting, inputs))  # fmt: skip
    with one_blas_thread():
        rows = [_score(i, form, fit_rows, held_rows, target, refit) for i, form in enumerate(forms)]
    rows = [row for row in rows if row is not None]
    timings["refit"] = time.perf_counter() - tick
    if not rows:
        raise InputError(
            f"none of the {len(forms)} forms could be re-fitted on the inner-fit rows "
            "(every one predicts a non-positive or non-finite loss)"
        )

    # 5. Select by inner-holdout R², fewer constants among ties
    front = _front(rows, tie_tolerance, one_se, float(np.var(held_rows[target])))
    chosen = next(row for row in rows if row["formula"] == front.loc[0, "formula"])

    # 6. Re-fit the chosen form on every row given
    tick = time.perf_counter()
    with one_blas_thread():
        best = _fit(chosen["law"], data, target, dict(refit, maxiter=4 * refit_maxiter),
                    chosen["fit"].params)  # fmt: skip
    timings["final"] = time.perf_counter() - tick
    timings["total"] = time.perf_counter() - began
    log.info(
        "discovered %s (inner-holdout R² %.4f) in %.1f s",
        front.loc[0, "formula"],
        front.loc[0, "inner_extrap_r2"],
        timings["total"],
    )
    inner_fits = {row["formula"]: row["fit"] for row in rows}
    return DiscoveryResult(best, front, inputs, settings, timings, holdout, inner_fits)


def inner_split(data: pd.DataFrame, factor: str, quantile: float) -> np.ndarray:
    """Mask of the rows largest in ``factor``: the top ``quantile`` of rows, in whole groups.

    Rows whose ``factor`` is at or above the ``1 - quantile`` quantile are held out, so rows with
    equal values stay together. When that would hold out every row (few distinct values), only the
    rows at the largest value are held out.

    Parameters
    ----------
    data : pandas.DataFrame
    factor : str
        Column to split on, e.g. ``"N"``.
    quantile : float
        Fraction of rows to hold out, in (0, 1).

    Returns
    -------
    numpy.ndarray of bool
        True for inner-holdout rows.
    """
    if factor not in data.columns:
        raise InputError(
            f"holdout_factor {factor!r} is not a column (columns: "
            f"{list(data.columns)}); pass one of the inputs, e.g. 'N'"
        )
    if not 0 < quantile < 1:
        raise InputError(
            f"holdout_quantile must be in (0, 1), got {quantile!r}; 0.2 holds out the top fifth"
        )
    values = data[factor].to_numpy(float)
    holdout = values >= np.quantile(values, 1.0 - quantile)
    if holdout.all():
        holdout = values == values.max()
    if holdout.all() or (~holdout).sum() < 3:
        raise InputError(
            f"{factor} takes {len(np.unique(values))} distinct values over "
            f"{len(values)} rows; the inner holdout needs at least 3 rows left to "
            "fit on and a larger value to hold out. Use another holdout_factor"
        )
    return holdout


def _inputs(data, inputs, target) -> tuple[str, ...]:
    """The input columns: as given, or every factor present that varies."""
    if target not in data.columns:
        raise InputError(
            f"target {target!r} is not a column (columns: {list(data.columns)}); "
            "pass target=<column of losses>"
        )
    if inputs is None:
        inputs = [f for f in FACTORS if f in data.columns and data[f].nunique() > 1]
        if not inputs:
            raise InputError(
                f"no factor among {FACTORS} is a column that varies; pass inputs= "
                "with the columns to search over"
            )
    missing = [c for c in inputs if c not in data.columns]
    if missing:
        raise InputError(f"inputs {missing} are not columns (columns: {list(data.columns)})")
    return tuple(inputs)


def _engines(engine: str | None, engines) -> tuple[str, ...]:
    """The engines to run, checked."""
    if engine is not None and engines is not None:
        raise InputError("pass engine= or engines=, not both")
    chosen = (engine,) if engine is not None else tuple(engines or DEFAULT_ENGINES)
    unknown = [e for e in chosen if e not in ENGINES]
    if unknown or not chosen:
        raise InputError(
            f"engines {unknown or list(chosen)} are not available; choose from {list(ENGINES)}"
        )
    return tuple(dict.fromkeys(chosen))


def per_engine_options(options: dict | None, engines=ENGINES) -> dict[str, dict]:
    """Options keyed by each of ``engines``; a flat dict is pyoperon's (the only engine it used to
    have)."""
    options = dict(options or {})
    if options and not set(options) <= set(ENGINES):
        options = {"pyoperon": options}
    bad = [k for k, v in options.items() if not isinstance(v, dict)]
    if bad:
        raise InputError(f"engine_options for {bad} must be dicts of keyword arguments")
    return {name: dict(options.get(name, {})) for name in engines}


def _jobs(engines, seeds, options) -> list[tuple[str, int, dict]]:
    """One (engine, seed, options) per engine run: every seed, or the first for seedless ones."""
    return [(name, seed, options[name]) for name in engines
            for seed in (seeds[:1] if name in SEEDLESS_ENGINES else seeds)]  # fmt: skip


def run_engine(name: str, data, target, inputs, seed, options) -> list[Candidate]:
    """Run one engine by name and return its candidates (see :mod:`discover.engines`)."""
    if name == "pyoperon":
        from discover.engines.pyoperon import run_pyoperon as run
    elif name == "structured":
        from discover.engines.structured import run_structured as run
    elif name == "pysr":
        from discover.engines.pysr import run_pysr as run
    else:
        raise InputError(f"engine {name!r} is not available; choose from {list(ENGINES)}")
    return run(data, target, inputs, seed=seed, **options)


def _run_engines(data, target, inputs, jobs, n_jobs) -> list[Candidate]:
    """Pareto fronts of every engine run, pooled (Ray tasks when n_jobs > 1)."""
    if n_jobs > 1 and len(jobs) > 1:
        try:
            import ray  # noqa: F401
        except ImportError:
            log.info("ray is not installed; running %d engine runs one after another", len(jobs))
        else:
            return _run_engines_ray(data, target, inputs, jobs, n_jobs)
    pooled = []
    for name, seed, options in jobs:
        pooled += run_engine(name, data, target, inputs, seed, options)
    return pooled


def _run_engines_ray(data, target, inputs, jobs, n_jobs) -> list[Candidate]:
    """One Ray task per engine run on a private local Ray bound to 127.0.0.1."""
    import ray

    # Keep every Ray listener on loopback (also needed in the driver's environment)
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=n_jobs, include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False)  # fmt: skip
    try:
        task = ray.remote(num_cpus=1)(run_engine)
        refs = [task.remote(name, data, target, inputs, seed, options)
                for name, seed, options in jobs]  # fmt: skip
        return [cand for front in ray.get(refs) for cand in front]
    finally:
        if started:
            ray.shutdown()


def _bounds(values: dict[str, float]) -> dict[str, Bounds]:
    """Search interval of each constant around the engine's value (signed, linear scale)."""
    return {name: Bounds(v - max(1.0, 4 * abs(v)), v + max(1.0, 4 * abs(v)))
            for name, v in values.items()}  # fmt: skip


WEIGHTINGS = ("rows", "configurations")


def configuration_weights(rows: pd.DataFrame, inputs) -> np.ndarray:
    """Weight of each row when every distinct combination of ``inputs`` counts once.

    Parameters
    ----------
    rows : pandas.DataFrame
    inputs : sequence of str

    Returns
    -------
    numpy.ndarray
        ``1 / (number of rows with the same inputs)`` per row, scaled to sum to ``len(rows)``.
    """
    counts = rows.groupby(list(inputs), sort=False)[list(inputs)[0]].transform("size")
    weights = 1.0 / counts.to_numpy(float)
    return weights * len(rows) / weights.sum()


def _fit(law, rows, target, refit, start) -> FitResult:
    """fit_law with the pipeline's settings; convergence goes to the result, not to warnings."""
    refit = dict(refit)
    weighting, inputs = refit.pop("weighting", ("rows", ()))
    if weighting == "configurations":
        refit["weights"] = configuration_weights(rows, inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_law(law, rows, target, start=start, **refit)


def _score(index: int, form: Form, fit_rows, held_rows, target, refit) -> dict | None:
    """Re-fit one form on the inner-fit rows and score it on both sides; None if it cannot fit."""
    law = law_from_expr(form.expr, form.inputs, name=f"discovered_{index}",
                        bounds=form.bounds or _bounds(form.values))  # fmt: skip
    try:
        fit = _fit(law, fit_rows, target, refit, form.values)
    except (InputError, FloatingPointError, OverflowError, ZeroDivisionError) as err:
        log.info("form %s skipped: %s", form.expr, err)
        return None
    with np.errstate(all="ignore"):
        fit_r2 = r2(fit_rows[target], fit.predict(fit_rows))
        held_r2 = r2(held_rows[target], fit.predict(held_rows))
    with np.errstate(all="ignore"):
        sq_err = (held_rows[target].to_numpy(float) - fit.predict(held_rows)) ** 2
    return dict(
        positive_beyond=_stays_positive(fit, pd.concat([fit_rows, held_rows]), form.inputs),
        formula=str(form.expr), n_constants=form.n_constants, length=form.candidate.length,
        engine_r2=form.candidate.fit_r2, fit_r2=fit_r2,
        inner_extrap_r2=held_r2 if np.isfinite(held_r2) else -np.inf,
        converged=fit.converged, seed=form.candidate.seed, duplicates=form.duplicates,
        fitted=str(fit.sympy().evalf(6)), law=law, fit=fit, sq_err=sq_err,
    )  # fmt: skip


SIZE_FACTORS = ("N", "Na", "D")
EXTRAPOLATION_PROBES = (10.0, 100.0, 1000.0)


def _stays_positive(fit, rows: pd.DataFrame, inputs) -> bool:
    """Whether the law predicts a positive, finite loss everywhere it will be used:

    * at every row with each size factor it uses (N, Na, D) scaled up 10, 100 and 1000 times (a
      law that turns negative just past the data, ``c0 + c1*log(D)``, cannot plan larger runs);
    * between the data points: each input swept over a grid of its range (log-spaced for
      positive inputs, and to 1000 times the largest value for a size factor) at the other
      inputs of every distinct row (``c0 + c1/(c2 - log(N))`` has a pole between two model
      sizes that no row sits on).
    """
    sizes = [x for x in inputs if x in SIZE_FACTORS]
    for factor in EXTRAPOLATION_PROBES if sizes else ():
        probe = rows.copy()
        for x in sizes:
            probe[x] = probe[x] * factor
        if not _positive(fit, probe):
            return False
    distinct = rows.drop_duplicates(subset=list(inputs))
    if len(distinct) > GRID_ROWS:
        distinct = distinct.sample(GRID_ROWS, random_state=0)
    for x in inputs:
        column = rows[x].to_numpy(float)
        lo, hi = float(column.min()), float(column.max()) * (1000.0 if x in SIZE_FACTORS else 1.0)
        grid = np.geomspace(lo, hi, GRID_POINTS) if lo > 0 else np.linspace(lo, hi, GRID_POINTS)
        probe = distinct.loc[distinct.index.repeat(GRID_POINTS)].copy()
        probe[x] = np.tile(grid, len(distinct))
        if not _positive(fit, probe):
            return False
    return True


#: Points of the grid each input is swept over, and at most how many distinct rows it is swept at.
GRID_POINTS, GRID_ROWS = 257, 200


def _positive(fit, probe: pd.DataFrame) -> bool:
    with np.errstate(all="ignore"):
        predicted = fit.predict(probe)
    return bool(np.all(np.isfinite(predicted) & (predicted > 0)))


def _front(rows: list[dict], tie_tolerance: float, one_se: bool, var_y: float) -> pd.DataFrame:
    """The table of scored forms, chosen one first, the rest by inner-holdout R².

    A form ties with the best when its inner-holdout R² is within ``tie_tolerance`` of the best or,
    with ``one_se``, within one standard error of the R² difference, estimated from the per-row
    differences of squared errors (the one-standard-error rule); the tied form with the fewest
    constants is chosen, then the one with the higher R².
    """
    sane = [row for row in rows if row["positive_beyond"]]
    candidates = sane or rows  # a law that turns negative is chosen only if every one does
    best = max(candidates, key=lambda row: row["inner_extrap_r2"])
    for row in rows:
        with np.errstate(invalid="ignore", over="ignore"):  # a form may predict inf somewhere
            diff = row["sq_err"] - best["sq_err"]
            se = float(np.std(diff, ddof=1) / np.sqrt(len(diff)) / var_y) if len(diff) > 1 else 0.0
        row["tie_margin"] = max(tie_tolerance, se if one_se and np.isfinite(se) else 0.0)
    tied = [
        r for r in candidates if r["inner_extrap_r2"] >= best["inner_extrap_r2"] - r["tie_margin"]
    ]
    chosen = min(tied, key=lambda row: (row["n_constants"], -row["inner_extrap_r2"]))
    ordered = [chosen] + sorted((r for r in rows if r is not chosen),
                                key=lambda row: -row["inner_extrap_r2"])  # fmt: skip
    hidden = ("law", "fit", "sq_err")
    front = pd.DataFrame([{k: v for k, v in r.items() if k not in hidden} for r in ordered])
    front["chosen"] = [True] + [False] * (len(ordered) - 1)
    return front
