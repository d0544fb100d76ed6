"""A structured search over the shapes scaling laws take, as an engine beside pyoperon.

Generic symbolic regression explores every tree; most of them are shapes no scaling law has.
This engine instead enumerates the shapes the field writes by hand, fits each one's constants with
:func:`discover.fit.fit_law` (global multi-start, Huber loss on log-loss residuals) and returns
them as candidates in the same form as any other engine. The shapes, by the role of each input:

* **size** (N, Na, D, or any positive input spanning a decade or more): power-law terms
  ``A * x**-a``, added (Chinchilla: ``L0 + A/N^a + B/D^b``) or multiplied
  (``L0 + A * N^-a * D^-b``);
* **count** (E, or any positive integer input that starts at 1 or 2): a power ``E^-b``, a
  saturating transform ``(1 + E/K)^-b``, a saturating benefit ``1 + B*E^-b``, a quadratic in
  ``log E``, and a *coupling* to a size, ``E^(-b + g*log N)``, whose exponent drifts with scale
  (the interaction of Clark et al. 2022);
* **non-monotonic count** (G, the experts activated per token): the bracket ``e*G + f/G``, whose
  minimum is at ``G* = sqrt(f/e)``;
* **fraction** (S, or any input in [0, 1] that takes the value 0): the quadratic ``m*S^2 + n*S``,
  minimum at ``S* = -n/(2m)``.

Brackets of the non-monotonic factors multiply a size term, with the size terms also added on
their own: at its largest this is the joint MoE law of Zhao et al. 2025,
``(e*G + f/G + m*S^2 + n*S) * (N^-a + k*Na^-a + h*Na/N) + A/N^a + B/D^b + C/Na^a + L0``.

Every shape with more than ``max_coefficients`` constants is skipped; the rest are fitted on the
rows given and returned with the constants at full precision. The search is deterministic: the
seed only moves the Sobol starts of each fit.

Example::

    from discover.engines.structured import run_structured, shapes
    [s.name for s in shapes(table, ["N", "E"])]
    candidates = run_structured(table, "loss", ["N", "E"], max_coefficients=6)
"""

from __future__ import annotations

import itertools
import logging
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sympy as sp

from discover.candidates import Candidate
from discover.fit import fit_law
from discover.laws import Bounds, law_from_expr
from results.errors import InputError

log = logging.getLogger(__name__)

#: Roles an input can take (see the module docstring).
ROLES = ("size", "count", "nonmonotonic", "fraction", "other")

#: Roles of the paper's factors, whatever their values.
FACTOR_ROLES = {"N": "size", "Na": "size", "D": "size", "E": "count", "G": "nonmonotonic",
                "S": "fraction"}  # fmt: skip

_LEVEL = Bounds(1e-4, 1e3, positive=True)
_SCALE = Bounds(1e-8, 1e12, positive=True)
_EXPONENT = Bounds(1e-3, 3.0, positive=True)
_SIGNED_EXPONENT = Bounds(-3.0, 3.0)
_DRIFT = Bounds(-0.5, 0.5)
_SIGNED = Bounds(-100.0, 100.0)


@dataclass(frozen=True)
class Shape:
    """One law shape to fit.

    Attributes
    ----------
    name : str
        Short description, e.g. ``"L0 + A*N^-a*E^(-b+g*log N)"``.
    formula : str
        The law as text for :func:`discover.formula.parse_formula`.
    bounds : dict of str to Bounds
        Search interval of every constant.
    """

    name: str
    formula: str
    bounds: dict

    @property
    def n_constants(self) -> int:
        """Number of free constants."""
        return len(self.bounds)


def roles(data: pd.DataFrame, inputs) -> dict[str, str]:
    """The role of each input: by name for the paper's factors, else from its values.

    Parameters
    ----------
    data : pandas.DataFrame
        Rows with a column per input.
    inputs : sequence of str

    Returns
    -------
    dict of str to str
        One of :data:`ROLES` per input.
    """
    found = {}
    for name in inputs:
        if name in FACTOR_ROLES:
            found[name] = FACTOR_ROLES[name]
            continue
        x = np.asarray(data[name], dtype=float)
        if np.all(x > 0) and x.max() / x.min() >= 10 and not _is_count(x):
            found[name] = "size"
        elif np.all(x > 0) and _is_count(x):
            found[name] = "count"
        elif x.min() == 0 and x.max() <= 1:
            found[name] = "fraction"
        else:
            found[name] = "other"
    return found


def _is_count(x: np.ndarray) -> bool:
    return bool(np.all(x == np.round(x)) and x.min() <= 2 and x.max() <= 1e4)


def shapes(data: pd.DataFrame, inputs, max_coefficients: int | None = None) -> list[Shape]:
    """Every shape for these inputs, fewest constants first (see the module docstring).

    Parameters
    ----------
    data : pandas.DataFrame
        Rows with a column per input (their values decide the roles of unknown inputs).
    inputs : sequence of str
    max_coefficients : int, optional
        Leave out shapes with more constants.
    """
    role = roles(data, inputs)
    sizes = [x for x in inputs if role[x] == "size"]
    counts = [x for x in inputs if role[x] == "count"]
    brackets = [x for x in inputs if role[x] in ("nonmonotonic", "fraction")]
    found = _power_laws(sizes) + _count_laws(sizes, counts) + _bracket_laws(sizes, brackets, role)
    unique = {s.formula: s for s in found}
    kept = [s for s in unique.values()
            if max_coefficients is None or s.n_constants <= max_coefficients]  # fmt: skip
    return sorted(kept, key=lambda s: s.n_constants)


def _power_laws(sizes: list[str]) -> list[Shape]:
    """Sums and products of power laws in the size inputs."""
    found = []
    for k in range(1, min(3, len(sizes)) + 1):
        for subset in itertools.combinations(sizes, k):
            terms = [f"A{i}*{x}**(-a{i})" for i, x in enumerate(subset)]
            bounds = {"L0": _LEVEL}
            for i in range(k):
                bounds |= {f"A{i}": _SCALE, f"a{i}": _EXPONENT}
            found.append(Shape(" + ".join(["L0"] + [f"A/{x}^a" for x in subset]),
                               "L0 + " + " + ".join(terms), bounds))  # fmt: skip
            if k > 1:
                product = "*".join(f"{x}**(-a{i})" for i, x in enumerate(subset))
                bounds = {"L0": _LEVEL, "A": _SCALE} | {f"a{i}": _EXPONENT for i in range(k)}
                found.append(Shape("L0 + A*" + "*".join(f"{x}^-a" for x in subset),
                                   f"L0 + A*{product}", bounds))  # fmt: skip
    return found


def _count_laws(sizes: list[str], counts: list[str]) -> list[Shape]:
    """A size power law modified by a count: power, saturating, coupled, quadratic in log."""
    found = []
    for s, c in itertools.product(sizes, counts):
        base = {"L0": _LEVEL, "A": _SCALE, "a": _EXPONENT}
        variants = [
            (f"A*{s}^-a*{c}^-b", f"{c}**(-b)", {"b": _SIGNED_EXPONENT}),
            (f"A*{s}^-a*(1+{c}/K)^-b", f"(1 + {c}/K)**(-b)",
             {"b": _SIGNED_EXPONENT, "K": Bounds(1e-2, 1e5, positive=True)}),
            (f"A*{s}^-a*(1+B*{c}^-b)", f"(1 + B*{c}**(-b))", {"B": _SCALE, "b": _EXPONENT}),
            (f"A*{s}^-a*{c}^(-b+g*log {s})", f"{c}**(-b + g*log({s}))",
             {"b": _SIGNED_EXPONENT, "g": _DRIFT}),
            (f"A*{s}^-a*(1+{c}/K)^(-b+g*log {s})", f"(1 + {c}/K)**(-b + g*log({s}))",
             {"b": _SIGNED_EXPONENT, "g": _DRIFT, "K": Bounds(1e-2, 1e5, positive=True)}),
            (f"A*{s}^-a*exp(-b*log {c} + q*log^2 {c})", f"exp(-b*log({c}) + q*log({c})**2)",
             {"b": _SIGNED_EXPONENT, "q": _DRIFT}),
        ]  # fmt: skip
        for name, factor, extra in variants:
            found.append(Shape(f"L0 + {name}", f"L0 + A*{s}**(-a)*{factor}", base | extra))
        found.append(Shape(f"L0 + A*{s}^-a + B*{c}^-b", f"L0 + A*{s}**(-a) + B*{c}**(-b)",
                           base | {"B": _SCALE, "b": _EXPONENT}))  # fmt: skip
        for other in sizes:
            if other != s:
                found.append(Shape(
                    f"L0 + A*{s}^-a*{c}^-b + B*{other}^-d",
                    f"L0 + A*{s}**(-a)*{c}**(-b) + B*{other}**(-d)",
                    base | {"b": _SIGNED_EXPONENT, "B": _SCALE, "d": _EXPONENT}))  # fmt: skip
    return found


def _bracket(x: str, role: str, prefix: str) -> tuple[str, dict]:
    """The bracket of one non-monotonic factor: e*G + f/G, or m*S^2 + n*S."""
    if role == "fraction":
        return f"({prefix}m*{x}**2 + {prefix}n*{x})", {f"{prefix}m": _SIGNED, f"{prefix}n": _SIGNED}
    return f"({prefix}e*{x} + {prefix}f/{x})", {f"{prefix}e": _SCALE, f"{prefix}f": _SCALE}


def _bracket_laws(sizes: list[str], brackets: list[str], role: dict) -> list[Shape]:
    """Brackets of G and S multiplying a size term, with additive size terms (the joint law)."""
    if not brackets or not sizes:
        return []
    parts = [_bracket(x, role[x], f"{x}_") for x in brackets]
    bracket = "(" + " + ".join(p for p, _ in parts) + ")"
    bracket_bounds = {}
    for _, b in parts:
        bracket_bounds |= b
    scaled = any(role[x] == "nonmonotonic" for x in brackets)  # e*G + f/G carries a scale
    found = []
    params = [x for x in sizes if x in ("N", "Na")] or sizes[:1]
    data_size = [x for x in sizes if x not in params]
    main = params[0]
    tail = " + ".join(f"B{i}*{x}**(-b{i})" for i, x in enumerate(data_size))
    tail_bounds = {}
    for i, _ in enumerate(data_size):
        tail_bounds |= {f"B{i}": _SCALE, f"b{i}": _EXPONENT}
    tail = f" + {tail}" if tail else ""
    if scaled:  # bracket times one size term, the data term added (e*G + f/G sets the scale)
        found.append(Shape(
            f"L0 + [{'+'.join(brackets)}]*{main}^-a + data terms",
            f"L0 + {bracket}*{main}**(-a){tail}",
            {"L0": _LEVEL, "a": _EXPONENT} | bracket_bounds | tail_bounds))  # fmt: skip
    # Bracket times the size term, plus the size term on its own
    found.append(Shape(
        f"L0 + ([{'+'.join(brackets)}] + A)*{main}^-a + data terms",
        f"L0 + ({bracket} + A)*{main}**(-a){tail}",
        {"L0": _LEVEL, "a": _EXPONENT, "A": _SCALE} | bracket_bounds | tail_bounds))  # fmt: skip
    if len(params) == 2:
        # The joint MoE law: one exponent for both parameter counts, and the activation ratio
        n, na = params
        found.append(Shape(
            f"joint: L0 + [{'+'.join(brackets)}]*({n}^-a + k*{na}^-a + h*{na}/{n}) + A/{n}^a "
            f"+ C/{na}^a + data terms",
            f"L0 + {bracket}*({n}**(-a) + k*{na}**(-a) + h*{na}/{n}) + A*{n}**(-a) "
            f"+ C*{na}**(-a){tail}",
            {"L0": _LEVEL, "a": _EXPONENT, "k": Bounds(1e-6, 1e3, positive=True),
             "h": Bounds(1e-6, 1e3, positive=True), "A": _SCALE, "C": _SCALE}
            | bracket_bounds | tail_bounds))  # fmt: skip
    return found


def run_structured(
    data: pd.DataFrame,
    target: str,
    inputs,
    *,
    seed: int = 0,
    max_coefficients: int | None = 8,
    n_starts: int = 256,
    n_polish: int = 4,
    maxiter: int = 1000,
    time_limit: float | None = 300.0,
) -> list[Candidate]:
    """Fit every shape of :func:`shapes` and return each as a candidate.

    Parameters
    ----------
    data : pandas.DataFrame
        Rows to fit on (hold out test rows before calling).
    target : str
        Column of losses (positive: fits are in log space).
    inputs : sequence of str
        Input columns; their roles decide the shapes.
    seed : int, default 0
        Seed of each fit's Sobol starts.
    max_coefficients : int or None, default 8
        Shapes with more constants are not fitted.
    n_starts, n_polish, maxiter : int
        Global-search settings of each fit (see :func:`discover.fit.fit_law`).
    time_limit : float or None, default 300
        Stop fitting further shapes after this many seconds (fewest constants are fitted first).

    Returns
    -------
    list of Candidate
        One per shape that could be fitted (predicts a finite, positive loss), engine
        ``"structured"``.
    """
    inputs = list(inputs)
    if target not in data.columns or any(x not in data.columns for x in inputs):
        raise InputError(
            f"target {target!r} and inputs {inputs} must be columns; columns are "
            f"{list(data.columns)}"
        )
    began = time.perf_counter()
    y = data[target].to_numpy(float)
    found = []
    for shape in shapes(data, inputs, max_coefficients):
        if time_limit is not None and time.perf_counter() - began > time_limit:
            log.info("structured search: time limit reached after %d shapes", len(found))
            break
        candidate = _fit_shape(shape, data, target, inputs, y, seed, n_starts, n_polish, maxiter)
        if candidate is not None:
            found.append(candidate)
    return found


def _fit_shape(shape, data, target, inputs, y, seed, n_starts, n_polish, maxiter):
    law = law_from_expr(shape.formula, inputs, name=shape.name, bounds=shape.bounds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = fit_law(law, data, target, seed=seed, n_starts=n_starts, n_polish=n_polish,
                          maxiter=maxiter, check_identifiability=False)  # fmt: skip
        except (ValueError, FloatingPointError, OverflowError) as exc:
            log.debug("shape %s could not be fitted: %s", shape.name, exc)
            return None
    pred = fit.predict(data)
    if not np.all(np.isfinite(pred)) or np.any(pred <= 0):
        return None
    mse = float(np.mean((y - pred) ** 2))
    var = float(np.var(y))
    expr = fit.sympy()
    return Candidate(expr=expr, length=sp.count_ops(expr) + 1, complexity=float(law.n_constants),
                     fit_r2=1.0 - mse / var if var > 0 else 0.0, mse=mse, engine="structured",
                     seed=seed, text=shape.name, form=law.expr, values=dict(fit.params),
                     bounds=dict(law.constants))  # fmt: skip
