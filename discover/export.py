"""Write a fitted law to disk as sympy, plain text, LaTeX and JSON.

Files written into ``out_dir`` (each atomically: a temporary file in the same folder, fsync,
rename):

- ``law.srepr``: ``sympy.srepr`` of the law with fitted constants (exact sympy tree, symbol
  assumptions included). Reading it back needs sympy's own ``eval``-based parser: only do that for
  files you wrote yourself.
- ``law.txt``: the same expression as plain sympy text at full precision; read it back safely with
  :func:`read_law_txt` (uses :func:`discover.formula.parse_formula`, never ``eval``).
- ``law.tex``: ``sympy.latex`` of it.
- ``law.json``: name, inputs, columns, symbolic formula, constants with values and bounds, metrics,
  convergence.
- ``law.py``: a standalone Python module that needs only numpy: ``predict(table)`` (or
  ``predict(N, D)``, ``predict(N=..., D=...)``) returns the law's loss, its constants written with
  ``repr`` (the float64 values, digit for digit). The same function is available in memory from
  :func:`to_numpy_function`, without writing or importing anything.

The LaTeX is sympy's, which matplotlib's mathtext (``usetex=False``) renders, small and large
exponents (``5.0 \\cdot 10^{-14}``) included; :func:`latex_text` is the single place it is made.
"""

from __future__ import annotations

import json
import keyword
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import sympy
from sympy.printing.latex import LatexPrinter

from discover.formula import FACTORS, parse_formula
from results.errors import InputError


def export_law(fit, out_dir, metrics=None) -> dict[str, Path]:
    """Export a fitted law.

    Parameters
    ----------
    fit : FitResult
        The fitted law.
    out_dir : str or Path
        Folder to write into; created if missing.
    metrics : dict, optional
        Scores to record (e.g. ``{"fit": fit.metrics(train), "holdout": fit.metrics(test)}``).

    Returns
    -------
    dict of str to Path
        ``{"srepr": ..., "txt": ..., "tex": ..., "json": ..., "py": ...}``.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create the export folder {str(out)!r}: {err.strerror}; "
                         "choose a writable folder") from None  # fmt: skip
    expr = fit.sympy()
    texts = {
        "srepr": sympy.srepr(expr),
        "txt": sympy.sstr(expr, full_prec=True),
        "tex": latex_text(expr),
        "json": json.dumps(_summary(fit, metrics), indent=2, sort_keys=True, allow_nan=False),
        "py": to_numpy_function(fit).source,
    }
    paths = {}
    for kind, text in texts.items():
        paths[kind] = out / f"law.{kind}"
        write_atomic(paths[kind], text.rstrip("\n") + "\n")
    return paths


def read_law_txt(path) -> sympy.Expr:
    """Read a ``law.txt`` back into sympy with the safe parser."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no law file at {str(path)!r}; export one with export_law(fit, folder)")
    return parse_formula(path.read_text().strip())


def _summary(fit, metrics) -> dict:
    law = fit.law
    constants = {
        name: {
            "value": fit.params[name],
            "lo": b.lo,
            "hi": b.hi,
            "log_space": b.positive,
            "reference": (law.reference or {}).get(name),
        }  # fmt: skip
        for name, b in law.constants.items()
    }
    return {
        "name": law.name,
        "inputs": list(law.inputs),
        "columns": {n: fit.columns.get(n, n) for n in law.inputs},
        "formula": sympy.sstr(law.expr),
        "fitted": sympy.sstr(fit.sympy(), full_prec=True),
        "constants": constants,
        "n_constants": law.n_constants,
        "objective": _finite(fit.objective),
        "loss": fit.loss,
        "delta": fit.delta,
        "n_starts": fit.n_starts,
        "converged": bool(fit.converged),
        "message": fit.message,
        "metrics": _clean(metrics or {}),
        "units": dict(law.units),
        "doc": law.doc,
    }


def _clean(obj):
    """JSON-safe copy: non-finite floats become null."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float | int) and not isinstance(obj, bool):
        return _finite(float(obj)) if isinstance(obj, float) else obj
    if hasattr(obj, "item"):
        return _clean(obj.item())
    return obj


def _finite(value: float):
    return value if math.isfinite(value) else None


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over ``path``.

    Text is written as UTF-8; bytes as they are.
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are meant to be shared
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------------------------
# LaTeX


class _MathtextLatexPrinter(LatexPrinter):
    """sympy's LaTeX, with the one construct mathtext lacks (``cases``) written another way."""

    def _print_Piecewise(self, expr):
        parts = [
            f"{self._print(value)} \\; \\mathrm{{if}} \\; {self._print(cond)}"
            if cond is not sympy.true
            else f"{self._print(value)} \\; \\mathrm{{otherwise}}"
            for value, cond in expr.args
        ]
        return r"\left\{" + r" ;\; ".join(parts) + r"\right."


def latex_text(expr: sympy.Expr) -> str:
    """LaTeX of ``expr`` that both LaTeX and matplotlib's mathtext (``usetex=False``) render.

    Numbers keep the precision of their sympy Floats; those below 1e-3 or from 1e6 in size are
    written with a power of ten, ``5.0 \\cdot 10^{-14}``, which mathtext accepts.

    Parameters
    ----------
    expr : sympy.Expr

    Returns
    -------
    str
        The formula without surrounding ``$``.
    """
    return _MathtextLatexPrinter({"min": -3, "max": 6}).doprint(expr)


# ----------------------------------------------------------------------------------------------
# numpy function

#: sympy functions and the numpy function of the same meaning, by the name numpy gives it.
_NUMPY_FUNCTIONS = {
    sympy.exp: "exp",
    sympy.log: "log",
    sympy.Abs: "abs",
    sympy.sin: "sin",
    sympy.cos: "cos",
    sympy.tan: "tan",
    sympy.sinh: "sinh",
    sympy.cosh: "cosh",
    sympy.tanh: "tanh",
    sympy.asin: "arcsin",
    sympy.acos: "arccos",
    sympy.atan: "arctan",
    sympy.sign: "sign",
}
_NUMPY_FOLDS = {sympy.Min: "minimum", sympy.Max: "maximum"}
_NUMPY_CONSTANTS = {sympy.pi: "pi", sympy.E: "e"}

#: Names the generated module defines itself; a law symbol with one of these names gets a ``_``.
_RESERVED = frozenset({"np", "predict", "INPUTS", "COLUMNS", "CONSTANTS", "FORMULA", "args",
                       "kwargs", "values", "shape", "value"})  # fmt: skip


class NumpyLaw:
    """A fitted law as a plain numpy function; made by :func:`to_numpy_function`.

    Call it with a table (a pandas DataFrame or a dict of arrays, read by column), with one
    array per input in the order of :attr:`inputs`, or with the inputs by keyword. It returns
    a float ndarray of the broadcast shape of the inputs (loss in the target's units).

    Attributes
    ----------
    expr : sympy.Expr
        The law, with its constants as symbols (those in :attr:`constants`).
    inputs : tuple of str
        Input symbols, in the order of positional arguments.
    columns : dict of str to str
        Data column read for each input when called with a table.
    constants : dict of str to float
        Value of each constant.
    source : str
        The same function as a standalone module (numpy only), the text of ``law.py``.
    """

    def __init__(self, expr, inputs, columns, constants):
        self.expr = expr
        self.inputs = tuple(inputs)
        self.columns = {name: columns.get(name, name) for name in self.inputs}
        self.constants = {name: float(value) for name, value in constants.items()}
        self._evaluate = _compile_numpy(expr)
        self.source = numpy_source(expr, self.inputs, self.columns, self.constants)

    def __call__(self, *args, **kwargs) -> np.ndarray:
        values = self._read(args, kwargs)
        env = {**self.constants, **dict(zip(self.inputs, values, strict=True))}
        shape = np.broadcast_shapes(*(v.shape for v in values))
        with np.errstate(all="ignore"):
            return np.broadcast_to(np.asarray(self._evaluate(env), float), shape).copy()

    def __repr__(self) -> str:
        return f"NumpyLaw({sympy.sstr(self.expr)!r}, inputs={self.inputs})"

    def _read(self, args, kwargs) -> list[np.ndarray]:
        """One float array per input, from a table, positional arrays or keywords."""
        if len(args) == 1 and not kwargs and _is_table(args[0]):
            table = args[0]
            missing = [self.columns[n] for n in self.inputs if self.columns[n] not in table]
            if missing:
                raise InputError(f"the table has no column {missing[0]!r} (law inputs "
                                 f"{list(self.inputs)}, read from columns "
                                 f"{list(self.columns.values())}); add it")  # fmt: skip
            return [np.asarray(table[self.columns[n]], dtype=float) for n in self.inputs]
        if args and kwargs:
            raise InputError("pass the inputs either by position or by keyword, not both")
        if args:
            if len(args) != len(self.inputs):
                raise InputError(
                    f"the law takes {len(self.inputs)} inputs {list(self.inputs)}, got "
                    f"{len(args)} arrays; pass one per input, in that order"
                )
            return [np.asarray(a, dtype=float) for a in args]
        if set(kwargs) != set(self.inputs):
            raise InputError(f"the law takes the inputs {list(self.inputs)} by keyword, got "
                             f"{sorted(kwargs)}; pass exactly those")  # fmt: skip
        return [np.asarray(kwargs[n], dtype=float) for n in self.inputs]


def _is_table(obj) -> bool:
    """A DataFrame or a mapping of column name to values (a Series is one column, not a table)."""
    return isinstance(obj, Mapping) or hasattr(obj, "columns")


def to_numpy_function(fit_or_expr, inputs=None, *, constants=None, columns=None) -> NumpyLaw:
    """The law as a numpy function, and (``.source``) as the text of a standalone module.

    Parameters
    ----------
    fit_or_expr : FitResult or sympy.Expr
        A fitted law (its expression, inputs, column mapping and fitted constants are used), or
        an expression; every free symbol of an expression is an input unless it is named in
        ``constants``.
    inputs : sequence of str, optional
        Input symbols in the order of positional arguments. Default: the fit's inputs, or the
        expression's free symbols that are not constants, factors (N, Na, D, G, S, E) first.
    constants : dict of str to float, optional
        Values of constants of an expression (ignored for a fit, whose fitted values are used).
    columns : dict of str to str, optional
        Data column of an input when it differs from the symbol, e.g. ``{"N": "Na"}``.

    Returns
    -------
    NumpyLaw
        Callable: ``f(table)``, ``f(N, D)`` or ``f(N=..., D=...)`` -> ndarray.

    Raises
    ------
    InputError
        A function with no numpy counterpart, an input that is not a symbol of the law, a
        symbol that is neither input nor constant.

    Examples
    --------
    >>> import sympy
    >>> N = sympy.Symbol("N", positive=True)
    >>> f = to_numpy_function(1.69 + 406.4 * N**-0.34)
    >>> float(f(N=1e9).round(4))
    2.044
    """
    if hasattr(fit_or_expr, "law") and hasattr(fit_or_expr, "params"):
        fit = fit_or_expr
        expr, values = fit.law.expr, dict(fit.params)
        inputs = tuple(inputs or fit.law.inputs)
        columns = {**dict(getattr(fit, "columns", {}) or {}), **(columns or {})}
    else:
        if isinstance(fit_or_expr, str):
            fit_or_expr = parse_formula(fit_or_expr)  # the whitelist parser, never eval
        if not isinstance(fit_or_expr, sympy.Basic):
            raise InputError(
                f"to_numpy_function needs a fitted law, a sympy expression or a formula string, "
                f"got {type(fit_or_expr).__name__}"
            )
        expr, values = fit_or_expr, dict(constants or {})
        names = sorted(
            (s.name for s in expr.free_symbols if s.name not in values), key=_factor_order
        )
        inputs = tuple(inputs or names)
    _check_symbols(expr, inputs, values)
    return NumpyLaw(expr, inputs, columns or {}, values)


def _factor_order(name: str) -> tuple[int, str]:
    """Sort key: the factors in the paper's order, then other names alphabetically."""
    return (FACTORS.index(name) if name in FACTORS else len(FACTORS), name)


def _check_symbols(expr, inputs, constants) -> None:
    """Every free symbol is an input or a constant with a value; every input is a symbol."""
    free = {s.name for s in expr.free_symbols}
    unknown = sorted(free - set(inputs) - set(constants))
    if unknown:
        raise InputError(f"the law uses {unknown}, which are neither inputs {list(inputs)} nor "
                         "constants with values; pass them in inputs= or constants=")  # fmt: skip
    both = sorted(set(inputs) & set(constants))
    if both:
        raise InputError(f"{both} are given both as inputs and as constants; keep one")


def _compile_numpy(expr):
    """A function of ``{symbol name: value}`` that evaluates ``expr`` with numpy, built once."""
    if isinstance(expr, sympy.Symbol):
        name = expr.name
        return lambda env: env[name]
    if expr in _NUMPY_CONSTANTS:
        value = float(getattr(np, _NUMPY_CONSTANTS[expr]))
        return lambda env: value
    if expr.is_Number:
        value = float(expr)
        return lambda env: value
    parts = [_compile_numpy(arg) for arg in expr.args]
    if isinstance(expr, sympy.Add | sympy.Mul):
        reduce = np.add if isinstance(expr, sympy.Add) else np.multiply
        return lambda env: _fold(reduce, [p(env) for p in parts])
    if isinstance(expr, sympy.Pow):
        base, exponent = parts
        return lambda env: np.power(np.asarray(base(env), float), exponent(env))
    if expr.func in _NUMPY_FUNCTIONS:
        function, (arg,) = getattr(np, _NUMPY_FUNCTIONS[expr.func]), parts
        return lambda env: function(arg(env))
    if expr.func in _NUMPY_FOLDS:
        function = getattr(np, _NUMPY_FOLDS[expr.func])
        return lambda env: _fold(function, [p(env) for p in parts])
    raise InputError(_unsupported(expr))


def _fold(function, values):
    result = values[0]
    for value in values[1:]:
        result = function(result, value)
    return result


def _unsupported(expr) -> str:
    return (f"the law uses {expr.func.__name__}(), which has no numpy counterpart here "
            f"(supported: + - * / ** and {', '.join(sorted(_NUMPY_FUNCTIONS.values()))}, "
            "min, max); rewrite the law without it")  # fmt: skip


def numpy_source(expr, inputs, columns, constants) -> str:
    """Text of a standalone Python module (numpy only) that evaluates the law.

    Constants are written with ``repr`` of their float64 values, so the module predicts what the
    fit predicts to the last digit of the arithmetic. See :func:`to_numpy_function` for the
    parameters; the module's ``predict`` takes the same arguments as :class:`NumpyLaw`.
    """
    names = _identifiers([*inputs, *constants])
    formula = _code(expr, names)
    lines = [
        f'"""Scaling law exported by moelaw; needs only numpy.\n\n    {_docline(expr)}\n',
        "Call ``predict(table)`` with a pandas DataFrame or a dict of arrays (read by the",
        "columns in COLUMNS), ``predict(" + ", ".join(inputs) + ")`` with one array per input, or",
        "pass the inputs by keyword. Constants are float64 values written in full.",
        '"""',
        "",
        "from collections.abc import Mapping",
        "",
        "import numpy as np",
        "",
        f"FORMULA = {sympy.sstr(expr)!r}",
        f"INPUTS = {tuple(inputs)!r}",
        f"COLUMNS = {dict(columns)!r}",
        "CONSTANTS = {",
        *(f"    {name!r}: {float(value)!r}," for name, value in constants.items()),
        "}",
        "",
        "",
        "def predict(*args, **kwargs):",
        '    """Predicted value of the law for every row (a float ndarray)."""',
        "    values = _read(args, kwargs)",
        *(f"    {names[n]} = values[{i}]" for i, n in enumerate(inputs)),
        *(f"    {names[n]} = CONSTANTS[{n!r}]" for n in constants),
        "    shape = np.broadcast_shapes(*(v.shape for v in values))",
        '    with np.errstate(all="ignore"):',
        f"        value = {formula}",
        "    return np.broadcast_to(np.asarray(value, dtype=float), shape).copy()",
        "",
        "",
        _READ_SOURCE,
    ]
    return "\n".join(lines)


def _docline(expr) -> str:
    text = sympy.sstr(expr)
    return text if len(text) <= 88 else text[:85] + "..."


def _identifiers(names) -> dict[str, str]:
    """A Python identifier for each symbol name: the name itself, or with ``_`` appended."""
    taken: set[str] = set()
    out = {}
    for name in names:
        ident = name
        while keyword.iskeyword(ident) or ident in _RESERVED or ident in taken:
            ident += "_"
        out[name] = ident
        taken.add(ident)
    return out


def _code(expr, names: dict[str, str]) -> str:
    """Python text of ``expr`` over numpy, fully parenthesized; numbers via ``repr``."""
    if isinstance(expr, sympy.Symbol):
        return names[expr.name]
    if expr in _NUMPY_CONSTANTS:
        return f"np.{_NUMPY_CONSTANTS[expr]}"
    if expr.is_Integer:
        return repr(int(expr)) if expr >= 0 else f"({int(expr)!r})"
    if expr.is_Number:
        value = float(expr)
        return repr(value) if value >= 0 else f"({value!r})"
    args = [_code(arg, names) for arg in expr.args]
    if isinstance(expr, sympy.Add):
        return "(" + " + ".join(args) + ")"
    if isinstance(expr, sympy.Mul) and expr.args[0] == -1:
        return "(-" + " * ".join(args[1:]) + ")"
    if isinstance(expr, sympy.Mul):
        return "(" + " * ".join(args) + ")"
    if isinstance(expr, sympy.Pow):
        return f"np.power({args[0]}, {args[1]})"
    if expr.func in _NUMPY_FUNCTIONS:
        return f"np.{_NUMPY_FUNCTIONS[expr.func]}({args[0]})"
    if expr.func in _NUMPY_FOLDS:
        folded = args[0]
        for arg in args[1:]:
            folded = f"np.{_NUMPY_FOLDS[expr.func]}({folded}, {arg})"
        return folded
    raise InputError(_unsupported(expr))


_READ_SOURCE = '''def _read(args, kwargs):
    """One float array per input, from a table, positional arrays or keywords."""
    table = args[0] if len(args) == 1 and not kwargs else None
    if isinstance(table, Mapping) or hasattr(table, "columns"):
        missing = [COLUMNS[n] for n in INPUTS if COLUMNS[n] not in table]
        if missing:
            raise ValueError(f"the table has no column {missing[0]!r}; the law reads {COLUMNS}")
        return [np.asarray(table[COLUMNS[n]], dtype=float) for n in INPUTS]
    if args and kwargs:
        raise ValueError("pass the inputs either by position or by keyword, not both")
    if args:
        if len(args) != len(INPUTS):
            raise ValueError(f"the law takes {len(INPUTS)} inputs {INPUTS}, got {len(args)}")
        return [np.asarray(a, dtype=float) for a in args]
    if set(kwargs) != set(INPUTS):
        raise ValueError(f"the law takes the inputs {INPUTS} by keyword, got {sorted(kwargs)}")
    return [np.asarray(kwargs[n], dtype=float) for n in INPUTS]'''
