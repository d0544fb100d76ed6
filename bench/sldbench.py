"""Published laws against discovered ones on the three SLDBench tasks beyond MoE.

Run from the repository root:

    .venv/bin/python bench/sldbench.py                       # all three tasks, seed 0
    .venv/bin/python bench/sldbench.py --tasks vocab --seeds 0 1 --json out/sldbench.json
    .venv/bin/python bench/sldbench.py --tasks sft --sft-shared

Tasks, splits and scores: :mod:`discover.tasks` (vocab: Tao et al. 2024, test = the largest
vocabulary; sft: Lin et al. 2024, test = the largest fine-tuning set of each of 42 curves;
domain_mixture: Ye et al. 2024, the data's own train / eval mixtures). For each task the
published law (:data:`discover.tasks.REFERENCE_LAWS`) is fitted on the train rows and scored on
the test rows; then :func:`discover.pipeline.discover_law` searches for a law on the same train
rows, with at most as many constants as the published law has per output, and is scored on the
same test rows. Neither sees a test row before scoring (:func:`discover.tasks.fit_by_group`
passes only train rows to the fit).

How discovery meets the structure of each task, with the published law's own granularity:

- vocab: one law for all 1,080 train runs, inputs ``N_nv, N_v, H``, target ``neg_Lu``, at most
  7 constants; the inner holdout (selection inside the train rows) is the largest vocabularies
  left, V >= 48,128, the same kind of extrapolation as the test.
- sft: the published law has all four constants per curve (pretrained model x dataset) and the
  data carry no property of the pretrained model (not even its size), so discovery runs per
  curve too: 42 searches on 12 rows each, input ``D_ft``, at most 4 constants, inner holdout the
  three largest fine-tuning sizes of the curve. Each curve may end with its own form; the table
  shows the most frequent. With ``--sft-shared`` a second score is printed: one form per dataset,
  picked among the per-curve winners by its inner-holdout R² over all the dataset's curves, with
  constants per curve (the published law's granularity: one form, constants per curve).
- domain_mixture: the published law has six constants per target domain and model size, so
  discovery runs per (model size, domain): 20 searches on 20 mixtures each, inputs ``r1..r5``, at
  most 6 constants. The test mixtures lie between the train mixtures, so the inner holdout is a
  fixed pseudo-random fifth of the train mixtures (column ``fold``, a hash of the mixture).

Discovery uses discover_law's default engines (``--engines`` chooses others where discover_law
takes ``engines=``). A search that stops with an error is rerun once with every seed shifted by
1000; the table lists each such rerun with its error, so none goes unseen.

R² is over the test rows (variance over those rows); for domain_mixture it is the mean over the
five domains of R² over each domain's 24 test rows (4 model sizes x 6 mixtures), and the mean of
R² within each (model size, domain), 6 rows each, is printed as well.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import inspect
import json
import logging
import time
import warnings
from pathlib import Path

from discover.pipeline import discover_law
from discover.tasks import REFERENCE_LAWS, Split, fit_by_group, fit_reference, get_split
from results.errors import InputError

TASKS = ("vocab", "sft", "domain_mixture")

#: Discovery settings per task: inner-holdout column and the constant limit of the published law.
SETTINGS = {
    "vocab": dict(holdout_factor="V", max_constants=7),
    "sft": dict(holdout_factor="D_ft", max_constants=4),
    "domain_mixture": dict(holdout_factor="fold", max_constants=6),
}

#: Engine settings of the grouped tasks: a search on a dozen rows needs far less than the default.
GROUPED_ENGINE = dict(generations=100, population_size=300, time_limit=30)

#: Seed offset of the one rerun a search gets when it fails outright.
RETRY_SEED_OFFSET = 1000


def with_fold(split: Split) -> Split:
    """The split with a ``fold`` column: a number in [0, 1) fixed by each row's mixture."""

    def fold(mixture: str) -> float:
        return int(hashlib.sha256(mixture.encode()).hexdigest()[:8], 16) / 2**32

    train = split.train.assign(fold=split.train["mixture"].map(fold))
    test = split.test.assign(fold=split.test["mixture"].map(fold))
    return dataclasses.replace(split, train=train, test=test)


def discover(split: Split, seeds, engine_options, engines=None):
    """Discovery per group and target of ``split``.

    Returns the TaskScore, the chosen form of every (group, target), the engines that ran, and
    the searches that failed and were rerun with other seeds (each with its error).
    """
    settings = SETTINGS[split.task]
    forms, engines_run, retried = [], set(), []
    extra = {}
    if engines is not None and "engines" in inspect.signature(discover_law).parameters:
        extra["engines"] = engines

    def search(rows, target, seeds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return discover_law(rows, inputs=list(split.inputs), target=target,
                                seeds=tuple(seeds), engine_options=engine_options,
                                **settings, **extra)  # fmt: skip

    def fit_one(rows, target):
        try:
            result = search(rows, target, seeds)
        except InputError as err:
            # A search that fails outright is rerun once with other seeds, and reported
            where = {g: str(rows[g].iloc[0]) for g in split.groups}
            retried.append({"group": where, "target": target, "error": str(err)})
            result = search(rows, target, [seed + RETRY_SEED_OFFSET for seed in seeds])
        forms.append(result.front.loc[0, "formula"])
        engines_run.update(result.settings.get("engines", [result.settings.get("engine")]))
        return result.best

    return fit_by_group(split, fit_one), forms, sorted(map(str, engines_run)), retried


def share_forms(split: Split, fits, tie_tolerance: float = 1e-3):
    """One form per sft dataset with constants per curve, chosen on the train rows only.

    The candidates are the forms the per-curve searches chose (``fits``). For each dataset, every
    candidate is re-fitted on each curve's inner-fit rows and scored on the curve's inner holdout
    (its three largest train sizes, as in the per-curve search); the form with the best R² over
    all of the dataset's inner-holdout rows wins (the fewest constants among forms within
    ``tie_tolerance``). It is then re-fitted per curve on all its train rows.

    Returns
    -------
    TaskScore, dict of dataset to the chosen form
    """
    from discover.pipeline import inner_split

    candidates = {}
    for fit in fits:
        candidates.setdefault(str(fit.law.expr), fit)
    chosen = {}
    for dataset, rows in split.train.groupby("dataset"):
        scored = []
        for form, fit in candidates.items():
            score = _pooled_inner_r2(fit, rows, inner_split)
            if score is not None:
                scored.append((score, fit.n_constants, form))
        best = max(score for score, _, _ in scored)
        tied = [item for item in scored if item[0] >= best - tie_tolerance]
        chosen[dataset] = min(tied, key=lambda item: (item[1], -item[0]))[2]

    def fit_one(rows, target):
        model = _refit(candidates[chosen[rows["dataset"].iloc[0]]], rows, target)
        if model is None:
            raise InputError(f"the shared form could not be fitted to {rows['curve'].iloc[0]}")
        return model

    return fit_by_group(split, fit_one), chosen


def _refit(fit, rows, target="loss"):
    """``fit``'s form re-fitted on ``rows`` from its constants; None if it cannot be fitted."""
    from discover.fit import fit_law

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fit_law(fit.law, rows.reset_index(drop=True), target, start=fit.params,
                           n_starts=64, n_polish=4, maxiter=400)  # fmt: skip
        except InputError:
            return None


def _pooled_inner_r2(fit, rows, inner_split):
    """R² of ``fit``'s form over the inner-holdout rows of every curve in ``rows``, or None."""
    import numpy as np

    measured, predicted = [], []
    for _, curve in rows.groupby("curve"):
        curve = curve.reset_index(drop=True)
        held = inner_split(curve, "D_ft", 0.2)
        model = _refit(fit, curve[~held])
        if model is None:
            return None
        with np.errstate(all="ignore"):
            predicted.append(model.predict(curve[held].reset_index(drop=True)))
        measured.append(curve.loc[held, "loss"].to_numpy(float))
    y, p = np.concatenate(measured), np.concatenate(predicted)
    if not np.isfinite(p).all():
        return None
    return float(1.0 - np.mean((y - p) ** 2) / np.var(y))


def describe_forms(forms: list[str]) -> str:
    """The chosen form, or the most frequent one with its count when there are several fits."""
    if len(forms) == 1:
        return forms[0]
    form, count = collections.Counter(forms).most_common(1)[0]
    return f"{form}  ({count}/{len(forms)} fits; {len(set(forms))} distinct)"


def run_task(task: str, seeds, root, engines=None, shared_sft=False) -> dict:
    """Reference and discovery on one task: scores, wall times and the discovered form."""
    split = get_split(task, root)
    if task == "domain_mixture":
        split = with_fold(split)
    began = time.perf_counter()
    reference = fit_reference(split)
    ref_seconds = time.perf_counter() - began

    began = time.perf_counter()
    options = None if task == "vocab" else dict(GROUPED_ENGINE)
    found, forms, engines_run, retried = discover(split, seeds, options, engines)
    seconds = time.perf_counter() - began
    shared = {}
    if task == "sft" and shared_sft:
        began = time.perf_counter()
        score, chosen = share_forms(split, found.fits)
        shared = {"discovered_shared": _scores(score, split), "shared_forms": chosen,
                  "shared_seconds": time.perf_counter() - began}  # fmt: skip
    return {**shared,
        "task": task, "n_train": len(split.train), "n_test": len(split.test),
        "reference_law": REFERENCE_LAWS[task],
        "reference": _scores(reference, split), "reference_seconds": ref_seconds,
        "reference_converged": f"{sum(f.converged for f in reference.fits)}/{len(reference.fits)}",
        "discovered": _scores(found, split), "discovered_seconds": seconds,
        "discovered_form": describe_forms(forms), "forms": forms,
        "discovered_constants": max(f.n_constants for f in found.fits), "seeds": list(seeds),
        "engines": engines_run, "retried": retried,
    }  # fmt: skip


def _scores(score, split: Split) -> dict:
    """R², RMSE and the secondary breakdowns of one TaskScore (JSON-ready)."""
    out = {"r2": score.r2, "rmse": score.rmse, "per_target": score.per_target,
           "per_group_r2": score.per_group_r2}  # fmt: skip
    if split.task == "sft":
        from discover.metrics import r2

        frame = score.predictions
        out["per_dataset"] = {
            name: r2(rows["loss"], rows["pred_loss"]) for name, rows in frame.groupby("dataset")
        }
    return out


def format_table(rows: list[dict]) -> str:
    """The comparison as a text table, one line per task, then each discovered form."""
    head = (f"{'task':<15} {'ref R2':>8} {'ref RMSE':>9} {'disc R2':>8} {'disc RMSE':>9} "
            f"{'ref s':>6} {'disc s':>7}  winner")  # fmt: skip
    lines = [head, "-" * len(head)]
    for row in rows:
        ref, disc = row["reference"], row["discovered"]
        winner = "discovered" if disc["r2"] > ref["r2"] else "reference"
        lines.append(
            f"{row['task']:<15} {ref['r2']:>8.4f} {ref['rmse']:>9.4f} {disc['r2']:>8.4f} "
            f"{disc['rmse']:>9.4f} {row['reference_seconds']:>6.0f} "
            f"{row['discovered_seconds']:>7.0f}  {winner} ({disc['r2'] - ref['r2']:+.4f})"
        )
    lines.append("")
    for row in rows:
        ref, disc = row["reference"], row["discovered"]
        lines.append(
            f"{row['task']}: reference {row['reference_law']} (converged fits "
            f"{row['reference_converged']}); discovered {row['discovered_form']}"
        )
        lines.append(f"    engines: {', '.join(row['engines'])}; searches rerun after an "
                     f"error: {len(row['retried'])}")  # fmt: skip
        for failed in row["retried"]:
            lines.append(f"      {failed['group']} {failed['target']}: {failed['error']}")
        for key in ("per_target", "per_dataset"):
            if key in ref:
                pairs = ", ".join(f"{k} {ref[key][k]:.3f}/{disc[key][k]:.3f}" for k in ref[key])
                lines.append(f"    R2 {key.replace('_', ' ')} (reference/discovered): {pairs}")
        if "discovered_shared" in row:
            shared = row["discovered_shared"]
            lines.append(f"    one form per dataset, constants per curve: R2 {shared['r2']:.4f}, "
                         f"RMSE {shared['rmse']:.4f} ({row['shared_seconds']:.0f} s more); "
                         f"forms {row['shared_forms']}")  # fmt: skip
            pairs = ", ".join(f"{k} {v:.3f}" for k, v in shared["per_dataset"].items())
            lines.append(f"    R2 per dataset (one form per dataset): {pairs}")
        if ref["per_group_r2"] == ref["per_group_r2"]:
            lines.append(f"    mean R2 within each group (reference/discovered): "
                         f"{ref['per_group_r2']:.3f}/{disc['per_group_r2']:.3f}")  # fmt: skip
    wins = sum(row["discovered"]["r2"] > row["reference"]["r2"] for row in rows)
    lines.append(f"\ndiscovered law beats the published one on {wins} of {len(rows)} tasks")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task names")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="engine seeds, pooled")
    parser.add_argument("--root", type=Path, default=None, help="SLDBench data folder")
    parser.add_argument("--engines", default=None,
                        help="comma-separated engines, if discover_law takes engines=")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--sft-shared", action="store_true",
                        help="also pick one form per sft dataset, constants per curve")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    engines = tuple(args.engines.split(",")) if args.engines else None

    rows = []
    for task in args.tasks.split(","):
        rows.append(run_task(task.strip(), args.seeds, args.root, engines, args.sft_shared))
        print(format_table(rows[-1:]).splitlines()[2], flush=True)
    print()
    print(format_table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main()
