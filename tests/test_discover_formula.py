"""The formula parser builds sympy from a whitelist and refuses everything else."""

import pytest
import sympy

from discover.formula import MAX_DEPTH, parse_formula, symbol
from results.errors import InputError


def test_parses_laws_with_paper_symbols():
    expr = parse_formula("L0 + A/N^alpha + B/D**beta")
    N, D, A, B, L0 = (symbol(n) for n in ("N", "D", "A", "B", "L0"))
    alpha, beta = symbol("alpha"), symbol("beta")
    assert expr == L0 + A / N**alpha + B / D**beta
    assert symbol("N").is_positive and symbol("S").is_nonnegative


def test_caret_is_power_with_power_precedence():
    x, y = symbol("x"), symbol("y")
    assert parse_formula("x + y^2") == x + y**2
    assert parse_formula("2^3^2") == 512  # right-associative, as **
    assert parse_formula("-x^2") == -(x**2)


def test_numbers_functions_and_precision():
    x = symbol("x")
    assert parse_formula("log(x) + exp(2) + sqrt(x) + abs(x)") == (
        sympy.log(x) + sympy.exp(2) + sympy.sqrt(x) + sympy.Abs(x)
    )
    assert parse_formula("max(x, 1)") == sympy.Max(x, 1)
    value = parse_formula("0.12345678901234567")
    assert float(value) == 0.12345678901234567
    assert parse_formula("1.5e-3") == sympy.Float("0.0015")


def test_names_are_restricted_when_given():
    assert parse_formula("N + D", names=["N", "D"]) == symbol("N") + symbol("D")
    with pytest.raises(InputError, match="unknown name 'Q'.*allowed names: D, N"):
        parse_formula("N + Q", names=["N", "D"])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("import os", "not a single expression"),
        ("__import__('os')", "unknown function '__import__'"),
        ("_x + 1", "names starting with '_'"),
        ("x.__class__", "attribute access"),
        ("().__class__.__bases__", "attribute access"),
        ("os.system('ls')", "calls attribute access"),
        ("lambda: 1", "a lambda"),
        ("[x for x in y]", "a comprehension"),
        ("x[0]", "a subscript"),
        ("'text'", "not a number"),
        ("log(x, base=2)", "keyword"),
        ("open(x)", "unknown function 'open'"),
        ("2**1000", "exponents larger than 100"),
        ("x**(10**10)", "exponents larger than 100"),
        ("x % 2", "operator Mod"),
        ("x if y else 1", "conditional expression"),
        ("x < 1", "a comparison"),
        ("1/0", "undefined"),
        ("log", "without calling it"),
        ("x" * 5000, "the limit is"),
        ("log(" * (MAX_DEPTH + 2) + "x" + ")" * (MAX_DEPTH + 2), "nests deeper"),
        ("-" * 1500 + "x", "nest"),
    ],
)
def test_refusals_name_what_was_refused(text, match):
    with pytest.raises(InputError, match=match):
        parse_formula(text)


def test_long_flat_sums_are_not_deep():
    text = " + ".join(f"c{i}*x**{i % 5}" for i in range(60))
    assert len(parse_formula(text).args) == 60


def test_never_evaluates_text(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("eval-based parsing was used")

    monkeypatch.setattr(sympy, "sympify", refuse)
    monkeypatch.setattr("builtins.eval", refuse)
    assert parse_formula("a*N^-0.3 + b") == symbol("a") * symbol("N") ** -0.3 + symbol("b")
