"""The structured search over scaling-law shapes, engines in the pipeline, and the sympy checks."""

import numpy as np
import pandas as pd
import pytest
import sympy as sp
from test_discover_fit import moe_table

from discover.candidates import Candidate, prepare_candidates
from discover.checks import check_law, compare_laws, same_form
from discover.engines.structured import roles, run_structured, shapes
from discover.fit import FitResult
from discover.laws import get_law, law_from_expr
from discover.optima import optimum
from discover.pipeline import _engines, configuration_weights, discover_law, per_engine_options
from results.errors import InputError


def coupled_table(n_sizes=6, seed=0, noise=1e-4) -> pd.DataFrame:
    """Loss with an expert benefit that fades with size: L0 + A N^-a E^(-b + g log N)."""
    rng = np.random.default_rng(seed)
    N = np.repeat(np.geomspace(1e7, 1e9, n_sizes), 8)
    E = np.tile(2.0 ** np.arange(8), n_sizes)
    loss = 1.6 + 30.0 * N**-0.2 * E ** (-0.25 + 0.008 * np.log(N))
    return pd.DataFrame({"N": N, "E": E, "loss": loss * (1 + noise * rng.standard_normal(len(N)))})


def test_roles_by_name_and_by_values():
    table = pd.DataFrame({"N": [1e6, 1e8], "E": [1, 64], "tokens": [1e3, 1e6], "k": [1, 2],
                          "frac": [0.0, 0.5], "temp": [0.5, 0.9]})  # fmt: skip
    assert roles(table, list(table.columns)) == {"N": "size", "E": "count", "tokens": "size",
                                                "k": "count", "frac": "fraction",
                                                "temp": "other"}  # fmt: skip


def test_shapes_of_size_and_count_include_the_coupled_and_saturating_forms():
    names = [s.name for s in shapes(coupled_table(), ["N", "E"], max_coefficients=6)]
    assert "L0 + A*N^-a*E^(-b+g*log N)" in names
    assert "L0 + A*N^-a*(1+E/K)^-b" in names
    assert "L0 + A*N^-a*E^-b" in names
    assert all(s.n_constants <= 6 for s in shapes(coupled_table(), ["N", "E"], 6))
    counts = [s.n_constants for s in shapes(coupled_table(), ["N", "E"])]
    assert counts == sorted(counts)


def test_shapes_of_the_moe_factors_include_the_joint_law_with_twelve_constants():
    found = {s.name: s for s in shapes(moe_table(n=40), ["N", "Na", "D", "G", "S"])}
    joint = [s for name, s in found.items() if name.startswith("joint")]
    assert len(joint) == 1 and joint[0].n_constants == 12


def test_structured_search_recovers_a_planted_coupled_law():
    table = coupled_table()
    found = run_structured(table, "loss", ["N", "E"], max_coefficients=5, n_starts=128)
    best = max(found, key=lambda c: c.fit_r2)
    assert best.text == "L0 + A*N^-a*E^(-b+g*log N)"
    assert best.fit_r2 > 0.9999
    assert best.values["g"] == pytest.approx(0.008, rel=0.05)
    assert best.values["L0"] == pytest.approx(1.6, rel=0.01)


def test_a_shared_exponent_stays_one_constant_through_the_candidate_pool():
    law = get_law("moe_joint")
    expr = law.substitute(law.reference)
    named = Candidate(expr=expr, length=1, complexity=12, fit_r2=1.0, mse=0.0,
                      engine="structured", form=law.expr, values=dict(law.reference),
                      bounds=dict(law.constants))  # fmt: skip
    bare = Candidate(expr=expr, length=1, complexity=12, fit_r2=1.0, mse=0.0)
    inputs = ("N", "Na", "D", "G", "S")
    (form,) = prepare_candidates([named], inputs, max_constants=12)
    assert form.n_constants == 12
    # Without the named form each of the three alpha's is its own constant: too many
    assert prepare_candidates([bare], inputs, max_constants=12) == []
    values = sorted(form.values.values())
    assert values == pytest.approx(sorted(law.reference.values()))
    # Each constant keeps its own bounds under its new name (k and h must stay positive)
    for name, value in form.values.items():
        original = next(k for k, v in law.reference.items() if v == value)
        assert form.bounds[name] == law.constants[original]


def test_discovery_with_the_structured_engine_finds_the_joint_law_and_its_optima():
    table = moe_table(n=120, seed=1)
    result = discover_law(table, ["N", "Na", "D", "G", "S"], max_constants=12,
                          engines=("structured",))  # fmt: skip
    assert result.best.n_constants == 12
    rel = result.best.predict(table) / table["loss"] - 1
    assert np.max(np.abs(rel)) < 1e-4
    assert optimum(result.best, "G") == pytest.approx(6.778, rel=0.01)
    assert optimum(result.best, "S") == pytest.approx(0.3148, rel=0.01)


def test_engine_choice_is_checked():
    assert _engines(None, None) == ("pyoperon", "structured")
    assert _engines("structured", None) == ("structured",)
    with pytest.raises(InputError, match="not available"):
        _engines(None, ["pyoperon", "eureqa"])
    with pytest.raises(InputError, match="not both"):
        _engines("pyoperon", ["structured"])
    # A flat options dict is pyoperon's, as before engines could be chosen
    assert per_engine_options({"generations": 5}, ("pyoperon", "structured")) == {
        "pyoperon": {"generations": 5},
        "structured": {},
    }
    with pytest.raises(InputError, match="weighting"):
        discover_law(coupled_table(), ["N", "E"], weighting="rows-ish")


def test_configuration_weights_count_each_distinct_input_once():
    rows = pd.DataFrame({"N": [1.0, 1.0, 1.0, 2.0], "E": [4, 4, 4, 4]})
    w = configuration_weights(rows, ["N", "E"])
    assert w == pytest.approx([2 / 3, 2 / 3, 2 / 3, 2.0])
    assert w.sum() == pytest.approx(4.0)


def _fitted(formula, table, inputs, params):
    law = law_from_expr(formula, inputs)
    return FitResult(law, params, 0.0, True, "given", 0)


def test_checks_of_a_law_against_itself_and_against_a_misbehaving_one():
    table = coupled_table()
    good = _fitted("L0 + A*N**(-a)*E**(-b)", table, ["N", "E"],
                   dict(L0=1.6, A=30.0, a=0.2, b=0.1))  # fmt: skip
    report = compare_laws(good, good, table)
    assert report["same_form"] and report["equivalent"]
    assert report["discovered"]["sign"] == {"N": "negative"}
    assert report["discovered"]["limit"] == pytest.approx(1.6)
    assert report["discovered"]["limit_method"] == "symbolic"
    # Loss that rises again past N = 1e10: negative over the data, positive 1000x beyond
    bad = _fitted("L0 + A*N**(-a) + B*N**b", table, ["N"], dict(L0=1.0, A=30.0, a=0.2, B=1e-6,
                                                               b=0.5))  # fmt: skip
    checked = check_law(bad, table)
    assert checked["sign"] == {"N": "mixed"}
    assert checked["limit"] == np.inf
    assert not compare_laws(bad, good, table)["same_form"]


def test_same_form_ignores_the_names_and_values_of_constants():
    N, E = sp.symbols("N E", positive=True)
    a = sp.Symbol("L0") + sp.Symbol("A") * N ** -sp.Symbol("alpha") * E ** -sp.Symbol("beta")
    b = sp.Symbol("c") + sp.Symbol("k") * N ** -sp.Symbol("p") * E ** -sp.Symbol("q")
    assert same_form(a, b, ["N", "E"])
    assert not same_form(a, sp.Symbol("c") + sp.Symbol("k") * N ** -sp.Symbol("p"), ["N", "E"])


def test_joint_law_checks_give_its_optima():
    table = moe_table(n=60)
    law = get_law("moe_joint")
    fit = FitResult(law, dict(law.reference), 0.0, True, "reference", 0)
    checked = check_law(fit, table)
    assert checked["G*"] == pytest.approx(6.7778, rel=1e-3)
    assert checked["S*"] == pytest.approx(0.3148, rel=1e-3)
    assert checked["sign"] == {"N": "negative", "Na": "mixed", "D": "negative"}
    # N, Na, D grown together: every power term vanishes, the ratio term h*Na/N stays
    c, m = law.reference, table.median()
    bracket = c["e"] * m["G"] + c["f"] / m["G"] + c["m"] * m["S"] ** 2 + c["n"] * m["S"]
    expected = c["epsilon"] + bracket * c["h"] * m["Na"] / m["N"]
    assert checked["limit"] == pytest.approx(expected, rel=1e-9)


def test_the_limit_of_a_law_sympy_cannot_take_is_read_off_numerically():
    # L0 + A N^-a (1 + E/K)^(-b + g log N) approaches L0 slowly: probes at N ~ 1e30 had not
    # settled, and the checks printed no limit although it exists.
    from discover.checks import _limit

    law = law_from_expr("L0 + A*N**(-a)*(1 + E/K)**(-b + g*log(N))", ["N", "E"])
    params = dict(L0=1.7353, A=54.717, a=0.21497, K=1 / 0.90168, b=0.047673, g=-0.0029682)
    expr = law.substitute(params)
    value, method = _limit(expr, ["N", "E"], {"N": 3e8, "E": 32.0})
    assert value == pytest.approx(1.7353, rel=1e-6)
