"""A safe parser for scaling-law formulas typed by a user.

The text is parsed with Python's :mod:`ast` module and the sympy expression is built node by node
from a short whitelist; nothing is ever passed to ``eval``, ``exec`` or ``sympy.sympify``. What is
accepted:

- numbers (integers and decimals, ``1e-3`` included) and names (letters, digits and ``_``, not
  starting with ``_``);
- ``+``, ``-``, ``*``, ``/``, ``**``, unary ``-`` and ``+``, parentheses;
- ``^`` as a power: it is rewritten to ``**`` before parsing, so ``a + b^2`` means ``a + b**2`` (the
  notation papers use), never Python's exclusive-or;
- calls to ``log`` (natural), ``exp``, ``sqrt``, ``abs``, ``min`` and ``max``, with positional
  arguments.

Everything else (attributes, subscripts, strings, lambdas, comprehensions, keyword arguments,
unknown functions, comparisons) is refused with an :class:`~results.errors.InputError` naming what
was refused, as are numeric exponents above :data:`MAX_EXPONENT` in size, nesting deeper than
:data:`MAX_DEPTH` and text longer than :data:`MAX_LENGTH` characters.

Symbols come from :func:`symbol`, so a parsed formula and a library law share the same sympy
symbols.
"""

from __future__ import annotations

import ast
import re

import sympy

from results.errors import InputError

MAX_LENGTH = 4000
"""Longest formula text accepted, in characters."""

MAX_DEPTH = 32
"""Deepest nesting accepted (chains of ``+``/``-`` or ``*``/``/`` count as one level)."""

MAX_EXPONENT = 100
"""Largest absolute numeric exponent accepted in ``x ** p``."""

FACTORS = ("N", "Na", "D", "G", "S", "E")
"""The paper's factors, which are also the column names of a results table."""

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_FUNCTIONS = {
    "log": (sympy.log, 1, 1),
    "exp": (sympy.exp, 1, 1),
    "sqrt": (sympy.sqrt, 1, 1),
    "abs": (sympy.Abs, 1, 1),
    "min": (sympy.Min, 2, 8),
    "max": (sympy.Max, 2, 8),
}


def symbol(name: str) -> sympy.Symbol:
    """Return the sympy symbol moelaw uses for ``name``.

    Factors carry their sign: ``N, Na, D, G, E`` are positive and ``S`` is non-negative. Any other
    name (a law constant, or an input of a custom law) is a real symbol. Using one factory
    everywhere makes a parsed formula, a library law and a discovered law compare equal symbol by
    symbol.

    Parameters
    ----------
    name : str
        Identifier: a letter, then letters, digits or ``_``.

    Returns
    -------
    sympy.Symbol
    """
    if not _NAME.match(name):
        raise InputError(
            f"name {name!r} is not allowed; use a letter followed by letters, digits or '_'"
        )
    if name == "S":
        return sympy.Symbol(name, nonnegative=True, real=True)
    if name in FACTORS:
        return sympy.Symbol(name, positive=True)
    return sympy.Symbol(name, real=True)


def canonical(expr: sympy.Expr) -> sympy.Expr:
    """Replace every free symbol of ``expr`` by :func:`symbol` of its name (our assumptions)."""
    return expr.xreplace({s: symbol(s.name) for s in expr.free_symbols})


def parse_formula(text: str, names=None) -> sympy.Expr:
    """Parse a formula into a sympy expression without evaluating any of the text.

    Parameters
    ----------
    text : str
        The formula, e.g. ``"L0 + A/N^alpha + B/D^beta"``.
    names : iterable of str, optional
        The names the formula may use. Default ``None`` accepts any identifier not starting with
        ``_``.

    Returns
    -------
    sympy.Expr
        The expression, with symbols from :func:`symbol`.

    Raises
    ------
    InputError
        For anything outside the whitelist, naming what was refused.

    Examples
    --------
    >>> parse_formula("L0 + A/N^alpha")
    A/N**alpha + L0
    """
    if not isinstance(text, str):
        raise InputError(f"a formula must be text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise InputError(
            f"formula is {len(text)} characters long; the limit is {MAX_LENGTH}. Simplify it first"
        )
    if "#" in text:
        # Python would read the rest of the line as a comment and drop it silently.
        raise InputError(
            f"formula {text[:80]!r} contains '#'; remove it (a formula has no comments)"
        )
    tree = _parse_tree(text.replace("^", "**"))
    allowed = None if names is None else frozenset(names)
    expr = _Builder(allowed).build(tree.body, 0)
    if expr.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        raise InputError(f"formula {text!r} is undefined (a division by zero or an infinity)")
    _check_powers(expr)
    return expr


def _check_powers(expr: sympy.Expr) -> None:
    """Refuse numeric exponents beyond MAX_EXPONENT that sympy made, e.g. N*N*...*N -> N**1999."""
    for power in expr.atoms(sympy.Pow):
        exponent = power.exp
        if exponent.is_Number and abs(exponent) > MAX_EXPONENT:
            raise InputError(
                f"formula gives the power {power.base}**{exponent}; exponents larger than "
                f"{MAX_EXPONENT} in size are refused"
            )


def _parse_tree(text: str) -> ast.Expression:
    """Parse ``text`` as one Python expression, turning parser failures into InputError."""
    try:
        return ast.parse(text, mode="eval")
    except SyntaxError as err:
        raise InputError(
            f"formula {text!r} is not a single expression ({err.msg} at column {err.offset}); "
            "write it with numbers, names, + - * / ** ^, parentheses and log/exp/sqrt/abs/min/max"
        ) from None
    except (RecursionError, MemoryError, ValueError) as err:
        raise InputError(
            f"formula could not be parsed ({type(err).__name__}); it nests too deeply"
        ) from None


class _Builder:
    """Build a sympy expression from a whitelisted AST, one node type at a time."""

    def __init__(self, allowed):
        self.allowed = allowed

    def build(self, node: ast.AST, depth: int) -> sympy.Expr:
        if depth > MAX_DEPTH:
            raise InputError(
                f"formula nests deeper than {MAX_DEPTH} levels; simplify it or split it into parts"
            )
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise InputError(f"formula uses {_describe(node)}, which is not allowed; {_ALLOWED}")
        return method(node, depth)

    def _Constant(self, node, depth):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(
                f"formula uses the constant {value!r}, which is not a number; {_ALLOWED}"
            )
        if isinstance(value, int):
            return sympy.Integer(value)
        digits = len(re.sub(r"[^0-9]", "", repr(value).split("e")[0]).lstrip("0"))
        return sympy.Float(repr(value), max(15, digits))

    def _Name(self, node, depth):
        name = node.id
        if name.startswith("_"):
            raise InputError(f"formula uses the name {name!r}; names starting with '_' are refused")
        if name in _FUNCTIONS:
            raise InputError(f"formula uses the function {name!r} without calling it")
        if self.allowed is not None and name not in self.allowed:
            raise InputError(
                f"formula uses the unknown name {name!r}; "
                f"allowed names: {', '.join(sorted(self.allowed))}"
            )
        return symbol(name)

    def _UnaryOp(self, node, depth):
        operand = self.build(node.operand, depth + 1)
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return operand
        raise InputError(f"formula uses the operator {type(node.op).__name__}; {_ALLOWED}")

    def _BinOp(self, node, depth):
        # A chain a + b - c + ... (or a * b / c ...) is one level, so long sums are not "deep".
        if isinstance(node.op, ast.Pow):
            return self._power(node, depth)
        family = _family(node.op)
        if family is None:
            raise InputError(f"formula uses the operator {type(node.op).__name__}; {_ALLOWED}")
        terms = []
        while isinstance(node, ast.BinOp) and _family(node.op) == family:
            terms.append((node.op, node.right))
            node = node.left
        result = self.build(node, depth + 1)
        for op, right in reversed(terms):
            result = _apply(op, result, self.build(right, depth + 1))
        return result

    def _power(self, node, depth):
        base = self.build(node.left, depth + 1)
        exponent = self.build(node.right, depth + 1)
        if exponent.is_number and abs(complex(exponent)) > MAX_EXPONENT:
            raise InputError(
                f"formula raises to the power {exponent}; exponents larger than {MAX_EXPONENT} "
                "in size are refused"
            )
        return base**exponent

    def _Call(self, node, depth):
        if not isinstance(node.func, ast.Name):
            raise InputError(
                f"formula calls {_describe(node.func)}; only plain function names work"
            )
        name = node.func.id
        if name not in _FUNCTIONS:
            raise InputError(
                f"formula calls the unknown function {name!r}; allowed: {', '.join(_FUNCTIONS)}"
            )
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise InputError(f"formula passes keyword or starred arguments to {name}(); refused")
        function, lo, hi = _FUNCTIONS[name]
        if not lo <= len(node.args) <= hi:
            raise InputError(f"{name}() takes {lo} to {hi} arguments, got {len(node.args)}")
        args = [self.build(a, depth + 1) for a in node.args]
        try:
            return function(*args)
        except (ValueError, TypeError) as err:
            # sympy refuses e.g. min(N, log(0)): an argument that is not a comparable number
            raise InputError(
                f"{name}() of {', '.join(map(str, args))[:200]} is undefined ({err}); "
                "check its arguments"
            ) from None


_ALLOWED = "use numbers, names, + - * / ** ^, parentheses and log/exp/sqrt/abs/min/max"


def _family(op: ast.operator) -> str | None:
    if isinstance(op, ast.Add | ast.Sub):
        return "add"
    if isinstance(op, ast.Mult | ast.Div):
        return "mul"
    return None


def _apply(op: ast.operator, left: sympy.Expr, right: sympy.Expr) -> sympy.Expr:
    if isinstance(op, ast.Add):
        return left + right
    if isinstance(op, ast.Sub):
        return left - right
    if isinstance(op, ast.Mult):
        return left * right
    return left / right


def _describe(node: ast.AST) -> str:
    """Name an AST node the way a user would recognise it."""
    kinds = {
        ast.Attribute: "attribute access",
        ast.Subscript: "a subscript",
        ast.Lambda: "a lambda",
        ast.ListComp: "a comprehension",
        ast.GeneratorExp: "a comprehension",
        ast.SetComp: "a comprehension",
        ast.DictComp: "a comprehension",
        ast.Compare: "a comparison",
        ast.BoolOp: "a boolean operator",
        ast.IfExp: "a conditional expression",
        ast.JoinedStr: "a string",
        ast.NamedExpr: "an assignment",
    }
    label = kinds.get(type(node), f"a {type(node).__name__} node")
    column = getattr(node, "col_offset", None)
    return label if column is None else f"{label} (column {column + 1})"


def near_miss_constants(expr: sympy.Expr, inputs, names) -> list[str]:
    """Notes on constants that look like a mistyped input name.

    Every name of a formula that is not an input is fitted as a constant, so a typo such as
    ``Nn`` for ``N`` silently turns an input into a number. A constant is suspect when it
    stands where inputs stand -- the base of a power (``Nn**(-alpha)``, ``1/Nn``,
    ``sqrt(Nn)``) or the whole argument of ``log`` or ``exp`` (``log(Nn)``) -- and it is a
    near miss of one of ``names`` that the formula does not already use: equal to it up to
    case, or, for constants of two or more characters, one edit (insertion, deletion or
    substitution) away. Constants in other places (coefficients such as ``a``, ``e``, ``d``
    in published laws, an irreducible loss ``E0``) are not suspect as typos, and neither is a
    constant whose look-alike the formula already uses as an input (``n`` beside ``N`` in
    Zhao et al.'s law). A constant named exactly like one of ``names`` (``seed``, ``loss``)
    is noted wherever it stands.

    Parameters
    ----------
    expr : sympy.Expr
        A parsed formula (:func:`parse_formula`).
    inputs : sequence of str
        The names read from the data.
    names : iterable of str
        Names a user may have meant: the factors and the data's columns.

    Returns
    -------
    list of str
        One note per suspect constant, naming the look-alikes, e.g. ``"Nn is read as a
        constant, not an input: there is no column 'Nn'; did you mean N?"``, or saying that a
        constant is named like one of ``names``. Empty when none.

    Examples
    --------
    >>> near_miss_constants(parse_formula("L0 + A*Nn**(-alpha)"), [], ["N", "D"])
    ["Nn is read as a constant, not an input: there is no column 'Nn'; did you mean N?"]
    """
    names = set(names)
    used = {str(s) for s in expr.free_symbols}
    constants = used - set(inputs)
    placed = set()  # constants that stand where an input would
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Pow) and isinstance(node.base, sympy.Symbol):
            placed.add(str(node.base))
        elif isinstance(node, (sympy.log, sympy.exp)) and isinstance(node.args[0], sympy.Symbol):
            placed.add(str(node.args[0]))
    candidates = sorted(set(names) - used, key=str)

    notes = []
    for name in sorted(constants):
        meant = [c for c in candidates if _near(name, c)] if name in placed else []
        if name in names:
            notes.append(
                f"{name} is read as a constant, not an input, although the data has a column "
                f"{name!r}; list it in --inputs to read it from the data"
            )
        elif meant:
            notes.append(
                f"{name} is read as a constant, not an input: there is no column {name!r}; "
                f"did you mean {' or '.join(meant)}?"
            )
    return notes


def _near(typed: str, name: str) -> bool:
    """Equal up to case, or (for two or more characters typed) one edit apart."""
    if typed.lower() == name.lower():
        return True
    return len(typed) >= 2 and _one_edit(typed, name)


def _one_edit(a: str, b: str) -> bool:
    """Whether ``b`` is ``a`` with exactly one character inserted, deleted or substituted."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))
