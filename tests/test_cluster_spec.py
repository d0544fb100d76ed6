"""Sweep specs: expansion of grids and one-factor-at-a-time sweeps, and refusal of bad specs."""

from pathlib import Path

import pytest

from cluster.spec import load_spec, parse_spec, plan
from results.errors import InputError

SHARED = Path(__file__).resolve().parents[2] / "shared"
CORPUS = SHARED / "corpus" / "austen.txt"
REPO = Path(__file__).resolve().parents[1]


def _doc(**sections):
    doc = {
        "name": "t",
        "data": {"files": [str(CORPUS)]},
        "defaults": {"N": 4.0e5, "Na_ratio": 0.3, "D": 1.0e5, "G": 4, "S": 0.0},
    }
    doc.update(sections)
    return doc


def test_grid_and_oat_expand_around_each_base(tmp_path):
    doc = _doc(
        grid={"D": [1e5, 2e5]},
        oat={"G": [1, 2]},
        base=[{"N": 2.0e5, "d_model": 48}, {"N": 4.0e5}],
    )
    spec = parse_spec(doc, base_dir=tmp_path)
    # per base: 2 grid points + 2 oat points (G=1, G=2 at the base's own D)
    assert len(spec.points) == 8
    ns = sorted({(p["N"], p["D"], p["G"]) for p in spec.points})
    assert (2.0e5, 1.0e5, 1) in ns and (4.0e5, 2.0e5, 4) in ns


def test_base_own_tables_replace_global_ones(tmp_path):
    doc = _doc(grid={"D": [1e5, 2e5]}, base=[{"N": 4.0e5, "oat": {"S": [0.2, 0.5]}}])
    spec = parse_spec(doc, base_dir=tmp_path)
    assert sorted((p["D"], p["S"]) for p in spec.points) == [
        (1e5, 0.0),
        (1e5, 0.2),
        (1e5, 0.5),
        (2e5, 0.0),
    ]


def test_repeated_points_are_planned_once(tmp_path):
    doc = _doc(grid={"G": [2, 4]}, oat={"G": [4, 8]})
    runs = plan(parse_spec(doc, base_dir=tmp_path))
    assert sorted(r.achieved["G"] for r in runs) == [2, 4, 8]
    assert len({r.run_id for r in runs}) == 3


def test_run_ids_do_not_depend_on_where_the_data_lives(tmp_path):
    copy = tmp_path / "austen.txt"
    copy.write_bytes(CORPUS.read_bytes())
    a = plan(parse_spec(_doc(), base_dir=tmp_path))
    b = plan(parse_spec({**_doc(), "data": {"files": ["austen.txt"]}}, base_dir=tmp_path))
    assert [r.run_id for r in a] == [r.run_id for r in b]


def test_seeds_multiply_points(tmp_path):
    runs = plan(parse_spec({**_doc(), "seeds": [0, 1, 2]}, base_dir=tmp_path))
    assert sorted(r.seed for r in runs) == [0, 1, 2]
    assert len({r.run_id for r in runs}) == 3


def test_a_base_own_seeds_replace_the_global_ones(tmp_path):
    doc = _doc(
        seeds=[0],
        oat={"G": [2]},
        base=[{"N": 4.0e5}, {"N": 2.0e5, "d_model": 48, "seeds": [0, 1, 2]}],
    )
    runs = plan(parse_spec(doc, base_dir=tmp_path))
    seeds = sorted((r.point["N"], r.point["G"], r.seed) for r in runs)
    assert seeds == [
        (2.0e5, 2, 0), (2.0e5, 2, 1), (2.0e5, 2, 2),
        (2.0e5, 4, 0), (2.0e5, 4, 1), (2.0e5, 4, 2),
        (4.0e5, 2, 0), (4.0e5, 4, 0),
    ]  # fmt: skip


def test_a_point_reached_from_two_bases_takes_the_union_of_their_seeds(tmp_path):
    doc = _doc(base=[{"N": 4.0e5, "seeds": [0, 1]}, {"N": 4.0e5, "seeds": [1, 2]}])
    runs = plan(parse_spec(doc, base_dir=tmp_path))
    assert sorted(r.seed for r in runs) == [0, 1, 2]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"grid": {"Q": [1, 2]}}, ["unknown key 'Q'", "Valid keys"]),
        (
            {"defaults": {"N": 4e5, "Na_ratio": 0.3, "D": 1e5, "bacth_size": 8}},
            ["'bacth_size'", "Did you mean 'batch_size'"],
        ),
        ({"extra_section": {}}, ["unknown key 'extra_section'"]),
        ({"grid": {"D": 5}}, ["non-empty list", "D = [1, 2, 4]"]),
        ({"grid": {"D": ["1e5"]}}, ["must be a number", "'1e5'"]),
        ({"seeds": "0"}, ["'seeds'"]),
        ({"seeds": [0, -1]}, ["'seeds'", ">= 0", "[0, -1]"]),
        ({"base": [{"N": 4e5, "seeds": [True]}]}, ["[[base]] #1", "'seeds'"]),
        ({"name": ""}, ["'name'"]),
    ],
)
def test_bad_specs_are_refused_with_the_offending_key(tmp_path, change, words):
    with pytest.raises(InputError) as err:
        plan(parse_spec({**_doc(), **change}, base_dir=tmp_path))
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize(
    ("point", "words"),
    [
        ({"Na_ratio": 1.5}, ["Na"]),
        ({"G": 0}, ["G"]),
        ({"S": 1.0}, ["S"]),
        ({"Na": 5e5, "Na_ratio": None}, ["Na"]),
    ],
)
def test_impossible_combinations_are_refused_before_anything_runs(tmp_path, point, words):
    defaults = {"N": 4.0e5, "Na_ratio": 0.3, "D": 1.0e5, "G": 4, "S": 0.0, **point}
    defaults = {k: v for k, v in defaults.items() if v is not None}
    with pytest.raises(InputError) as err:
        plan(parse_spec(_doc(defaults=defaults), base_dir=tmp_path))
    message = str(err.value)
    assert "point (" in message
    for word in words:
        assert word in message


def test_missing_data_file_is_named(tmp_path):
    doc = {**_doc(), "data": {"files": ["nowhere.txt"]}}
    with pytest.raises(InputError, match="nowhere.txt"):
        plan(parse_spec(doc, base_dir=tmp_path))


def test_missing_spec_file_and_bad_toml(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_spec(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_spec(bad)


def test_bundled_spec_plans_at_least_24_runs():
    spec = load_spec(REPO / "results" / "bundled" / "cpu-moe-v1" / "spec.toml")
    runs = plan(spec)
    assert len(runs) >= 24
    varied = {
        k
        for k in ("N", "D", "G", "S")
        if len({r.achieved.get(k, r.point.get(k)) for r in runs}) > 1
    }
    assert varied == {"N", "D", "G", "S"}


@pytest.mark.parametrize(("study", "at_least"), [("cpu-moe-v1", 24), ("cpu-moe-v2", 150)])
def test_bundled_store_holds_exactly_the_runs_its_spec_plans(study, at_least):
    # A change to the solver or to RunConfig.identity() that silently re-plans the study would
    # leave the shipped store stale: `moelaw sweep` on it would train near-duplicates.
    from results.store import Store

    spec = load_spec(REPO / "results" / "bundled" / study / "spec.toml")
    stored = Store(spec.store, create=False).ids()
    assert {r.run_id for r in plan(spec)} == stored
    assert len(stored) >= at_least


def test_the_default_study_replicates_its_one_factor_blocks():
    # Three seeds at the 44 points of the four one-factor-at-a-time blocks and at the grid points
    # of the two smallest sizes (5 more), one seed elsewhere
    spec = load_spec(REPO / "results" / "bundled" / "cpu-moe-v2" / "spec.toml")
    runs = plan(spec)
    seeds_per_point: dict = {}
    for r in runs:
        seeds_per_point.setdefault(tuple(sorted(r.point.items())), set()).add(r.seed)
    replicated = [p for p, s in seeds_per_point.items() if s == {0, 1, 2}]
    assert len(runs) == 155
    assert len(replicated) == 49 and all(s in ({0}, {0, 1, 2}) for s in seeds_per_point.values())


def test_a_data_file_too_short_for_a_window_is_refused_when_planning(tmp_path):
    # Found before any run is submitted (it used to fail inside every Ray task)
    short = tmp_path / "short.txt"
    short.write_bytes(b"x" * 1000)  # validation part: ceil(1000 * 0.05) = 50 bytes < 65
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(
        f'name = "s"\nstore = "store"\n[data]\nfiles = ["{short}"]\n'
        "[defaults]\nN = 1e5\nNa_ratio = 0.4\nD = 2e4\nG = 2\nd_model = 32\nn_layers = 1\n"
        "seq_len = 64\nbatch_size = 8\n"
    )
    with pytest.raises(InputError) as caught:
        plan(load_spec(spec_path))
    assert str(caught.value).startswith(
        f"data file '{short}' is too short: its training part has 950 bytes and its validation "
        "part 50, each needs at least seq_len+1=65."
    )
    assert not (tmp_path / "store").exists()


def test_token_count_reads_sizes_and_array_headers(tmp_path):
    import numpy as np

    from trainer.config import token_count
    from trainer.data import read_tokens

    tokens = np.arange(700, dtype=np.uint16) % 300
    np.save(tmp_path / "a.npy", tokens)
    tokens.tofile(tmp_path / "a.bin")
    (tmp_path / "a.txt").write_bytes(bytes(range(256)) * 3)
    for name, n in (("a.npy", 700), ("a.bin", 700), ("a.txt", 768)):
        assert token_count(tmp_path / name) == n == len(read_tokens(tmp_path / name, 512))


def test_planning_a_sweep_imports_no_torch():
    # The driver plans before any privilege or environment change; torch is for the workers
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    code = ("import sys; from cluster.spec import load_spec, plan; "
            "plan(load_spec('results/bundled/cpu-moe-v2/spec.toml')); "
            "print('torch' in sys.modules)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
