"""Fit, discover, check and export scaling laws for Mixture-of-Experts language models.

Symbols and columns. The paper's factors are sympy symbols of the same name and, in every
table, columns of the same name; the measured loss is the column ``loss`` (nats per token, per
byte for byte-level models):

======  ======================================================================  ==============
symbol  meaning                                                                 column
======  ======================================================================  ==============
N       total non-embedding parameters                                          ``N``
Na      activated non-embedding parameters per token                            ``Na``
D       training tokens                                                         ``D``
G       routed experts activated per token (top-k)                              ``G``
S       shared-expert ratio, shared / (shared + activated routed experts)       ``S``
E       routed experts                                                          ``E``
======  ======================================================================  ==============

Because ``E`` is the expert count, an irreducible-loss constant is called ``L0`` (``epsilon`` in the
joint MoE law), never ``E``.

Example::

    from discover import fit_law, get_law, load_table
    table = load_table("runs.parquet")
    fit = fit_law(get_law("moe_joint"), table)
    fit.params, fit.metrics(table), fit.sympy()

    from discover import discover_law
    found = discover_law(table, ["N", "Na", "D", "G", "S"])   # select by inner extrapolation
    found.best.sympy(), found.front

    from discover import LawRegressor                          # the same, scikit-learn style
    model = LawRegressor(max_constants=8).fit(table[["N", "D"]], table["loss"])

The jobs behind the command-line program (load, split, fit or discover, score, save) are in
:mod:`discover.workflow`.
"""

from discover.checks import check_law, compare_laws
from discover.data import check_table, load_table
from discover.estimator import LawRegressor
from discover.export import export_law, to_numpy_function
from discover.fit import FitConvergenceWarning, FitResult, IdentifiabilityWarning, fit_law
from discover.formula import FACTORS, parse_formula, symbol
from discover.groups import fit_grouped
from discover.laws import LAWS, Bounds, Law, get_law, law_from_expr
from discover.metrics import extrapolation_split, leave_largest_out, mape, r2, rmse, scores
from discover.optima import optimum
from discover.pipeline import DiscoveryResult, discover_law

__all__ = [
    "FACTORS",
    "LAWS",
    "Bounds",
    "DiscoveryResult",
    "FitConvergenceWarning",
    "FitResult",
    "IdentifiabilityWarning",
    "Law",
    "LawRegressor",
    "check_law",
    "check_table",
    "compare_laws",
    "discover_law",
    "export_law",
    "extrapolation_split",
    "fit_grouped",
    "fit_law",
    "get_law",
    "law_from_expr",
    "leave_largest_out",
    "load_table",
    "mape",
    "optimum",
    "parse_formula",
    "r2",
    "rmse",
    "scores",
    "to_numpy_function",
    "symbol",
]
