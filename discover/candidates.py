"""Candidate laws from symbolic regression: parametrize, simplify, de-duplicate.

An engine returns expressions with its fitted numbers baked in (sympy Floats at the engine's full
precision). Before the candidates can be re-fitted and compared, each is turned into a *form*: the
same expression with every fitted number replaced by a free constant ``c0, c1, ...``, so that two
engine runs that found the same law with different numbers collapse into one form.

Steps, in :func:`prepare_candidates`:

1. simplify each expression a little (always ``expand``, which folds nested constants such as the
   engine's own scale and offset; ``sympy.simplify`` only on small trees, since it can take minutes
   on large ones) and keep the variant with the fewest free constants;
2. :func:`parametrize` it: Floats become constants, sympy Integers and Rationals (the 2 in ``x**2``,
   the -1 of a subtraction, the 1/2 of a square root) stay structural;
3. drop forms that are not real-valued, that use none of the inputs, or that have more than
   ``max_constants`` constants;
4. de-duplicate: two forms are the same when their canonical text (``srepr``) matches, or, failing
   that, when they give the same values at random points (inputs and constants drawn at random).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from discover.formula import symbol
from results.errors import InputError

log = logging.getLogger(__name__)

#: Expressions with more operations than this skip ``sympy.simplify`` (expand only): simplify
#: costs 0.1-0.3 s on a 10-operation engine tree, grows super-linearly, and on engine trees it
#: rarely removes a constant that ``expand`` leaves.
SIMPLIFY_MAX_OPS = 12

#: Name stem of the free constants introduced by :func:`parametrize` (``c0``, ``c1``, ...).
CONSTANT_PREFIX = "c"


def factor_symbol(name: str) -> sp.Symbol:
    """The sympy symbol of one input column, the same one :mod:`discover.formula` uses.

    Parameters
    ----------
    name : str
        Column name, e.g. ``"N"`` or ``"Na"``.
    """
    return symbol(name)


@dataclass
class Candidate:
    """One law proposed by a symbolic-regression engine.

    Attributes
    ----------
    expr : sympy.Expr
        The law in the raw input symbols, constants as sympy Floats at the engine's precision.
    length : int
        Number of nodes of the engine's tree (including its scale and offset nodes).
    complexity : float
        The engine's own complexity measure (pyoperon: adjusted length).
    fit_r2 : float
        R² of the engine's model on the rows it searched on.
    mse : float
        Mean squared error of the engine's model on those rows (target units squared).
    engine : str
        Name of the engine, e.g. ``"pyoperon"``.
    seed : int
        Seed of the engine run that produced it.
    text : str
        The engine's own printout of the model (rounded; for display only).
    form : sympy.Expr or None
        The law with its constants as named symbols, when the engine knows which numbers are one
        constant (a shared exponent written three times is one constant, not three); then
        ``values`` holds them and :func:`prepare_candidates` keeps this structure instead of
        turning every number of ``expr`` into its own constant.
    values : dict of str to float or None
        The engine's value of each constant of ``form``.
    bounds : dict of str to discover.laws.Bounds or None
        The engine's search interval of each constant of ``form`` (re-fits keep to them, so a
        constant the shape requires positive stays positive).
    """

    expr: sp.Expr
    length: int
    complexity: float
    fit_r2: float
    mse: float
    engine: str = "pyoperon"
    seed: int = 0
    text: str = ""
    form: sp.Expr | None = None
    values: dict | None = None
    bounds: dict | None = None


@dataclass
class Form:
    """A parametrized candidate: the law's structure with free constants, ready to re-fit.

    Attributes
    ----------
    expr : sympy.Expr
        The law with free constants ``c0..ck`` (sympy Symbols).
    values : dict[str, float]
        The engine's values of those constants (a starting point for re-fitting).
    candidate : Candidate
        The engine candidate it came from (the best-fitting one among duplicates).
    key : str
        Canonical text used for de-duplication (``srepr`` of ``expr``).
    duplicates : int
        How many engine candidates collapsed into this form (itself included).
    """

    expr: sp.Expr
    values: dict[str, float]
    candidate: Candidate
    key: str
    duplicates: int = 1
    inputs: tuple[str, ...] = field(default=())
    bounds: dict | None = None

    @property
    def n_constants(self) -> int:
        """Number of free constants of the form."""
        return len(self.values)


def parametrize(expr: sp.Expr, prefix: str = CONSTANT_PREFIX) -> tuple[sp.Expr, dict[str, float]]:
    """Replace every numeric constant of ``expr`` by a free constant ``c0, c1, ...``.

    Floats are what an engine fitted, so each becomes a constant. sympy Integers and Rationals
    are structure (the 2 in ``x**2``, the -1 of a subtraction, the 1/2 of a square root) and stay.
    A Float that occurs several times becomes one constant per occurrence. Constants are numbered
    in a walk whose order depends only on the structure, so equal structures get equal names.

    Parameters
    ----------
    expr : sympy.Expr
        Expression with numeric constants.
    prefix : str, default "c"
        Name stem of the constants.

    Returns
    -------
    form : sympy.Expr
        ``expr`` with constants as Symbols.
    values : dict[str, float]
        Value of each constant in ``expr``, in order ``c0, c1, ...``.

    Examples
    --------
    >>> import sympy as sp
    >>> x = sp.Symbol("x", positive=True)
    >>> parametrize(sp.Float(2.5) + sp.Float(3.0) * x**2)
    (c0*x**2 + c1, {'c0': 3.0, 'c1': 2.5})
    """
    values: dict[str, float] = {}

    # 1. Walk the tree; rebuild each node with its Float leaves replaced by fresh symbols
    def walk(node: sp.Basic) -> sp.Basic:
        if isinstance(node, sp.Float):
            name = f"{prefix}{len(values)}"
            values[name] = float(node)
            return sp.Symbol(name, real=True)
        if not node.args:
            return node
        return node.func(*(walk(arg) for arg in node.args))

    form = walk(sp.sympify(expr))
    return _renumber(form, values, prefix)


def _renumber(form: sp.Expr, values: dict[str, float], prefix: str, with_map: bool = False):
    """Rename constants ``c0..ck`` in a walk whose order does not depend on their names.

    sympy orders the terms of a sum or product partly by symbol name, so numbering in its own order
    can give one structure two numberings. Here the terms of each sum and product are visited in the
    order of their text with every constant written alike, which only the structure decides.
    """
    blank = sp.Symbol("_const", real=True)

    def shape(node: sp.Basic) -> str:
        return sp.srepr(node.xreplace({s: blank for s in node.free_symbols if _is_constant(s)}))

    seen: list[sp.Symbol] = []

    def visit(node: sp.Basic) -> None:
        if isinstance(node, sp.Symbol) and _is_constant(node, prefix) and node not in seen:
            seen.append(node)
        args = node.args
        if isinstance(node, (sp.Add, sp.Mul)):
            args = sorted(args, key=shape)
        for arg in args:
            visit(arg)

    visit(form)
    temporary = {old: sp.Symbol(f"_{prefix}{i}", real=True) for i, old in enumerate(seen)}
    final = {t: sp.Symbol(t.name[1:], real=True) for t in temporary.values()}
    renamed = form.xreplace(temporary).xreplace(final)
    numbered = {f"{prefix}{i}": values[old.name] for i, old in enumerate(seen)}
    if with_map:
        return renamed, numbered, {old.name: f"{prefix}{i}" for i, old in enumerate(seen)}
    return renamed, numbered


def _is_constant(sym: sp.Symbol, prefix: str = CONSTANT_PREFIX) -> bool:
    """True for the free constants made by :func:`parametrize` (``c0``, ``c12``, ...)."""
    rest = sym.name[len(prefix) :]
    return sym.name.startswith(prefix) and rest.isdigit()


def count_constants(form: sp.Expr, prefix: str = CONSTANT_PREFIX) -> int:
    """Number of distinct free constants (``c0..ck``) in a parametrized expression."""
    return sum(1 for s in form.free_symbols if _is_constant(s, prefix))


def simplest_form(
    expr: sp.Expr, max_ops: int = SIMPLIFY_MAX_OPS
) -> tuple[sp.Expr, dict[str, float]]:
    """Parametrize the variant of ``expr`` with the fewest free constants.

    Variants: ``expr`` as given, ``sympy.expand`` of it (folds an engine's outer scale and offset
    into the constants inside, and turns ``exp(a + b*log(N))`` into ``exp(a)*N**b``), and
    ``sympy.simplify`` of the expanded one when that has at most ``max_ops`` operations. Ties go
    to the variant with fewer operations, then to the earlier one.

    Returns
    -------
    form : sympy.Expr
        Parametrized expression (constants ``c0..ck``).
    values : dict[str, float]
        The constants' values taken from ``expr``.
    """
    expanded = sp.expand(expr)
    variants = [expr, expanded]
    if sp.count_ops(expanded) <= max_ops:
        variants.append(sp.simplify(expanded))
    best = None
    for variant in variants:
        form, values = parametrize(variant)
        rank = (len(values), sp.count_ops(form))
        if best is None or rank < best[0]:
            best = (rank, form, values)
    return best[1], best[2]


def prepare_candidates(
    candidates: list[Candidate],
    inputs: tuple[str, ...] | list[str],
    *,
    max_constants: int | None = 8,
    seed: int = 0,
) -> list[Form]:
    """Parametrize, filter and de-duplicate engine candidates (steps in the module docstring).

    Parameters
    ----------
    candidates : list of Candidate
        From one or several engine runs, in any order.
    inputs : sequence of str
        The input names; a form must use at least one of them.
    max_constants : int or None, default 8
        Drop forms with more free constants; None keeps all.
    seed : int, default 0
        Seed of the random points of the numeric fingerprint.

    Returns
    -------
    list of Form
        Unique forms, fewest constants first, then best engine fit first. Among duplicates the
        candidate with the best engine R² is kept.
    """
    inputs = tuple(inputs)
    ordered = sorted(candidates, key=lambda c: -c.fit_r2)
    by_key: dict[str, Form] = {}
    by_print: dict[tuple, str] = {}
    by_expanded: dict[str, str] = {}  # quick key (expand only) -> final key, spares simplify
    for cand in ordered:
        if not _finite_numbers(cand.expr):
            continue  # a constant that overflowed (-2.3e+1442) cannot start a re-fit
        quick = _quick_key(cand.expr)
        if quick in by_expanded:
            if by_expanded[quick] in by_key:
                by_key[by_expanded[quick]].duplicates += 1
            continue
        form = _form(cand, inputs)
        if form is None or (max_constants is not None and form.n_constants > max_constants):
            by_expanded[quick] = ""
            continue
        key = form.key
        if key not in by_key:
            print_ = _fingerprint(form.expr, inputs, seed)
            key = by_print.setdefault(print_, key) if print_ is not None else key
        by_expanded[quick] = key
        if key in by_key:
            by_key[key].duplicates += 1
        else:
            by_key[key] = form
    forms = list(by_key.values())
    log.info(
        "%d candidates -> %d unique forms with at most %s constants",
        len(candidates),
        len(forms),
        max_constants,
    )
    return sorted(forms, key=lambda f: (f.n_constants, -f.candidate.fit_r2))


def _finite_numbers(expr: sp.Expr) -> bool:
    """Whether every number in ``expr`` is a finite double."""
    return all(np.isfinite(float(x)) for x in expr.atoms(sp.Float))


def _quick_key(expr: sp.Expr) -> str:
    """Canonical text of the expanded, parametrized expression (cheap: no simplify)."""
    return sp.srepr(parametrize(sp.expand(expr))[0])


def _form(cand: Candidate, inputs: tuple[str, ...]) -> Form | None:
    """Parametrized form of one candidate, or None if it is unusable (complex, no inputs)."""
    expr = cand.expr
    if expr.has(sp.I, sp.zoo, sp.nan, sp.oo, -sp.oo):
        return None
    bounds = None
    if cand.form is not None:
        form, values, bounds = _named_form(cand.form, cand.values or {}, cand.bounds, inputs)
    else:
        form, values = simplest_form(expr)
    if form.has(sp.I, sp.zoo, sp.nan, sp.oo, -sp.oo):
        return None
    used = tuple(n for n in inputs if form.has(factor_symbol(n)))
    if not used:
        return None
    return Form(form, values, cand, sp.srepr(form), 1, used, bounds)


def _named_form(form: sp.Expr, values: dict, bounds: dict | None, inputs: tuple[str, ...]):
    """An engine's form with named constants, renamed ``c0..ck`` in the structural order, with
    their values and (if given) their bounds under the new names."""
    keep = {factor_symbol(n) for n in inputs}
    constants = sorted((s for s in form.free_symbols if s not in keep), key=lambda s: s.name)
    missing = [s.name for s in constants if s.name not in values]
    if missing:
        raise InputError(f"the engine gave no values for the constants {missing} of {form}")
    fresh = {s: sp.Symbol(f"{CONSTANT_PREFIX}{i}", real=True) for i, s in enumerate(constants)}
    renamed, numbered, names = _renumber(
        form.xreplace(fresh),
        {fresh[s].name: float(values[s.name]) for s in constants},
        CONSTANT_PREFIX,
        with_map=True,
    )
    if not bounds:
        return renamed, numbered, None
    return renamed, numbered, {names[fresh[s].name]: bounds[s.name] for s in constants}


def _fingerprint(form: sp.Expr, inputs: tuple[str, ...], seed: int, n_points: int = 12):
    """Values of ``form`` at random inputs and constants, rounded to 9 digits; None if not finite.

    Inputs are drawn log-uniform in [0.5, 2] and constants uniform in [0.5, 1.5], the same draws for
    every form (constant ``ck`` always gets the k-th draw), so equal functions give equal prints.
    """
    rng = np.random.default_rng(seed)
    names = sorted(form.free_symbols, key=lambda s: s.name)
    draws = {n: np.exp(rng.uniform(np.log(0.5), np.log(2.0), n_points)) for n in inputs}
    consts = rng.uniform(0.5, 1.5, 64)
    args = []
    for s in names:
        if _is_constant(s):
            args.append(np.full(n_points, consts[int(s.name[len(CONSTANT_PREFIX) :]) % 64]))
        else:
            args.append(draws.get(s.name, np.ones(n_points)))
    with np.errstate(all="ignore"):
        values = np.broadcast_to(sp.lambdify(names, form, "numpy")(*args), (n_points,))
    if not np.all(np.isfinite(values)):
        return None
    return tuple(float(f"{v:.9g}") for v in values)
