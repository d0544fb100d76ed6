"""Formula strings from users and saved files: a clean refusal or the right expression, fast.

Every string is parsed in a forked worker process that answers within :data:`LIMIT_S` seconds or
is killed, so a hang fails the test instead of freezing it. After each parse the worker reports
whether a canary was touched: a file the hostile strings try to create, and a builtin they try
to set. Executing any of them would trip one.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from pathlib import Path

import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discover.formula import MAX_DEPTH, MAX_LENGTH, parse_formula
from results.errors import InputError

LIMIT_S = 10.0
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _serve(conn, canary: str) -> None:
    """Worker loop: parse each text received, answer (kind, detail, canary tripped)."""
    import builtins

    while True:
        text = conn.recv()
        if text is None:
            return
        try:
            expr = parse_formula(text)
            answer = ("ok", sympy.srepr(expr))
        except InputError as err:
            answer = ("refused", str(err))
        except BaseException as err:  # noqa: BLE001 - any other type is the failure we look for
            answer = ("crash", f"{type(err).__name__}: {err}"[:500])
        tripped = os.path.exists(canary) or hasattr(builtins, "MOELAW_CANARY")
        conn.send((*answer, tripped))


class Parser:
    """A worker process parsing formulas, restarted when one parse overruns the time limit."""

    def __init__(self, canary: Path):
        self.canary = str(canary)
        self._start()

    def _start(self):
        context = multiprocessing.get_context("fork")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, self.canary), daemon=True)
        self.process.start()

    def parse(self, text: str) -> tuple[str, str, bool]:
        self.conn.send(text)
        if self.conn.poll(LIMIT_S):
            return self.conn.recv()
        self.process.kill()
        self.process.join()
        self._start()
        return ("hang", f"no answer within {LIMIT_S} s", False)

    def close(self):
        self.conn.send(None)
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


@pytest.fixture(scope="module")
def parser(tmp_path_factory):
    canary = tmp_path_factory.mktemp("canary") / "tripped"
    worker = Parser(canary)
    yield worker
    worker.close()


def _clean(parser, text: str) -> tuple[str, str]:
    kind, detail, tripped = parser.parse(text)
    assert not tripped, f"parsing {text[:80]!r} executed code"
    assert kind in ("ok", "refused"), f"{text[:80]!r}: {kind}: {detail}"
    if kind == "refused":
        assert detail and "\n" not in detail and len(detail) < 600, detail
    return kind, detail


# ----------------------------------------------------------------------------------------------
# Hostile strings, written out

HOSTILE = [
    "__import__('os').system('touch {canary}')",
    "open('{canary}', 'w').write('x')",
    "__builtins__.__dict__.__setitem__('MOELAW_CANARY', 1)",
    "setattr(__builtins__, 'MOELAW_CANARY', 1)",
    "().__class__.__bases__[0].__subclasses__()",
    "N.__class__.__mro__[1].__subclasses__()",
    "A.__globals__",
    "(lambda: __import__('os').system('touch {canary}'))()",
    "[x for x in (1, 2)]",
    "exec('import os')",
    "eval('1+1')",
    "compile('1', 'f', 'eval')",
    "f'{{N}}'",
    "'N' + 'D'",
    "b'N'",
    "(x := 3)",
    "N if D else G",
    "N < D",
    "N and D",
    "N[0]",
    "N.real",
    "log(N, base=2)",
    "log(*N)",
    "sympy.sympify('N')",
    "_N + 1",
    "__name__",
    "import os",
    "N; import os",
    "N\nimport os",
    "lambda N: N",
    "yield N",
    "await N",
    "2 ** 2 ** 2 ** 2 ** 2",
    "10 ** 10 ** 10",
    "9 ** 999999",
    "N ** 1e300",
    "N ** -1000",
    "1e999",
    "-1e999 + N",
    "1 / 0",
    "N / (D - D)",
    "exp(exp(exp(exp(exp(1000)))))",
    "2 ** exp(exp(100))",
    "(" * 200 + "N" + ")" * 200,
    "(" * 5000 + "N" + ")" * 5000,
    "-" * 3999 + "N",
    "+".join(["N"] * 1999),
    "*".join(["N"] * 1999),
    "**".join(["2"] * 1300),
    "min(" * 40 + "N" + ", D)" * 40,
    "log(" * 40 + "N" + ")" * 40,
    "N" * (MAX_LENGTH + 1),
    "Ｎ + Ｄ",
    "α + N",
    "N\u200b + D",
    "N + D\x00",
    "\ufeffN",
    "",
    "   ",
    "#",
    "N # comment",
    "...",
    "None",
    "True + N",
    "1j * N",
    "N @ D",
    "N ^ D ^ 2",
    "N // D",
    "N % D",
    "~N",
    "not N",
    "min(N, log(N - N))",
    "max(D, zoo)",
]


def test_hostile_strings_are_refused_cleanly_and_run_nothing(parser):
    results = {}
    for template in HOSTILE:
        text = template.replace("{canary}", parser.canary)
        results[template[:60]] = _clean(parser, text)[0]

    # What must be refused (code, attributes, huge work) and what is a plain formula.
    must_refuse = [t for t in HOSTILE[:32] if not t.startswith("log(N, base")] + [
        "10 ** 10 ** 10",
        "9 ** 999999",
        "N ** 1e300",
        "N ** -1000",
        "1e999",
        "1 / 0",
        "(" * 5000 + "N" + ")" * 5000,
        "-" * 3999 + "N",
        "N" * (MAX_LENGTH + 1),
        "",
        "N @ D",
        "~N",
        "N # comment",
        "*".join(["N"] * 1999),
        "min(N, log(N - N))",
    ]
    for template in must_refuse:
        assert results[template[:60]] == "refused", template[:60]
    assert parse_formula("N ^ D ^ 2") == sympy.Symbol("N", positive=True) ** (
        sympy.Symbol("D", positive=True) ** 2
    )
    assert results["+".join(["N"] * 1999)[:60]] == "ok"


# ----------------------------------------------------------------------------------------------
# Random text: any string is refused cleanly or parsed, never a crash, hang or execution

_ALPHABET = "NDGSaE0123456789.e+-*/^()_ ,lgxpqrtminx:[]{}'\"=<>!&|@~%#\\\nα"


@settings(max_examples=400, **SETTINGS)
@given(text=st.one_of(st.text(max_size=80), st.text(alphabet=_ALPHABET, max_size=120)))
def test_random_text_is_parsed_or_refused_cleanly(parser, text):
    _clean(parser, text)


_TOKENS = ["N", "D", "A", "alpha", "2", "1e308", "0", "(", ")", "**", "^", "*", "/", "-", "+"]
_TOKENS += ["log(", "exp(", "min(", ",", "9**99", "__class__", ".", "lambda", ":", "[", "]"]


@settings(max_examples=300, **SETTINGS)
@given(tokens=st.lists(st.sampled_from(_TOKENS), max_size=60))
def test_token_soup_is_parsed_or_refused_cleanly(parser, tokens):
    _clean(parser, " ".join(tokens))


# ----------------------------------------------------------------------------------------------
# Well-formed formulas: the expression is the one written


def _leaf():
    names = st.sampled_from(["N", "D", "A", "alpha", "L0"])
    numbers = st.floats(min_value=0.01, max_value=50.0).map(lambda x: float(f"{x:.4g}"))
    return st.one_of(names, numbers)


def _node(children):
    binary = st.tuples(st.sampled_from(["+", "-", "*", "/", "**"]), children, children)
    call = st.tuples(st.sampled_from(["log", "exp", "sqrt", "abs"]), children)
    pair = st.tuples(st.sampled_from(["min", "max"]), children, children)
    return st.one_of(binary, call, pair)


trees = st.recursive(_leaf(), _node, max_leaves=12)
VALUES = {"N": 3.5, "D": 1.25, "A": 0.75, "alpha": 0.5, "L0": 2.0}


def render(tree, power: str) -> str:
    if not isinstance(tree, tuple):
        return repr(tree) if isinstance(tree, float) else tree
    if len(tree) == 2:
        return f"{tree[0]}({render(tree[1], power)})"
    if tree[0] in ("min", "max"):
        return f"{tree[0]}({render(tree[1], power)}, {render(tree[2], power)})"
    op = power if tree[0] == "**" else tree[0]
    return f"({render(tree[1], power)} {op} {render(tree[2], power)})"


def value(tree) -> float:
    """The tree evaluated with Python floats (math), raising on any domain problem."""
    if not isinstance(tree, tuple):
        return tree if isinstance(tree, float) else VALUES[tree]
    if len(tree) == 2:
        x = value(tree[1])
        return {"log": math.log, "exp": math.exp, "sqrt": math.sqrt, "abs": abs}[tree[0]](x)
    a, b = value(tree[1]), value(tree[2])
    if tree[0] in ("min", "max"):
        return {"min": min, "max": max}[tree[0]](a, b)
    if tree[0] == "**":
        if a < 0 or abs(b) > 100:
            raise ValueError("outside the real domain or the exponent limit")
        return a**b
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else math.inf}[tree[0]]


def _depth(tree) -> int:
    return 0 if not isinstance(tree, tuple) else 1 + max(_depth(t) for t in tree[1:])


@settings(max_examples=200, **SETTINGS)
@given(tree=trees, power=st.sampled_from(["**", "^"]))
def test_generated_formulas_mean_what_they_say(tree, power):
    text = render(tree, power)
    try:
        expected = value(tree)
    except (ValueError, OverflowError, ZeroDivisionError):
        expected = None
    try:
        expr = parse_formula(text)
    except InputError as err:
        # Refused only for an undefined expression or an exponent over the limit.
        assert "undefined" in str(err) or "power" in str(err), (text, str(err))
        return
    assert _depth(tree) <= MAX_DEPTH
    if expected is None or not math.isfinite(expected) or abs(expected) > 1e12:
        return
    got = complex(
        expr.subs({sympy.Symbol(k, real=True): v for k, v in VALUES.items()})
        .subs({sympy.Symbol(k, positive=True): v for k, v in VALUES.items()})
        .evalf(30)
    )
    assert got.imag == pytest.approx(0.0, abs=1e-9 * max(1.0, abs(expected)))
    assert got.real == pytest.approx(expected, rel=1e-9, abs=1e-9), text
