"""Hostile tables: every input path fits correctly or refuses in one line naming the fix.

Tables are generated with hypothesis from a planted Chinchilla law (Hoffmann et al. 2022's
constants), then damaged: NaN and infinite cells, zero and negative losses, constant columns,
duplicate rows, tiny tables, text in numeric columns, ``#`` comment lines, columns spanning
1e-3 to 1e24, and token counts given in billions.
"""

from __future__ import annotations

import gzip
import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discover.data import check_table, constants_at_bounds, load_table, unit_hints
from discover.laws import SCALE, Bounds
from discover.workflow import run_fit
from results.clark import CLARK_COLUMNS, import_clark2022
from results.errors import InputError
from results.store import Store

CLARK = Path(__file__).resolve().parents[2] / "shared" / "data" / "clark2022" / "curves.csv.gz"
PLANTED = {"L0": 1.69, "A": 406.4, "alpha": 0.34, "B": 410.7, "beta": 0.28}
COLUMNS = ("N", "D", "loss")
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def planted(n: int, seed: int = 0, beta: float = 0.28, B: float = 410.7) -> pd.DataFrame:
    """n runs of the Chinchilla law, N from 1e5 to 1e8 and D from 1e6 to 1e10 (shuffled)."""
    rng = np.random.default_rng(seed)
    N = np.geomspace(1e5, 1e8, n)
    D = np.geomspace(1e6, 1e10, n)[rng.permutation(n)]
    loss = PLANTED["L0"] + PLANTED["A"] * N ** -PLANTED["alpha"] + B * D**-beta
    return pd.DataFrame({"N": N, "D": D, "loss": loss})


def _one_line(err: InputError) -> str:
    text = str(err)
    assert text and "\n" not in text, repr(text)
    assert "Traceback" not in text
    return text


# ----------------------------------------------------------------------------------------------
# Damage to a table, as (kind, column, row) drawn by hypothesis; each kind names what a refusal
# must say.

REFUSAL = {
    "nan": ("NaN or infinite",),
    "inf": ("NaN or infinite",),
    "zero": ("non-positive",),
    "negative": ("non-positive",),
    "text": ("not numeric", "NaN or infinite"),  # pandas reads "n/a" as a missing value
    "constant": ("is constant", "cannot hold out the largest runs by"),
}
HARMLESS = ("duplicate", "comment", "span", "none")

damage = st.tuples(
    st.sampled_from([*REFUSAL, *HARMLESS]),
    st.sampled_from(COLUMNS),
    st.integers(min_value=0, max_value=1000),
)


def apply(table: pd.DataFrame, kind: str, column: str, row: int) -> tuple[pd.DataFrame, str]:
    """Damage ``table``; returns it and the column the damage really touched."""
    row = row % len(table)
    table = table.copy()
    if kind in ("nan", "inf", "zero", "negative"):
        column = "loss" if kind in ("zero", "negative") and row % 2 else column
        if pd.api.types.is_numeric_dtype(table[column]):
            table[column] = table[column].astype(float)
        table.loc[row, column] = {"nan": np.nan, "inf": -np.inf, "zero": 0.0, "negative": -2.5}[
            kind
        ]
    elif kind == "text":
        table[column] = table[column].astype(object)
        table.loc[row, column] = ["1.2B", "n/a", "3,5", "--"][row % 4]
    elif kind == "constant":
        column = "D" if column == "loss" else column
        table[column] = float(table[column].iloc[0])
    elif kind == "duplicate":
        table = pd.concat([table, table.iloc[: row % len(table) + 1]], ignore_index=True)
    elif kind == "span" and column != "loss":
        table[column] = np.geomspace(1e-3, 1e24, len(table))
    return table, column


def write_csv(table: pd.DataFrame, path: Path, comments: list[int]) -> None:
    """Write ``table`` with ``#`` comment lines before the given data rows."""
    lines = table.to_csv(index=False).splitlines(keepends=True)
    for at in sorted(set(comments), reverse=True):
        lines.insert(at % len(lines), f"# note {at}: copied from table 3, # kept\n")
    path.write_text("".join(lines))


@settings(max_examples=30, **SETTINGS)
@given(
    n=st.integers(min_value=1, max_value=14),
    damages=st.lists(damage, max_size=2),
    comments=st.lists(st.integers(0, 50), max_size=3),
)
def test_run_fit_on_a_damaged_csv_fits_or_refuses_in_one_line(tmp_path, n, damages, comments):
    table, touched = planted(n), []
    for kind, column, row in damages:
        table, column = apply(table, kind, column, row)
        if kind == "constant" or (kind == "span" and column != "loss"):
            touched = [(k, c) for k, c in touched if c != column]  # the column was replaced
        touched.append((kind, column))
    path = tmp_path / "runs.csv"
    write_csv(table, path, comments)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            outcome = run_fit(path, law="chinchilla")
        except InputError as err:
            text = _one_line(err)
            refusals = [(k, c) for k, c in touched if k in REFUSAL]
            if pd.to_numeric(table["N"], errors="coerce").nunique() < 2:
                refusals.append(("constant", "N"))  # one size of model: nothing to hold out
            if n < 5:
                # A tiny table may be refused for its size first; the message names a column.
                assert any(f"{c!r}" in text or f"by {c}" in text for c in COLUMNS), text
            elif refusals:
                # The refusal names one of the damaged columns and what is wrong with it.
                assert any(
                    any(p in text for p in REFUSAL[k]) and (repr(c) in text or f"by {c}" in text)
                    for k, c in refusals
                ), text
            else:
                assert any(k == "span" for k, _ in touched), text
            return

    # Accepted: the damage was harmless, and the planted law is recovered.
    assert not [k for k, _ in touched if k in REFUSAL], touched
    assert outcome.n_rows == len(table)
    report = outcome.laws[0]
    assert all(np.isfinite(v) for v in report.params.values())
    if not any(k == "span" for k, _ in touched) and n >= 8:
        assert report.fit["r2"] > 0.999, report.fit
        assert report.params["alpha"] == pytest.approx(PLANTED["alpha"], rel=1e-3)


@settings(max_examples=200, **SETTINGS)
@given(
    cells=st.lists(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.floats(min_value=1e-3, max_value=1e24),
            st.integers(min_value=-(10**30), max_value=10**30),
            st.text(max_size=6),
            st.none(),
            st.booleans(),
        ),
        min_size=1,
        max_size=8,
    ),
    column=st.sampled_from(["N", "loss"]),
)
def test_check_table_passes_only_finite_positive_numbers(cells, column):
    table = pd.DataFrame({"N": np.geomspace(1e5, 1e8, len(cells)), "loss": 2.0})
    table[column] = pd.Series(cells, dtype=object)
    try:
        checked = check_table(table, ["N"])
    except InputError as err:
        text = _one_line(err)
        assert repr(column) in text
        return
    values = checked[column].to_numpy(dtype=float)
    assert np.isfinite(values).all() and (values > 0).all()


def test_comment_lines_are_skipped_and_hash_inside_a_cell_is_kept(tmp_path):
    table = planted(6).assign(note=["a#1", "b", "c", "#d", "e", "f"])
    path = tmp_path / "runs.csv"
    text = table.to_csv(index=False)
    path.write_text("# Table 3 of a paper\n  # units: tokens\n" + text + "# end\n")
    read = load_table(path)
    assert list(read.columns) == ["N", "D", "loss", "note"]
    assert read["note"].tolist() == ["a#1", "b", "c", "#d", "e", "f"]
    np.testing.assert_allclose(read["loss"], table["loss"])

    # Only comments, or an empty gzip, is refused in one line.
    path.write_text("# nothing here\n")
    with pytest.raises(InputError, match="no header row"):
        load_table(path)
    gz = tmp_path / "runs.csv.gz"
    gz.write_bytes(gzip.compress(text.encode())[:30])
    with pytest.raises(InputError, match="runs.csv.gz"):
        load_table(gz)


def test_a_text_cell_is_named_by_row_and_value(tmp_path):
    table = planted(8).astype({"D": object})
    table.loc[5, "D"] = "300B"
    table.to_csv(tmp_path / "runs.csv", index=False)
    with pytest.raises(InputError) as err:
        run_fit(tmp_path / "runs.csv", law="chinchilla")
    assert "column 'D' is not numeric" in str(err.value)
    assert "rows 5: '300B'" in str(err.value)


def test_tokens_in_billions_are_flagged_when_a_constant_lands_at_a_bound(tmp_path):
    # beta = 0.8: B / (1e9 D)^beta puts the fitted B at 410.7e-7.2 < 1e-4, SCALE's lower bound.
    table = planted(14, beta=0.8)
    table.assign(D=table["D"] / 1e9).to_csv(tmp_path / "billions.csv", index=False)
    table.to_csv(tmp_path / "tokens.csv", index=False)

    outcome = run_fit(tmp_path / "billions.csv", law="chinchilla")
    notes = " ".join(outcome.notes + outcome.laws[0].notes)
    assert "column 'D'" in notes and "billions" in notes, notes
    assert "B landed at a bound" in notes or "B, " in notes, notes
    assert outcome.laws[0].params["B"] == pytest.approx(SCALE.lo, rel=1e-3)

    outcome = run_fit(tmp_path / "tokens.csv", law="chinchilla")
    assert not any("billions" in note for note in outcome.notes + outcome.laws[0].notes)


def test_unit_helpers():
    bounds = {"A": Bounds(1e-4, 1e8, positive=True), "a": Bounds(0.0, 2.0)}
    assert constants_at_bounds({"A": 1e-4, "a": 0.3}, bounds) == ["A"]
    assert constants_at_bounds({"A": 5.0, "a": 2.0}, bounds) == ["a"]
    assert constants_at_bounds({"A": 5.0, "a": 1.0}, bounds) == []
    table = pd.DataFrame({"N": [1e6, 2e6], "D": [0.3, 1.4], "Na": [50.0, 9e3], "loss": [2, 1]})
    hints = unit_hints(table, {"N": "N"}, ["B"])
    assert [h.split(" (")[0] for h in hints] == [
        "constants B landed at a bound and column 'Na'",
        "constants B landed at a bound and column 'D'",
    ]
    assert unit_hints(table.assign(D=[3e8, 1.4e9], Na=1e5)) == []


# ----------------------------------------------------------------------------------------------
# The Clark et al. importer


def clark_rows() -> pd.DataFrame:
    """The first two runs of the real file, every fourth step (about 14 rows)."""
    table = pd.read_csv(CLARK)
    table = table[table["hyper_id"].isin(sorted(table["hyper_id"].unique())[:2])]
    return table.iloc[::4].reset_index(drop=True)


clark_damage = st.tuples(
    st.sampled_from(["nan", "inf", "text", "duplicate", "comment", "none"]),
    st.sampled_from(["num_experts", "step", "d_model", "loss_validation", "loss_c4"]),
    st.integers(min_value=0, max_value=1000),
)


@pytest.mark.skipif(not CLARK.is_file(), reason="needs ../shared/data/clark2022/curves.csv.gz")
@settings(max_examples=25, **SETTINGS)
@given(damages=st.lists(clark_damage, max_size=2))
def test_clark_import_of_a_damaged_csv_imports_or_refuses_in_one_line(tmp_path_factory, damages):
    table, comments, cells = clark_rows(), [], {}
    for kind, column, row in damages:
        row %= len(table)
        if kind == "nan" and column.startswith("loss"):
            table.loc[row, column] = np.nan  # a missing loss is legitimate
            cells.pop((row, column), None)
        elif kind in ("nan", "inf", "text"):
            table[column] = table[column].astype(object)
            table.loc[row, column] = {"nan": np.nan, "inf": np.inf, "text": "12 experts"}[kind]
            cells[(row, column)] = column
        elif kind == "duplicate":
            table = pd.concat([table, table.iloc[[row]]], ignore_index=True)
        elif kind == "comment":
            comments.append(row)
    refused = set(cells.values())
    folder = tmp_path_factory.mktemp("clark")
    write_csv(table, folder / "curves.csv", comments)

    try:
        written = import_clark2022(folder / "curves.csv", folder / "store")
    except InputError as err:
        text = _one_line(err)
        assert refused and any(repr(c) in text for c in refused), text
        assert not (folder / "store").exists()  # nothing half-imported
        return
    assert not refused, damages
    assert written == 2
    assert len(Store(folder / "store").ids(None)) == 2


@pytest.mark.skipif(not CLARK.is_file(), reason="needs ../shared/data/clark2022/curves.csv.gz")
def test_clark_import_with_comment_lines_gives_the_same_runs(tmp_path):
    table = clark_rows()
    plain = io.StringIO()
    table.to_csv(plain, index=False)
    (tmp_path / "a.csv").write_text(plain.getvalue())
    (tmp_path / "b.csv").write_text("# curves of Clark et al. 2022\n" + plain.getvalue())
    assert import_clark2022(tmp_path / "a.csv", tmp_path / "sa") == 2
    assert import_clark2022(tmp_path / "b.csv", tmp_path / "sb") == 2
    assert Store(tmp_path / "sa").ids() == Store(tmp_path / "sb").ids()
    assert set(CLARK_COLUMNS) <= set(table.columns)
