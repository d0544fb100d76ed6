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


PUBLISHED = ("clark2022", "krajewski2024", "ludziejewski2025", "abnar2025")


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_laws_carry_reference_units_and_assumptions(name):
    law = get_law(name)
    assert "et al. 20" in law.doc and "arXiv" in law.doc
    assert set(law.units) == set(law.inputs)
    assert law.assumptions
    assert law.n_constants <= 10


def test_clark_saturation_maps_dense_to_e_start_and_saturates_at_e_max():
    law = get_law("clark2022")
    assert law.n_constants == 6  # the limit of the Clark benchmark split
    # E_max = E_start * E_ratio = 300
    values = {"a": 0.0, "b": 1.0, "c": 0.0, "d": 0.0, "E_start": 2.0, "E_ratio": 150.0, "N": 1e8}
    e_hat = lambda E: float(law.substitute(values).subs({symbol("E"): E, symbol("N"): 1e8}))  # noqa: E731
    assert e_hat(1) == pytest.approx(2.0)
    assert e_hat(1e9) == pytest.approx(300.0, rel=1e-6)
    assert 2.0 < e_hat(8) < 9.0


def test_fix_holds_constants():
    law = get_law("chinchilla").fix(L0=1.69)
    assert "L0" not in law.constants and law.reference == {k: v for k, v in
        get_law("chinchilla").reference.items() if k != "L0"}  # fmt: skip
    with pytest.raises(InputError, match="no constant.*'Q'"):
        get_law("chinchilla").fix(Q=1.0)


def test_an_irreducible_loss_in_a_formula_cannot_go_negative():
    # A formula's L0 used to get the signed default (-100, 100); a fit returned L0 = -1.26
    from discover.laws import IRREDUCIBLE, default_bounds

    law = law_from_expr("L0 + A*N**(-alpha)", ["N"])
    assert law.constants["L0"] == IRREDUCIBLE and IRREDUCIBLE.lo == 0.0
    assert default_bounds("epsilon") == IRREDUCIBLE
    assert default_bounds("A").lo == -100.0
