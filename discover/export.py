"""Write a fitted law to disk as sympy, plain text, LaTeX and JSON.

Files written into ``out_dir`` (each atomically: a temporary file in the same folder, fsync,
rename):

- ``law.srepr``: ``sympy.srepr`` of the law with fitted constants (exact sympy tree, symbol
  assumptions included). Reading it back needs sympy's own ``eval``-based parser: only do that for
  files you wrote yourself.
- ``law.txt``: the same expression as plain sympy text at full precision; read it back safely with
  :func:`read_law_txt` (uses :func:`discover.formula.parse_formula`, never ``eval``).
- ``law.tex``: ``sympy.latex`` of it.
- ``law.json``: name, inputs, columns, symbolic formula, constants with values and the bounds
  they were searched in (``lo``, ``hi``, ``log_space``), metrics, convergence, and
  ``refit_command``: the ``moelaw fit`` command line that fits the same law again, within the
  same bounds (:func:`fit_command`).
- ``law.py``: a standalone Python module that needs only numpy: ``predict(table)`` (or
  ``predict(N, D)``, ``predict(N=..., D=...)``) returns the law's loss, its constants written with
  ``repr`` (the float64 values, digit for digit), their search bounds (``BOUNDS``) and the
  command that fits it again (``REFIT_COMMAND``). The same function is available in memory from
  :func:`to_numpy_function`, without writing or importing anything.

A law's bounds belong to it: the structured search gives a scale constant ``[1e-8, 1e12]`` in log
space, say, where a formula typed on the command line gets ``[-100, 100]``; a re-fit within the
defaults can land elsewhere. :func:`fit_command` writes every bound out as ``--bounds
NAME=LO:HI[:log]`` with the float64 values digit for digit.

The LaTeX is sympy's, which matplotlib's mathtext (``usetex=False``) renders, small and large
exponents (``5.0 \\cdot 10^{-14}``) included; :func:`latex_text` is the single place it is made.
"""

from __future__ import annotations

import json
import keyword
import math
import os
import shlex
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import sympy
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

from discover.formula import FACTORS, parse_formula
from discover.laws import Bounds
from results.errors import InputError


def export_law(fit, out_dir, metrics=None, data_flag=None) -> dict[str, Path]:
    """Export a fitted law.

    Parameters
    ----------
    fit : FitResult
        The fitted law; its law's bounds are recorded with every constant.
    out_dir : str or Path
        Folder to write into; created if missing.
    metrics : dict, optional
        Scores to record (e.g. ``{"fit": fit.metrics(train), "holdout": fit.metrics(test)}``).
    data_flag : str, optional
        The runs the law was fitted on, for the ``moelaw fit`` command written into ``law.json``
        and ``law.py`` (see :func:`fit_command`). Default: none, so the command reads the
        bundled study.

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
    expr, law = fit.sympy(), fit.law
    command, why_not = _refit_command(fit, data_flag)
    columns = {n: fit.columns.get(n, n) for n in law.inputs}
    summary = _summary(fit, metrics, command, why_not)
    texts = {
        "srepr": sympy.srepr(expr),
        "txt": sympy.sstr(expr, full_prec=True),
        "tex": latex_text(expr),
        "json": json.dumps(summary, indent=2, sort_keys=True, allow_nan=False),
        "py": numpy_source(
            law.expr, law.inputs, columns, fit.params, bounds=law.constants, refit_command=command
        ),
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


def _summary(fit, metrics, command, why_not) -> dict:
    law = fit.law
    bounds = bounds_to_json(law.constants)
    constants = {
        name: {
            "value": fit.params[name],
            **bounds[name],
            "reference": (law.reference or {}).get(name),
        }  # fmt: skip
        for name in law.constants
    }
    summary = {
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
        "refit_command": command,
    }
    if why_not:
        summary["refit_note"] = why_not
    return summary


# ----------------------------------------------------------------------------------------------
# Bounds and the command that fits a law again


def bounds_to_json(constants: Mapping[str, Bounds]) -> dict[str, dict]:
    """Each constant's search bounds as JSON-ready values.

    Parameters
    ----------
    constants : dict of str to Bounds
        A law's constants (``law.constants``).

    Returns
    -------
    dict of str to dict
        ``{name: {"lo": float, "hi": float, "log_space": bool, "positive": bool}}``;
        ``log_space`` and ``positive`` are the same flag (a ``positive`` constant is searched and
        fitted in log space, ``:log`` in ``--bounds``); an infinite bound is ``None`` (JSON
        ``null``). Read back with :func:`bounds_from_json`.
    """
    return {
        name: {
            "lo": _finite(float(b.lo)),
            "hi": _finite(float(b.hi)),
            "log_space": bool(b.positive),
            "positive": bool(b.positive),
        }
        for name, b in constants.items()
    }


def bounds_from_json(record: Mapping[str, Mapping]) -> dict[str, Bounds]:
    """The :class:`~discover.laws.Bounds` of each constant from :func:`bounds_to_json` output.

    Also reads the ``constants`` of a ``law.json`` (other keys of each entry are ignored), e.g.
    ``law_from_expr(doc["formula"], doc["inputs"], bounds=bounds_from_json(doc["constants"]))``
    rebuilds the exported law with the bounds it was fitted within.
    """
    bounds = {}
    for name, entry in record.items():
        if not {"lo", "hi"} <= set(entry):
            raise InputError(f"constant {name!r} has no bounds (lo, hi) in {dict(entry)}; "
                             "export the law again with this version of moelaw")  # fmt: skip
        log_space = bool(entry.get("positive", entry.get("log_space", False)))
        lo = -math.inf if entry["lo"] is None else float(entry["lo"])
        hi = math.inf if entry["hi"] is None else float(entry["hi"])
        bounds[name] = Bounds(lo, hi, positive=log_space)
    return bounds


class _FormulaPrinter(StrPrinter):
    """Plain sympy text in the spellings :func:`discover.formula.parse_formula` reads."""

    def _print_Abs(self, expr):
        return f"abs({self._print(expr.args[0])})"

    def _print_Min(self, expr):
        return "min(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Max(self, expr):
        return "max(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Exp1(self, expr):
        return "exp(1)"  # "E" would read as the expert count

    def _print_Float(self, expr):
        return repr(float(expr))  # the float64 the fitter computes with, digit for digit


def _as_float64(expr: sympy.Expr) -> sympy.Expr:
    """``expr`` with every number stored as the float64 it stands for (to compare laws)."""
    return expr.xreplace({f: sympy.Float(float(f), 17) for f in expr.atoms(sympy.Float)})


def formula_text(expr: sympy.Expr) -> str:
    """``expr`` as ``--formula`` text that reads back to the same law.

    Numbers are written with ``repr`` of their float64 values; the text is checked by reading
    it back with :func:`discover.formula.parse_formula`.

    Raises
    ------
    InputError
        When the text does not read back to ``expr`` (a function the formula parser lacks).
    """
    text = _FormulaPrinter().doprint(expr)
    try:
        same = _as_float64(parse_formula(text)) == _as_float64(expr)
        why = f"{text!r} reads back as another expression"
    except InputError as err:
        same, why = False, f"the formula parser refuses {text!r}: {err}"
    if not same:
        raise InputError(f"the law {sympy.sstr(expr)!r} cannot be written as `moelaw fit "
                         f"--formula` text ({why}); fit it from Python with "
                         "discover.fit.fit_law instead")  # fmt: skip
    return text


def fit_command(law, data_flag=None) -> str:
    """The ``moelaw fit`` command line that fits ``law`` again, within the law's own bounds.

    The formula is written with its constants as names, every constant gets ``--bounds
    NAME=LO:HI`` (``:log`` for a ``positive`` constant, searched in log space) with the float64
    bounds written by ``repr``, digit for digit, so the command searches the box the law was
    fitted in, not the defaults a typed formula gets. ``--inputs`` is added where the formula's
    names would not tell the inputs apart from the constants. Given a fit, its column mapping
    (``--use N=Na``) and objective (``--loss``, ``--delta``, ``--residual``, where not the
    defaults) are added too. Run on the same rows, the command returns the fitted constants.

    Parameters
    ----------
    law : Law or FitResult
        The law, or a fit of it (e.g. ``LawRegressor(...).fit(...).best_``,
        ``DiscoveryResult.best``).
    data_flag : str, optional
        Where the runs come from: a store folder or table file (written as ``--data PATH``), or
        command-line flags as typed, e.g. ``"--data runs.csv --holdout-above 1e9"`` (kept as
        they are). Default: none, so the command reads the bundled study, as ``moelaw fit`` does
        without ``--data``.

    Returns
    -------
    str
        One shell command line (POSIX quoting; split it with :func:`shlex.split`).

    Raises
    ------
    InputError
        A bound that is not finite, a formula the ``--formula`` parser cannot read back, or a
        weighted or grouped fit (``moelaw fit`` has neither weights nor groups).

    Examples
    --------
    >>> from discover.laws import Bounds, law_from_expr
    >>> law = law_from_expr("L0 + A/N**alpha", ["N"], bounds={"A": Bounds(1.0, 1e6, True)})
    >>> print(fit_command(law, "runs.csv"))
    moelaw fit --data runs.csv --formula 'A/N**alpha + L0' --bounds A=1.0:1000000.0:log \
--bounds L0=0.0:10.0 --bounds alpha=0.0:2.0
    """
    fit = law if hasattr(law, "law") and hasattr(law, "params") else None
    law = fit.law if fit is not None else law
    argv = ["moelaw", "fit", *_data_argv(data_flag), "--formula", formula_text(law.expr)]
    names = {s.name for s in law.expr.free_symbols}
    if {n for n in FACTORS if n in names} != set(law.inputs):
        argv += ["--inputs", ",".join(law.inputs)]
    for name, b in law.constants.items():
        argv += ["--bounds", f"{name}={_bounds_text(name, b)}"]
    if fit is not None:
        argv += _fit_argv(fit)
    return shlex.join(argv)


def _data_argv(data_flag) -> list[str]:
    """``--data PATH`` for a path, the split flags for flag text, nothing for ``None``."""
    if data_flag is None:
        return []
    text = str(data_flag)
    if text.lstrip().startswith("-"):
        return shlex.split(text)
    return ["--data", text]


def _bounds_text(name: str, b: Bounds) -> str:
    """``LO:HI`` or ``LO:HI:log``, as ``--bounds`` reads it, numbers digit for digit."""
    lo, hi = float(b.lo), float(b.hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError(f"constant {name!r} has bounds [{lo}, {hi}], which `moelaw fit "
                         "--bounds` cannot take; give it finite bounds (law.with_bounds("
                         f"{name}=Bounds(lo, hi)))")  # fmt: skip
    return f"{lo!r}:{hi!r}" + (":log" if b.positive else "")


def _fit_argv(fit) -> list[str]:
    """The column mapping and objective of a fit, as ``moelaw fit`` flags."""
    if getattr(fit, "groups", None):
        raise InputError("a grouped fit (discover.groups.fit_grouped) has constants per group, "
                         "which `moelaw fit` cannot fit; re-fit it with fit_grouped")  # fmt: skip
    problem = getattr(fit, "problem", None)
    if problem is not None and np.ptp(problem.w) > 0:
        raise InputError("the fit weighs its rows unequally and `moelaw fit` has no weights; "
                         "re-fit it with discover.fit.fit_law(..., weights=...)")  # fmt: skip
    argv = []
    for symbol_name, column in sorted((fit.columns or {}).items()):
        if symbol_name != column and symbol_name in fit.law.inputs:
            argv += ["--use", f"{symbol_name}={column}"]
    if fit.loss != "huber":
        argv += ["--loss", fit.loss]
    if float(fit.delta) != 1e-3:
        argv += ["--delta", repr(float(fit.delta))]
    residual = getattr(problem, "residual", "log")
    if residual != "log":
        argv += ["--residual", residual]
    return argv


def _refit_command(fit, data_flag) -> tuple[str | None, str | None]:
    """:func:`fit_command` of ``fit``, or ``None`` and the reason it cannot be written."""
    try:
        return fit_command(fit, data_flag), None
    except InputError as err:
        return None, str(err)


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
    """sympy's LaTeX, with the one construct mathtext lacks (``cases``) written another way, and
    the activated parameter count ``Na`` written ``N_{a}`` as in the papers (not ``N a``)."""

    def _print_Symbol(self, expr, style="plain"):
        if expr.name == "Na":
            return "N_{a}"
        return super()._print_Symbol(expr, style=style)

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
_RESERVED = frozenset({"np", "predict", "INPUTS", "COLUMNS", "CONSTANTS", "BOUNDS", "FORMULA",
                       "REFIT_COMMAND", "args", "kwargs", "values", "shape", "value"})  # fmt: skip


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
    bounds : dict of str to Bounds or None
        The interval each constant was searched in, for a fitted law; ``None`` for an
        expression.
    refit_command : str or None
        The ``moelaw fit`` command that fits the law again (:func:`fit_command`), for a fitted
        law that one can write.
    source : str
        The same function as a standalone module (numpy only), the text of ``law.py``.
    """

    def __init__(self, expr, inputs, columns, constants, bounds=None, refit_command=None):
        self.expr = expr
        self.inputs = tuple(inputs)
        self.columns = {name: columns.get(name, name) for name in self.inputs}
        self.constants = {name: float(value) for name, value in constants.items()}
        self.bounds = None if bounds is None else dict(bounds)
        self.refit_command = refit_command
        self._evaluate = _compile_numpy(expr)
        self.source = numpy_source(expr, self.inputs, self.columns, self.constants,
                                   bounds=self.bounds, refit_command=refit_command)  # fmt: skip

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
    bounds = command = None
    if hasattr(fit_or_expr, "law") and hasattr(fit_or_expr, "params"):
        fit = fit_or_expr
        expr, values = fit.law.expr, dict(fit.params)
        inputs = tuple(inputs or fit.law.inputs)
        columns = {**dict(getattr(fit, "columns", {}) or {}), **(columns or {})}
        bounds, (command, _) = fit.law.constants, _refit_command(fit, None)
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
    return NumpyLaw(expr, inputs, columns or {}, values, bounds, command)


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


def numpy_source(expr, inputs, columns, constants, *, bounds=None, refit_command=None) -> str:
    """Text of a standalone Python module (numpy only) that evaluates the law.

    Constants are written with ``repr`` of their float64 values, so the module predicts what the
    fit predicts to the last digit of the arithmetic. See :func:`to_numpy_function` for the
    parameters; the module's ``predict`` takes the same arguments as :class:`NumpyLaw`. With
    ``bounds`` (dict of str to Bounds), the module also holds ``BOUNDS = {name: (lo, hi,
    log_space)}``, the interval each constant was searched in; with ``refit_command``,
    ``REFIT_COMMAND``, the ``moelaw fit`` command that fits the law again.
    """
    names = _identifiers([*inputs, *constants])
    formula = _code(expr, names)
    about = []
    if bounds is not None:
        about.append("BOUNDS holds the interval (lo, hi, searched in log space) of each constant.")
    if refit_command is not None:
        about.append("REFIT_COMMAND fits the law again on its runs, within those bounds.")
    lines = [
        f'"""Scaling law exported by moelaw; needs only numpy.\n\n    {_docline(expr)}\n',
        "Call ``predict(table)`` with a pandas DataFrame or a dict of arrays (read by the",
        "columns in COLUMNS), ``predict(" + ", ".join(inputs) + ")`` with one array per input, or",
        "pass the inputs by keyword. Constants are float64 values written in full.",
        *about,
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
        *_bounds_source(bounds),
        *([f"REFIT_COMMAND = {refit_command!r}"] if refit_command is not None else []),
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


def _bounds_source(bounds) -> list[str]:
    """``BOUNDS = {...}`` lines of the module, numbers by ``repr``; none without bounds."""
    if bounds is None:
        return []
    return [
        "BOUNDS = {",
        *(
            f"    {name!r}: ({float(b.lo)!r}, {float(b.hi)!r}, {bool(b.positive)!r}),"
            for name, b in bounds.items()
        ),
        "}",
    ]


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
