"""The jobs behind ``moelaw discover``, ``fit``, ``compare``, ``export`` and ``report``.

Each job loads a table, splits off the runs largest in one factor (the extrapolation holdout),
fits or discovers on the rest, and scores every law on both parts. The command-line program only
parses arguments, calls one of these functions and prints the outcome.

    from discover.workflow import run_discover
    outcome = run_discover()           # the bundled study
    print(outcome.format())
"""

from __future__ import annotations

import json
import math
import textwrap
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import sympy

from discover.data import check_table, constants_at_bounds, load_table, unit_hints
from discover.export import bounds_from_json, bounds_to_json, latex_text, write_atomic
from discover.fit import FitResult, IdentifiabilityWarning, fit_law
from discover.formula import near_miss_constants, parse_formula
from discover.laws import LAWS, Bounds, Law, get_law, law_from_expr
from discover.metrics import extrapolation_split, scores
from results.errors import InputError

FACTORS = ("N", "Na", "D", "G", "S", "E")
RESULT_VERSION = 1


@dataclass
class LawReport:
    """One fitted law, scored on the fitting rows and on the held-out (larger) rows."""

    name: str
    formula: str  # constants by name, e.g. "L0 + A*N**(-alpha)"
    fitted: str  # constants substituted, full precision
    latex: str
    inputs: list[str]
    params: dict[str, float]
    n_constants: int
    converged: bool
    fit: dict[str, float]
    holdout: dict[str, float]
    optima: dict[str, float | None] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    intervals: list[dict] = field(default_factory=list)  # bootstrap: constant, value, se, lo, hi
    bounds: dict[str, dict] = field(default_factory=dict)  # constant: lo, hi, log_space


@dataclass
class Outcome:
    """The result of a job: the data and split it used, and one report per law."""

    job: str
    source: str
    target: str
    n_rows: int
    n_fit: int
    n_holdout: int
    holdout: dict
    laws: list[LawReport]
    chosen: str | None = None
    front: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """A JSON-serialisable dictionary of the whole outcome (non-finite floats become None)."""
        return _jsonable({"version": RESULT_VERSION, **asdict(self)})

    def format(self) -> str:
        """The outcome as a side-by-side table for the terminal."""
        return format_outcome(self)

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_json` to ``path`` atomically; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(self.to_json(), indent=2))
        return path


# ----------------------------------------------------------------------------------------------
# Loading and splitting


def default_inputs(table: pd.DataFrame, law: Law | None = None) -> list[str]:
    """The factors a search should use: those of ``law`` (or all six) that vary in ``table``."""
    names = law.inputs if law is not None else FACTORS
    return [f for f in names if f in table.columns and table[f].nunique() > 1]


def split(
    table: pd.DataFrame, factor: str, fraction: float, threshold: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out the runs largest in ``factor``: roughly the top ``fraction`` of rows.

    Rows above the ``1 - fraction`` quantile are held out, so runs that share the largest value
    stay together. With ``threshold``, the rows whose ``factor`` exceeds it are held out instead.
    """
    if factor in table.columns and len(table) and table[factor].nunique() < 2:
        raise InputError(
            f"cannot hold out the largest runs by {factor}: all {len(table)} row(s) have "
            f"{factor}={table[factor].iloc[0]:.4g}; add runs of other sizes, or hold out by "
            "another factor with --holdout-factor"
        )
    if threshold is not None:
        _check_cut(table, factor, threshold, None)
        return extrapolation_split(table, factor, threshold=threshold)
    if not 0 < fraction < 1:
        raise InputError(
            f"holdout fraction must be in (0, 1), got {fraction!r}; 0.2 holds out the top fifth"
        )
    _check_cut(table, factor, None, fraction)
    return extrapolation_split(table, factor, quantile=1.0 - fraction)


def _check_cut(table, factor, threshold: float | None, fraction: float | None) -> None:
    """Refuse a split that holds out no row or every row, naming the options that fix it."""
    if factor not in table.columns or not len(table):
        return  # extrapolation_split names the missing column
    values = table[factor].to_numpy(dtype=float)
    cut = float(threshold) if threshold is not None else np.quantile(values, 1.0 - fraction)
    held = int((values > cut).sum())
    if 0 < held < len(values):
        return
    distinct = np.unique(values)
    below_max = distinct[-2] if len(distinct) > 1 else distinct[-1]
    at_max = int((values == values.max()).sum())
    least = (at_max - 1) / (len(values) - 1) if len(values) > 1 else 0.0  # linear quantile
    span = f"{factor} spans {values.min():.4g} to {values.max():.4g}"
    fixes = (
        f"hold out the runs at the largest {factor} with --holdout-above {below_max:.4g}, "
        f"{'drop --holdout-above and ' if threshold is not None else ''}"
        f"hold out a larger fraction with --holdout-quantile Q (Q above {least:.3g}; "
        f"{at_max} of {len(values)} rows share the largest {factor}), or split on another "
        "column with --holdout-factor COLUMN"
    )
    if threshold is not None:
        raise InputError(
            f"--holdout-above {threshold:.4g} holds out {held} of {len(values)} rows ({span}); "
            "give a value inside that range: " + fixes
        )
    raise InputError(
        f"--holdout-quantile {fraction:g} holds out the rows above the {1 - fraction:g} "
        f"quantile of {factor}, {cut:.4g}, which leaves {held} of {len(values)} rows held out "
        f"({span}); " + fixes
    )


def select_rows(table: pd.DataFrame, where: dict | None) -> pd.DataFrame:
    """Keep the rows whose columns equal the given values, e.g. ``{"extra_step": 249000}``.

    Values compare as numbers when the column is numeric, else as text; no expression is
    evaluated.
    """
    for column, value in (where or {}).items():
        if column not in table.columns:
            import difflib

            close = difflib.get_close_matches(column, list(map(str, table.columns)), 2, 0.75)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise InputError(
                f"--where {column}=...: the data has no column {column!r}; {hint}columns: "
                f"{', '.join(map(str, table.columns))} (`moelaw data show` lists them)"
            )
        if pd.api.types.is_numeric_dtype(table[column]):
            try:
                keep = table[column].astype(float) == float(value)
            except ValueError:
                raise InputError(
                    f"filter {column}={value!r}: the column is numeric; give a number"
                ) from None
        else:
            keep = table[column].astype(str) == str(value)
        if not keep.any():
            raise InputError(
                f"filter {column}={value!r} keeps no rows; values present include "
                f"{sorted(map(str, table[column].unique()))[:8]}"
            )
        table = table[keep]
    return table.reset_index(drop=True)


def use_columns(
    table: pd.DataFrame, mapping: dict | None, target: str | None = None
) -> pd.DataFrame:
    """Read each symbol from another column: ``{"N": "Na"}`` makes column ``Na`` the ``N`` input.

    Useful when a published law's symbol means a different quantity in a dataset (Clark et al.
    2022 call the parameters used per token N, which is ``Na`` in moelaw's store). With
    ``target``, refuses a mapping that reads an input from the target or replaces the target;
    two symbols read from one column are always refused.
    """
    if not mapping:
        return table
    check_mapping(mapping, target)
    missing = [col for col in mapping.values() if col not in table.columns]
    if missing:
        raise InputError(
            f"cannot use columns {missing}: not in the data; available: {list(table.columns)}"
        )
    table = table.copy()
    sources = {symbol: table[col] for symbol, col in mapping.items()}
    for symbol, values in sources.items():
        table[symbol] = values
    return table


def check_mapping(mapping: dict, target: str | None = None) -> None:
    """Refuse a ``--use SYMBOL=COLUMN`` mapping that cannot mean what it says.

    An input read from the target column would predict the target from itself; a mapped
    symbol named like the target would replace the target; two symbols read from one column
    would be one input under two names.
    """
    for symbol, column in mapping.items():
        if target is not None and column == target:
            raise InputError(
                f"--use {symbol}={column} reads the input {symbol} from {column!r}, the column "
                f"the law predicts (--target {target}): the fit would predict {target} from "
                f"itself; map {symbol} to an input column, e.g. --use N=Na"
            )
        if target is not None and symbol == target:
            raise InputError(
                f"--use {symbol}={column} would replace the target column {target!r} with "
                f"{column!r}; --use maps a law's input symbol, so to predict {column} pass "
                f"--target {column} instead"
            )
    readers: dict[str, list[str]] = {}
    for symbol, column in mapping.items():
        readers.setdefault(column, []).append(symbol)
    shared = {column: symbols for column, symbols in readers.items() if len(symbols) > 1}
    if shared:
        column, symbols = next(iter(shared.items()))
        uses = " and ".join(f"--use {s}={column}" for s in symbols)
        raise InputError(
            f"{uses} read the inputs {', '.join(symbols)} from one column {column!r}, so they "
            f"would be one input under {len(symbols)} names; map each symbol to its own column"
        )


def load_runs(
    source=None, where: dict | None = None, columns: dict | None = None, target: str | None = None
):
    """:func:`discover.data.load_table`, then :func:`select_rows` and :func:`use_columns`."""
    return use_columns(select_rows(load_table(source), where), columns, target)


def _load(source, inputs, target, holdout_factor, where, columns, laws=()):
    """Load, filter and check the table: inputs finite; those the laws take logs of positive."""
    if holdout_factor == target:
        raise InputError(
            f"--holdout-factor {holdout_factor!r} is the target itself; hold out by an input "
            "such as N, Na or D"
        )
    table = load_runs(source, where, columns, target)
    needed = [*inputs, holdout_factor] if holdout_factor not in inputs else list(inputs)
    positive = sorted({x for law in laws for x in law.positive_inputs if x in needed})
    return check_table(table, needed, target, positive=positive)


# ----------------------------------------------------------------------------------------------
# Scoring one fitted law


def report_fit(name: str, fit: FitResult, table, fit_mask, hold_mask, target) -> LawReport:
    """Score a fitted law on the fitting and held-out rows; derive G* and S* where defined.

    When an optimum depends on other inputs (a law in which G* moves with N, say), it is taken
    at the median of those inputs over the table, and a note says so.
    """
    law = fit.law
    optima, notes = {}, []
    for var in ("G", "S"):
        if var in law.inputs:
            optima[f"{var}*"] = _optimum(fit, var, table, notes)
    report = LawReport(
        name=name,
        formula=str(law.expr),
        fitted=sympy.sstr(fit.sympy(), full_prec=True),
        latex=latex_text(law.expr),
        inputs=list(law.inputs),
        params={k: float(v) for k, v in fit.params.items()},
        n_constants=law.n_constants,
        converged=bool(fit.converged),
        fit=_scores(fit, table[fit_mask], target),
        holdout=_scores(fit, table[hold_mask], target) if hold_mask.any() else {},
        optima=optima,
        columns=dict(fit.columns),
        bounds=bounds_to_json(law.constants),
    )
    n_fit = int(np.count_nonzero(fit_mask))
    if n_fit <= law.n_constants:
        notes.append(
            f"{law.n_constants} constants fitted to {n_fit} rows: the law can pass through every "
            "fitting row, so its fit R² and RMSE say nothing; add runs or fit a law with fewer "
            "constants"
        )
    report.notes = notes
    return report


def _optimum(fit: FitResult, var: str, table: pd.DataFrame, notes: list[str]) -> float | None:
    from discover.optima import optimum

    col = fit.columns.get(var, var)
    bounds = (float(table[col].min()), float(table[col].max()))
    try:
        value = optimum(fit, var, bounds=bounds)
    except InputError:
        # The optimum moves with the other inputs: take it at their medians.
        others = {
            x: float(table[fit.columns.get(x, x)].median()) for x in fit.law.inputs if x != var
        }
        try:
            value = optimum(fit, var, params={**fit.params, **others}, bounds=bounds)
        except InputError:
            return None
        where = ", ".join(f"{k}={v:.4g}" for k, v in others.items())
        notes.append(f"{var}* depends on the other inputs; given at their medians ({where})")
    return None if value is None else float(value)


def _scores(fit: FitResult, rows: pd.DataFrame, target: str) -> dict[str, float]:
    result = scores(rows[target].to_numpy(float), fit.predict(rows))
    result["n"] = len(rows)
    return result


# ----------------------------------------------------------------------------------------------
# Jobs


def run_discover(
    source=None,
    inputs: list[str] | None = None,
    target: str = "loss",
    *,
    reference: str = "moe_joint",
    holdout_factor: str = "N",
    holdout_quantile: float = 0.2,
    max_constants: int = 8,
    seeds: list[int] | tuple[int, ...] = (0,),
    time_limit: float | None = None,
    out_dir: str | Path | None = None,
    engine_options: dict | None = None,
    holdout_threshold: float | None = None,
    where: dict | None = None,
    columns: dict | None = None,
    engines: list[str] | tuple[str, ...] | None = None,
    n_jobs: int = 1,
) -> Outcome:
    """Fit the reference law and discover a law on the same rows; score both on held-out runs.

    Parameters
    ----------
    source : str or Path, optional
        A results store, ``.parquet`` or ``.csv``; default the bundled study.
    inputs : list of str, optional
        Inputs of the search; default the reference law's factors that vary in the data.
    target : str, default "loss"
    reference : str, default "moe_joint"
        Name of the hand-designed law to compare against (see :data:`discover.laws.LAWS`).
    holdout_factor : str, default "N"
        The runs largest in this factor are held out (extrapolation).
    holdout_quantile : float, default 0.2
        Fraction of runs held out.
    max_constants : int, default 8
        Most constants a discovered law may have.
    seeds : sequence of int, default (0,)
        Search seeds (their Pareto fronts are pooled).
    time_limit : float, optional
        Seconds per search seed.
    out_dir : path, optional
        Where to write ``discovery.json`` and the exports of the chosen law.
    engine_options : dict, optional
        Passed to the search engine.
    holdout_threshold : float, optional
        Hold out the runs whose ``holdout_factor`` exceeds this, instead of a fraction.
    where : dict, optional
        Keep only rows whose columns equal these values (see :func:`select_rows`).
    columns : dict, optional
        Read a symbol from another column, e.g. ``{"N": "Na"}`` (see :func:`use_columns`).
    engines : sequence of str, optional
        Search engines (see :data:`discover.pipeline.ENGINES`); default pyoperon and the
        structured search.
    n_jobs : int, default 1
        Engine runs in parallel as Ray tasks on a private local Ray (127.0.0.1) when above 1.

    Returns
    -------
    Outcome
        With ``checks``: the sympy checks of the discovered law against the reference law
        (:func:`discover.checks.compare_laws`).
    """
    from discover.checks import compare_laws
    from discover.estimator import LawRegressor
    from discover.pipeline import per_engine_options

    ref_law = get_law(reference)
    table = load_runs(source, where, columns, target)
    inputs = list(inputs) if inputs else default_inputs(table, ref_law)
    if not inputs:
        raise InputError(
            f"no factor of the law {reference!r} ({', '.join(ref_law.inputs)}) varies in the data; "
            "pass the input columns with --inputs"
        )
    table = _load(source, inputs, target, holdout_factor, where, columns, [ref_law])
    fit_mask, hold_mask = split(table, holdout_factor, holdout_quantile, holdout_threshold)
    fit_rows = table[fit_mask].reset_index(drop=True)
    notes: list[str] = []

    # 1. The hand-designed law, if the data has its inputs.
    laws = []
    missing = [x for x in ref_law.inputs if x not in table.columns]
    if missing:
        notes.append(f"reference law {reference!r} not fitted: the data has no {missing}")
    else:
        ref_fit = _fit_quietly(ref_law, fit_rows, target, notes)
        laws.append(report_fit(reference, ref_fit, table, fit_mask, hold_mask, target))

    # 2. The discovered law.
    options = per_engine_options(engine_options)
    if time_limit is not None:
        for name in options:
            options[name].setdefault("time_limit", time_limit)
    model = LawRegressor(inputs, holdout_factor=holdout_factor, max_constants=max_constants,
                         seeds=tuple(seeds), engines=engines, engine_options=options or None,
                         n_jobs=n_jobs)  # fmt: skip
    found = model.fit(fit_rows[[*inputs, target]], target).result_
    laws.append(report_fit("discovered", found.best, table, fit_mask, hold_mask, target))
    checks = {}
    if not missing:
        checks = _jsonable(compare_laws(found.best, ref_fit, table))

    outcome = _outcome(
        "discover",
        source,
        target,
        table,
        holdout_factor,
        hold_mask,
        laws=laws,
        chosen="discovered",
        front=_front_records(found.front),
        notes=notes,
        settings={**found.settings, "reference": reference, "timings": found.timings},
        checks=checks,
    )
    _record_split(outcome, where, columns, holdout_quantile, holdout_threshold)
    for law in outcome.laws:
        if law.name == "discovered" and not law.converged:
            law.notes.append(f"the fit did not converge: {found.best.message}")
    if out_dir is not None:
        save_outcome(outcome, out_dir)
    return outcome


def run_fit(
    source=None,
    law: str | None = None,
    formula: str | None = None,
    inputs: list[str] | None = None,
    target: str = "loss",
    *,
    holdout_factor: str = "N",
    holdout_quantile: float = 0.2,
    out_dir: str | Path | None = None,
    holdout_threshold: float | None = None,
    where: dict | None = None,
    columns: dict | None = None,
    bounds: dict[str, str] | None = None,
    loss: str = "huber",
    delta: float = 1e-3,
    residual: str = "log",
    bootstrap: int = 0,
) -> Outcome:
    """Fit one law, named or given as a formula string, and score it on held-out runs.

    The formula is parsed by :func:`discover.formula.parse_formula` (never ``eval``); its inputs
    are the factor names it uses (or ``inputs``), every other name is a constant. ``bounds``
    replaces the search bounds of constants (see :func:`parse_bounds`). ``loss``, ``delta`` and
    ``residual`` go to :func:`discover.fit.fit_law`; ``bootstrap`` > 0 adds that many resamples'
    standard errors and 95% intervals of every constant (and of G*, S* where defined).
    """
    notes: list[str] = []
    chosen = _law_from_args(law, formula, inputs, bounds, notes)
    table = _load(source, list(chosen.inputs), target, holdout_factor, where, columns, [chosen])
    if formula is not None:  # a mistyped input would otherwise be fitted as a constant
        names = [*FACTORS, *(c for c in table.columns if c != target)]
        notes += near_miss_constants(chosen.expr, chosen.inputs, names)
        if target in chosen.constants:
            notes.append(f"{target} is a constant of the formula and also the column it predicts "
                         f"(--target {target}); the fit treats it as a number: rename the "
                         "constant")  # fmt: skip
    fit_mask, hold_mask = split(table, holdout_factor, holdout_quantile, holdout_threshold)
    options = {"loss": loss, "delta": delta, "residual": residual}
    fit = _fit_quietly(chosen, table[fit_mask].reset_index(drop=True), target, notes, **options)
    report = report_fit(chosen.name, fit, table, fit_mask, hold_mask, target)
    if bootstrap:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", IdentifiabilityWarning)
            summary = fit.bootstrap(n=int(bootstrap))
        report.notes += [str(w.message) for w in caught
                         if issubclass(w.category, IdentifiabilityWarning)]  # fmt: skip
        ok = fit.bootstrap_samples["converged"].to_numpy(bool)
        note = bootstrap_note(int(ok.sum()), len(ok), fit.converged)
        if note:
            report.notes.append(note)
        report.intervals = _jsonable(summary.to_dict(orient="records"))
    outcome = _outcome(
        "fit",
        source,
        target,
        table,
        holdout_factor,
        hold_mask,
        laws=[report],
        chosen=chosen.name,
        notes=notes,
    )
    _record_split(outcome, where, columns, holdout_quantile, holdout_threshold)
    if out_dir is not None:
        save_outcome(outcome, out_dir)
    return outcome


def run_compare(
    source=None,
    laws: list[str] | None = None,
    target: str = "loss",
    *,
    holdout_factor: str = "N",
    holdout_quantile: float = 0.2,
    holdout_threshold: float | None = None,
    where: dict | None = None,
    columns: dict | None = None,
    loss: str = "huber",
    delta: float = 1e-3,
    residual: str = "log",
) -> Outcome:
    """Fit several laws on the same rows and score each on the same held-out runs.

    ``laws`` lists registry names; ``None`` or ``["all"]`` takes every law whose inputs are all
    columns of the data, and names the others, with the columns each lacks, in a note and in
    ``settings["skipped_laws"]``. ``loss``, ``delta`` and ``residual`` go to every fit.
    """
    table = load_runs(source, where, columns, target)
    every = not laws or laws == ["all"]
    lacking = {}
    for name in LAWS if every else laws:
        missing = [x for x in get_law(name).inputs if x not in table.columns]
        if missing:
            lacking[name] = missing
    if lacking and not every:
        raise InputError(f"--laws {','.join(laws)}: " + _skipped_note(lacking, named=True))
    names = [name for name in (LAWS if every else laws) if name not in lacking]
    if not names:
        raise InputError("--laws all: " + _skipped_note(lacking, named=True))
    chosen = [get_law(n) for n in names]
    needed = sorted({x for law in chosen for x in law.inputs})
    table = _load(source, needed, target, holdout_factor, where, columns, chosen)
    fit_mask, hold_mask = split(table, holdout_factor, holdout_quantile, holdout_threshold)
    fit_rows = table[fit_mask].reset_index(drop=True)
    notes = [_skipped_note(lacking)] if lacking else []
    reports = [
        report_fit(
            law.name,
            _fit_quietly(law, fit_rows, target, notes, loss=loss, delta=delta, residual=residual),
            table,
            fit_mask,
            hold_mask,
            target,
        )
        for law in chosen
    ]
    outcome = _outcome(
        "compare",
        source,
        target,
        table,
        holdout_factor,
        hold_mask,
        laws=reports,
        notes=notes,
    )
    outcome.settings["skipped_laws"] = lacking
    return _record_split(outcome, where, columns, holdout_quantile, holdout_threshold)


def bootstrap_note(n_ok: int, n: int, fit_converged: bool = True) -> str | None:
    """What the intervals rest on when some bootstrap refits did not converge, else None.

    Refits that do not converge are left out, so the intervals come from the resamples whose
    refit converged: a subset selected by convergence, which over-represents the resamples
    that are easy to fit. When fewer than half converged they cannot be trusted.
    """
    failed = n - n_ok
    if failed == 0:
        return None
    basis = f"intervals from {n_ok} of {n} resamples ({failed} did not converge)"
    if 2 * n_ok >= n:
        return f"{basis}; those are left out"
    why = [
        "too few to trust: the refits kept are those that converged, not a random sample of "
        "the resamples"
    ]
    if not fit_converged:
        why.append("the fit itself did not converge")
    return f"{basis}: {'; '.join(why)}"


def _skipped_note(lacking: dict[str, list[str]], named: bool = False) -> str:
    """The note naming the laws whose inputs are not all columns, and the columns each lacks."""
    each = "; ".join(f"{name} (no column {', '.join(cols)})" for name, cols in lacking.items())
    verb = "cannot compare" if named else "skipped"
    return (
        f"{verb} {len(lacking)} law(s) whose inputs are not columns of the data: {each}; "
        "add those columns, or read a symbol from an existing column with --use SYMBOL=COLUMN"
    )


def _record_split(outcome, where, columns, quantile, threshold) -> Outcome:
    """Keep the rows' selection and column mapping with the result, so that exports and reports
    read the same columns: a law fitted with ``N`` read from ``Na`` exports ``COLUMNS = {"N":
    "Na"}``."""
    outcome.settings["split"] = {
        "where": dict(where or {}),
        "columns": dict(columns or {}),
        "holdout_threshold": None if threshold is None else float(threshold),
        "holdout_quantile": None if threshold is not None else float(quantile),
    }
    if threshold is not None:
        outcome.holdout["threshold"] = float(threshold)
    for law in outcome.laws:
        mapped = {sym: col for sym, col in (columns or {}).items() if sym in law.inputs}
        law.columns = {**law.columns, **mapped}
    return outcome


def _law_from_args(
    law: str | None,
    formula: str | None,
    inputs: list[str] | None,
    bounds: dict[str, str] | None = None,
    notes: list[str] | None = None,
) -> Law:
    if (law is None) == (formula is None):
        raise InputError("give exactly one of --law NAME and --formula TEXT")
    if law is not None:
        chosen = get_law(law)
    else:
        chosen = _formula_law(formula, inputs, notes if notes is not None else [])
    return chosen.with_bounds(**parse_bounds(bounds)) if bounds else chosen


def _formula_law(formula: str, inputs: list[str] | None, notes: list[str]) -> Law:
    expr = parse_formula(formula)
    names = sorted(str(s) for s in expr.free_symbols)
    if inputs:
        unused = [x for x in inputs if x not in names]
        if unused:
            raise InputError(
                f"--inputs {unused} do not appear in the formula {formula!r}, whose names are "
                f"{names}; list only the names that are data columns"
            )
    inputs = list(inputs) if inputs else [n for n in FACTORS if n in names]
    if not inputs:
        raise InputError(
            f"formula {formula!r} uses none of the factors {', '.join(FACTORS)}; "
            "name its input columns with --inputs"
        )
    if len(inputs) == len(names):
        raise InputError(
            f"formula {formula!r} has no constant to fit: every name in it ({names}) is an "
            "input; add constants such as L0 + A*N**(-alpha)"
        )
    if "E" in inputs:
        notes.append(
            "the formula's E is read from the data's expert-count column E; call an "
            "irreducible-loss constant L0 instead"
        )
    return law_from_expr(expr, inputs, name="formula")


def parse_bounds(items: dict[str, str]) -> dict[str, Bounds]:
    """Bounds from text: ``{"A": "1:1e5:log", "alpha": "0:2"}`` (``log`` fits it in log space)."""
    bounds = {}
    for name, text in items.items():
        parts = text.split(":")
        try:
            lo, hi = float(parts[0]), float(parts[1])
            log_space = parts[2:] == ["log"]
            if len(parts) not in (2, 3) or (len(parts) == 3 and not log_space):
                raise ValueError
        except (ValueError, IndexError):
            raise InputError(
                f"bounds {name}={text!r} must read LO:HI or LO:HI:log, e.g. --bounds A=1:1e6:log"
            ) from None
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise InputError(
                f"--bounds {name}={text}: both bounds of {name} must be finite numbers, got "
                f"LO={lo}, HI={hi}; give finite ones, e.g. --bounds {name}=1e-9:1e9"
            )
        if not lo < hi:
            fix = (f"write the smaller number first: --bounds {name}={_swapped(parts)}"
                   if lo > hi else f"give an interval around {lo:g}")  # fmt: skip
            raise InputError(
                f"--bounds {name}={text}: the lower bound of {name} must be below the upper, got "
                f"LO={lo:g}, HI={hi:g}; {fix}"
            )
        if log_space and lo <= 0:
            raise InputError(
                f"--bounds {name}={text}: ':log' fits {name} in log space, which needs LO > 0, "
                f"got LO={lo:g}; give a positive LO, e.g. --bounds {name}=1e-9:{parts[1]}:log, "
                f"or drop ':log' if {name} may be zero or negative"
            )
        bounds[name] = Bounds(lo, hi, positive=log_space)
    return bounds


def _swapped(parts: list[str]) -> str:
    """``LO:HI[:log]`` text with LO and HI exchanged (for a message)."""
    return ":".join([parts[1], parts[0], *parts[2:]])


def _fit_quietly(
    law: Law, rows: pd.DataFrame, target: str, notes: list[str], **options
) -> FitResult:
    """Fit, turning warnings (non-convergence, unidentifiable constants) into notes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = fit_law(law, rows, target, **options)
    for w in caught:
        notes.append(f"{law.name}: {w.message}")
    at_bounds = constants_at_bounds(fit.params, law.constants)
    if at_bounds:
        notes.extend(f"{law.name}: {hint}" for hint in unit_hints(rows, fit.columns, at_bounds))
    return fit


# ----------------------------------------------------------------------------------------------
# Saving, loading, exporting


def save_outcome(outcome: Outcome, out_dir: str | Path) -> dict[str, Path]:
    """Write ``<job>.json`` (``discovery.json`` for discover) and the chosen law's exports."""
    from discover.export import export_law

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "discovery.json" if outcome.job == "discover" else f"{outcome.job}.json"
    paths = {"result": outcome.save(out_dir / name)}
    report = _chosen(outcome)
    if report is not None:
        paths.update(export_law(_rebuild(report), out_dir / "law", metrics=_metrics(report),
                                data_flag=data_flags(outcome)))  # fmt: skip
    return paths


def data_flags(outcome: Outcome) -> str | None:
    """The command-line flags that select the runs and the split an outcome was computed on:
    ``--data`` (unless the bundled study), ``--where``, ``--target`` and the holdout, so that a
    ``moelaw fit`` command built from its law fits the same rows (the column mapping ``--use``
    travels with the law itself). None when the defaults select them."""
    import shlex

    flags = []
    if not outcome.source.startswith("bundled study"):
        flags += ["--data", outcome.source]
    split = outcome.settings.get("split", {})
    for key, value in (split.get("where") or {}).items():
        flags += ["--where", f"{key}={value}"]
    if outcome.target != "loss":
        flags += ["--target", outcome.target]
    factor = outcome.holdout.get("factor", "N")
    if factor != "N":
        flags += ["--holdout-factor", factor]
    if split.get("holdout_threshold") is not None:
        flags += ["--holdout-above", repr(float(split["holdout_threshold"]))]
    elif split.get("holdout_quantile") not in (None, 0.2):
        flags += ["--holdout-quantile", repr(float(split["holdout_quantile"]))]
    return " ".join(shlex.quote(f) for f in flags) if flags else None


def load_outcome(path: str | Path) -> Outcome:
    """Read an outcome written by :func:`save_outcome`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"no saved result at '{path}'; run `moelaw discover --out {path.parent}` first"
        )
    try:
        doc = json.loads(path.read_text())
        doc.pop("version", None)
        doc["laws"] = [LawReport(**law) for law in doc["laws"]]
        return Outcome(**doc)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"'{path}' is not a result written by moelaw ({exc})") from None


def export_saved(result: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Export the chosen law of a saved result as sympy (srepr, plain), LaTeX and JSON.

    The saved formula is parsed with :func:`discover.formula.parse_formula`, never ``eval``.
    """
    from discover.export import export_law

    outcome = load_outcome(result)
    report = _chosen(outcome)
    if report is None:
        raise InputError(f"'{result}' names no chosen law to export")
    return export_law(_rebuild(report), Path(out_dir), metrics=_metrics(report),
                      data_flag=data_flags(outcome))  # fmt: skip


def _chosen(outcome: Outcome) -> LawReport | None:
    return next((law for law in outcome.laws if law.name == outcome.chosen), None)


def _rebuild(report: LawReport) -> FitResult:
    """A :class:`FitResult` from a saved report (formula parsed safely, constants as saved)."""
    expr = parse_formula(report.formula)
    bounds = bounds_from_json(report.bounds) if report.bounds else None
    law = law_from_expr(expr, report.inputs, name=report.name, bounds=bounds)
    params = {k: float(report.params[k]) for k in law.constants}
    return FitResult(
        law, params, math.nan, report.converged, "loaded from a saved result", 0, report.columns
    )


def _metrics(report: LawReport) -> dict:
    return {"fit": report.fit, "holdout": report.holdout, "optima": report.optima}


# ----------------------------------------------------------------------------------------------
# Text output


def format_outcome(outcome: Outcome) -> str:
    """A side-by-side table of the laws of an outcome, then the notes."""
    h = outcome.holdout
    lines = [
        f"data: {outcome.source} — {outcome.n_rows} runs; fitted on {outcome.n_fit}, "
        f"held out {outcome.n_holdout} with {h.get('factor')} > "
        f"{h.get('threshold', float('nan')):.12g} (extrapolation)",
        "",
    ]
    if len(outcome.laws) > 1:
        lines += [_metrics_table(outcome.laws), ""]
    for law in outcome.laws:
        mark = "  (chosen)" if law.name == outcome.chosen and outcome.job == "discover" else ""
        lines.append(f"== {law.name}{mark}: {law.n_constants} constants")
        lines += textwrap.wrap(
            f"L = {law.fitted}", 100, subsequent_indent="    ", break_long_words=True
        )
        fit, hold = law.fit, law.holdout
        lines.append(
            f"   fit rows      R² {_num(fit.get('r2'))}   RMSE {_num(fit.get('rmse'))}"
            f"   (n={fit.get('n')})"
        )
        if hold:
            lines.append(
                f"   held out      R² {_num(hold.get('r2'))}   RMSE {_num(hold.get('rmse'))}"
                f"   (n={hold.get('n')})"
            )
        if law.optima:
            lines.append(
                "   optima        "
                + "   ".join(
                    f"{k} = {_num(v) if v is not None else 'none'}" for k, v in law.optima.items()
                )
            )
        if law.intervals:
            lines.append(f"   {'constant':<12}{'value':>14}{'se':>12}{'95% interval':>30}")
            lines += [_interval_line(row) for row in law.intervals]
        for note in law.notes:
            lines.append(f"   note: {note}")
        if not law.converged:
            lines.append("   warning: the fit did not converge (see notes)")
        lines.append("")
    if outcome.checks:
        lines += [_format_checks(outcome.checks), ""]
    if outcome.front:
        lines.append(_format_front(outcome.front))
    for note in outcome.notes:
        lines += textwrap.wrap(f"note: {note}", 100, subsequent_indent="      ")
    return "\n".join(lines).rstrip()


def _metrics_table(laws: list[LawReport]) -> str:
    """Laws x metrics: one line per law, the same split for all."""
    header = (
        f"{'law':<18}{'consts':>7}{'fit R²':>9}{'fit RMSE':>10}{'held-out R²':>13}"
        f"{'held-out RMSE':>15}{'G*':>9}{'S*':>9}  converged"
    )
    rows = [header]
    for law in laws:
        hold = law.holdout or {}
        g, s = law.optima.get("G*"), law.optima.get("S*")
        rows.append(
            f"{law.name:<18}{law.n_constants:>7}{_num(law.fit.get('r2')):>9}"
            f"{_num(law.fit.get('rmse')):>10}{_num(hold.get('r2')):>13}{_num(hold.get('rmse')):>15}"
            f"{_num(g) if g is not None else '-':>9}{_num(s) if s is not None else '-':>9}"
            f"  {'yes' if law.converged else 'no'}"
        )
    return "\n".join(rows)


_CENSORED = {"lower": "at its lower bound", "upper": "at its upper bound", "both": "at both bounds"}


def _interval_line(row: dict) -> str:
    """One row of the bootstrap table. A derived optimum (``G*``, ``S*``) censored at an end of
    the sampled range shows that end as ``< lo`` or ``> hi`` and says how often it lies beyond."""
    censored, value = row.get("censored"), _num(row.get("value"))
    lo, hi = _num(row.get("lo")), _num(row.get("hi"))
    mark = f"  {_CENSORED.get(censored, censored)}: one-sided" if censored else ""
    if str(row["constant"]).endswith("*"):
        value = "none" if row.get("value") is None else value
        lo = f"< {row['lo']:g}" if censored in ("lower", "both") else lo
        hi = f"> {row['hi']:g}" if censored in ("upper", "both") else hi
        mark = f"  {row['note']}" if row.get("note") else ""
    band = f"[{lo}, {hi}]"
    return f"   {row['constant']:<12}{value:>14}{_num(row.get('se')):>12}{band:>30}{mark}"


def _format_checks(checks: dict) -> str:
    """The sympy checks of the discovered law against the reference, one line per question."""
    disc, ref = checks.get("discovered", {}), checks.get("reference", {})

    def line(label: str, a, b) -> str:
        return f"  {label:<38}{a:>22}{b:>22}"

    def opt(value) -> str:
        return "-" if value is None else _num(value)

    lines = [
        line("checks with sympy", "discovered", "reference"),
        line("constants", str(disc.get("n_constants", "-")), str(ref.get("n_constants", "-"))),
    ]
    for x in sorted(set(disc.get("sign", {})) | set(ref.get("sign", {}))):
        lines.append(
            line(
                f"sign of dL/d{x} (range, 1000x past)",
                disc.get("sign", {}).get(x, "-"),
                ref.get("sign", {}).get(x, "-"),
            )
        )
    lines.append(line("L as N, D -> infinity", opt(disc.get("limit")), opt(ref.get("limit"))))
    for key in ("G*", "S*"):
        lines.append(line(key, opt(disc.get(key)), opt(ref.get(key))))
    same = "yes" if checks.get("same_form") else "no"
    equivalent = "yes" if checks.get("equivalent") else "no"
    lines.append(f"  same form as the reference: {same}; equivalent after simplification: "
                 f"{equivalent}")  # fmt: skip
    return "\n".join(lines)


def _format_front(front: list[dict], limit: int = 10) -> str:
    rows = [
        f"  {'#':>2} {'consts':>6} {'inner-fit R²':>12} {'inner-extrap R²':>16}  formula",
    ]
    for i, row in enumerate(front[:limit]):
        formula = str(row.get("formula", ""))
        if len(formula) > 60:
            formula = formula[:57] + "..."
        chosen = "*" if row.get("chosen") else " "
        rows.append(
            f" {chosen}{i:>2} {row.get('n_constants', ''):>6} {_num(row.get('fit_r2')):>12} "
            f"{_num(row.get('inner_extrap_r2')):>16}  {formula}"
        )
    more = f" (best {limit} of {len(front)})" if len(front) > limit else ""
    return (
        "candidates, ranked by extrapolation inside the fitting rows"
        + more
        + ":\n"
        + "\n".join(rows)
        + "\n"
    )


def _num(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"


def summarize(table: pd.DataFrame, statuses: dict[str, int] | None = None) -> str:
    """A few lines describing a table of runs: sources, counts, factor ranges, loss range, and
    what a fit would refuse or skip.

    Parameters
    ----------
    table : pandas.DataFrame
        The runs (for a store, its ``ok`` runs, as :func:`discover.data.load_table` reads them).
    statuses : dict of str to int, optional
        For a store: the number of runs of every status, ``{"ok": 150, "failed": 3}``; runs
        that are not ``ok`` are not in ``table`` and are counted on a line of their own.
    """
    lines = [f"{len(table)} runs"]
    others = {k: v for k, v in (statuses or {}).items() if k != "ok" and v}
    if others:
        listed = ", ".join(f"{count} {status}" for status, count in sorted(others.items()))
        lines[0] += f" (ok; also {listed}, not read: `moelaw sweep SPEC` runs them again)"
    if "source" in table.columns:
        for source, count in table["source"].value_counts().items():
            lines.append(f"  source {source}: {count} runs")
    varying = [c for c in table.columns if c not in (*FACTORS, "loss", "source", "run_id")
               and table[c].astype(str).nunique() > 1]  # fmt: skip
    if varying:
        import textwrap

        lines += textwrap.wrap(f"other columns that vary (for --where, --use): "
                               f"{', '.join(map(str, varying))}", width=98,
                               initial_indent="  ", subsequent_indent="    ")  # fmt: skip
    for col in (*FACTORS, "loss"):
        if col in table.columns and len(table):
            values = pd.to_numeric(table[col], errors="coerce").astype(float)
            finite = values[np.isfinite(values)]
            span = f"{finite.min():.4g} .. {finite.max():.4g}" if len(finite) else "no numbers"
            lines.append(f"  {col:5s} {span}  ({finite.nunique()} distinct)")
            if len(finite) < len(values):
                lines.append(f"  warning: {len(values) - len(finite)} runs have no finite {col}: "
                             "fits refuse the table until they are dropped")  # fmt: skip
            if col == "loss" and (finite <= 0).any():
                lines.append(f"  warning: {int((finite <= 0).sum())} runs have loss <= 0: "
                             "fits refuse the table until they are dropped")  # fmt: skip
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Helpers


def _outcome(job, source, target, table, factor, hold_mask, **fields) -> Outcome:
    """An :class:`Outcome` with the description of the data and its split filled in."""
    return Outcome(
        job=job,
        source=_describe_source(source),
        target=target,
        n_rows=len(table),
        n_fit=int((~hold_mask).sum()),
        n_holdout=int(hold_mask.sum()),
        holdout=_holdout_info(table, factor, hold_mask),
        **fields,
    )


def _holdout_info(table, factor, mask) -> dict:
    fit_values = table.loc[~mask, factor]
    return {
        "factor": factor,
        "threshold": float(fit_values.max()) if len(fit_values) else math.nan,
        "held_out_min": float(table.loc[mask, factor].min()) if mask.any() else math.nan,
    }


def _front_records(front: pd.DataFrame) -> list[dict]:
    columns = ("formula", "n_constants", "length", "fit_r2", "inner_extrap_r2",
               "positive_beyond", "converged", "chosen")  # fmt: skip
    keep = [c for c in columns if c in front.columns]
    return _jsonable(front[keep].to_dict(orient="records"))


def _describe_source(source) -> str:
    if source is None:
        from results import DEFAULT_STUDY

        return f"bundled study ({DEFAULT_STUDY})"
    return str(source)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj
