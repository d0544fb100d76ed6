"""Loading tables from stores and files, and the checks that name the bad rows."""

import math

import numpy as np
import pandas as pd
import pytest

from discover.data import check_table, load_table
from results.errors import InputError
from results.schema import RunRecord
from results.store import Store


def table(n=6):
    return pd.DataFrame({
        "N": np.linspace(1e6, 6e6, n), "D": np.linspace(1e8, 6e8, n), "loss": np.linspace(3, 2, n),
    })  # fmt: skip


def record(i, loss=2.5, status="ok"):
    return RunRecord(
        run_id=f"run{i}", source="test", status=status, N=1e6 * (i + 1), Na=5e5 * (i + 1), D=1e8,
        G=2, S=0.0, E=8, loss=loss, seed=0, wall_time_s=1.0, config={"i": i}, architecture={},
        curve=[],
    )  # fmt: skip


def test_csv_and_parquet_round_trip(tmp_path):
    t = table()
    t.to_csv(tmp_path / "runs.csv", index=False)
    t.to_parquet(tmp_path / "runs.parquet")
    for name in ("runs.csv", "runs.parquet"):
        loaded = load_table(tmp_path / name)
        np.testing.assert_allclose(loaded["N"], t["N"])
        assert list(loaded.columns) == ["N", "D", "loss"]


def test_store_folder_gives_ok_runs(tmp_path):
    store = Store(tmp_path / "store")
    store.write(record(0))
    store.write(record(1, loss=2.1))
    store.write(record(2, loss=math.nan, status="failed"))
    loaded = load_table(tmp_path / "store")
    assert sorted(loaded["loss"]) == [2.1, 2.5]
    assert set(loaded["status"]) == {"ok"}


def test_missing_path_empty_store_and_unknown_type(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_table(tmp_path / "nowhere.csv")
    Store(tmp_path / "empty")
    with pytest.raises(InputError, match=r"no ok runs; fill it with `moelaw sweep SPEC`"):
        load_table(tmp_path / "empty")
    (tmp_path / "runs.xlsx").write_text("x")
    with pytest.raises(InputError, match="unknown file type '.xlsx'"):
        load_table(tmp_path / "runs.xlsx")


def test_missing_column_lists_available():
    with pytest.raises(
        InputError, match=r"\['Na'\] missing.*available columns: \['N', 'D', 'loss'\]"
    ):
        check_table(table(), ["N", "Na"])


def test_nan_and_inf_name_rows():
    t = table()
    t.loc[2, "N"] = np.nan
    t.loc[4, "N"] = np.inf
    with pytest.raises(InputError, match=r"'N' has 2 NaN or infinite.*rows 2, 4: nan, inf"):
        check_table(t, ["N", "D"])


def test_non_positive_values_name_rows_and_values():
    t = table()
    t.loc[[1, 3], "loss"] = [-0.1, 0.0]
    with pytest.raises(
        InputError, match=r"'loss' has 2 non-positive value\(s\) \(rows 1, 3: -0.1, 0.0\)"
    ):
        check_table(t, ["N", "D"])
    t = table()
    t.loc[0, "D"] = -5.0
    with pytest.raises(InputError, match="'D' has 1 non-positive.*logarithm"):
        check_table(t, ["N", "D"])
    assert check_table(t, ["N", "D"], positive=["N"]) is t  # D not under a log: allowed


def test_constant_column_refused_when_it_must_vary():
    t = table()
    t["D"] = 1e9
    assert check_table(t, ["N", "D"]) is t
    with pytest.raises(InputError, match=r"'D' is constant \(1000000000.0 in all 6 rows\)"):
        check_table(t, ["N", "D"], varying=["N", "D"])


def test_non_numeric_column():
    t = table()
    t["N"] = ["a"] * len(t)
    with pytest.raises(InputError, match="'N' is not numeric"):
        check_table(t, ["N"])
