"""The report page and the per-block optima: self-contained, complete, planted optima recovered."""

import base64
import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from discover import report as report_module
from discover.data import load_table
from discover.marginal import block_optima, format_block_optima, oat_sweeps
from discover.report import PAGE, PLOTS, build_report
from discover.workflow import run_compare
from results.errors import InputError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def quick_outcome():
    """Two quick laws fitted on the bundled study (no symbolic search), a small candidate front.

    The slow test below draws the real page: the hand-designed law and a discovered one.
    """
    outcome = run_compare(laws=["chinchilla", "moe_powerlaw4"])
    outcome.chosen = "moe_powerlaw4"
    outcome.front = [
        {"formula": "c0*D**c1 + c2", "n_constants": 3, "fit_r2": 0.92, "inner_extrap_r2": 0.75,
         "chosen": False},
        {"formula": "c0 + c1*N**c2 + c3*D**c4", "n_constants": 5, "fit_r2": 0.95,
         "inner_extrap_r2": 0.81, "chosen": True},
        {"formula": "c0*log(D) + c1", "n_constants": 2, "fit_r2": 0.83, "inner_extrap_r2": -3.0,
         "chosen": False},
    ]  # fmt: skip
    return outcome


@pytest.fixture(scope="module")
def outcome():
    return quick_outcome()


@pytest.fixture(scope="module")
def built(tmp_path_factory, outcome):
    out = tmp_path_factory.mktemp("report")
    paths = build_report(outcome, out, table=load_table(None), n_boot=200)
    return outcome, out, paths, (out / PAGE).read_text()


def test_page_loads_nothing_from_outside(built):
    _, _, _, page = built
    sources = re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', page)
    assert sources, "the page has no images"
    assert all(s.startswith("data:image/png;base64,") for s in sources), sources[:3]
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|<link|url\(", page, re.I)
    assert "default-src 'none'; img-src data:" in page  # the browser refuses anything else


def test_every_plot_is_a_png_file_and_the_same_image_in_the_page(built):
    _, out, paths, page = built
    assert set(paths) == {*PLOTS, "page"}
    for name in PLOTS:
        data = (out / f"{name}.png").read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        embedded = re.search(rf'<img alt="{name}" src="data:image/png;base64,([^"]+)"', page)
        assert embedded is not None, f"{name} is not in the page"
        assert base64.b64decode(embedded.group(1)) == data, name
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_page_tables_show_both_laws_and_the_block_optima(built):
    outcome, _, _, page = built
    for law in outcome.laws:
        assert f'<td class="text">{law.name}</td>' in page
        assert f"<td>{law.fit['r2']:.4f}</td>" in page
        assert f"<td>{law.holdout['r2']:.4f}</td>" in page
        assert all(f"{name} = {value:.4g}" in page for name, value in law.params.items())
    # Bundled study: OAT blocks at N = 0.1M, 0.2M and 0.4M with D = 0.5M, and 0.2M with D = 1M.
    for block in ("<td>100k</td><td>500k</td>", "<td>200k</td><td>500k</td>",
                  "<td>400k</td><td>500k</td>", "<td>200k</td><td>1M</td>"):  # fmt: skip
        assert block in page


def test_a_failed_build_leaves_the_previous_page_whole(built, tmp_path, monkeypatch):
    outcome, out, _, _ = built
    (tmp_path / PAGE).write_text("earlier page")
    calls = []

    def failing_png(fig):
        calls.append(fig)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return b"x"

    monkeypatch.setattr(report_module, "_png", failing_png)
    with pytest.raises(RuntimeError, match="disk full"):
        build_report(outcome, tmp_path, table=load_table(None), n_boot=20)
    assert (tmp_path / PAGE).read_text() == "earlier page"
    assert sorted(p.name for p in tmp_path.iterdir()) == [PAGE]


def test_build_report_refuses_what_it_cannot_draw(tmp_path, outcome):
    with pytest.raises(InputError, match="Outcome or a DataFrame"):
        build_report("out/discover/discovery.json", tmp_path)
    elsewhere = dataclasses.replace(outcome, source="/nowhere/store")
    with pytest.raises(InputError, match="pass the runs"):
        build_report(elsewhere, tmp_path)
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------------------------
# Per-block optima


def planted(e=0.01, f=0.36, m=0.4, n=-0.24, u=2.0, N=1e6, D=1e7, seeds=3, noise=0.002, rng=0,
            G_levels=(1, 2, 4, 8, 16), S_levels=(0.25, 0.5, 0.75)):  # fmt: skip
    """One OAT block around G=4, S=0, Na/N=0.3: L = u + e G + f/G + m S^2 + n S + noise.

    G* = sqrt(f/e) = 6 and S* = -n/(2m) = 0.3 with the defaults.
    """
    rng = np.random.default_rng(rng)
    rows = [(g, 0.0) for g in G_levels] + [(4.0, s) for s in S_levels]
    out = []
    for seed in range(seeds):
        for g, s in rows:
            loss = u + e * g + f / g + m * s**2 + n * s + rng.normal(0, noise)
            size = N * (1 + rng.uniform(-0.02, 0.02))  # achieved sizes scatter around the target
            out.append({"N": size, "Na": 0.3 * size, "D": D * 0.9994, "G": g, "S": s,
                        "E": 4 * g, "loss": loss, "seed": seed})  # fmt: skip
    return pd.DataFrame(out)


def test_block_optima_recovers_planted_optima_in_two_blocks():
    table = pd.concat([planted(rng=0), planted(N=4e6, rng=2)], ignore_index=True)
    optima = block_optima(table, n_boot=1000, seed=0)
    assert len(optima) == 2
    assert optima["N"].round(-4).tolist() == [1e6, 4e6]  # achieved N grouped into blocks
    for _, row in optima.iterrows():
        assert row["n_runs"] == 3 * 8 and row["n_seeds"] == 3
        assert row["G*_where"] == "inside" and row["S*_where"] == "inside"
        assert row["G*"] == pytest.approx(6.0, rel=0.1)
        assert row["S*"] == pytest.approx(0.3, abs=0.03)
        assert row["G*_lo"] < 6.0 < row["G*_hi"] and row["S*_lo"] < 0.3 < row["S*_hi"]
        assert row["G*_hi"] - row["G*_lo"] < 3.0  # a real interval, not the whole range
        assert row["G*_boot"] >= 990 and row["S*_boot"] >= 990
        assert row["G_e"] == pytest.approx(0.01, abs=0.003)


def test_block_optima_uses_stored_targets_and_is_deterministic():
    table = planted(rng=3)
    table["extra_target_N"], table["extra_target_D"] = 1.2e6, 1e7
    first = block_optima(table, n_boot=300, seed=5)
    again = block_optima(table, n_boot=300, seed=5)
    assert first["N"].tolist() == [1.2e6] and first["D"].tolist() == [1e7]
    pd.testing.assert_frame_equal(first, again)


def test_an_optimum_beyond_the_sampled_range_is_not_a_number():
    # e < 0: the loss still falls at G = 16, so G* lies above the range; m < 0 likewise for S.
    optima = block_optima(planted(e=-0.01, f=0.2, m=-0.1, n=0.02), n_boot=300)
    row = optima.iloc[0]
    assert row["G*_where"] == "above" and np.isnan(row["G*"])
    assert row["G*_hi"] == np.inf
    assert row["S*_where"] == "above" and np.isnan(row["S*"])
    assert "> 16" in format_block_optima(optima)


def test_an_optimum_below_the_range_is_reported_below():
    optima = block_optima(planted(e=0.05, f=0.01), n_boot=200)  # G* = 0.45 < 1
    assert optima.loc[0, "G*_where"] == "below"
    assert "< 1" in format_block_optima(optima)


def test_as_many_runs_as_constants_gives_no_interval_and_says_why():
    table = planted(seeds=1, G_levels=(1, 4, 8), S_levels=(0.5,))
    row = block_optima(table, n_boot=200).iloc[0]
    assert row["G*_where"] == "inside" and np.isnan(row["G*_lo"])
    assert "replicate seeds" in row["G*_note"]
    assert row["S*_where"] == "not swept"


def test_oat_sweeps_of_the_bundled_study():
    table = load_table(None)
    g = oat_sweeps(table, "G")
    assert [key for key, _ in g] == [(1e5, 5e5), (2e5, 5e5), (4e5, 5e5), (2e5, 1e6)]
    assert sorted(g[0][1]["G"].tolist()) == [1] * 3 + [2] * 3 + [4] * 3 + [8] * 3 + [16] * 3
    assert sorted(set(g[0][1]["seed"])) == [0, 1, 2]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.drop(columns="seed"), "no 'seed' column"),
        (lambda t: t.drop(columns="Na"), "Na"),
        (lambda t: t.assign(loss=-t["loss"]), "loss"),
        (lambda t: t[(t["S"] == 0) & (t["G"] == 4)], "no one-factor-at-a-time block"),
    ],
)
def test_block_optima_refuses_bad_tables(change, message):
    with pytest.raises(InputError, match=message):
        block_optima(change(planted()), n_boot=50)


def test_block_optima_refuses_bad_arguments():
    with pytest.raises(InputError, match="n_boot must be at least 2"):
        block_optima(planted(), n_boot=1)
    with pytest.raises(InputError, match="DataFrame"):
        block_optima("results/bundled/cpu-moe-v1/store")
    with pytest.raises(InputError, match="var must be one of"):
        oat_sweeps(planted(), "Na")


@pytest.mark.slow
def test_cli_report_html_on_the_bundled_study(tmp_path, capsys):
    from cluster.cli import main

    assert main(["report", "--html", str(tmp_path), "--time-limit", "5"]) == 0
    page = (tmp_path / PAGE).read_text()
    assert page.count("<img ") == len(PLOTS)
    assert "discovered" in page and "moe_joint" in page
    assert f"page: {tmp_path / PAGE}" in capsys.readouterr().out


def test_a_table_alone_gives_a_page_of_the_fitted_law(tmp_path):
    table = load_table(None)
    paths = build_report(table, tmp_path, discover=False, n_boot=50)
    page = (tmp_path / PAGE).read_text()
    assert "a table of 155 runs" in page and "moe_joint" in page
    # One law and no symbolic search: no candidate front to draw, every other plot is there.
    assert set(paths) == {*PLOTS, "page"} - {"pareto_front"}
    assert page.count("<img ") == len(PLOTS) - 1


def test_a_saved_result_is_drawn_on_its_own_runs_in_their_units(tmp_path):
    # A result computed on another table (here: runs measured per token, filtered on a column
    # the bundled study lacks) is drawn on that table when no --data is given, with its units.
    from discover.report import labels, loss_unit, report_from_store

    runs = load_table(None).assign(source="clark2022", tag=1)
    csv = tmp_path / "runs.csv"
    pd.concat([runs, runs.head(3).assign(tag=2)]).to_csv(csv, index=False)
    result = run_compare(str(csv), laws=["chinchilla"], where={"tag": 1}).save(tmp_path / "r.json")
    report_from_store(tmp_path / "page", result=result, n_boot=20)
    page = (tmp_path / "page" / PAGE).read_text()
    assert f"Data: {csv}, 155 runs" in page and "loss (nats/token)" in page
    assert "nats/byte" not in page

    assert loss_unit(load_table(None)) == "byte" and loss_unit(runs) == "token"
    assert loss_unit(runs.drop(columns="source")) is None
    assert loss_unit(pd.concat([runs, load_table(None)])) is None
    assert labels(None)["loss"] == "loss (nats)" and labels("byte")["D"].endswith("= bytes)")


CLARK = Path(__file__).resolve().parents[2] / "shared" / "data" / "clark2022" / "curves.csv.gz"


@pytest.mark.skipif(not CLARK.is_file(), reason="Clark et al.'s curves are not in ../shared")
def test_clark_report_names_mapped_columns_draws_e_and_tells_held_out_runs_apart(tmp_path):
    from discover.report import _residuals, _run_labels, _si, _View
    from results import import_clark2022

    import_clark2022(CLARK, tmp_path / "store")
    outcome = run_compare(str(tmp_path / "store"), laws=["moe_powerlaw4"],
                          where={"extra_step": 249000}, columns={"N": "Na"},
                          holdout_threshold=1.3e9)  # fmt: skip
    table = report_module._table_of(outcome)
    from discover.workflow import select_rows, use_columns

    table = use_columns(select_rows(table, {"extra_step": 249000}), {"N": "Na"})
    view = _View.of(outcome, table.reset_index(drop=True))
    assert view.labels["N"] == "N (column Na: activated non-embedding parameters)"
    assert view.labels["loss"] == "loss (nats/token)"
    # Residuals against E (the law's input) and G (Clark's k), N drawn once (Na: the same numbers)
    fig = _residuals(view, view.predictions())
    assert [ax.get_xlabel() for ax in fig.axes] == [view.labels[f] for f in ("N", "E", "G")]
    # The 28 held-out runs: 27 alike in N, D and E pairs; the router tells them apart
    labels = _run_labels(view.table[view.hold])
    assert len(labels) == 28 and len(set(labels)) == 28
    assert any("router_type=S-Base" in label for label in labels)
    assert _si(1.31e9) == "1.31B" and _si(5e5) == "500k"
