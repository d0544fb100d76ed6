"""Optimal G and S of the joint MoE law, and the general optimum solver."""

import pytest

from discover.formula import parse_formula
from discover.laws import get_law
from discover.optima import optimum
from results.errors import InputError


def test_g_star_and_s_star_of_the_reference_law():
    law = get_law("moe_joint")
    assert optimum(law, "G") == pytest.approx(6.78, abs=1e-2)
    assert optimum(law, "S") == pytest.approx(0.315, abs=1e-3)
    assert optimum(law, "G") == pytest.approx((7.2446 / 0.1577) ** 0.5, rel=1e-12)


@pytest.mark.parametrize("scale", [(1.3e8, 1e10, 3e7), (3.4e9, 5e10, 2.2e9), (1e12, 1e13, 1e10)])
def test_optima_do_not_depend_on_n_d_na(scale):
    law = get_law("moe_joint")
    N, D, Na = scale
    params = {**law.reference, "N": N, "D": D, "Na": Na}
    assert optimum(law, "G", params=params) == pytest.approx(6.7778407270, rel=1e-9)
    assert optimum(law, "S", params=params) == pytest.approx(0.3148458021, rel=1e-9)


def test_no_dependence_or_no_interior_minimum_gives_none():
    assert optimum(get_law("chinchilla"), "G") is None
    assert optimum(parse_formula("-(x - 2)**2"), "x") is None  # a maximum
    assert optimum(get_law("chinchilla"), "N", bounds=(1e6, 1e12)) is None  # monotone


def test_general_cases():
    assert optimum(parse_formula("(x - 2)**2*N + 3"), "x") == pytest.approx(2.0)
    assert optimum(parse_formula("x**3 - 3*x"), "x") == pytest.approx(1.0)
    # No closed form sympy is asked for: scanned numerically within bounds.
    assert optimum(parse_formula("x + x^-0.5"), "x", bounds=(0.01, 10)) == pytest.approx(
        0.5 ** (2 / 3)
    )
    with pytest.raises(InputError, match="pass bounds"):
        optimum(parse_formula("x + x^-0.5"), "x")


def test_optimum_depending_on_other_inputs_asks_for_them():
    with pytest.raises(InputError, match=r"depends on \['N'\]"):
        optimum(parse_formula("(x - N)**2"), "x")
    assert optimum(parse_formula("(x - N)**2"), "x", params={"N": 5.0}) == pytest.approx(5.0)
