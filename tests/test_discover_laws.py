"""The law library: the joint MoE law exactly as published, renaming, custom laws."""

import pytest
import sympy

from discover.formula import parse_formula, symbol
from discover.laws import LAWS, Bounds, get_law, law_from_expr
from results.errors import InputError


def test_moe_joint_is_the_published_form():
    law = get_law("moe_joint")
    assert law.n_constants == 12
    assert list(law.constants) == ["e", "f", "m", "n", "k", "h", "a", "alpha", "b", "beta", "c",
                                   "epsilon"]  # fmt: skip
    written = parse_formula(
        "(e*G + f/G + m*S^2 + n*S)*(1/N^alpha + k/Na^alpha + h*Na/N)"
        " + a/N^alpha + b/D^beta + c/Na^alpha + epsilon"
    )
    assert sympy.simplify(law.expr - written) == 0
    assert law.reference["b"] == 27129.05 and law.reference["epsilon"] == 1.8182
    value = law.substitute(law.reference).subs(
        {symbol("N"): 1e9, symbol("Na"): 1e8, symbol("D"): 2e10, symbol("G"): 8, symbol("S"): 0.3}
    )
    assert 2.0 < float(value) < 4.0


def test_registry_and_unknown_law():
    assert set(LAWS) >= {"moe_joint", "chinchilla", "moe_powerlaw4"}
    assert "E" not in get_law("chinchilla").constants  # E is the expert count
    with pytest.raises(InputError, match="unknown law 'nope'; choose one of"):
        get_law("nope")


def test_with_inputs_renames_symbols():
    law = get_law("moe_powerlaw4").with_inputs({"N": "Na"})
    assert law.inputs == ("Na", "E")
    assert symbol("Na") in law.expr.free_symbols and symbol("N") not in law.expr.free_symbols
    with pytest.raises(InputError, match="no input"):
        law.with_inputs({"D": "N"})
    with pytest.raises(InputError, match="one name twice"):
        get_law("moe_joint").with_inputs({"N": "Na"})


def test_law_from_expr_finds_constants_and_default_bounds():
    law = law_from_expr(parse_formula("p0 + p1*N^(-alpha)"), ["N", "D"], name="x")
    assert law.inputs == ("N",)  # D is not used
    assert set(law.constants) == {"p0", "p1", "alpha"}
    assert law.constants["alpha"] == Bounds(0.0, 2.0)
    assert law.positive_inputs == ("N",)
    plain = sympy.Symbol("N") ** 2 + sympy.Symbol("q")
    assert law_from_expr(plain, ["N"]).expr == symbol("N") ** 2 + symbol("q")


def test_bounds_validate_themselves():
    with pytest.raises(InputError, match="lo < hi"):
        Bounds(2.0, 1.0)
    with pytest.raises(InputError, match="needs lo > 0"):
        Bounds(0.0, 1.0, positive=True)
