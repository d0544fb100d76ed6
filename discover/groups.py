"""One law, several groups of runs: per-group constants for a chosen subset, shared for the rest.

Runs often come in families (router types, datasets, tokenisers) that share how loss scales but
not its level. :func:`fit_grouped` fits one form to all of them at once: each constant named in
``per_group`` gets one value per group, the others one value for all.

How: for groups ``0..k-1`` of column ``by``, a per-group constant ``c`` becomes
``c_g0 * in_<by>_0 + ... + c_g(k-1) * in_<by>_(k-1)``, where ``in_<by>_j`` is 1 on the rows of
group ``j`` and 0 elsewhere. The grouped law is an ordinary :class:`~discover.laws.Law`, so the
fitter, its convergence and identifiability checks and the bootstrap all apply unchanged;
the indicator columns are added to any table the fit predicts on.

Example::

    fit = fit_grouped(get_law("moe_powerlaw4"), table, by="router", per_group=["L0"])
    fit.params["L0_g0"], fit.groups["levels"]
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import sympy

from discover.formula import symbol
from discover.laws import Law
from results.errors import InputError


def indicator_names(by: str, levels) -> list[str]:
    """Input names of the group indicators, one per level."""
    return [f"in_{by}_{j}" for j in range(len(levels))]


def grouped_law(law: Law, by: str, levels, per_group) -> Law:
    """The law with each constant of ``per_group`` split into one constant per level of ``by``.

    Parameters
    ----------
    law : Law
    by : str
        Grouping column.
    levels : sequence
        The groups, in order: constant ``c_gj`` belongs to ``levels[j]``.
    per_group : sequence of str
        Constants that differ between groups.

    Returns
    -------
    Law
        Inputs: the law's plus one indicator per level; constants: the shared ones, then
        ``c_g0, c_g1, ...`` for each per-group constant ``c``.
    """
    unknown = [c for c in per_group if c not in law.constants]
    if unknown or not per_group:
        raise InputError(f"per_group must name constants of {law.name!r} "
                         f"({list(law.constants)}); got {list(per_group)}")  # fmt: skip
    if len(levels) < 2:
        raise InputError(f"column {by!r} has {len(levels)} group(s); grouping needs at least 2")
    flags = [symbol(n) for n in indicator_names(by, levels)]
    constants = {c: b for c, b in law.constants.items() if c not in per_group}
    swap = {}
    for c in per_group:
        names = [f"{c}_g{j}" for j in range(len(levels))]
        swap[symbol(c)] = sympy.Add(*(symbol(n) * f for n, f in zip(names, flags, strict=True)))
        constants.update({n: law.constants[c] for n in names})
    return dataclasses.replace(
        law,
        name=f"{law.name}_by_{by}",
        expr=law.expr.xreplace(swap),
        inputs=(*law.inputs, *indicator_names(by, levels)),
        constants=constants,
        reference=None,
        units={
            **law.units,
            **{n: f"1 on rows of one {by} group" for n in indicator_names(by, levels)},
        },
    )


def with_indicators(data: pd.DataFrame, by: str, levels) -> pd.DataFrame:
    """A copy of ``data`` with the 0/1 indicator column of every level of ``by``."""
    if by not in data.columns:
        raise InputError(f"no column {by!r} to group by; available: {list(data.columns)}")
    values = data[by].to_numpy()
    unseen = sorted({str(v) for v in values} - {str(v) for v in levels})
    if unseen:
        raise InputError(f"column {by!r} has groups {unseen} the fit has no constants for; "
                         f"it was fitted on {list(levels)}")  # fmt: skip
    out = data.copy()
    for name, level in zip(indicator_names(by, levels), levels, strict=True):
        out[name] = (values == level).astype(float)
    return out


def fit_grouped(law: Law, data: pd.DataFrame, by: str, per_group, target: str = "loss",
                **options):  # fmt: skip
    """Fit one form to every group of ``by``: ``per_group`` constants per group, the rest shared.

    Parameters
    ----------
    law : Law
    data : pandas.DataFrame
        Runs, with the law's inputs, ``target`` and the grouping column ``by``.
    by : str
        Grouping column (any values; groups are its distinct values, sorted).
    per_group : sequence of str
        Constants fitted per group.
    target : str, default "loss"
    **options
        Passed to :func:`discover.fit.fit_law`.

    Returns
    -------
    FitResult
        Of the grouped law (:func:`grouped_law`); ``fit.groups`` holds ``by``, ``levels`` and
        ``per_group``, and ``fit.predict`` adds the indicators itself.
    """
    from discover.fit import fit_law

    levels = sorted(pd.unique(data[by]).tolist()) if by in data.columns else []
    grouped = grouped_law(law, by, levels, list(per_group))
    fit = fit_law(grouped, with_indicators(data, by, levels), target, **options)
    fit.groups = {"by": by, "levels": levels, "per_group": list(per_group)}
    return fit


def group_constants(fit) -> pd.DataFrame:
    """The per-group constants of a grouped fit as a table: one row per group."""
    groups = fit.groups
    rows = []
    for j, level in enumerate(groups["levels"]):
        row = {groups["by"]: level}
        row.update({c: fit.params[f"{c}_g{j}"] for c in groups["per_group"]})
        rows.append(row)
    return pd.DataFrame(rows)
