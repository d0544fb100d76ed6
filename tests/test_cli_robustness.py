"""The `moelaw` program under conditions a new user meets: unwritable output folders, a closed
pipe, bootstrap refits that fail, a mistyped formula, a split or columns that do not fit the data,
and a Ray address where nothing answers."""

import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cluster.sweep
import discover.data
import discover.fit
import discover.report
import discover.workflow
from cluster.cli import EXIT_BROKEN_PIPE, main
from discover.data import load_table
from discover.formula import FACTORS, near_miss_constants, parse_formula
from discover.laws import LAWS, get_law
from discover.workflow import bootstrap_note
from results.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "austen.txt"


def _csv(tmp_path, n=12, **columns) -> str:
    rng = np.random.default_rng(0)
    N = np.geomspace(1e5, 2e6, n)
    D = rng.choice([5e5, 1e6, 2e6], n)
    table = pd.DataFrame(
        {"N": N, "Na": N / 3, "D": D, "loss": 1.8 + 300 * N**-0.4 + 200 * D**-0.35}
    )
    for name, values in columns.items():
        table[name] = values
    path = tmp_path / "runs.csv"
    table.to_csv(path, index=False)
    return str(path)


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ----------------------------------------------------------------------------------------------
# 1. Output folders that cannot be created are refused before any work


def _no_work(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the job ran before the output folder was checked")

    monkeypatch.setattr(discover.workflow, "run_fit", refuse)
    monkeypatch.setattr(discover.workflow, "run_discover", refuse)
    monkeypatch.setattr(discover.report, "report_from_store", refuse)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize(
    "argv, option, folder",
    [
        (["discover", "--out", "/proc/nope"], "--out", "/proc/nope"),
        (
            ["fit", "--law", "chinchilla", "--out", "/proc/nope/deeper"],
            "--out",
            "/proc/nope/deeper",
        ),
        (["report", "--html", "/proc/nope"], "--html", "/proc/nope"),
    ],
)
def test_output_folder_under_proc_is_refused_before_any_work(
    monkeypatch, capsys, argv, option, folder
):
    # These ran the whole job and then lost its result to a FileNotFoundError traceback (as root,
    # /proc passes the permission check but nothing can be created in it).
    _no_work(monkeypatch)
    assert main(argv) == 2
    line = _error(capsys)
    assert line.startswith(f"moelaw {argv[0]}: error: {option} {folder} cannot be created: /proc ")
    assert "grants write permission to no one" in line or "not writable" in line
    assert f"choose a folder you can write to, e.g. {option} out/" in line
    assert not Path(folder).exists()


def test_output_folder_in_a_read_only_folder_is_refused(tmp_path, monkeypatch, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        _no_work(monkeypatch)
        assert main(["fit", "--law", "chinchilla", "--out", str(locked / "a" / "b")]) == 2
        line = _error(capsys)
        assert f"--out {locked / 'a' / 'b'} cannot be created: {locked} " in line
        assert list(locked.iterdir()) == []

        # The folder itself exists but cannot be written to.
        assert main(["fit", "--law", "chinchilla", "--out", str(locked)]) == 2
        assert f"--out {locked} cannot be written: {locked} " in _error(capsys)
    finally:
        locked.chmod(0o755)


def test_writable_output_folder_passes_and_nothing_is_created(tmp_path):
    from cluster.cli import _output_folder

    _output_folder(str(tmp_path / "new" / "deeper"), "--out")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------
# 2. A reader that closes the pipe early


def _closed_pipe_run(args) -> subprocess.CompletedProcess:
    """Run ``moelaw ARGS`` with standard output a pipe whose reader is already gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "cluster.cli", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
    finally:
        os.close(write_end)


def test_data_show_into_a_closed_pipe_exits_quietly(tmp_path):
    done = _closed_pipe_run(["data", "show", _csv(tmp_path)])
    assert "Traceback" not in done.stderr
    assert done.stderr == ""
    assert done.returncode == EXIT_BROKEN_PIPE == 141


def test_report_json_into_a_reader_that_stops_after_one_line(tmp_path, capsys):
    csv = _csv(tmp_path)
    assert main(["fit", "--law", "chinchilla", "--data", csv, "--out", str(tmp_path / "o")]) == 0
    capsys.readouterr()
    saved = str(tmp_path / "o" / "fit.json")

    # `moelaw report X --json | head -1`: the reader takes one line and closes the pipe.
    child = subprocess.Popen(
        [sys.executable, "-m", "cluster.cli", "report", saved, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert child.stdout.readline().strip() == b"{"
    child.stdout.close()
    stderr = child.stderr.read().decode()
    child.stderr.close()
    assert child.wait(timeout=120) in (0, EXIT_BROKEN_PIPE)
    assert "Traceback" not in stderr
    assert stderr == ""

    # The same with the reader gone before anything is written: always the broken-pipe status.
    done = _closed_pipe_run(["report", saved, "--json"])
    assert (done.returncode, done.stderr) == (EXIT_BROKEN_PIPE, "")


class _ClosedStdout:
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self):
        raise OSError("no file descriptor")


def test_main_returns_141_when_stdout_is_closed(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdout", _ClosedStdout())
    assert main(["data", "show", _csv(tmp_path)]) == 141


def test_broken_pipe_elsewhere_is_not_hidden(tmp_path, monkeypatch):
    # Only a closed standard output is a reader that went away; any other broken pipe is a fault.
    def broken(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe to a worker")

    monkeypatch.setattr(discover.data, "load_table", broken)
    with pytest.raises(BrokenPipeError, match="to a worker"):
        main(["data", "show", _csv(tmp_path)])


# ----------------------------------------------------------------------------------------------
# 3. Bootstrap intervals that rest on few converged refits


@pytest.mark.parametrize(
    "n_ok, n, converged, expected",
    [
        (100, 100, True, None),
        (90, 100, True, "intervals from 90 of 100 resamples (10 did not converge); those are "
                        "left out"),
        (50, 100, True, "intervals from 50 of 100 resamples (50 did not converge); those are "
                        "left out"),
        (13, 100, False, "intervals from 13 of 100 resamples (87 did not converge): too few to "
                         "trust: the refits kept are those that converged, not a random sample "
                         "of the resamples; the fit itself did not converge"),
        (49, 100, True, "intervals from 49 of 100 resamples (51 did not converge): too few to "
                        "trust: the refits kept are those that converged, not a random sample "
                        "of the resamples"),
    ],
)  # fmt: skip
def test_bootstrap_note(n_ok, n, converged, expected):
    assert bootstrap_note(n_ok, n, converged) == expected


def test_unconverged_bootstrap_refits_are_a_note_of_the_law(tmp_path, monkeypatch, capsys):
    # This used to be one line on stderr above a full table of intervals.
    def few_converged(self, n=1000, **kwargs):
        self.bootstrap_samples = pd.DataFrame({"converged": [True] * 13 + [False] * (n - 13)})
        return pd.DataFrame(
            [{"constant": name, "value": value, "se": 0.1, "lo": value - 0.2, "hi": value + 0.2,
              "n_ok": 13, "method": "percentile", "censored": "", "note": ""}
             for name, value in self.params.items()]
        )  # fmt: skip

    monkeypatch.setattr(discover.fit.FitResult, "bootstrap", few_converged)
    csv = _csv(tmp_path)
    argv = ["fit", "--law", "chinchilla", "--data", csv, "--bootstrap", "100"]
    assert main([*argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (note,) = [n for n in doc["laws"][0]["notes"] if n.startswith("intervals from")]
    assert note.startswith("intervals from 13 of 100 resamples (87 did not converge): too few to "
                           "trust")  # fmt: skip

    assert main(argv) == 0
    text = capsys.readouterr().out
    law_block = text.split("== chinchilla")[1]
    assert f"   note: {note}" in law_block


# ----------------------------------------------------------------------------------------------
# 4. A mistyped factor in --formula


def test_mistyped_factor_in_formula_is_noted(tmp_path, capsys):
    csv = _csv(tmp_path)
    formula = "L0 + A*Nn**(-alpha) + B*D**(-beta)"
    assert main(["fit", "--data", csv, "--formula", formula, "--json"]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert (
        "Nn is read as a constant, not an input: there is no column 'Nn'; did you mean N or Na?"
        in notes
    )
    assert main(["fit", "--data", csv, "--formula", formula]) == 0
    assert "note: Nn is read as a constant, not an input" in capsys.readouterr().out


@pytest.mark.parametrize(
    "formula, inputs, meant",
    [
        ("L0 + A*n**(-alpha) + B*D**(-beta)", ["D"], "n: N"),
        ("L0 + A*N**(-alpha) + B*DD**(-beta)", ["N"], "DD: D"),
        ("L0 + A*N**(-alpha) + B/d", ["N"], "d: D"),
        ("L0 + A*log(nA)", [], "nA: Na"),
        ("L0 + A*N**(-alpha) + B*tokens**(-beta)", ["N"], "tokens: token"),
    ],
)
def test_near_miss_constants(formula, inputs, meant):
    name, target = meant.split(": ")
    notes = near_miss_constants(parse_formula(formula), inputs, [*FACTORS, "token", "loss"])
    assert notes == [
        f"{name} is read as a constant, not an input: there is no column {name!r}; "
        f"did you mean {target}?"
    ]


def test_constant_named_like_a_column_is_noted():
    notes = near_miss_constants(parse_formula("L0 + A*P**(-alpha)"), [], ["P", *FACTORS])
    assert notes == [
        "P is read as a constant, not an input, although the data has a column 'P'; list it "
        "in --inputs to read it from the data"
    ]


@pytest.mark.parametrize(
    "formula, inputs",
    [
        ("a + b*N**(-c)", ["N"]),
        ("A + B*D**(-beta) + L0", ["D"]),
        ("e + n*N**(-alpha)", ["N"]),  # coefficients named like factors are no inputs' place
        ("E0 + A*N**(-alpha)", ["N"]),
        ("L0 + A*N**(-alpha) + B*n**(-beta)", ["N"]),  # N is used, so n is meant as it is
    ],
)
def test_ordinary_constants_are_not_suspect(formula, inputs):
    assert near_miss_constants(parse_formula(formula), inputs, FACTORS) == []


def test_published_laws_and_readme_formulas_trigger_no_note():
    names = [*FACTORS, *load_table(None).columns]
    for name in LAWS:
        law = get_law(name)
        for expr in (law.expr, parse_formula(str(law.expr))):
            assert near_miss_constants(expr, law.inputs, [*names, *law.inputs]) == [], name

    readme = (ROOT / "README.md").read_text()
    formulas = re.findall(r"--formula \"([^\"]+)\"", readme)
    assert formulas
    for text in formulas:
        expr = parse_formula(text)
        inputs = [f for f in FACTORS if f in {str(s) for s in expr.free_symbols}]
        assert near_miss_constants(expr, inputs, names) == [], text


# ----------------------------------------------------------------------------------------------
# 5. Messages that name the flags that fix them


def _ties_at_the_top(tmp_path) -> str:
    table = pd.DataFrame(
        {
            "N": [1e6, 1e7, 1e8, 1e8, 1e8],
            "D": [1e9, 2e9, 1e9, 2e9, 3e9],
            "loss": [3.0, 2.8, 2.6, 2.5, 2.45],
        }
    )
    path = tmp_path / "ties.csv"
    table.to_csv(path, index=False)
    return str(path)


def test_quantile_split_that_holds_out_nothing_names_the_flags(tmp_path, capsys):
    assert main(["fit", "--law", "chinchilla", "--data", _ties_at_the_top(tmp_path)]) == 2
    assert _error(capsys) == (
        "moelaw fit: error: --holdout-quantile 0.2 holds out the rows above the 0.8 quantile of "
        "N, 1e+08, which leaves 0 of 5 rows held out (N spans 1e+06 to 1e+08); hold out the runs "
        "at the largest N with --holdout-above 1e+07, hold out a larger fraction with "
        "--holdout-quantile Q (Q above 0.5; 3 of 5 rows share the largest N), or split on "
        "another column with --holdout-factor COLUMN"
    )


def test_suggested_quantile_bound_is_exact(tmp_path):
    # Q just above the bound holds out the 3 runs at the largest N; Q at the bound holds out none.
    table = pd.read_csv(_ties_at_the_top(tmp_path))
    with pytest.raises(InputError, match="leaves 0 of 5 rows held out"):
        discover.workflow.split(table, "N", 0.5)
    fit_mask, hold_mask = discover.workflow.split(table, "N", 0.51)
    assert hold_mask.tolist() == [False, False, True, True, True]


def test_threshold_split_that_holds_out_nothing_names_the_flags(tmp_path, capsys):
    csv = _ties_at_the_top(tmp_path)
    assert main(["fit", "--law", "chinchilla", "--data", csv, "--holdout-above", "1e9"]) == 2
    line = _error(capsys)
    assert line.startswith(
        "moelaw fit: error: --holdout-above 1e+09 holds out 0 of 5 rows (N spans 1e+06 to "
        "1e+08); give a value inside that range: hold out the runs at the largest N with "
        "--holdout-above 1e+07, drop --holdout-above and hold out a larger fraction with "
        "--holdout-quantile Q"
    )
    assert main(["fit", "--law", "chinchilla", "--data", csv, "--holdout-above", "1"]) == 2
    assert "--holdout-above 1 holds out 5 of 5 rows" in _error(capsys)


@pytest.mark.parametrize(
    "columns, fixes",
    [
        ({"n": 1.0, "D": 1.0, "val_loss": 1.0}, "--use N=n --target val_loss"),
        ({"params": 1.0, "D": 1.0, "val_loss": 1.0, "train_loss": 1.0},
         "--use N=COLUMN --target val_loss"),
        ({"params": 1.0, "D": 1.0, "loss_a": 1.0, "loss_b": 1.0},
         "--use N=COLUMN --target COLUMN"),
    ],
)  # fmt: skip
def test_missing_columns_name_use_and_target(tmp_path, capsys, columns, fixes):
    path = tmp_path / "cols.csv"
    pd.DataFrame({k: [v, 2 * v] for k, v in columns.items()}).to_csv(path, index=False)
    assert main(["fit", "--law", "chinchilla", "--data", str(path)]) == 2
    line = _error(capsys)
    assert "column(s) ['N', 'loss'] missing from the table; available columns: " in line
    assert line.endswith(f"; read them from other columns with {fixes}")


# ----------------------------------------------------------------------------------------------
# 6. A Ray address where nothing answers


def _children() -> set[int]:
    """Process ids whose parent is this process (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.add(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_sweep_address_where_no_ray_answers_is_refused(tmp_path, monkeypatch, capsys):
    pytest.importorskip("ray")
    # A TCP listener on 127.0.0.1 that accepts connections and never speaks Ray's protocol.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted = []

    def accept():
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    address = f"127.0.0.1:{listener.getsockname()[1]}"

    started = []

    class Recorded(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(cluster.sweep, "CONNECT_TIMEOUT_S", 3.0)
    monkeypatch.setattr(cluster.sweep.subprocess, "Popen", Recorded)
    spec = tmp_path / "spec.toml"
    spec.write_text(
        f'name = "t"\nstore = "store"\n[data]\nfiles = ["{CORPUS}"]\n'
        "[defaults]\nN = 1e5\nNa_ratio = 0.4\nD = 2e4\n"
    )
    before = _children()
    try:
        code = main(["sweep", str(spec), "--address", address, "--quiet"])
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
    assert code == 2
    assert _error(capsys) == (
        f"moelaw sweep: error: cannot reach a Ray cluster at {address} within 3 s; start one "
        "with `python -m cluster.local_cluster SPEC` (see README: it runs the sweep on a local "
        "two-node cluster), drop --address to use a private local Ray, or check the address"
    )
    assert started and all(p.returncode is not None for p in started)
    assert not (tmp_path / "store").exists()  # refused before the store was created
    assert _children() - before == set()
    import ray

    assert not ray.is_initialized()


# -- data show: what a fit would refuse or skip ---------------------------------------------------


def test_data_show_counts_runs_that_are_not_read_and_flags_bad_losses(tmp_path, capsys):
    from results.schema import RunRecord, run_id
    from results.store import Store

    def record(i, status, loss):
        config = {"study": "s", "i": i}
        return RunRecord(
            run_id=run_id(config), source="s", status=status, error="" if status == "ok" else "x",
            N=1e6 * (i + 1), Na=2e5, D=1e8, G=2, S=0.0, E=8, loss=loss, seed=0, wall_time_s=1.0,
            config=config, architecture={}, curve=[], extra={},
        )  # fmt: skip

    store = Store(tmp_path / "store", create=True)
    for i, (status, loss) in enumerate([("ok", 3.0), ("ok", 2.9), ("failed", float("nan"))]):
        store.write(record(i, status, loss))
    assert main(["data", "show", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 runs (ok; also 1 failed, not read: `moelaw sweep SPEC` runs them")
    assert "warning" not in out

    csv = tmp_path / "runs.csv"
    csv.write_text("N,D,loss\n1e6,1e8,2.5\n2e6,1e8,nan\n3e6,1e8,-1\n")
    assert main(["data", "show", str(csv)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("3 runs\n")
    assert "  loss  -1 .. 2.5  (2 distinct)" in out
    assert "warning: 1 runs have no finite loss" in out and "warning: 1 runs have loss <= 0" in out


def test_the_printed_holdout_threshold_reproduces_the_split(capsys):
    # Printed as 3.999e+05 it held out three more runs (at N = 399936) when typed back
    assert main(["fit", "--law", "chinchilla"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith("held out 29 with N > 399936 (extrapolation)")
    assert main(["fit", "--law", "chinchilla", "--holdout-above", "399936"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == first


def test_constants_named_like_data_columns_or_the_target_are_noted(capsys):
    formula = "L0 + A*Na**(-alpha) + B*D**(-beta) + seed*1e-3 + loss*1e-3"
    assert main(["fit", "--formula", formula, "--json"]) == 0
    notes = " ".join(json.loads(capsys.readouterr().out)["notes"])
    assert "seed is read as a constant, not an input, although the data has a column 'seed'" in (
        notes
    )
    assert "loss is a constant of the formula and also the column it predicts (--target loss)" in (
        notes
    )


def test_a_mistyped_where_column_gets_a_suggestion_and_data_show_lists_the_columns(capsys):
    assert main(["fit", "--law", "chinchilla", "--where", "extra_stepz=2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "moelaw fit: error: --where extra_stepz=...: the data has no column 'extra_stepz'; "
        "did you mean extra_steps or "
    )
    assert "columns: run_id, source, status," in err
    assert main(["data", "show"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "other columns that vary (for --where, --use): seed, " in out and "extra_steps" in out
