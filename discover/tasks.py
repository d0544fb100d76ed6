"""Benchmark tasks beyond MoE: loaders and extrapolation splits of the public SLDBench data.

Each loader reads the published files where they lie (``../shared/data/sldbench`` beside the
repository by default, or a folder the caller names) and returns a pandas table with the column
names and units below; nothing is copied into the project. Each ``*_split`` function returns a
:class:`Split`: the rows a law may be fitted and selected on (``train``), the rows scored once at
the end (``test``), and how to score them. The data were repackaged by Lin et al. 2025 ("Can
Language Models Discover Scaling Laws?", arXiv 2507.21184; github.com/linhaowei1/SLD, ``data/``
at commit 61c9d591) from the papers cited with each task; cite those papers.

Score, as on the MoE split: R² = 1 - mean((y - y_hat)^2) / var(y), the variance taken over the
scored rows, and the RMSE in the target's units (:mod:`discover.metrics`).

=============== ======================================== ===========================================
task            rows (train / test)                      split
=============== ======================================== ===========================================
vocab           1,200 runs (1,080 / 120)                 test: the largest vocabulary, V = 96,256
sft             42 curves x 13 sizes (504 / 42)          test: the largest fine-tuning set per curve
domain_mixture  4 models x 26 mixtures (80 / 24)         the data's own train / eval mixtures
moe (Clark)     221 runs (193 / 28)                      test: the 1.31B-parameter models
=============== ======================================== ===========================================

Example::

    from discover.tasks import vocab_split
    split = vocab_split()
    split.train[["N_nv", "N_v", "H", "Lu"]].head(), len(split.test)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from discover.metrics import r2
from results.errors import InputError

#: Where the public data lie by default: ``<repository>/../shared/data``.
DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
SLDBENCH = DATA_ROOT / "sldbench"
CLARK_CURVES = DATA_ROOT / "clark2022" / "curves.csv.gz"

SFT_DATASETS = ("flan", "gigaword", "wikiword")
MIXTURE_DOMAINS = 5


@dataclass(frozen=True)
class Split:
    """One task's rows, split for extrapolation.

    Attributes
    ----------
    task : str
        Task name (``"vocab"``, ``"sft"``, ``"domain_mixture"``, ``"moe"``).
    train, test : pandas.DataFrame
        Rows to fit and select on; rows scored once, at the end. Indices are reset.
    inputs : tuple of str
        Columns a law of this task takes, in the reference law's symbols.
    targets : tuple of str
        Columns to predict (one per output; the mixture task has one per domain).
    groups : tuple of str
        Columns whose every combination gets constants of its own in the reference law (empty:
        one set of constants for all rows).
    description : str
        The split in words, with its justification.
    units : dict of str to str
        Unit of every input and target column.
    """

    task: str
    train: pd.DataFrame
    test: pd.DataFrame
    inputs: tuple[str, ...]
    targets: tuple[str, ...]
    groups: tuple[str, ...] = ()
    description: str = ""
    units: dict[str, str] = field(default_factory=dict)


def _file(root, *parts) -> Path:
    """Path of one data file under ``root`` (default :data:`SLDBENCH`), refused if missing."""
    path = Path(SLDBENCH if root is None else root).joinpath(*parts)
    if not path.is_file():
        raise InputError(
            f"data file {path} does not exist; pass root= the folder holding SLDBench's "
            f"'{parts[0]}' folder (github.com/linhaowei1/SLD, data/)"
        )
    return path


def _split(task, table, test, inputs, targets, groups, description, units) -> Split:
    """A :class:`Split` from a table and a boolean test mask (indices reset on both sides)."""
    test = np.asarray(test, dtype=bool)
    train_rows = table[~test].reset_index(drop=True)
    test_rows = table[test].reset_index(drop=True)
    return Split(task, train_rows, test_rows, tuple(inputs), tuple(targets), tuple(groups),
                 description, units)  # fmt: skip


# --- Vocabulary (Tao et al. 2024) --------------------------------------------------------------

VOCAB_UNITS = {
    "N_nv": "non-vocabulary parameters",
    "N_v": "vocabulary parameters, V * d",
    "V": "vocabulary size (tokens)",
    "d": "embedding width",
    "H": "training characters",
    "C": "training FLOPs",
    "Lu": "unigram-normalised loss, nats per token (negative: the model beats a unigram model)",
    "neg_Lu": "-Lu, nats per token (positive)",
}


def load_vocab(root=None) -> pd.DataFrame:
    """The vocabulary-scaling runs of Tao et al. 2024, one row per run (1,200 rows).

    Source: Tao et al., "Scaling Laws with Vocabulary: Larger Models Deserve Larger
    Vocabularies" (NeurIPS 2024, arXiv 2407.13623), via SLDBench ``vocab/data.csv``.

    Parameters
    ----------
    root : path-like, optional
        Folder holding SLDBench's task folders. Default: :data:`SLDBENCH`.

    Returns
    -------
    pandas.DataFrame
        Columns (units in :data:`VOCAB_UNITS`): ``N_nv`` (``Non_vocab_parameters``), ``V``
        (``vocab_size``), ``d`` (``embed_dim``), ``N_v = V * d``, ``H`` (``num_characters``),
        ``C`` (``FLOPs``), ``Lu`` (``Lossu``) and ``neg_Lu = -Lu``. ``Lu`` is the loss minus the
        loss of a unigram model of the same tokenizer, which makes losses comparable across
        vocabulary sizes; all values are negative (-5.34 to -0.51), so laws are fitted to
        ``neg_Lu`` (moelaw's fitter works on positive losses).
    """
    raw = pd.read_csv(_file(root, "vocab", "data.csv"))
    table = pd.DataFrame({
        "N_nv": raw["Non_vocab_parameters"], "V": raw["vocab_size"], "d": raw["embed_dim"],
        "N_v": raw["vocab_size"] * raw["embed_dim"], "H": raw["num_characters"],
        "C": raw["FLOPs"], "Lu": raw["Lossu"],
    })  # fmt: skip
    table["neg_Lu"] = -table["Lu"]
    return table.astype(float)


def vocab_split(root=None) -> Split:
    """Hold out the largest vocabulary (V = 96,256: 120 runs); fit on the other 1,080.

    This is SLDBench's published split: the question the vocabulary law answers is how loss
    moves with V, so the test asks for V 1.5 times beyond the largest fitted (64,512), at every
    model size (N_nv 33M-1.13B) and data size. Holding out the largest N_nv instead would test
    the part of the law that is plain Chinchilla. Inputs ``N_nv, N_v, H`` (Tao et al.'s);
    target ``neg_Lu``.
    """
    table = load_vocab(root)
    test = table["V"] == table["V"].max()
    units = {k: VOCAB_UNITS[k] for k in ("N_nv", "N_v", "H", "neg_Lu", "V")}
    return _split("vocab", table, test, ("N_nv", "N_v", "H"), ("neg_Lu",), (),
                  vocab_split.__doc__.split("\n\n")[0], units)  # fmt: skip


# --- Supervised fine-tuning (Lin et al. 2024) --------------------------------------------------

SFT_UNITS = {
    "D_ft": "fine-tuning examples (not pretraining tokens, hence not named D)",
    "loss": "fine-tuning test loss, nats per token",
}


def load_sft(root=None) -> pd.DataFrame:
    """Fine-tuning curves of Lin et al. 2024: 14 pretrained models x 3 datasets x 14 sizes.

    Source: Lin et al., "Selecting Large Language Model to Fine-tune via Rectified Scaling Law"
    (ICML 2024, arXiv 2402.02314), via SLDBench ``sft/{flan,gigaword,wikiword}.csv`` (one row
    per model, one column per fine-tuning size).

    Parameters
    ----------
    root : path-like, optional
        Folder holding SLDBench's task folders. Default: :data:`SLDBENCH`.

    Returns
    -------
    pandas.DataFrame
        Long format, 588 rows: ``dataset`` (flan, gigaword, wikiword), ``model`` (the Hugging
        Face name), ``curve`` (``dataset/model``), ``D_ft`` (fine-tuning examples: 0, then 200 to
        819,200 doubling; named apart from moelaw's ``D``, pretraining tokens) and ``loss`` (test
        loss after fine-tuning, nats per token; at ``D_ft = 0`` the zero-shot loss).
    """
    frames = []
    for dataset in SFT_DATASETS:
        wide = pd.read_csv(_file(root, "sft", f"{dataset}.csv"))
        long = wide.melt(id_vars="model", var_name="D_ft", value_name="loss")
        long.insert(0, "dataset", dataset)
        frames.append(long)
    table = pd.concat(frames, ignore_index=True)
    table["D_ft"] = table["D_ft"].astype(float)
    table["loss"] = table["loss"].astype(float)
    if table["loss"].isna().any():
        raise InputError(f"{int(table['loss'].isna().sum())} empty loss cells in sft/*.csv; "
                         "the published files have none — check the copy")  # fmt: skip
    table.insert(2, "curve", table["dataset"] + "/" + table["model"])
    return table.sort_values(["dataset", "model", "D_ft"], ignore_index=True)


def sft_split(root=None) -> Split:
    """Hold out the largest fine-tuning set (819,200 examples) of every curve; fit on 200-409,600.

    This is SLDBench's published split: each of the 42 (model, dataset) curves is extrapolated
    one doubling beyond its largest fitted size (42 test rows, 504 train rows). The zero-shot
    point (D_ft = 0) is in neither side: the rectified law's D^beta needs D > 0, and the zero-shot
    loss is a different regime (on wikiword it is 1.5-2 nats above the loss after 200
    examples). Scored over the 42 test rows pooled. The reference law has constants per curve
    (``groups = ("curve",)``).
    """
    table = load_sft(root)
    table = table[table["D_ft"] > 0]
    test = table["D_ft"] == table["D_ft"].max()
    return _split("sft", table, test, ("D_ft",), ("loss",), ("curve",),
                  sft_split.__doc__.split("\n\n")[0], dict(SFT_UNITS))  # fmt: skip


# --- Domain mixtures (Ye et al. 2024) ----------------------------------------------------------

MIXTURE_UNITS = {
    **{f"r{j}": f"proportion of domain {j} in the training mixture" for j in range(1, 6)},
    **{f"L{j}": f"validation loss on domain {j}, nats per token" for j in range(1, 6)},
    "N": "model parameters (nominal, from the size label)",
}


def _parameters(label: str) -> float:
    """``"70M"`` -> 7e7, ``"1B"`` -> 1e9."""
    scale = {"K": 1e3, "M": 1e6, "B": 1e9}
    if not label or label[-1] not in scale:
        raise InputError(f"model size label {label!r} is not a number followed by K, M or B")
    return float(label[:-1]) * scale[label[-1]]


def load_domain_mixture(root=None) -> pd.DataFrame:
    """Per-domain losses of models trained on mixtures of five domains (Ye et al. 2024).

    Source: Ye et al., "Data Mixing Laws: Optimizing Data Mixtures by Predicting Language
    Modeling Performance" (ICLR 2025, arXiv 2403.16952), via SLDBench
    ``domain_mixture/all_models_data.json``: per model size, a ``train`` and an ``eval`` list of
    mixtures, each with its five proportions and the five per-domain validation losses. The file
    also names a 1B model with no mixtures; it gives no rows.

    Parameters
    ----------
    root : path-like, optional
        Folder holding SLDBench's task folders. Default: :data:`SLDBENCH`.

    Returns
    -------
    pandas.DataFrame
        One row per (model size, mixture), 104 rows: ``model_size`` (label: 70M, 160M, 305M,
        410M), ``N`` (parameters, from the label), ``list`` (``train`` or ``eval``, the file's
        own lists), ``mixture`` (the proportions as text), ``r1..r5`` (proportions, summing to
        1) and ``L1..L5`` (validation loss on each domain, nats per token).
    """
    with open(_file(root, "domain_mixture", "all_models_data.json")) as handle:
        data = json.load(handle)
    rows = []
    for size, lists in data.items():
        for which in ("train", "eval"):
            for point in lists.get(which, []):
                row = {"model_size": size, "N": _parameters(size), "list": which,
                       "mixture": point["ratio"]}  # fmt: skip
                row.update({f"r{j + 1}": float(v) for j, v in enumerate(point["proportions"])})
                row.update({f"L{j + 1}": float(v) for j, v in enumerate(point["loss"])})
                rows.append(row)
    return pd.DataFrame(rows)


def domain_mixture_split(root=None) -> Split:
    """Fit on each model's 20 ``train`` mixtures, score on its 6 ``eval`` mixtures (the file's).

    This is SLDBench's published split, and the only one the mixing law can be scored on: Ye et
    al.'s law predicts one model's per-domain loss from the mixture alone, with constants per
    model size and per domain, so a held-out model size would have no constants. The eval
    mixtures lie inside the range of the train mixtures (domain 1 at 0.25 or 0.5): the test is
    of prediction between mixtures, not of extrapolation. One output per domain (``L1..L5``);
    groups: ``model_size``.
    """
    table = load_domain_mixture(root)
    test = table["list"] == "eval"
    inputs = tuple(f"r{j}" for j in range(1, MIXTURE_DOMAINS + 1))
    targets = tuple(f"L{j}" for j in range(1, MIXTURE_DOMAINS + 1))
    return _split("domain_mixture", table, test, inputs, targets, ("model_size",),
                  domain_mixture_split.__doc__.split("\n\n")[0], dict(MIXTURE_UNITS))  # fmt: skip


# --- MoE (Clark et al. 2022) -------------------------------------------------------------------


def moe_split(path=None) -> Split:
    """The Clark et al. 2022 MoE split of ``../shared/data/README.md`` (SLDBench's "moe" task).

    Rows at step 249,000 (221 runs, final checkpoints); ``N`` = ``dense_parameter_count``
    (parameters used per token), ``E`` = ``num_experts``, ``loss`` = ``loss_validation`` (nats per
    token); test: the 1.31B-parameter runs (28), train: the rest (193). To load the runs into a
    store with every column instead, use :func:`results.clark.import_clark2022`.

    Parameters
    ----------
    path : path-like, optional
        ``curves.csv.gz`` of github.com/google-deepmind/scaling_laws_for_routing. Default:
        :data:`CLARK_CURVES`.
    """
    path = Path(CLARK_CURVES if path is None else path)
    if not path.is_file():
        raise InputError(f"Clark et al. curves file {path} does not exist; pass path= the "
                         "curves.csv.gz of google-deepmind/scaling_laws_for_routing")  # fmt: skip
    curves = pd.read_csv(path)
    final = curves[curves["step"] == 249000]
    table = pd.DataFrame({"N": final["dense_parameter_count"], "E": final["num_experts"],
                          "loss": final["loss_validation"]}).astype(float)  # fmt: skip
    test = table["N"] >= 1.3e9
    units = {"N": "parameters used per token", "E": "routed experts (1 = dense)",
             "loss": "validation loss, nats per token"}  # fmt: skip
    return _split("moe", table, test, ("N", "E"), ("loss",), (), moe_split.__doc__.split("\n\n")[0],
                  units)  # fmt: skip


SPLITS = {
    "vocab": vocab_split,
    "sft": sft_split,
    "domain_mixture": domain_mixture_split,
    "moe": moe_split,
}
"""Split function of every task, by name."""


def get_split(task: str, root=None) -> Split:
    """The :class:`Split` of ``task`` (one of :data:`SPLITS`).

    ``root`` is the SLDBench folder (default :data:`SLDBENCH`), or for ``"moe"`` the Clark et al.
    ``curves.csv.gz`` (default :data:`CLARK_CURVES`).
    """
    if task not in SPLITS:
        raise InputError(f"unknown task {task!r}; choose one of {', '.join(SPLITS)}")
    return SPLITS[task](root)


# --- Fitting and scoring a task -----------------------------------------------------------------

#: The published law of each task (a :data:`discover.laws.LAWS` name).
REFERENCE_LAWS = {
    "vocab": "tao2024_vocab",
    "sft": "lin2024_rectified",
    "domain_mixture": "ye2024_mixing",
    "moe": "moe_powerlaw4",
}


@dataclass
class TaskScore:
    """Held-out scores of one way of predicting a task.

    Attributes
    ----------
    task : str
    r2 : float
        Mean over the task's targets of R² over all test rows (pooled over groups).
    rmse : float
        Root mean squared error over every test cell (all targets), in the target's units.
    per_target : dict of str to float
        R² of each target over all test rows.
    per_group_r2 : float
        Mean over (group, target) of R² over that group's test rows; NaN without groups or
        with one test row per group (sft).
    predictions : pandas.DataFrame
        The test rows with one ``pred_<target>`` column per target.
    fits : list
        The fitted model of every (group, target), in order.
    """

    task: str
    r2: float
    rmse: float
    per_target: dict[str, float]
    per_group_r2: float
    predictions: pd.DataFrame = field(repr=False)
    fits: list = field(default_factory=list, repr=False)


def fit_by_group(split: Split, fit_one) -> TaskScore:
    """Fit one model per (group, target) on the train rows, predict the test rows, score them.

    The test rows are never passed to ``fit_one``: each model sees only its group's train rows,
    then predicts its group's test rows.

    Parameters
    ----------
    split : Split
    fit_one : callable
        ``fit_one(rows, target) -> model`` with ``model.predict(rows) -> array``, e.g.
        ``lambda rows, target: fit_law(law, rows, target)``.

    Returns
    -------
    TaskScore
    """
    predictions = split.test.copy()
    fits = []
    for target in split.targets:
        predicted = np.full(len(split.test), np.nan)
        for train_rows, test_mask in _groups(split):
            model = fit_one(train_rows.reset_index(drop=True), target)
            with np.errstate(all="ignore"):
                predicted[test_mask] = model.predict(split.test[test_mask].reset_index(drop=True))
            fits.append(model)
        predictions[f"pred_{target}"] = predicted
    return score_predictions(split, predictions, fits)


def _groups(split: Split):
    """``(train rows, test mask)`` of every group of the split (one pair without groups)."""
    if not split.groups:
        yield split.train, np.ones(len(split.test), dtype=bool)
        return
    keys = split.test[list(split.groups)].apply(tuple, axis=1)
    for key, rows in split.train.groupby(list(split.groups), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        mask = keys.map(lambda k, key=key: k == key).to_numpy(dtype=bool)
        if mask.any():
            yield rows, mask


def score_predictions(split: Split, predictions: pd.DataFrame, fits=()) -> TaskScore:
    """Score ``pred_<target>`` columns against the test rows' targets (see :class:`TaskScore`)."""
    per_target, errors, per_group = {}, [], []
    for target in split.targets:
        y = predictions[target].to_numpy(float)
        p = predictions[f"pred_{target}"].to_numpy(float)
        per_target[target] = r2(y, p) if np.isfinite(p).all() else -np.inf
        errors.append((y - p) ** 2)
        for _, rows in predictions.groupby(list(split.groups)) if split.groups else []:
            y_g, p_g = rows[target].to_numpy(float), rows[f"pred_{target}"].to_numpy(float)
            if len(rows) > 1:  # R² of one row is undefined
                per_group.append(r2(y_g, p_g) if np.isfinite(p_g).all() else -np.inf)
    return TaskScore(
        task=split.task,
        r2=float(np.mean(list(per_target.values()))),
        rmse=float(np.sqrt(np.mean(np.concatenate(errors)))),
        per_target=per_target,
        per_group_r2=float(np.mean(per_group)) if per_group else float("nan"),
        predictions=predictions,
        fits=list(fits),
    )


def fit_reference(split: Split, **fit_options) -> TaskScore:
    """Fit the task's published law (:data:`REFERENCE_LAWS`) per group and target; score it.

    Parameters
    ----------
    split : Split
    **fit_options
        Passed to :func:`discover.fit.fit_law` (e.g. ``n_starts=256``). Convergence and
        identifiability warnings are recorded on each fit (``fit.converged``, ``fit.message``),
        not raised.

    Returns
    -------
    TaskScore
        ``fits`` holds one :class:`~discover.fit.FitResult` per (group, target).
    """
    import warnings

    from discover.fit import fit_law
    from discover.laws import get_law

    law = get_law(REFERENCE_LAWS[split.task])

    def fit_one(rows, target):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fit_law(law, rows, target, **fit_options)

    return fit_by_group(split, fit_one)
