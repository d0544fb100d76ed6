"""Import the routed language models of Clark et al. (2022) into a results store.

Source: ``data/curves.csv.gz`` of github.com/google-deepmind/scaling_laws_for_routing (CC-BY-4.0).
Cite: A. Clark et al., "Unified Scaling Laws for Routed Language Models", ICML 2022.
The file has one row per (run, evaluation step); ``hyper_id`` names the run.

How its columns become factors (paper symbols of moelaw):

- ``Na = dense_parameter_count`` (parameters used per token) and ``N = total_parameter_count``
  (all experts counted). Clark et al. count parameters without the embedding tables, matching
  moelaw's convention.
- ``E = num_experts`` (1 for the dense baselines), ``G = k``, ``S = 0`` (no shared experts).
- ``D = final step * tokens_per_step``. Assumption! The CSV has no token counts. Clark et al.
  trained 130B tokens in 250k steps of 256 sequences of 2048 tokens, so the default
  ``tokens_per_step`` is 256 * 2048 = 524288 and D is ~1.3e11 for every run.
- ``loss = loss_validation`` at the run's last step (249000 for 221 of the 223 runs), in nats
  per token on held-out MassiveText. The curve holds ``loss_validation`` at every step where it
  is present (NaN cells are skipped), with ``tokens = step * tokens_per_step``.

Example
-------
>>> from results import Store, import_clark2022                        # doctest: +SKIP
>>> import_clark2022("curves.csv.gz", Store("stores/clark2022"))       # doctest: +SKIP
223
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from results.errors import InputError
from results.schema import RunRecord, run_id
from results.store import Store
from results.tables import read_csv

__all__ = ["CLARK_COLUMNS", "SOURCE", "TOKENS_PER_STEP", "import_clark2022"]

logger = logging.getLogger(__name__)

SOURCE = "clark2022"
TOKENS_PER_STEP = 256 * 2048

# Hyperparameters that are constant within a run and together define it.
_HYPER = [
    "hyper_id",
    "router_type",
    "num_experts",
    "k",
    "routing_frequency",
    "flop_increase",
    "d_model",
    "num_blocks",
    "num_heads",
    "kqv_size",
    "seed",
    "total_parameter_count",
    "dense_parameter_count",
    "flops_per_step",
    "model_size_label",
]
_OTHER_LOSSES = ["loss_c4", "loss_curation_corpus", "loss_lambada", "loss_pile", "loss_wikitext103"]
# Hyperparameters also kept in `extra`, so they show up as extra_<name> columns of Store.runs().
_EXTRA_HYPER = [
    "router_type",
    "routing_frequency",
    "flops_per_step",
    "flop_increase",
    "model_size_label",
    "hyper_id",
]
CLARK_COLUMNS = tuple(_HYPER + ["step", "loss_validation"] + _OTHER_LOSSES)
_TEXT = {"router_type", "model_size_label"}  # the only columns that are not numbers
_LOSSES = {"loss_validation", *_OTHER_LOSSES}  # may be empty at a step


def import_clark2022(
    csv_path: str | os.PathLike,
    store: Store | str | os.PathLike,
    tokens_per_step: int = TOKENS_PER_STEP,
    allow_mixed: bool = False,
) -> int:
    """Write one :class:`~results.schema.RunRecord` per Clark et al. run into ``store``.

    Parameters
    ----------
    csv_path : str or os.PathLike
        ``curves.csv.gz`` (or the uncompressed CSV) from the paper's repository.
    store : Store or path
        Where to write the runs (``source = "clark2022"``); a path is opened (or created) only
        after the file has been read, so a bad file leaves no empty store behind.
    tokens_per_step : int, default 524288
        Training tokens per optimizer step, used for D and the curve's tokens (see the module
        docstring for why 256 * 2048).
    allow_mixed : bool, default False
        Import into a store that already holds runs of other studies. Every job reads all the
        runs of a store, so the studies are then fitted together unless a job selects one
        (``where={"source": "clark2022"}``, ``--where source=clark2022`` on the command line).

    Returns
    -------
    int
        Runs written; 0 when every run was already in the store (importing is idempotent).

    Raises
    ------
    InputError
        When the file is missing or lacks columns, ``tokens_per_step`` is not positive, or the
        store holds runs of another study (and not ``allow_mixed``).
    """
    if not isinstance(tokens_per_step, int) or tokens_per_step <= 0:
        raise InputError(
            f"tokens_per_step={tokens_per_step!r} must be a positive int (tokens per optimizer "
            f"step); Clark et al. used {TOKENS_PER_STEP}"
        )
    table = _read_csv(Path(csv_path))
    if not isinstance(store, Store):
        store = Store(store, create=True)  # only once the input has been read
    if not allow_mixed:
        _refuse_other_studies(store)
    written = 0
    for _, rows in table.groupby("hyper_id", sort=True):
        written += store.write(_record(rows.sort_values("step"), tokens_per_step))
    logger.info(
        "imported %d of %d Clark et al. runs into %s", written, table.hyper_id.nunique(), store
    )
    return written


def _refuse_other_studies(store: Store) -> None:
    """Refuse a store holding runs of another source: jobs would fit both studies as one."""
    sources = store.runs(status=None)["source"].value_counts()
    others = sources.drop(SOURCE, errors="ignore")
    if others.empty:
        return
    held = ", ".join(f"{count} of {name!r}" for name, count in others.items())
    raise InputError(
        f"results store {store.path} already holds runs of another study ({held}); importing "
        f"Clark et al. there would fit both studies as one data set. Import into a new or empty "
        f"store instead, e.g. `moelaw data import-clark PATH --store stores/{SOURCE}` "
        f"(--allow-mixed, or allow_mixed=True in Python, mixes them on purpose; a job then selects "
        f"one study with --where source=...)"
    )


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(
            f"Clark et al. curves file {path} does not exist; download data/curves.csv.gz from "
            "github.com/google-deepmind/scaling_laws_for_routing and pass its path"
        )
    table = read_csv(path, "the Clark et al. curves CSV", "pass an intact curves.csv.gz")
    missing = [name for name in CLARK_COLUMNS if name not in table.columns]
    if missing:
        raise InputError(
            f"{path} lacks the columns {missing}; it must be the curves.csv.gz of Clark et al. "
            f"2022 with columns {list(CLARK_COLUMNS)}"
        )
    for name in CLARK_COLUMNS:
        if name not in _TEXT:
            _check_numbers(table, name, path, required=name not in _LOSSES)
    return table


def _check_numbers(table: pd.DataFrame, name: str, path: Path, required: bool) -> None:
    """Refuse cells of ``name`` that are not finite numbers (or are empty, if ``required``)."""
    values = pd.to_numeric(table[name], errors="coerce")
    bad = values.isna() & table[name].notna()
    bad |= ~np.isfinite(values.fillna(0.0))
    if required:
        bad |= values.isna()
    if bad.any():
        rows = [int(i) for i in table.index[bad][:5]]
        cells = [repr(v) for v in table[name][bad].iloc[:5]]
        raise InputError(
            f"{path}: column {name!r} has {int(bad.sum())} cell(s) that are not finite numbers "
            f"(data rows {rows}, counted from 0 below the header: {cells}); fix or delete "
            "those rows"
        )


def _plain(value):
    """A CSV cell as a JSON-ready Python scalar (NaN becomes None)."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _record(rows: pd.DataFrame, tokens_per_step: int) -> RunRecord:
    """One run's rows (sorted by step) -> its record."""
    last = rows.iloc[-1]
    hyper = {name: _plain(last[name]) for name in _HYPER}
    final_step = int(last["step"])

    # 1. Identity: the run's hyperparameters plus how its tokens were counted.
    config = {"dataset": SOURCE, **hyper, "final_step": final_step}
    config["tokens_per_step"] = tokens_per_step

    # 2. Curve: validation loss wherever it was measured.
    curve = [
        {
            "split": "validation",
            "step": int(step),
            "tokens": int(step) * tokens_per_step,
            "loss": float(loss),
        }
        for step, loss in zip(rows["step"], rows["loss_validation"], strict=True)
        if not math.isnan(loss)
    ]

    # 3. Final loss, and the other evaluation sets at the same step.
    loss = float(last["loss_validation"])
    extra = {name: hyper[name] for name in _EXTRA_HYPER}
    extra |= {"step": final_step, "tokens_per_step": tokens_per_step}
    extra |= {name: _plain(last[name]) for name in _OTHER_LOSSES}
    failed = math.isnan(loss)
    return RunRecord(
        run_id=run_id(config),
        source=SOURCE,
        status="failed" if failed else "ok",
        error=f"no loss_validation at the final step {final_step}" if failed else "",
        N=hyper["total_parameter_count"],
        Na=hyper["dense_parameter_count"],
        D=float(final_step * tokens_per_step),
        G=hyper["k"],
        S=0.0,
        E=hyper["num_experts"],
        loss=loss,
        seed=hyper["seed"],
        wall_time_s=math.nan,
        config=config,
        architecture=_architecture(hyper),
        curve=curve,
        extra=extra,
    )


def _architecture(hyper: dict) -> dict:
    """Model shape in moelaw's architecture keys (no shared experts; kqv_size is the head width)."""
    return {
        "d_model": hyper["d_model"],
        "n_layers": hyper["num_blocks"],
        "n_heads": hyper["num_heads"],
        "kqv_size": hyper["kqv_size"],
        "n_experts": hyper["num_experts"],
        "top_k": hyper["k"],
        "n_shared": 0,
    }
