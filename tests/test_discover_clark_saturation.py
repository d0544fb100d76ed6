"""Clark et al.'s saturating expert count keeps E_start < E_max, so the law has no pole at E >= 0.

1/Ê = 1/(E - 1 + (1/E_start - 1/E_max)^-1) + 1/E_max. Clark et al. 2022 define it for
E_start < E_max. With both fitted freely, a fit on the bundled study returned E_start = 7.65 >
E_max = 2.16: the offset went negative and the law had a pole at E = 4.0 (minus 2e-15), the
study's smallest expert count, with a negative R². The law is now fitted with E_max =
E_start * E_ratio, E_ratio > 1.
"""

import numpy as np
import pytest
from scipy.stats import qmc

from discover.export import to_numpy_function
from discover.formula import parse_formula, symbol
from discover.laws import get_law


def saturation(law):
    """Ê as a numpy function of (E, E_start, E_ratio): the law with a = c = d = 0, b = 1."""
    expr = law.expr.xreplace({symbol("a"): 0, symbol("b"): 1, symbol("c"): 0, symbol("d"): 0})
    return to_numpy_function(expr, ("E", "E_start", "E_ratio"))


def test_no_constants_within_the_bounds_give_a_pole_at_any_expert_count():
    law = get_law("clark2022")
    bounds = [law.constants["E_start"], law.constants["E_ratio"]]
    assert all(b.positive and b.lo > 1.0 for b in bounds)
    # Corners of the box and 4096 Sobol points inside it, in log space as the fitter searches.
    lo, hi = np.log([b.lo for b in bounds]), np.log([b.hi for b in bounds])
    inside = qmc.scale(qmc.Sobol(2, seed=0).random(4096), lo, hi)
    corners = np.array([[lo[0], lo[1]], [lo[0], hi[1]], [hi[0], lo[1]], [hi[0], hi[1]]])
    e_start, e_ratio = np.exp(np.vstack([corners, inside])).T[:, :, None]
    E = np.geomspace(1.0, 1e6, 400)[None, :]

    e_hat = saturation(law)(E, e_start, e_ratio)
    assert np.isfinite(e_hat).all() and (e_hat > 0).all()
    # Ê rises from E_start (dense, E = 1) towards E_max = E_start * E_ratio, never past it.
    np.testing.assert_allclose(e_hat[:, 0], e_start[:, 0], rtol=1e-9)
    assert (np.diff(e_hat, axis=1) >= 0).all()
    assert (e_hat <= e_start * e_ratio * (1 + 1e-12)).all()


def test_the_transform_is_clarks_written_with_e_max():
    e_start, e_max = 2.0, 300.0
    E = np.array([1.0, 8.0, 64.0, 512.0, 1e9])
    values = saturation(get_law("clark2022"))(E, e_start, e_max / e_start)
    offset = 1 / (1 / e_start - 1 / e_max)
    np.testing.assert_allclose(values, 1 / (1 / (E - 1 + offset) + 1 / e_max), rtol=1e-12)
    assert values[0] == pytest.approx(e_start) and values[-1] == pytest.approx(e_max, rel=1e-6)


@pytest.fixture(scope="module")
def bundled_fit():
    from discover.data import load_table
    from discover.workflow import run_fit

    outcome = run_fit(law="clark2022")  # the bundled study, as `moelaw fit --law clark2022`
    return outcome.laws[0], load_table()


def test_the_fit_on_the_bundled_study_has_no_pole_near_the_data(bundled_fit):
    report, table = bundled_fit
    p = report.params
    e_max = p["E_start"] * p["E_ratio"]
    assert 1.0 < p["E_start"] < e_max
    # The pole of the transform sits at E = 1 - (1/E_start - 1/E_max)^-1, below zero.
    assert 1.0 - 1.0 / (1.0 / p["E_start"] - 1.0 / e_max) < 0.0
    assert set(table["E"]) >= {4.0, 91.0} and table["E"].min() == 4.0

    # The fitted formula itself, read back as text: finite and positive from the dense model
    # (E = 1) to twice the largest expert count, at every size of the study.
    law = to_numpy_function(parse_formula(report.fitted), ("N", "E"))
    E = np.linspace(1.0, 2 * table["E"].max(), 4001)[None, :]
    N = np.geomspace(table["N"].min(), table["N"].max(), 9)[:, None]
    loss = law(N, E)
    assert np.isfinite(loss).all() and (loss > 0).all()
    assert loss.max() < 2 * table["loss"].max() and loss.min() > table["loss"].min() / 2
