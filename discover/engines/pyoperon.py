"""pyoperon (C++ Operon) as a symbolic-regression engine for scaling laws.

Why the inputs are transformed: scaling laws are power laws, ``A * N**-alpha``, over several
decades of each factor. Operon's variables carry a weight (``w * x``) and its constants start from a
standard normal, so it works best when every input is of order one. By default each strictly
positive input enters as its standardized logarithm,

    z_N = (log(N) - mu_N) / sigma_N        (mu, sigma: mean and std of log(N) over the rows given)

so that ``exp(w * z_N)`` is exactly a power law ``exp(-w mu_N / sigma_N) * N**(w / sigma_N)``, and
sums of such terms (``L0 + A N^-a + B D^-b``) are short trees over ``exp``. Inputs that can be zero
or negative (the shared-expert ratio S can be 0) enter standardized on their raw scale instead.

The engine searches over ``z``, and each Pareto-front tree is converted node by node into sympy with
every constant at full precision (Operon's own printout rounds to fixed-point decimals, which turns
small weights into 0), then each ``z`` is replaced by its definition in the raw symbols, so the
caller gets a law in N, Na, D, G, S, E. The target is left on its own scale (loss in nats).

Operon computes in float32: the transformed inputs and the target are passed as contiguous float32
arrays, and the engine's fit scores are float32-accurate.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sympy as sp

from discover.candidates import Candidate, factor_symbol
from results.errors import InputError

log = logging.getLogger(__name__)

#: Operations the search may use by default. With log-standardized inputs, ``exp`` makes power
#: laws and ``log`` makes logarithmic corrections; ``pow`` is left out because Operon's ``pow`` of
#: a negative standardized input is NaN.
DEFAULT_SYMBOLS = "add,sub,mul,div,exp,log,constant,variable"

TRANSFORMS = ("log", "standardize", "none")


@dataclass(frozen=True)
class InputTransform:
    """How one input column is fed to the engine: ``z = (f(x) - center) / scale``.

    Attributes
    ----------
    name : str
        Column name, also the name of the raw sympy symbol.
    kind : str
        ``"log"`` (f = natural log) or ``"linear"`` (f = identity).
    center, scale : float
        Centering and scaling of ``f(x)``; ``scale`` > 0.
    """

    name: str
    kind: str
    center: float
    scale: float

    @classmethod
    def from_column(cls, name: str, values: np.ndarray, transform: str) -> InputTransform:
        """Choose the transform of one column from its values and the requested ``transform``."""
        kind = "log" if transform == "log" and np.all(values > 0) else "linear"
        raw = np.log(values) if kind == "log" else np.asarray(values, dtype=float)
        if transform == "none":
            return cls(name, "linear", 0.0, 1.0)
        spread = float(np.std(raw))
        return cls(name, kind, float(np.mean(raw)), spread if spread > 0 else 1.0)

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Transformed values ``z`` of raw values ``x`` (float64)."""
        raw = np.log(values) if self.kind == "log" else np.asarray(values, dtype=float)
        return (raw - self.center) / self.scale

    def symbolic(self) -> sp.Expr:
        """``z`` written in the raw symbol, with center and scale as full-precision Floats."""
        x = factor_symbol(self.name)
        raw = sp.log(x) if self.kind == "log" else x
        if self.center == 0.0 and self.scale == 1.0:
            return raw
        return (raw - sp.Float(self.center)) / sp.Float(self.scale)


def run_pyoperon(
    data: pd.DataFrame,
    target: str,
    inputs: list[str] | tuple[str, ...],
    *,
    seed: int = 0,
    transform: str = "log",
    time_limit: float | None = 120.0,
    generations: int = 200,
    population_size: int = 500,
    max_length: int = 25,
    optimizer_iterations: int = 10,
    allowed_symbols: str = DEFAULT_SYMBOLS,
    n_threads: int = 1,
    n_population: int = 60,
    max_coefficients: int | None = None,
) -> list[Candidate]:
    """Search for laws ``target = f(inputs)`` with pyoperon; return its Pareto front.

    Runs Operon's NSGA-II on two objectives, R² and tree length, with Levenberg-Marquardt fitting of
    the constants of every offspring, and converts each tree of the final Pareto front into a
    sympy expression in the raw input symbols (see the module docstring for the transform).

    Parameters
    ----------
    data : pandas.DataFrame
        Rows to search on (only these; hold out test rows before calling).
    target : str
        Target column, e.g. ``"loss"`` (nats per token).
    inputs : sequence of str
        Input columns, e.g. ``("N", "D")``; each also names its sympy symbol.
    seed : int, default 0
        Operon's random seed. Same seed, same rows, same settings -> same candidates, as long as
        ``time_limit`` is not what stops the run.
    transform : {"log", "standardize", "none"}, default "log"
        ``"log"``: standardized log of each positive input (raw standardization for inputs with
        zeros or negatives); ``"standardize"``: raw inputs scaled to mean 0, std 1; ``"none"``:
        raw inputs.
    time_limit : float or None, default 120
        Wall-clock limit of the search in seconds (rounded up to whole seconds); None for none.
    generations : int, default 200
        Maximum number of generations.
    population_size : int, default 500
        Individuals per generation (and offspring per generation).
    max_length : int, default 25
        Maximum tree length in nodes.
    optimizer_iterations : int, default 10
        Levenberg-Marquardt iterations per offspring (0 turns constant fitting off).
    allowed_symbols : str, default "add,sub,mul,div,exp,log,constant,variable"
        Operon's primitive set.
    n_threads : int, default 1
        Threads of the search.
    n_population : int, default 60
        Also return up to this many of the best-fitting distinct trees of the final population
        (beyond the Pareto front, which holds one tree per length): near-equal fits with different
        structure, among which a law that extrapolates better may be.
    max_coefficients : int or None, default None
        Population trees with more fitted numbers than this (scale and offset included) are not
        returned. The Pareto front is always returned whole.

    Returns
    -------
    list of Candidate
        The Pareto front, shortest first, then the population trees, best fit first; in the raw
        symbols of ``inputs``.

    Examples
    --------
    >>> cands = run_pyoperon(df, "loss", ["N", "D"], seed=0, generations=50)  # doctest: +SKIP
    >>> cands[-1].expr  # doctest: +SKIP
    1.69 + 406.4*N**(-0.34) + 410.7*D**(-0.28)
    """
    from pyoperon.sklearn import SymbolicRegressor

    # 1. Transform the inputs; float32 contiguous arrays, as Operon computes in float32
    X, y, transforms = _design(data, target, inputs, transform)

    # 2. Search: R² and length as objectives, LM constant fitting on every offspring
    regressor = SymbolicRegressor(
        allowed_symbols=allowed_symbols,
        objectives=["r2", "length"],
        optimizer="lm",
        optimizer_iterations=optimizer_iterations,
        population_size=population_size,
        generations=generations,
        max_evaluations=generations * population_size * 100,
        max_length=max_length,
        max_time=None if time_limit is None else max(1, math.ceil(time_limit)),
        n_threads=n_threads,
        random_state=seed,
    )
    start = time.perf_counter()
    regressor.fit(X, y)
    log.info(
        "pyoperon seed %d: %d generations in %.1f s, %d models on the front",
        seed,
        regressor.stats_["generations"],
        time.perf_counter() - start,
        len(regressor.pareto_front_),
    )

    # 3. Convert every front model to sympy in the raw symbols
    variables = {
        h: transforms[int(name[1:]) - 1].symbolic() for h, name in regressor.variables_.items()
    }
    front = [_candidate(model, variables, y, seed) for model in regressor.pareto_front_]
    extra = _population(regressor, X, y, variables, seed, n_population, max_coefficients)
    return front + extra


def _population(regressor, X, y, variables, seed, n_population, max_coefficients):
    """The best-fitting distinct trees of the final population, linearly scaled as the front is.

    Each tree is evaluated through its sympy form on the engine's own (transformed, float32)
    inputs, not with ``SymbolicRegressor.evaluate_model``: that builds a fresh Operon dataset
    whose variable hashes need not match the population's trees, and its predictions for them
    were garbage that changed from one process to the next (so the same seed gave other
    candidates in another process).
    """
    limit = np.inf if max_coefficients is None else max_coefficients - 2
    ranked = sorted((ind for ind in regressor.individuals_
                     if ind.Genotype.CoefficientsCount <= limit),
                    key=lambda ind: ind.GetFitness(0))  # fmt: skip
    columns = {h: sp.Symbol(f"_z{int(name[1:]) - 1}") for h, name in regressor.variables_.items()}
    z = [sp.Symbol(f"_z{i}") for i in range(X.shape[1])]
    Z = [X[:, i].astype(float) for i in range(X.shape[1])]
    out, seen = [], set()
    for ind in ranked:
        if len(out) >= n_population:
            break
        tree = ind.Genotype
        key = (tree.Length, round(float(ind.GetFitness(0)), 7))
        if key in seen:
            continue
        seen.add(key)
        with np.errstate(all="ignore"):
            pred = sp.lambdify(z, tree_to_sympy(tree, columns), "numpy")(*Z)
            pred = np.broadcast_to(np.asarray(pred, dtype=float), y.shape)
        if not np.all(np.isfinite(pred)) or np.ptp(pred) == 0:
            continue
        out.append(_scaled_candidate(tree, pred, variables, y, seed))
    return out


def _scaled_candidate(tree, pred, variables, y, seed) -> Candidate:
    """A population tree with its least-squares scale and offset (float64), as a Candidate."""
    target = y.astype(float)
    scale, offset = np.polyfit(pred, target, 1)
    mse = float(np.mean((target - (scale * pred + offset)) ** 2))
    expr = sp.Float(offset) + sp.Float(scale) * tree_to_sympy(tree, variables)
    return Candidate(expr=expr, length=int(tree.Length) + 4, complexity=float(tree.Length + 4),
                     fit_r2=1.0 - mse / float(np.var(target)), mse=mse, engine="pyoperon",
                     seed=seed, text="")  # fmt: skip


def _design(data, target, inputs, transform):
    """Float32 design matrix of transformed inputs, float32 target, and the transforms used."""
    if transform not in TRANSFORMS:
        raise InputError(f"transform={transform!r} is not one of {TRANSFORMS}; pick one of them")
    missing = [c for c in (*inputs, target) if c not in data.columns]
    if missing:
        raise InputError(
            f"columns {missing} are not in the data (it has {list(data.columns)}); "
            "pass existing column names as inputs and target"
        )
    if len(inputs) == 0:
        raise InputError("inputs is empty; pass at least one input column")
    transforms = [InputTransform.from_column(c, data[c].to_numpy(float), transform) for c in inputs]
    X = np.column_stack([t.apply(data[t.name].to_numpy(float)) for t in transforms])
    y = data[target].to_numpy(float)
    bad = ~np.isfinite(X).all(axis=1) | ~np.isfinite(y)
    if bad.any():
        rows = list(data.index[bad][:5])
        raise InputError(
            f"{int(bad.sum())} rows have non-finite inputs or target (rows {rows}); "
            "drop them before searching"
        )
    return (
        np.ascontiguousarray(X, dtype=np.float32),
        np.ascontiguousarray(y, dtype=np.float32),
        transforms,
    )


def _candidate(model: dict, variables: dict, y: np.ndarray, seed: int) -> Candidate:
    """One Pareto-front entry of pyoperon as a Candidate."""
    mse = float(model["mean_squared_error"])
    return Candidate(
        expr=tree_to_sympy(model["tree"], variables),
        length=int(model["length"]),
        complexity=float(model["complexity"]),
        fit_r2=1.0 - mse / float(np.var(y.astype(float))),
        mse=mse,
        engine="pyoperon",
        seed=seed,
        text=str(model["model"]),
    )


def tree_to_sympy(tree, variables: dict[int, sp.Expr]) -> sp.Expr:
    """Convert an Operon tree to a sympy expression, every constant at full precision.

    Operon stores a tree in postfix order; a function node's first operand is the node just before
    it, its second operand the subtree before that. A variable node carries a weight: it means
    ``weight * x``. Constants become sympy Floats of the exact (float32) values Operon holds.

    Parameters
    ----------
    tree : pyoperon.Tree
        The tree, e.g. ``SymbolicRegressor.pareto_front_[i]["tree"]``.
    variables : dict[int, sympy.Expr]
        Expression of each input, keyed by Operon's variable hash (``SymbolicRegressor.variables_``
        gives hash -> name).

    Returns
    -------
    sympy.Expr

    Raises
    ------
    InputError
        If the tree uses a function with no sympy counterpart here (name given).
    """
    import pyoperon as op

    stack: list[sp.Expr] = []
    for node in tree.Nodes:
        if node.IsConstant:
            stack.append(sp.Float(node.Value))
        elif node.IsVariable:
            stack.append(sp.Float(node.Value) * variables[node.HashValue])
        else:
            operands = [stack.pop() for _ in range(node.Arity)]
            stack.append(_apply(op, node.Type, operands))
    assert len(stack) == 1, f"malformed postfix tree: {len(stack)} expressions left"
    return stack[0]


def _apply(op, kind, args: list[sp.Expr]) -> sp.Expr:
    """sympy for one Operon function node (``args`` in operand order)."""
    T = op.NodeType
    if kind == T.Add:
        return sp.Add(*args)
    if kind == T.Mul:
        return sp.Mul(*args)
    if kind == T.Sub:
        return -args[0] if len(args) == 1 else args[0] - sp.Add(*args[1:])
    if kind == T.Div:
        return 1 / args[0] if len(args) == 1 else args[0] / sp.Mul(*args[1:])
    unary = {
        T.Exp: sp.exp,
        T.Log: sp.log,
        T.Sqrt: sp.sqrt,
        T.Abs: sp.Abs,
        T.Cbrt: sp.cbrt,
        T.Sin: sp.sin,
        T.Cos: sp.cos,
        T.Tan: sp.tan,
        T.Tanh: sp.tanh,
        T.Sinh: sp.sinh,
        T.Cosh: sp.cosh,
        T.Asin: sp.asin,
        T.Acos: sp.acos,
        T.Atan: sp.atan,
        T.Square: lambda a: a**2,
        T.Logabs: lambda a: sp.log(sp.Abs(a)),
        T.Sqrtabs: lambda a: sp.sqrt(sp.Abs(a)),
        T.Log1p: lambda a: sp.log(1 + a),
    }
    if kind in unary:
        return unary[kind](args[0])
    binary = {
        T.Pow: lambda a, b: a**b,
        T.Powabs: lambda a, b: sp.Abs(a) ** b,
        T.Aq: lambda a, b: a / sp.sqrt(1 + b**2),
        T.Fmin: sp.Min,
        T.Fmax: sp.Max,
    }
    if kind in binary:
        return binary[kind](*args)
    raise InputError(
        f"Operon node type {kind} has no sympy counterpart here; leave it out of allowed_symbols"
    )
