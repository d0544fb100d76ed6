"""PySR (Julia's SymbolicRegression.jl) as a symbolic-regression engine, run in its own process.

Why a separate process: PySR runs Julia inside Python through juliacall, and Julia and PyTorch
loaded in one process are known to crash; importing pysr also tries to fetch Julia when none is
installed. So this module never imports pysr or juliacall. :func:`run_pysr`:

1. probes the Python that will run PySR (``python=``, else ``$MOELAW_PYSR_PYTHON``, else this
   one) in a second or so: is ``pysr`` importable there (found, not imported), and is there a Julia
   (``$PYTHON_JULIAPKG_EXE``, ``julia`` or ``juliaup`` on ``PATH``, a juliaup folder in the Julia
   depot, or a Julia that juliacall installed under that Python's prefix)? If not, it raises
   :class:`EngineUnavailable` saying what is missing and how to install it;
2. writes the search rows (inputs transformed as for pyoperon: standardized logs, see
   :class:`discover.engines.pyoperon.InputTransform`) to ``data.npz`` and the settings to
   ``request.json`` in a temporary folder, with a small script, ``child.py``;
3. runs ``python child.py FOLDER`` with a wall-clock limit; the script fits ``PySRRegressor`` and
   writes its Pareto front (``complexity``, ``loss``, ``equation``) to ``front.json``, or what went
   wrong to ``error.json``;
4. parses every equation with :func:`discover.formula.parse_formula` (never ``eval``; constants at
   the precision PySR printed them, float64 with ``precision=64``), replaces each transformed input
   by its definition in the raw symbols and returns :class:`~discover.candidates.Candidate` objects.

Operators are limited to those the safe parser reads: ``+ - * / ^``, ``exp``, ``log``, ``sqrt``,
``abs``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sympy as sp

from discover.candidates import Candidate
from discover.engines.pyoperon import TRANSFORMS, InputTransform
from discover.formula import parse_formula
from results.errors import InputError

log = logging.getLogger(__name__)

#: Environment variable naming the Python that runs PySR (one with ``pysr`` installed).
PYTHON_ENV = "MOELAW_PYSR_PYTHON"

BINARY_OPERATORS = ("+", "-", "*", "/", "^")
UNARY_OPERATORS = ("exp", "log", "sqrt", "abs")

#: Seconds allowed for Julia to start and compile, on top of ``time_limit``, before the child is
#: stopped. A first run after ``python -m pysr install`` compiles for a few minutes.
STARTUP_ALLOWANCE = 900.0

#: Seconds the probe (find pysr and Julia, import nothing) may take.
PROBE_TIMEOUT = 30.0


class EngineUnavailable(InputError):
    """An optional engine cannot run here: a package or runtime is missing (named, with the fix)."""


class EngineError(RuntimeError):
    """The engine's process failed or timed out (its message and the end of its output attached)."""


def run_pysr(
    data: pd.DataFrame,
    target: str,
    inputs: list[str] | tuple[str, ...],
    *,
    seed: int = 0,
    transform: str = "log",
    time_limit: float | None = 120.0,
    niterations: int = 40,
    populations: int = 15,
    population_size: int = 33,
    maxsize: int = 25,
    binary_operators: tuple[str, ...] | list[str] = ("+", "-", "*", "/"),
    unary_operators: tuple[str, ...] | list[str] = ("exp", "log"),
    max_coefficients: int | None = None,
    python: str | None = None,
    timeout: float | None = None,
    **pysr_options,
) -> list[Candidate]:
    """Search for laws ``target = f(inputs)`` with PySR in a child process; return its front.

    Parameters
    ----------
    data : pandas.DataFrame
        Rows to search on (hold out test rows before calling).
    target : str
        Target column, e.g. ``"loss"`` (nats per token).
    inputs : sequence of str
        Input columns; each also names its sympy symbol.
    seed : int, default 0
        PySR's ``random_state``; the search runs ``deterministic=True``, ``parallelism="serial"``.
    transform : {"log", "standardize", "none"}, default "log"
        How inputs are fed to PySR, as in :func:`discover.engines.pyoperon.run_pyoperon`.
    time_limit : float or None, default 120
        PySR's ``timeout_in_seconds`` (search time, Julia start-up not counted); None for none.
    niterations, populations, population_size, maxsize : int
        PySR's settings of the same names. Defaults 40, 15, 33, 25.
    binary_operators : sequence of str, default ("+", "-", "*", "/")
        Subset of ``+ - * / ^``.
    unary_operators : sequence of str, default ("exp", "log")
        Subset of ``exp log sqrt abs`` (what :func:`discover.formula.parse_formula` reads).
    max_coefficients : int or None, default None
        Drop equations with more numeric constants than this.
    python : str, optional
        Python executable with ``pysr`` installed. Default ``$MOELAW_PYSR_PYTHON``, else the
        running one.
    timeout : float, optional
        Wall-clock limit of the child process in seconds. Default ``time_limit`` plus
        :data:`STARTUP_ALLOWANCE` (or 4 hours without a time limit).
    **pysr_options
        Further keyword arguments for ``pysr.PySRRegressor`` (JSON values only).

    Returns
    -------
    list of Candidate
        One per equation of PySR's Pareto front, simplest first, in the raw symbols of
        ``inputs``; ``engine="pysr"``.

    Raises
    ------
    EngineUnavailable
        pysr is not installed for that Python, or no Julia is found (within seconds, before any
        Julia start-up); the message says how to install what is missing.
    EngineError
        The child process failed or ran past ``timeout``.
    InputError
        Bad arguments (unknown operators, missing columns, options that are not JSON).
    """
    python = python or os.environ.get(PYTHON_ENV) or sys.executable
    request = _request(seed, time_limit, niterations, populations, population_size, maxsize,
                       binary_operators, unary_operators, pysr_options)  # fmt: skip
    X, y, transforms = _design(data, target, inputs, transform)

    # 1. Probe before anything slow: pysr present, Julia present
    check_available(python)

    # 2.-3. Files in, child process, front file out
    limit = timeout if timeout is not None else _default_timeout(time_limit)
    with tempfile.TemporaryDirectory(prefix="moelaw-pysr-") as tmp:
        folder = Path(tmp)
        request["variable_names"] = [f"z{i}" for i in range(len(transforms))]
        request["options"]["output_directory"] = str(folder / "pysr-output")
        np.savez(folder / "data.npz", X=X, y=y)
        (folder / "request.json").write_text(json.dumps(request))
        (folder / "child.py").write_text(CHILD_SOURCE)
        _run_child(python, folder, limit)

        # 4. Parse the front in the raw symbols
        return read_front(folder / "front.json", transforms, y, seed, max_coefficients)


#: How to run PySR from another Python than moelaw's, said by every "not available" message.
_ELSEWHERE = (
    "PySR can also run from another Python PY: install PySR and Julia for it (`PY -m pip install "
    "pysr`, Julia 1.10 or later, then `PY -m pysr install`) and set the environment variable "
    f"{PYTHON_ENV}=PY (python=PY in Python)."
)


def check_available(python: str | None = None) -> dict:
    """Raise :class:`EngineUnavailable` unless ``python`` has pysr and a Julia is installed.

    Nothing is imported: the probe looks for the ``pysr`` package and a Julia executable only.

    Parameters
    ----------
    python : str, optional
        Python executable to probe; default ``$MOELAW_PYSR_PYTHON`` or the running one.

    Returns
    -------
    dict
        What the probe found: ``pysr`` (package folder), ``juliacall`` (bool), ``julia`` (how
        Julia was found), ``prefix`` (that Python's ``sys.prefix``).
    """
    python = python or os.environ.get(PYTHON_ENV) or sys.executable
    try:
        done = subprocess.run([python, "-c", PROBE_SOURCE], capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        raise EngineUnavailable(
            f"cannot run the Python {python!r} to look for PySR ({err}); set the environment "
            f"variable {PYTHON_ENV} (python= in Python) to a Python that has pysr installed"
        ) from None
    if done.returncode != 0:
        raise EngineUnavailable(
            f"the Python {python!r} failed to start (exit {done.returncode}: "
            f"{done.stderr.strip()[-300:]}); set the environment variable {PYTHON_ENV} "
            "(python= in Python) to a working one"
        )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if not found["pysr"]:
        raise EngineUnavailable(
            f"PySR is not installed for {python}; install it with `{python} -m pip install "
            "pysr`, then Julia 1.10 or later (juliaup from https://julialang.org/install, or a "
            f"julia binary on PATH) and PySR's Julia packages with `{python} -m pysr install`. "
            f"{_ELSEWHERE} Or use engine 'pyoperon', which needs none of this"
        )
    if not found["julia"]:
        raise EngineUnavailable(
            f"PySR is installed for {python} ({found['pysr']}) but Julia is not: no `julia` or "
            "`juliaup` on PATH, no PYTHON_JULIAPKG_EXE, no juliaup folder in the Julia depot, "
            f"no Julia installed by juliacall under {found['prefix']}. Install Julia 1.10 or "
            "later (juliaup from https://julialang.org/install, or put a julia binary on PATH), "
            f"then run `{python} -m pysr install`. {_ELSEWHERE} Or use engine 'pyoperon'"
        )
    return found


def read_front(path, transforms, y, seed: int = 0, max_coefficients: int | None = None):
    """Candidates from a ``front.json`` written by the child process.

    Parameters
    ----------
    path : str or Path
        JSON list of ``{"complexity": int, "loss": float, "equation": str}`` in the transformed
        variables ``z0, z1, ...``.
    transforms : sequence of InputTransform
        Definition of ``z<i>`` in the raw symbols, in order.
    y : numpy.ndarray
        Target values searched on (for R²).
    seed : int, default 0
    max_coefficients : int or None, default None
        Skip equations with more numeric constants than this.

    Returns
    -------
    list of Candidate
        Simplest first. Equations the safe parser refuses, or that are not finite numbers at
        full precision, are skipped (logged).
    """
    rows = json.loads(Path(path).read_text())
    names = [f"z{i}" for i in range(len(transforms))]
    raw = {sp.Symbol(n, real=True): t.symbolic() for n, t in zip(names, transforms, strict=True)}
    var_y = float(np.var(np.asarray(y, dtype=float)))
    out = []
    for row in sorted(rows, key=lambda r: r["complexity"]):
        try:
            expr = parse_formula(row["equation"], names=names)
        except InputError as err:
            log.info("PySR equation %r skipped: %s", row["equation"], err)
            continue
        if max_coefficients is not None and len(expr.atoms(sp.Float)) > max_coefficients:
            continue
        mse = float(row["loss"])
        out.append(Candidate(expr=expr.xreplace(raw), length=int(row["complexity"]),
                             complexity=float(row["complexity"]),
                             fit_r2=1.0 - mse / var_y if var_y > 0 else math.nan, mse=mse,
                             engine="pysr", seed=seed, text=row["equation"]))  # fmt: skip
    log.info("PySR seed %d: %d of %d front equations kept", seed, len(out), len(rows))
    return out


def _request(seed, time_limit, niterations, populations, population_size, maxsize, binary,
             unary, extra) -> dict:  # fmt: skip
    """The PySRRegressor settings, checked here so mistakes fail before any process starts."""
    bad = [op for op in binary if op not in BINARY_OPERATORS]
    bad += [op for op in unary if op not in UNARY_OPERATORS]
    if bad:
        raise InputError(
            f"PySR operators {bad} are not supported here; binary_operators may use "
            f"{BINARY_OPERATORS} and unary_operators {UNARY_OPERATORS} (what the safe parser reads)"
        )
    for name, value in dict(niterations=niterations, populations=populations,
                            population_size=population_size, maxsize=maxsize).items():  # fmt: skip
        if not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    if time_limit is not None and not time_limit > 0:
        raise InputError(f"time_limit must be positive seconds or None, got {time_limit!r}")
    options = dict(niterations=niterations, populations=populations,
                   population_size=population_size, maxsize=maxsize,
                   binary_operators=list(binary), unary_operators=list(unary),
                   random_state=seed, deterministic=True, parallelism="serial", precision=64,
                   progress=False, verbosity=0)  # fmt: skip
    if time_limit is not None:
        options["timeout_in_seconds"] = float(time_limit)
    options.update(extra)
    try:
        json.dumps(options, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise InputError(
            f"PySR options must be JSON values (numbers, text, lists): {err}"
        ) from None
    return {"options": options}


def _design(data, target, inputs, transform):
    """Float64 design matrix of transformed inputs, the target, and the transforms used."""
    if transform not in TRANSFORMS:
        raise InputError(f"transform={transform!r} is not one of {TRANSFORMS}; pick one of them")
    missing = [c for c in (*inputs, target) if c not in data.columns]
    if missing or not inputs:
        raise InputError(
            f"columns {missing or '(no inputs)'} are not in the data (it has "
            f"{list(data.columns)}); pass existing columns as inputs and target"
        )
    transforms = [InputTransform.from_column(c, data[c].to_numpy(float), transform) for c in inputs]
    X = np.column_stack([t.apply(data[t.name].to_numpy(float)) for t in transforms])
    y = data[target].to_numpy(float)
    bad = ~np.isfinite(X).all(axis=1) | ~np.isfinite(y)
    if bad.any():
        raise InputError(f"{int(bad.sum())} rows have non-finite inputs or target (rows "
                         f"{list(data.index[bad][:5])}); drop them before searching")  # fmt: skip
    return X, y, transforms


def _default_timeout(time_limit) -> float:
    """Child limit: the search time plus Julia's start-up, or 4 hours without a search limit."""
    return (time_limit if time_limit is not None else 4 * 3600.0) + STARTUP_ALLOWANCE


def _run_child(python: str, folder: Path, timeout: float) -> None:
    """Run ``child.py`` in ``folder``; raise EngineError with its output if it fails."""
    began = time.perf_counter()
    with open(folder / "child.log", "w") as out:
        try:
            code = subprocess.run([python, str(folder / "child.py"), str(folder)], stdout=out,
                                  stderr=subprocess.STDOUT, timeout=timeout).returncode  # fmt: skip
        except subprocess.TimeoutExpired:
            raise EngineError(
                f"PySR did not finish within {timeout:.0f} s and was stopped; raise timeout= "
                "or lower niterations / time_limit"
            ) from None
    log.info("PySR child process finished in %.1f s (exit %d)", time.perf_counter() - began, code)
    tail = (folder / "child.log").read_text(errors="replace")[-2000:]
    if (folder / "error.json").is_file():
        error = json.loads((folder / "error.json").read_text())
        raise EngineError(f"PySR failed: {error['type']}: {error['message']}\n{tail}")
    if code != 0 or not (folder / "front.json").is_file():
        raise EngineError(f"PySR's process exited with code {code} and no front; output:\n{tail}")


#: Run by the Python that will run PySR: reports whether pysr and a Julia are installed,
#: importing neither (stdlib only).
PROBE_SOURCE = r"""
import importlib.util, json, os, shutil, sys
from pathlib import Path

def julia():
    exe = os.environ.get("PYTHON_JULIAPKG_EXE") or os.environ.get("PYTHON_JULIACALL_EXE")
    if exe and Path(exe).is_file():
        return exe
    for name in ("julia", "juliaup"):
        if shutil.which(name):
            return shutil.which(name)
    depots = os.environ.get("JULIA_DEPOT_PATH", "").split(os.pathsep)
    for depot in [d for d in depots if d] + [str(Path.home() / ".julia")]:
        if (Path(depot) / "juliaup" / "juliaup.json").is_file():
            return str(Path(depot) / "juliaup")
    for exe in Path(sys.prefix).glob("julia_env/pyjuliapkg/install/bin/julia"):
        return str(exe)
    return None

spec = importlib.util.find_spec("pysr")
found = {
    "pysr": None if spec is None else str(Path(spec.origin).parent),
    "juliacall": importlib.util.find_spec("juliacall") is not None,
    "julia": julia(),
    "prefix": sys.prefix,
}
print(json.dumps(found))
"""

#: The child process: fit PySRRegressor on data.npz with request.json, write front.json.
CHILD_SOURCE = r'''"""Run PySR on the files of one folder (written by discover.engines.pysr)."""
import json
import sys
import traceback
from pathlib import Path

import numpy as np


def main(folder):
    request = json.loads((folder / "request.json").read_text())
    arrays = np.load(folder / "data.npz")
    from pysr import PySRRegressor

    model = PySRRegressor(**request["options"])
    model.fit(arrays["X"], arrays["y"], variable_names=request["variable_names"])
    rows = [
        {"complexity": int(row["complexity"]), "loss": float(row["loss"]),
         "equation": str(row["equation"])}
        for row in model.equations_.to_dict(orient="records")
    ]
    partial = folder / "front.json.partial"
    partial.write_text(json.dumps(rows))
    partial.replace(folder / "front.json")


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    try:
        main(folder)
    except BaseException as err:
        traceback.print_exc()
        error = {"type": type(err).__name__, "message": str(err)[:2000]}
        (folder / "error.json").write_text(json.dumps(error))
        sys.exit(1)
'''
