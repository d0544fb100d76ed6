"""Importing Clark et al. (2022) into a store, checked against the CSV itself."""

import json
from pathlib import Path

import pandas as pd
import pytest

from results import InputError, Store, import_clark2022

CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "clark2022" / "curves.csv.gz"
pytestmark = pytest.mark.skipif(not CSV.is_file(), reason=f"{CSV} is not present")


@pytest.fixture(scope="module")
def csv():
    return pd.read_csv(CSV)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("clark") / "store")
    assert import_clark2022(CSV, store) == 223
    return store


def test_every_run_is_imported_once(store, csv):
    runs = store.runs()
    assert len(runs) == 223 and runs.run_id.is_unique
    assert sorted(runs.extra_hyper_id) == sorted(csv.hyper_id.unique())
    assert (runs.extra_step == 249000).sum() == 221
    assert set(runs.source) == {"clark2022"} and set(runs.S) == {0.0}
    assert runs.D.tolist() == (runs.extra_step * 524288.0).tolist()
    assert len(store.curves()) == csv.loss_validation.notna().sum() == 5791


def test_a_known_run_matches_the_csv(store, csv):
    rows = csv[csv.hyper_id == 5].sort_values("step")
    last = rows.iloc[-1]
    run = store.runs().set_index("extra_hyper_id").loc[5]

    assert (
        (run.N, run.Na)
        == (last.total_parameter_count, last.dense_parameter_count)
        == (
            1308819456.0,
            1308819456.0,
        )
    )
    assert (run.E, run.G, run.S, run.seed) == (1.0, 1.0, 0.0, 42)
    assert run.D == 249000 * 524288
    assert run.loss == last.loss_validation == pytest.approx(2.242015, abs=1e-6)
    assert run.extra_loss_c4 == last.loss_c4 and run.extra_loss_pile == last.loss_pile
    assert (run.extra_router_type, run.extra_model_size_label) == ("Dense", "1.3B")
    assert (run.arch_d_model, run.arch_n_layers, run.arch_n_heads, run.arch_kqv_size) == (
        2048,
        24,
        16,
        128,
    )
    config = json.loads(run.config)
    assert config["hyper_id"] == 5 and config["tokens_per_step"] == 524288

    curve = store.curves([run.run_id])
    assert curve.step.tolist() == rows.step.tolist()
    assert curve.loss.tolist() == rows.loss_validation.tolist()
    assert curve.tokens.tolist() == (rows.step * 524288).tolist()


def test_nan_cells_are_left_out_of_the_curve(store, csv):
    with_gaps = csv[csv.loss_validation.isna()].hyper_id.unique()
    runs = store.runs().set_index("extra_hyper_id")
    for hyper_id in with_gaps:
        curve = store.curves([runs.loc[hyper_id].run_id])
        expected = csv[(csv.hyper_id == hyper_id) & csv.loss_validation.notna()]
        assert sorted(curve.step) == sorted(expected.step)


def test_second_import_writes_nothing(store):
    assert import_clark2022(CSV, store) == 0
    assert len(store.ids(None)) == 223


def test_other_tokens_per_step_are_other_runs(tmp_path):
    first = Store(tmp_path / "a")
    small = pd.read_csv(CSV).query("hyper_id < 3")
    small.to_csv(tmp_path / "small.csv", index=False)
    assert import_clark2022(tmp_path / "small.csv", first, tokens_per_step=1000) == 3
    assert set(first.runs().D) == {249_000_000.0}
    assert import_clark2022(tmp_path / "small.csv", first) == 3
    assert len(first.runs()) == 6


def test_missing_file_and_columns_are_named(tmp_path):
    store = Store(tmp_path / "s")
    with pytest.raises(InputError, match="nope.csv.gz does not exist"):
        import_clark2022(tmp_path / "nope.csv.gz", store)
    pd.read_csv(CSV).head(30).drop(columns=["k", "step"]).to_csv(tmp_path / "cut.csv", index=False)
    with pytest.raises(InputError, match=r"lacks the columns \['k', 'step'\]"):
        import_clark2022(tmp_path / "cut.csv", store)
    with pytest.raises(InputError, match="tokens_per_step=0"):
        import_clark2022(CSV, store, tokens_per_step=0)
    assert store.ids(None) == set()
