"""The library of scaling laws: each a sympy expression, its inputs, and bounds for its constants.

Inputs are the paper's factors (``N, Na, D, G, S, E``; see :mod:`discover`), constants are every
other symbol of the expression. A constant's :class:`Bounds` say where the fitter searches for it
and how: ``positive=True`` constants are searched and fitted in log space, the others on a linear
scale.

Units, for every law below: ``N`` and ``Na`` count non-embedding parameters, ``D`` counts training
tokens, ``G`` and ``E`` count experts, ``S`` is a ratio, and the loss is in nats per token (per
byte for
the byte-level models moelaw trains).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import sympy

from discover.formula import canonical, parse_formula, symbol
from results.errors import InputError


@dataclass(frozen=True)
class Bounds:
    """Search interval of one constant.

    Parameters
    ----------
    lo, hi : float
        Lower and upper bound, ``lo < hi``.
    positive : bool, default False
        Search and fit the constant in log space; then ``0 < lo`` is required.
    """

    lo: float
    hi: float
    positive: bool = False

    def __post_init__(self):
        if not self.lo < self.hi:
            raise InputError(
                f"bounds need lo < hi, got lo={self.lo}, hi={self.hi}; put the smaller number "
                "first (--bounds NAME=LO:HI on the command line, Bounds(lo, hi) in Python)"
            )
        if self.positive and self.lo <= 0:
            raise InputError(
                f"a positive (log-space) constant needs lo > 0, got lo={self.lo}; "
                "give a positive lo, or fit the constant in linear space if it may be zero or "
                "negative (drop ':log' from --bounds on the command line, positive=False in Python)"
            )


_UNITS = {
    "N": "non-embedding parameters",
    "Na": "activated non-embedding parameters per token",
    "D": "training tokens",
    "G": "routed experts activated per token (top-k)",
    "S": "shared-expert ratio, shared / (shared + activated routed)",
    "E": "routed experts",
}


@dataclass(frozen=True)
class Law:
    """A scaling law: ``loss = expr(inputs; constants)``.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"chinchilla"``.
    expr : sympy.Expr
        The law, built from :func:`discover.formula.symbol` symbols.
    inputs : tuple of str
        Names of the input symbols (data columns by default).
    constants : dict of str to Bounds
        The constants to fit, in a fixed order, with their search bounds.
    reference : dict or None
        Published values of the constants, if any.
    doc : str
        What the law is and where it comes from.
    units : dict of str to str
        Unit of each input.
    assumptions : tuple of str
        What the law assumes about the inputs.
    """

    name: str
    expr: sympy.Expr
    inputs: tuple[str, ...]
    constants: dict[str, Bounds]
    reference: dict | None = None
    doc: str = ""
    units: dict[str, str] = field(default_factory=dict)
    assumptions: tuple[str, ...] = ()

    def __post_init__(self):
        free = {s.name for s in self.expr.free_symbols}
        declared = set(self.inputs) | set(self.constants)
        if free != declared:
            raise InputError(
                f"law {self.name!r}: its expression uses {sorted(free)} but inputs + constants are "
                f"{sorted(declared)}; declare every symbol exactly once"
            )
        if set(self.inputs) & set(self.constants):
            raise InputError(
                f"law {self.name!r}: {sorted(set(self.inputs) & set(self.constants))} "
                "are both inputs and constants"
            )

    @property
    def n_constants(self) -> int:
        """Number of fitted constants."""
        return len(self.constants)

    @property
    def symbols(self) -> dict[str, sympy.Symbol]:
        """Every symbol of the law by name, inputs first."""
        return {name: symbol(name) for name in (*self.inputs, *self.constants)}

    @property
    def positive_inputs(self) -> tuple[str, ...]:
        """Inputs that appear under a logarithm or as the base of a non-integer power."""
        return tuple(n for n in self.inputs if _needs_positive(self.expr, symbol(n)))

    def with_inputs(self, mapping: dict[str, str]) -> Law:
        """Return the law with input symbols renamed, e.g. ``{"N": "Na"}`` for activated parameters.

        The expression itself is rewritten, so the renamed law prints, exports and fits with the new
        names. To read an input from a differently named column without renaming it, pass
        ``columns=`` to :func:`discover.fit.fit_law` instead.
        """
        unknown = set(mapping) - set(self.inputs)
        if unknown:
            raise InputError(
                f"law {self.name!r} has no input(s) {sorted(unknown)}; "
                f"its inputs are {list(self.inputs)}"
            )
        renamed = tuple(mapping.get(n, n) for n in self.inputs)
        if len(set(renamed)) != len(renamed) or set(renamed) & set(self.constants):
            raise InputError(
                f"renaming {mapping} makes law {self.name!r} use one name twice ({list(renamed)}); "
                "choose names not already used by the law"
            )
        expr = self.expr.xreplace({symbol(o): symbol(n) for o, n in mapping.items()})
        units = {mapping.get(k, k): v for k, v in self.units.items()}
        return dataclasses.replace(self, expr=expr, inputs=renamed, units=units)

    def with_bounds(self, **bounds: Bounds) -> Law:
        """Return the law with the bounds of some constants replaced."""
        unknown = set(bounds) - set(self.constants)
        if unknown:
            raise InputError(
                f"law {self.name!r} has no constant(s) {sorted(unknown)}; "
                f"its constants are {list(self.constants)}"
            )
        return dataclasses.replace(self, constants={**self.constants, **bounds})

    def fix(self, **values: float) -> Law:
        """Return the law with some constants held at given values (no longer fitted).

        The cure for a constant the data cannot identify: ``law.fix(beta=0.3)``.
        """
        unknown = set(values) - set(self.constants)
        if unknown:
            raise InputError(
                f"law {self.name!r} has no constant(s) {sorted(unknown)} to fix; "
                f"its constants are {list(self.constants)}"
            )
        expr = self.expr.xreplace({symbol(k): sympy.Float(float(v), 17) for k, v in values.items()})
        constants = {k: b for k, b in self.constants.items() if k not in values}
        reference = None if self.reference is None else {
            k: v for k, v in self.reference.items() if k in constants}  # fmt: skip
        return dataclasses.replace(self, expr=expr, constants=constants, reference=reference)

    def substitute(self, params: dict[str, float]) -> sympy.Expr:
        """The expression with constants replaced by full-precision numbers."""
        values = {symbol(k): sympy.Float(float(v), 17) for k, v in params.items()}
        return self.expr.xreplace(values)


def _needs_positive(expr: sympy.Expr, x: sympy.Symbol) -> bool:
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.log) and node.has(x):
            return True
        if isinstance(node, sympy.Pow) and node.base.has(x) and not node.exp.is_integer:
            return True
    return False


# Default search bounds by the role a constant plays in a law.
EXPONENT = Bounds(0.0, 2.0)
SCALE = Bounds(1e-4, 1e8, positive=True)
IRREDUCIBLE = Bounds(0.0, 10.0)
SIGNED = Bounds(-100.0, 100.0)
_EXPONENT_NAMES = {"alpha", "beta", "gamma", "delta", "kappa", "nu", "rho", "tau", "p", "q"}
#: Names of an irreducible loss: a loss floor cannot be negative.
IRREDUCIBLE_NAMES = {"L0", "Linf", "L_inf", "epsilon"}


def default_bounds(name: str) -> Bounds:
    """Bounds for a constant of a custom law: exponents by their Greek name (0 to 2), an
    irreducible loss by its name (``L0``, ``Linf``, ``L_inf``, ``epsilon``: 0 to 10), else signed
    (-100 to 100)."""
    if name in _EXPONENT_NAMES or name.rstrip("0123456789_") in _EXPONENT_NAMES:
        return EXPONENT
    if name in IRREDUCIBLE_NAMES:
        return IRREDUCIBLE
    return SIGNED


def law_from_expr(expr, inputs, name="custom", bounds=None, doc="") -> Law:
    """Make a :class:`Law` from an expression; its constants are the free symbols not in inputs.

    Parameters
    ----------
    expr : sympy.Expr or str
        The law. Text is read with :func:`discover.formula.parse_formula` (never ``eval``).
    inputs : sequence of str
        Names of the input symbols.
    name : str, default "custom"
    bounds : dict of str to Bounds, optional
        Bounds for some or all constants; the rest get :func:`default_bounds`.
    doc : str, optional

    Returns
    -------
    Law
    """
    expr = parse_formula(expr) if isinstance(expr, str) else canonical(sympy.sympify(expr))
    inputs = tuple(inputs)
    names = sorted(s.name for s in expr.free_symbols if s.name not in inputs)
    bounds = dict(bounds or {})
    unknown = set(bounds) - set(names)
    if unknown:
        raise InputError(f"bounds given for {sorted(unknown)}, which are not constants of {expr}")
    used = {s.name for s in expr.free_symbols}
    inputs = tuple(n for n in inputs if n in used)
    constants = {n: bounds.get(n, default_bounds(n)) for n in names}
    units = {n: _UNITS[n] for n in inputs if n in _UNITS}
    return Law(name, expr, inputs, constants, None, doc, units)


def _moe_joint() -> Law:
    expr = parse_formula(
        "(e*G + f/G + m*S**2 + n*S) * (N**(-alpha) + k*Na**(-alpha) + h*Na/N)"
        " + a*N**(-alpha) + b*D**(-beta) + c*Na**(-alpha) + epsilon"
    )
    reference = {
        "e": 0.1577, "f": 7.2446, "m": 5.1395, "n": -3.2363, "k": 0.0013, "h": 0.0450,
        "a": 38.051, "alpha": 0.2383, "b": 27129.05, "beta": 0.4694, "c": 31.096, "epsilon": 1.8182,
    }  # fmt: skip
    constants = {
        "e": Bounds(1e-4, 1e2, positive=True),
        "f": Bounds(1e-3, 1e3, positive=True),
        "m": SIGNED,
        "n": SIGNED,
        "k": Bounds(1e-6, 1e2, positive=True),
        "h": Bounds(1e-6, 1e2, positive=True),
        "a": SCALE,
        "alpha": EXPONENT,
        "b": SCALE,
        "beta": EXPONENT,
        "c": SCALE,
        "epsilon": IRREDUCIBLE,
    }
    doc = (
        "Joint MoE scaling law of Zhao et al. 2025, 'Towards a Comprehensive Scaling Law of "
        "Mixture-of-Experts' (arXiv 2509.23678), coefficients from its appendix as quoted by a "
        "secondary source. G and S enter only through the first bracket, "
        "so the optimal G* = sqrt(f/e) "
        "and S* = -n/(2m) do not depend on N, Na or D."
    )
    assumptions = ("Na <= N", "1 <= G", "0 <= S < 1", "fitted on N 1.3e8-3.4e9, D 1e10-5e10")
    return Law("moe_joint", expr, ("N", "D", "Na", "G", "S"), constants, reference, doc,
               {k: _UNITS[k] for k in ("N", "D", "Na", "G", "S")}, assumptions)  # fmt: skip


def _chinchilla() -> Law:
    expr = parse_formula("L0 + A/N**alpha + B/D**beta")
    constants = {"L0": IRREDUCIBLE, "A": SCALE, "alpha": EXPONENT, "B": SCALE, "beta": EXPONENT}
    reference = {"L0": 1.69, "A": 406.4, "alpha": 0.34, "B": 410.7, "beta": 0.28}
    doc = (
        "Chinchilla law of Hoffmann et al. 2022 (arXiv 2203.15556), L = E + A/N^alpha + B/D^beta. "
        "The irreducible loss is named L0 here because E is the routed-expert count. "
        "Reference values are "
        "the paper's fit (its N counts parameters with embeddings, D training tokens)."
    )
    units = {"N": _UNITS["N"], "D": _UNITS["D"]}
    return Law("chinchilla", expr, ("N", "D"), constants, reference, doc, units)


def _moe_powerlaw4() -> Law:
    expr = parse_formula("L0 + A * N**(-alpha) * E**(-beta)")
    constants = {"L0": IRREDUCIBLE, "A": SCALE, "alpha": EXPONENT, "beta": EXPONENT}
    doc = (
        "Four-constant routed-model law L = L0 + A N^-alpha E^-beta, a bilinear log-space form "
        "in the spirit of Clark et al. 2022 (arXiv 2202.01169). "
        "There N is the dense (activated) model size: "
        "apply it with law.with_inputs({'N': 'Na'}) or fit_law(..., columns={'N': 'Na'})."
    )
    assumptions = ("no saturation in E", "fixed training tokens")
    units = {"N": _UNITS["N"], "E": _UNITS["E"]}
    return Law("moe_powerlaw4", expr, ("N", "E"), constants, None, doc, units, assumptions)


def _saturating_experts(E: str, start: str, cap: str) -> str:
    """Clark et al.'s saturating expert count: 1/Ê = 1/(E - 1 + (1/E_start - 1/E_max)^-1) + 1/E_max.

    Ê equals ``E_start`` at ``E = 1`` (dense), grows about linearly in ``E`` after that and
    approaches ``E_max`` as ``E`` grows without bound.
    """
    return f"1/(1/({E} - 1 + 1/(1/{start} - 1/{cap})) + 1/{cap})"


def _clark2022() -> Law:
    # Clark et al. define the transform for E_start < E_max. Fitting E_max directly lets a fit
    # cross to E_start > E_max, where the offset (1/E_start - 1/E_max)^-1 is negative and the
    # law has a pole at E = 1 - offset, inside the data (a fit on the bundled study put it at
    # E = 4, its smallest expert count). E_max = E_start * E_ratio with E_ratio > 1 keeps the
    # published form and rules that out: the offset then exceeds E_start > 1, so the pole lies
    # at E < 0, away from any expert count.
    Ehat = _saturating_experts("E", "E_start", "(E_start*E_ratio)")
    expr = parse_formula(f"exp(a*log(N) + b*log({Ehat}) + c*log(N)*log({Ehat}) + d)")
    constants = {
        "a": Bounds(-2.0, 2.0),
        "b": Bounds(-2.0, 2.0),
        "c": Bounds(-1.0, 1.0),
        "d": Bounds(-20.0, 20.0),
        "E_start": Bounds(1.0 + 1e-6, 50.0, positive=True),
        "E_ratio": Bounds(1.0 + 1e-6, 1e5, positive=True),
    }
    doc = (
        "Clark et al. 2022, 'Unified Scaling Laws for Routed Language Models' (ICML, arXiv "
        "2202.01169), eq. for routed models with a saturating expert count: "
        "log L = a log N + b log Ê + c log N log Ê + d, "
        "1/Ê = 1/(E - 1 + (1/E_start - 1/E_max)^-1) + 1/E_max. "
        "N is the parameter count used per token (the dense model that is routed: Clark's "
        "dense_parameter_count, moelaw's Na; fit with columns={'N': 'Na'}), E the routed expert "
        "count (1 = dense). Natural logs; the "
        "paper writes log10, which rescales c and d only. All six constants are fitted, within the "
        "6-constant limit of the Clark benchmark split: the four of the bilinear form and both "
        "ends of the saturation, E_start (where it begins, > 1) and E_max (where it saturates). "
        "E_max is fitted as E_max = E_start * E_ratio with E_ratio > 1, so E_start < E_max holds "
        "as the paper requires, and the transform has no pole at any E >= 0 (with E_start > "
        "E_max it would have one at E = 1 - (1/E_start - 1/E_max)^-1, which can fall inside the "
        "data). "
        "Written with E - E_start in place of E - 1, the transform spans the same family (only "
        "the offset E_start - 1 is absorbed), so fits and scores are identical; checked on the "
        "Clark split. "
        "Assumes fixed training tokens (all Clark runs: ~250k steps)."
    )
    assumptions = ("E >= 1", "E_start > 1", "E_max = E_start * E_ratio > E_start",
                   "fixed training tokens")  # fmt: skip
    units = {"N": _UNITS["Na"], "E": _UNITS["E"]}
    return Law("clark2022", expr, ("N", "E"), constants, None, doc, units, assumptions)


def _krajewski2024() -> Law:
    expr = parse_formula("L0 + (g/granularity**gamma + A)/N**alpha + B/D**beta")
    constants = {"L0": IRREDUCIBLE, "g": SCALE, "gamma": EXPONENT, "A": SCALE,
                 "alpha": EXPONENT, "B": SCALE, "beta": EXPONENT}  # fmt: skip
    doc = (
        "Krajewski et al. 2024, 'Scaling Laws for Fine-Grained Mixture of Experts' (arXiv "
        "2402.07871): L = c + (g/G^gamma + a)/N^alpha + b/D^beta with G their granularity, the "
        "ratio of the dense feed-forward width to one expert's width. Granularity is not moelaw's "
        "G (experts per token), so the input is named 'granularity' (a column of that name). "
        "N counts non-embedding parameters of the active model, D training tokens; c is L0 here."
    )
    units = {"N": _UNITS["N"], "D": _UNITS["D"],
             "granularity": "dense FFN width / expert FFN width"}  # fmt: skip
    assumptions = ("expansion rate (total / active experts) held fixed", "granularity >= 1")
    return Law("krajewski2024", expr, ("N", "D", "granularity"), constants, None, doc, units,
               assumptions)  # fmt: skip


def _ludziejewski2025() -> Law:
    expr = parse_formula(
        "L0 + A*E**delta*Na**(-(alpha + gamma*log(E))) + B*E**omega*D**(-(beta + zeta*log(E)))"
    )
    constants = {"L0": IRREDUCIBLE, "A": SCALE, "delta": SIGNED, "alpha": EXPONENT,
                 "gamma": Bounds(-1.0, 1.0), "B": SCALE, "omega": SIGNED, "beta": EXPONENT,
                 "zeta": Bounds(-1.0, 1.0)}  # fmt: skip
    doc = (
        "Ludziejewski et al. 2025, 'Joint MoE Scaling Laws: Mixture of Experts Can Be Memory "
        "Efficient' (ICML, arXiv 2502.05172): L = a Ê^delta Na^-(alpha + gamma ln Ê) "
        "+ b Ê^omega D^-(beta + zeta ln Ê) + c, with Na the active parameters, D training tokens "
        "and Ê the expert count. Assumption: Ê = E here; the paper passes E through a "
        "saturating transform with constants of its own, which would take this law past nine "
        "constants. At E = 1 it is Chinchilla in Na and D. c is L0 here."
    )
    units = {"Na": _UNITS["Na"], "D": _UNITS["D"], "E": _UNITS["E"]}
    assumptions = ("E >= 1 (1 = dense)", "Ê = E (no saturation)")
    return Law("ludziejewski2025", expr, ("Na", "D", "E"), constants, None, doc, units,
               assumptions)  # fmt: skip


def _abnar2025() -> Law:
    expr = parse_formula(
        "L0 + A/N**alpha + B/D**beta + C*(1 - sparsity)**lam + F*(1 - sparsity)**delta*N**gamma"
    )
    constants = {"L0": IRREDUCIBLE, "A": SCALE, "alpha": EXPONENT, "B": SCALE, "beta": EXPONENT,
                 "C": SIGNED, "lam": EXPONENT, "F": SIGNED, "delta": EXPONENT,
                 "gamma": Bounds(-1.0, 1.0)}  # fmt: skip
    doc = (
        "Abnar et al. 2025, 'Parameters vs FLOPs: Scaling Laws for Optimal Sparsity for "
        "Mixture-of-Experts Language Models' (ICML, arXiv 2501.12370): Chinchilla in total "
        "parameters N and tokens D plus sparsity terms, L = a/N^alpha + b/D^beta "
        "+ c (1 - S)^lambda + d (1 - S)^delta N^gamma + e, with S their sparsity, the fraction of "
        "expert parameters inactive per token (1 - Na/N when only experts are sparse). Their S is "
        "not moelaw's S (shared-expert ratio), so the input is named 'sparsity'. e is L0, d is F "
        "here. The form is as we read the paper; check it against the paper before quoting "
        "fitted values as theirs."
    )
    units = {"N": _UNITS["N"], "D": _UNITS["D"],
             "sparsity": "inactive / total expert parameters, in [0, 1)"}  # fmt: skip
    assumptions = ("0 <= sparsity < 1", "N counts all experts")
    return Law("abnar2025", expr, ("N", "D", "sparsity"), constants, None, doc, units,
               assumptions)  # fmt: skip


_REGISTRY = {
    "moe_joint": _moe_joint,
    "chinchilla": _chinchilla,
    "moe_powerlaw4": _moe_powerlaw4,
    "clark2022": _clark2022,
    "krajewski2024": _krajewski2024,
    "ludziejewski2025": _ludziejewski2025,
    "abnar2025": _abnar2025,
}
LAWS = tuple(_REGISTRY)
"""Names of the library laws."""


def get_law(name: str) -> Law:
    """Return the library law called ``name`` (one of :data:`LAWS`)."""
    if name not in _REGISTRY:
        raise InputError(f"unknown law {name!r}; choose one of {', '.join(LAWS)}")
    return _REGISTRY[name]()


# --- Laws of the SLDBench tasks (discover.tasks): vocabulary, fine-tuning, data mixtures ---------


def _tao2024_vocab() -> Law:
    """Vocabulary law of Tao et al. 2024, written for the negated unigram-normalised loss."""
    expr = parse_formula("E0 - A1*N_nv**(-alpha1) - A2*N_v**(-alpha2) - B*H**(-beta)")
    constants = {"E0": IRREDUCIBLE, "A1": SCALE, "alpha1": EXPONENT, "A2": SCALE,
                 "alpha2": EXPONENT, "B": SCALE, "beta": EXPONENT}  # fmt: skip
    doc = (
        "Tao et al. 2024, 'Scaling Laws with Vocabulary: Larger Models Deserve Larger "
        "Vocabularies' (NeurIPS, arXiv 2407.13623), eq. of the unigram-normalised loss "
        "L_u = -E + A1/N_nv^alpha1 + A2/N_v^alpha2 + B/H^beta, with N_nv the non-vocabulary "
        "parameters, N_v = V d the vocabulary parameters (vocabulary size V times embedding "
        "width d) and H the training characters. L_u is the loss minus that of a unigram model "
        "of the same tokenizer, so it is negative; moelaw's fitter works on positive losses, so "
        "this law predicts -L_u (column neg_Lu of discover.tasks.load_vocab): both sides "
        "negated, the constants are Tao et al.'s, E is named E0 (E is the expert count). Seven "
        "constants."
    )
    units = {"N_nv": "non-vocabulary parameters", "N_v": "vocabulary parameters, V * d",
             "H": "training characters"}  # fmt: skip
    assumptions = ("target is -L_u > 0 (nats per token better than a unigram model)",
                   "the three terms add independently", "N_v = V * d")  # fmt: skip
    return Law("tao2024_vocab", expr, ("N_nv", "N_v", "H"), constants, None, doc, units,
               assumptions)  # fmt: skip


def _lin2024_rectified() -> Law:
    """Rectified fine-tuning law of Lin et al. 2024, for one pretrained model and one dataset."""
    expr = parse_formula("B/(D_l + D_ft**beta) + L0")
    constants = {"B": SCALE, "D_l": Bounds(1e-6, 1e8, positive=True), "beta": EXPONENT,
                 "L0": IRREDUCIBLE}  # fmt: skip
    doc = (
        "Lin et al. 2024, 'Selecting Large Language Model to Fine-tune via Rectified Scaling "
        "Law' (ICML, arXiv 2402.02314): L(D) = B/(D_l + D^beta) + E, the fine-tuning loss after "
        "D fine-tuning examples. D_l is the 'pre-learned data size': how much fine-tuning data "
        "the pretrained model is already worth, in units of D^beta; it bends the curve into a "
        "flat pre-power phase at small D and makes L(0) = B/D_l + E finite. The input is D_ft "
        "(fine-tuning examples, not moelaw's D, pretraining tokens); E is named L0 (E is the "
        "expert count). Four constants, all of them per pretrained model and dataset: fit one "
        "curve at a time, or with discover.groups.fit_grouped(..., by='curve', per_group=all)."
    )
    units = {"D_ft": "fine-tuning examples"}
    assumptions = ("one pretrained model and one fine-tuning dataset", "D_ft > 0")
    return Law("lin2024_rectified", expr, ("D_ft",), constants, None, doc, units, assumptions)


def _ye2024_mixing() -> Law:
    """Exponential data-mixing law of Ye et al. 2024 for one domain's loss, five domains."""
    expr = parse_formula("c + k*exp(t1*r1 + t2*r2 + t3*r3 + t4*r4)")
    signed = Bounds(-20.0, 20.0)
    constants = {"c": IRREDUCIBLE, "k": Bounds(1e-6, 1e3, positive=True), "t1": signed,
                 "t2": signed, "t3": signed, "t4": signed}  # fmt: skip
    doc = (
        "Ye et al. 2024, 'Data Mixing Laws: Optimizing Data Mixtures by Predicting Language "
        "Modeling Performance' (ICLR 2025, arXiv 2403.16952), the law of the validation loss on "
        "domain i of a model trained on mixture proportions r_1..r_M: "
        "L_i(r) = c_i + k_i exp(sum_j t_ij r_j), one set of constants per target domain i (and "
        "per model size and training length). Here M = 5 and the proportions sum to 1, so "
        "t_i5 is not identifiable apart from k_i: exp(sum_j t_ij r_j) = exp(t_i5) "
        "exp(sum_{j<5} (t_ij - t_i5) r_j). The law is written in the four free proportions "
        "r1..r4 with t_j standing for t_ij - t_i5 and k for k_i exp(t_i5): the same family, six "
        "constants instead of seven (the seventh is a flat direction of the fit)."
    )
    units = {f"r{j}": f"proportion of domain {j} in the training mixture" for j in range(1, 5)}
    assumptions = ("r1 + ... + r5 = 1 (r5 implied)", "one model size and training length",
                   "one target domain per fit")  # fmt: skip
    return Law("ye2024_mixing", expr, ("r1", "r2", "r3", "r4"), constants, None, doc, units,
               assumptions)  # fmt: skip


_REGISTRY.update({
    "tao2024_vocab": _tao2024_vocab,
    "lin2024_rectified": _lin2024_rectified,
    "ye2024_mixing": _ye2024_mixing,
})  # fmt: skip
LAWS = tuple(_REGISTRY)
