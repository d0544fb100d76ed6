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


def test_optimal_activation_ratio_symbolic_matches_numeric():
    from discover.formula import symbol
    from discover.optima import optimal_activation, optimal_activation_numeric

    law = get_law("moe_joint")
    params = {**law.reference, "G": 6.78, "S": 0.315}
    ratio = optimal_activation(law, params)
    assert ratio.free_symbols == {symbol("N")}  # Na*/N = 41.6 N^-0.192, free of D
    for N in (1e9, 1e10, 1e11):
        numeric = optimal_activation_numeric(law, N, params)[0]
        assert float(ratio.subs(symbol("N"), N)) == pytest.approx(numeric, rel=1e-6)
    assert optimal_activation_numeric(law, 1e8, params)[0] == pytest.approx(1.0, abs=1e-6)


def test_compute_optimal_chinchilla_symbolic_matches_numeric_and_hoffmann():
    from discover.optima import C, compute_optimal, compute_optimal_numeric

    law = get_law("chinchilla")
    n_star, d_star = compute_optimal(law)
    c = law.reference
    a_exp = c["beta"] / (c["alpha"] + c["beta"])
    G = (c["alpha"] * c["A"] / (c["beta"] * c["B"])) ** (1 / (c["alpha"] + c["beta"]))
    for budget in (1e20, 1e24):
        n_num, d_num = compute_optimal_numeric(law, budget)
        assert float(n_star.subs(C, budget)) == pytest.approx(n_num[0], rel=1e-6)
        assert float(d_star.subs(C, budget)) == pytest.approx(d_num[0], rel=1e-6)
        assert float(n_star.subs(C, budget)) == pytest.approx(G * (budget / 6) ** a_exp, rel=1e-9)
    with pytest.raises(InputError, match="does not take both N and D"):
        compute_optimal(get_law("moe_powerlaw4"), {"L0": 1, "A": 1, "alpha": 0.1, "beta": 0.1})
