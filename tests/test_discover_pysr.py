"""The PySR engine: it stops at once with the fix when PySR or Julia is missing, and its
child-process protocol (files in, front file out, safe parsing) turns a front into candidates.

PySR itself needs Julia, which this machine lacks, so the protocol tests put a small stand-in
``pysr`` package (a ``PySRRegressor`` that returns a front the test chose) and a stand-in
``julia`` on the child's paths; everything on moelaw's side of the protocol is the real code.
"""

import importlib.util
import json
import sys

import numpy as np
import pandas as pd
import pytest
import sympy

from discover.engines.pyoperon import InputTransform
from discover.engines.pysr import EngineError, EngineUnavailable, read_front, run_pysr
from discover.formula import symbol
from results.errors import InputError

FAKE_PYSR = """
import json
import time

import pandas as pd


class PySRRegressor:
    def __init__(self, **options):
        self.options = options

    def fit(self, X, y, variable_names=None):
        opts = self.options
        with open(opts["fake_record"], "w") as handle:
            json.dump({"options": opts, "variable_names": variable_names, "shape": list(X.shape),
                       "y0": float(y[0])}, handle)
        time.sleep(opts.get("fake_sleep", 0))
        if "fake_error" in opts:
            raise ValueError(opts["fake_error"])
        self.equations_ = pd.DataFrame(opts["fake_front"]).assign(score=0.0)
        return self
"""


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    N = 10 ** rng.uniform(6, 9, 30)
    return pd.DataFrame({"N": N, "loss": 2.0 + 50.0 * N**-0.3})


@pytest.fixture
def no_julia(tmp_path, monkeypatch):
    """An environment with no Julia anywhere the probe looks."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("JULIA_DEPOT_PATH", "PYTHON_JULIAPKG_EXE", "PYTHON_JULIACALL_EXE"):
        monkeypatch.delenv(name, raising=False)
    return empty


@pytest.fixture
def fake_pysr(tmp_path, monkeypatch, no_julia):
    """A stand-in pysr package on the child's PYTHONPATH, and a stand-in julia on its PATH."""
    package = tmp_path / "site" / "pysr"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(FAKE_PYSR)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    return tmp_path


def _exact_front(table):
    """Equations in z0 (standardized log N) that PySR would print for the planted law."""
    t = InputTransform.from_column("N", table["N"].to_numpy(), "log")
    # 50 * N**-0.3 = 50 exp(-0.3 (scale z0 + center))
    b, c = float(50.0 * np.exp(-0.3 * t.center)), -0.3 * t.scale
    return [
        {"complexity": 1, "loss": 0.02, "equation": "2.05"},
        {"complexity": 4, "loss": 0.01, "equation": "cos(z0) + 2.0"},  # refused by the parser
        {"complexity": 6, "loss": 1.0e-30, "equation": f"2.0 + ({b!r} * exp({c!r} * z0))"},
        {"complexity": 7, "loss": 1.0e-30, "equation": f"(2.0 + {b!r} * exp(z0 * {c!r})) ^ 1.0"},
    ]


@pytest.mark.skipif(importlib.util.find_spec("pysr") is not None, reason="pysr is installed")
def test_without_pysr_the_error_says_to_install_it(table, no_julia):
    with pytest.raises(EngineUnavailable) as caught:
        run_pysr(table, "loss", ["N"], python=sys.executable)
    message = str(caught.value)
    assert "PySR is not installed" in message and sys.executable in message
    assert "-m pip install pysr" in message and "-m pysr install" in message
    assert isinstance(caught.value, InputError)  # the CLI prints it as one line


def test_without_julia_the_error_says_to_install_it_and_pysr_is_never_imported(
    table, fake_pysr, tmp_path
):
    # Importing this pysr would leave a marker: the probe must only look for it.
    package = tmp_path / "site" / "pysr" / "__init__.py"
    marker = tmp_path / "imported"
    package.write_text(f"open({str(marker)!r}, 'w').close()\n")
    (fake_pysr / "empty-bin" / "julia").unlink(missing_ok=True)
    with pytest.raises(EngineUnavailable) as caught:
        run_pysr(table, "loss", ["N"], python=sys.executable)
    message = str(caught.value)
    assert "PySR is installed" in message and "Julia is not" in message
    assert "juliaup" in message and f"{sys.executable} -m pysr install" in message
    assert not marker.exists()


def test_unrunnable_python_is_named(table):
    with pytest.raises(EngineUnavailable, match="cannot run the Python '/no/such/python'"):
        run_pysr(table, "loss", ["N"], python="/no/such/python")


def _with_julia(fake_pysr):
    julia = fake_pysr / "empty-bin" / "julia"
    julia.write_text("#!/bin/sh\necho 'julia version 1.10.0'\n")
    julia.chmod(0o755)


def test_protocol_round_trip_returns_the_front_in_raw_symbols(table, fake_pysr):
    _with_julia(fake_pysr)
    record = fake_pysr / "record.json"
    cands = run_pysr(table, "loss", ["N"], seed=7, python=sys.executable, time_limit=30,
                     niterations=5, fake_front=_exact_front(table),
                     fake_record=str(record))  # fmt: skip

    # What the child was given: transformed inputs, the seed, the settings, float64
    sent = json.loads(record.read_text())
    assert sent["variable_names"] == ["z0"] and sent["shape"] == [30, 1]
    assert sent["y0"] == table["loss"].iloc[0]
    options = sent["options"]
    assert options["random_state"] == 7 and options["niterations"] == 5
    assert options["timeout_in_seconds"] == 30.0 and options["precision"] == 64
    assert options["deterministic"] is True and options["parallelism"] == "serial"

    # What came back: three parsable equations, simplest first, in the raw symbol N
    assert [c.length for c in cands] == [1, 6, 7]
    assert all(c.engine == "pysr" and c.seed == 7 for c in cands)
    assert cands[0].expr == sympy.Float(2.05)
    N = table["N"].to_numpy()
    for cand in cands[1:]:
        assert cand.expr.free_symbols == {symbol("N")}
        values = sympy.lambdify([symbol("N")], cand.expr, "numpy")(N)
        np.testing.assert_allclose(values, table["loss"], rtol=1e-12)  # full precision
        assert cand.fit_r2 == pytest.approx(1.0)
    assert cands[0].fit_r2 == pytest.approx(1 - 0.02 / np.var(table["loss"]))


def test_child_failure_and_timeout_are_reported(table, fake_pysr):
    _with_julia(fake_pysr)
    record = str(fake_pysr / "record.json")
    with pytest.raises(EngineError, match="PySR failed: ValueError: bad setting xyz"):
        run_pysr(table, "loss", ["N"], python=sys.executable, fake_error="bad setting xyz",
                 fake_record=record)  # fmt: skip
    with pytest.raises(EngineError, match="did not finish within 2 s"):
        run_pysr(table, "loss", ["N"], python=sys.executable, timeout=2, fake_sleep=60,
                 fake_record=record, fake_front=[])  # fmt: skip


def test_read_front_parses_safely_and_filters_constants(tmp_path, table):
    path = tmp_path / "front.json"
    front = _exact_front(table) + [
        {"complexity": 9, "loss": 0.5, "equation": "__import__('os').system('true')"},
        {"complexity": 3, "loss": 0.1, "equation": "1.5 + 2.5 * z0 * 0.5"},
    ]
    path.write_text(json.dumps(front))
    t = InputTransform.from_column("N", table["N"].to_numpy(), "log")
    y = table["loss"].to_numpy()
    cands = read_front(path, [t], y, seed=3)
    assert [c.length for c in cands] == [1, 3, 6, 7]
    limited = read_front(path, [t], y, seed=3, max_coefficients=2)
    assert [c.length for c in limited] == [1, 3]  # 2 + b*exp(c*z0) has 3 numbers
    # The z0 of a front equation is the standardized log of N
    z = sympy.lambdify([symbol("N")], cands[1].expr)(1e7)
    assert z == pytest.approx(1.5 + 1.25 * (np.log(1e7) - t.center) / t.scale, rel=1e-14)


def test_bad_settings_fail_before_any_process(table):
    with pytest.raises(InputError, match=r"operators \['sin'\] are not supported"):
        run_pysr(table, "loss", ["N"], unary_operators=("sin",), python="/no/such/python")
    with pytest.raises(InputError, match="niterations must be a positive integer, got 0"):
        run_pysr(table, "loss", ["N"], niterations=0, python="/no/such/python")
    with pytest.raises(InputError, match=r"columns \['M'\] are not in the data"):
        run_pysr(table, "loss", ["M"], python="/no/such/python")
    with pytest.raises(InputError, match="JSON values"):
        run_pysr(table, "loss", ["N"], python="/no/such/python", weird=object())


@pytest.mark.skipif(importlib.util.find_spec("pysr") is not None, reason="pysr is installed")
def test_estimator_with_pysr_engine_stops_with_the_fix(table, no_julia):
    from discover.estimator import LawRegressor

    table = pd.concat([table, table.assign(N=table["N"] * 10)], ignore_index=True)
    with pytest.raises(EngineUnavailable, match="-m pip install pysr"):
        LawRegressor(engines=["pysr"]).fit(table[["N"]], table["loss"])
