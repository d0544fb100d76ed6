"""Sweep specifications: a TOML file that lists the training runs of a study.

A spec names factor targets and training settings; :func:`load_spec` reads and checks it and
:func:`plan` turns it into concrete runs (a :class:`trainer.config.RunConfig` and a run id each)
before anything trains, so an unknown key or an impossible combination stops the sweep at once.

The format, with every section optional except ``name``, ``data`` and at least one point::

    name = "cpu-moe-v1"          # recorded as each run's `source`
    store = "."                  # results store, relative to this file (default "<name>-runs")
    seeds = [0]                  # every point is trained once per seed

    [data]
    files = ["../corpus/austen.txt"]   # text files, relative to this file; bytes are the tokens
    val_fraction = 0.05                # the last 5% of each file is the fixed validation slice

    [defaults]                   # shared by every point: factor targets, architecture, training
    N = 1.0e6                    # total non-embedding parameters
    Na = 3.0e5                   # activated non-embedding parameters per token
    Na_ratio = 0.3               # alternative to Na: Na = Na_ratio * N
    D = 2.0e6                    # training tokens (bytes)
    G = 2                        # routed experts activated per token (top-k)
    S = 0.0                      # shared-expert ratio n_shared / (n_shared + G)
    d_model = 64
    n_layers = 2
    n_heads = 4
    seq_len = 128
    batch_size = 16
    lr = 3e-3

    [grid]                       # full factorial, applied around every base
    D = [1e6, 2e6, 4e6]

    [oat]                        # one factor at a time, around every base
    G = [1, 2, 4, 8]
    S = [0.0, 0.25, 0.5]

    [[base]]                     # base configurations; each overrides [defaults]
    N = 5.0e5
    d_model = 48

    [[base]]
    N = 2.0e6
    d_model = 96
    seeds = [0, 1, 2]            # a base's own seeds replace the global ones for its points
    [base.oat]                   # a base's own grid / oat replace the global ones for it
    G = [1, 8]

    [space_filling]              # n points spread over a box, around every base
    method = "lhs"               # "lhs" (Latin hypercube) or "sobol" (scrambled; n a power of 2)
    n = 16
    seed = 0                     # the same seed gives the same points, hence the same run ids
    [space_filling.bounds]       # [low, high] per key; N, Na and D are spread in log space,
    N = [2.0e5, 2.0e6]           # G and the architecture's integers are rounded
    D = [5.0e5, 8.0e6]

    [resources]                  # per run; see cluster.resources
    cpus = 1
    gpus = 0                     # or "auto": a GPU fraction from the estimated memory
    custom = { }

    [adaptive]                   # train only what the adaptive design picks from the points above
    target = { N = 1.0e8, D = 1.0e10 }  # the extrapolation target (see cluster.adaptive)
    budget_flops = 1.0e16        # training FLOPs for the whole design, first runs included
    initial = 6                  # first runs: cheap ones, spread out (>= 6)
    noise_sd = 0.01              # relative run-to-run noise of a loss, e.g. from replicate seeds

    [schedule]
    order = "longest"            # "longest", "shortest", "informative" (spread-out points
                                 # first) or "spec" (the order written)
    max_concurrent = 8           # runs in flight at once (default: as many as Ray can place)
    retries = 2                  # new attempts of a run that ran out of memory or lost its worker
    backoff_s = 5.0              # first wait before such an attempt; doubles each time
    worker_retries = 2           # Ray's own immediate retries of a task whose worker died

Points that come out identical (for instance the base itself, reached from ``grid`` and from
``oat``) are trained once, with the union of the seeds of the bases that reach them.
Replicates are ``seeds``: every point is trained once per seed. A
``[space_filling]`` sample replaces the bounded keys of each base; a base with neither grid nor
oat is then represented by its samples only.
"""

from __future__ import annotations

import difflib
import itertools
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from results.errors import InputError

FACTOR_KEYS = ("N", "Na", "Na_ratio", "D", "G", "S")
ARCH_KEYS = ("d_model", "n_layers", "n_heads", "seq_len")
TRAIN_KEYS = (
    "batch_size",
    "lr",
    "warmup_frac",
    "decay_frac",
    "min_lr_frac",
    "weight_decay",
    "grad_clip",
    "aux_loss_coef",
    "eval_every",
    "eval_tokens",
)
POINT_KEYS = FACTOR_KEYS + ARCH_KEYS + TRAIN_KEYS
TOP_KEYS = (
    "name",
    "store",
    "seeds",
    "data",
    "defaults",
    "base",
    "grid",
    "oat",
    "space_filling",
    "resources",
    "schedule",
    "adaptive",
)
ADAPTIVE_KEYS = ("target", "budget_flops", "initial", "noise_sd", "bootstrap")
SPACE_FILLING_KEYS = ("method", "n", "seed", "bounds")
SCHEDULE_KEYS = ("order", "max_concurrent", "retries", "backoff_s", "worker_retries")
ORDERS = ("longest", "shortest", "informative", "spec")
LOG_SCALE_KEYS = ("N", "Na", "D", "lr", "eval_tokens")
INTEGER_KEYS = ("G", "d_model", "n_layers", "n_heads", "seq_len", "batch_size", "eval_every")
DATA_KEYS = ("files", "val_fraction")

# Settings a point gets when neither [defaults] nor a base gives them.
BUILTIN_DEFAULTS: dict[str, Any] = {
    "G": 2,
    "S": 0.0,
    "d_model": 64,
    "n_layers": 2,
    "n_heads": 4,
    "seq_len": 128,
    "batch_size": 16,
    "lr": 3e-3,
    "warmup_frac": 0.05,
    "decay_frac": 0.2,
    "min_lr_frac": 0.1,
    "weight_decay": 0.1,
    "grad_clip": 1.0,
    "aux_loss_coef": 0.01,
    "eval_every": 0,
    "eval_tokens": 65536,
}


@dataclass(frozen=True)
class Schedule:
    """How a sweep is scheduled (the ``[schedule]`` table; see the module docstring)."""

    order: str = "longest"
    max_concurrent: int | None = None
    retries: int = 2
    backoff_s: float = 5.0
    worker_retries: int = 2


@dataclass(frozen=True)
class SweepSpec:
    """A checked sweep specification.

    Attributes
    ----------
    name : str
        The study's name, stored as each run's ``source``.
    path : Path or None
        The spec file, if it was read from one.
    store : Path
        The results store the sweep writes to.
    seeds : tuple of int
        Every point is trained once per seed.
    files : tuple of Path
        Text files whose bytes are the training tokens.
    val_fraction : float
        Fraction at the end of each file held out for validation.
    points : tuple of dict
        The settings of every point, before seeds are applied (duplicates removed).
    point_seeds : tuple of tuple of int
        The seeds of each point, in the order of ``points`` (a base's own ``seeds`` or the
        global ones); empty means every point uses ``seeds``.
    resources : cluster.resources.Resources
        What each run asks Ray for.
    adaptive : dict or None
        The ``[adaptive]`` design (target, budget_flops, initial, noise_sd, bootstrap), checked.
    schedule : Schedule
        Order, concurrency, retries and backoff.
    """

    name: str
    path: Path | None
    store: Path
    seeds: tuple[int, ...]
    files: tuple[Path, ...]
    val_fraction: float
    points: tuple[dict, ...] = field(repr=False)
    resources: Any = None  # cluster.resources.Resources; None means the defaults
    schedule: Schedule = field(default_factory=Schedule)
    adaptive: dict | None = None
    point_seeds: tuple[tuple[int, ...], ...] = ()

    def seeds_of(self, index: int) -> tuple[int, ...]:
        """The seeds the point ``points[index]`` is trained with."""
        return self.point_seeds[index] if self.point_seeds else self.seeds


@dataclass(frozen=True)
class PlannedRun:
    """One training run of a sweep: its settings, its resolved configuration and its id."""

    point: dict
    seed: int
    run_config: Any  # trainer.config.RunConfig
    run_id: str
    achieved: dict
    cost: float  # estimated training FLOPs, for ordering


def _refuse_unknown(keys: Iterable[str], allowed: Iterable[str], where: str) -> None:
    allowed = list(allowed)
    for key in keys:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise InputError(
                f"unknown key '{key}' in {where}.{hint} Valid keys: {', '.join(allowed)}."
            )


def _check_point_values(point: Mapping[str, Any], where: str) -> None:
    for key, value in point.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(
                f"{where}: '{key}' must be a number, got {value!r}; write it without quotes."
            )


def _check_lists(table: Any, where: str) -> None:
    if not isinstance(table, Mapping):
        raise InputError(f"[{where}] must be a table of lists, got {table!r}.")
    _refuse_unknown(table, POINT_KEYS, f"[{where}]")
    for key, values in table.items():
        if not isinstance(values, list) or not values:
            raise InputError(
                f"[{where}] '{key}' must be a non-empty list of values, got {values!r}; "
                f"write for example {key} = [1, 2, 4]."
            )
        for value in values:
            _check_point_values({key: value}, f"[{where}] {key}")


def parse_spec(doc: Mapping[str, Any], *, base_dir: Path, path: Path | None = None) -> SweepSpec:
    """Check a parsed spec document and turn it into a :class:`SweepSpec`.

    Parameters
    ----------
    doc : mapping
        The TOML document as a dictionary.
    base_dir : Path
        Folder that relative paths in the spec are taken from (the spec file's folder).
    path : Path, optional
        The spec file, for messages and provenance.

    Raises
    ------
    InputError
        On an unknown key, a value of the wrong type, or a missing section.
    """
    where = str(path) if path else "the spec"
    _refuse_unknown(doc, TOP_KEYS, where)
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InputError(
            f"{where}: 'name' is missing or empty; add a line like name = \"my-study\"."
        )

    # 1. Data files, resolved against the spec's folder and checked to exist.
    data = doc.get("data")
    if not isinstance(data, Mapping) or not data.get("files"):
        raise InputError(f'{where}: [data] files is missing; add files = ["path/to/text.txt"].')
    _refuse_unknown(data, DATA_KEYS, f"[data] of {where}")
    files = tuple((base_dir / f).resolve() for f in data["files"])
    val_fraction = float(data.get("val_fraction", 0.05))

    # 2. Seeds and the store.
    seeds = _seeds(doc.get("seeds", [0]), where)
    store = (base_dir / doc.get("store", f"{name}-runs")).resolve()

    # 3. Points: defaults, bases, then grid and one-factor-at-a-time around each base.
    defaults = dict(doc.get("defaults", {}))
    _refuse_unknown(defaults, POINT_KEYS, f"[defaults] of {where}")
    _check_point_values(defaults, f"[defaults] of {where}")
    bases = doc.get("base", [{}])
    if isinstance(bases, Mapping):
        bases = [bases]
    grid = dict(doc.get("grid", {}))
    oat = dict(doc.get("oat", {}))
    _check_lists(grid, "grid")
    _check_lists(oat, "oat")
    filling = _space_filling(doc.get("space_filling"), where)
    points, point_seeds = [], []
    for i, base in enumerate(bases):
        base = dict(base)
        base_grid = base.pop("grid", grid)
        base_oat = base.pop("oat", oat)
        label = f"[[base]] #{i + 1} of {where}"
        base_seeds = _seeds(base.pop("seeds"), label) if "seeds" in base else seeds
        first = len(points)
        _refuse_unknown(base, POINT_KEYS, label)
        _check_point_values(base, label)
        _check_lists(base_grid, f"base.grid of {label}")
        _check_lists(base_oat, f"base.oat of {label}")
        center = {**BUILTIN_DEFAULTS, **defaults, **base}
        if base_grid or base_oat or not filling:
            points += _expand_points(center, base_grid, base_oat)
        points += [{**center, **sample} for sample in filling]
        point_seeds += [base_seeds] * (len(points) - first)
    points, point_seeds = _unique(points, point_seeds)

    # 4. How the runs are placed and scheduled.
    from cluster.resources import Resources, parse_resources

    resources = parse_resources(doc["resources"], where) if "resources" in doc else Resources()
    schedule = _schedule(doc.get("schedule", {}), where)
    adaptive = _adaptive(doc["adaptive"], where) if "adaptive" in doc else None
    return SweepSpec(
        name,
        path,
        store,
        tuple(seeds),
        files,
        val_fraction,
        tuple(points),
        resources,
        schedule,
        adaptive,
        tuple(point_seeds),
    )


def _seeds(seeds: Any, where: str) -> list[int]:
    ok = isinstance(seeds, list) and seeds and all(type(s) is int and s >= 0 for s in seeds)
    if not ok:
        raise InputError(
            f"{where}: 'seeds' must be a non-empty list of integers >= 0, got {seeds!r}; "
            "write for example seeds = [0, 1, 2]."
        )
    return list(dict.fromkeys(seeds))


def _adaptive(table: Any, where: str) -> dict:
    """Check an ``[adaptive]`` table (see :mod:`cluster.adaptive`)."""
    label = f"[adaptive] of {where}"
    if not isinstance(table, Mapping):
        raise InputError(f"{label} must be a table, got {table!r}.")
    _refuse_unknown(table, ADAPTIVE_KEYS, label)
    target = table.get("target")
    if not isinstance(target, Mapping) or set(target) != {"N", "D"}:
        raise InputError(f"{label}: target must be {{ N = ..., D = ... }}, got {target!r}.")
    checked = {"target": {}}
    for key, value in target.items():
        checked["target"][key] = _positive(value, f"{label}: target {key}")
    checked["budget_flops"] = _positive(table.get("budget_flops"), f"{label}: budget_flops")
    initial = table.get("initial", 6)
    if isinstance(initial, bool) or not isinstance(initial, int) or initial < 6:
        raise InputError(
            f"{label}: initial is {initial!r}; the law has 5 constants, so start with at least 6 "
            "runs (initial = 6)."
        )
    checked["initial"] = initial
    if "noise_sd" in table:
        checked["noise_sd"] = _positive(table["noise_sd"], f"{label}: noise_sd")
    boot = table.get("bootstrap", 32)
    if isinstance(boot, bool) or not isinstance(boot, int) or boot < 2:
        raise InputError(f"{label}: bootstrap must be a whole number >= 2, got {boot!r}.")
    checked["bootstrap"] = boot
    return checked


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InputError(f"{where} must be a positive number, got {value!r}.")
    return float(value)


def _schedule(table: Any, where: str) -> Schedule:
    """Check a ``[schedule]`` table."""
    if not isinstance(table, Mapping):
        raise InputError(f"[schedule] of {where} must be a table, got {table!r}.")
    _refuse_unknown(table, SCHEDULE_KEYS, f"[schedule] of {where}")
    order = table.get("order", "longest")
    if order not in ORDERS:
        raise InputError(
            f"[schedule] order of {where} is {order!r}; use one of {', '.join(ORDERS)}."
        )
    limit = table.get("max_concurrent")
    for key in ("max_concurrent", "retries", "worker_retries"):
        value = table.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(
                f"[schedule] {key} of {where} must be a whole number >= 0, got {value!r}."
            )
    if limit == 0:
        raise InputError(f"[schedule] max_concurrent of {where} is 0; it must be at least 1.")
    backoff = table.get("backoff_s", 5.0)
    if isinstance(backoff, bool) or not isinstance(backoff, int | float) or backoff < 0:
        raise InputError(f"[schedule] backoff_s of {where} must be seconds >= 0, got {backoff!r}.")
    return Schedule(
        order,
        limit,
        table.get("retries", 2),
        float(backoff),
        table.get("worker_retries", 2),
    )


def _space_filling(table: Any, where: str) -> list[dict]:
    """The points of a ``[space_filling]`` table: a Latin hypercube or Sobol sample in bounds."""
    if table is None:
        return []
    label = f"[space_filling] of {where}"
    if not isinstance(table, Mapping):
        raise InputError(f"{label} must be a table, got {table!r}.")
    _refuse_unknown(table, SPACE_FILLING_KEYS, label)
    method, n, seed = table.get("method", "lhs"), table.get("n"), table.get("seed", 0)
    if method not in ("lhs", "sobol"):
        raise InputError(f'{label}: method is {method!r}; use "lhs" or "sobol".')
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"{label}: n must be a whole number of points >= 1, got {n!r}.")
    if method == "sobol" and n & (n - 1):
        raise InputError(f"{label}: a Sobol sample needs n a power of 2, got {n}; try {_pow2(n)}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"{label}: seed must be an integer, got {seed!r}.")
    bounds = _bounds(table.get("bounds"), label)

    # Unit-cube sample, mapped into the box (log scale for sizes), integers rounded.
    from scipy.stats import qmc

    keys = list(bounds)
    sampler = (qmc.LatinHypercube if method == "lhs" else qmc.Sobol)(d=len(keys), seed=seed)
    unit = sampler.random(n)
    points = []
    for row in unit:
        points.append({k: _scale(k, bounds[k], u) for k, u in zip(keys, row, strict=True)})
    return points


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _bounds(bounds: Any, label: str) -> dict[str, tuple[float, float]]:
    if not isinstance(bounds, Mapping) or not bounds:
        raise InputError(f"{label}: bounds are missing; add [space_filling.bounds] N = [1e5, 1e6].")
    _refuse_unknown(bounds, POINT_KEYS, f"bounds of {label}")
    checked = {}
    for key, pair in bounds.items():
        ok = isinstance(pair, list) and len(pair) == 2
        ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)
        if not ok or pair[0] > pair[1]:
            raise InputError(
                f"{label}: bounds {key} = {pair!r} must be [low, high] with low <= high."
            )
        if key in LOG_SCALE_KEYS and pair[0] <= 0:
            raise InputError(f"{label}: bounds {key} = {pair!r} must be positive (log scale).")
        checked[key] = (float(pair[0]), float(pair[1]))
    return checked


def _scale(key: str, bounds: tuple[float, float], u: float) -> float | int:
    low, high = bounds
    if key in LOG_SCALE_KEYS:
        value = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    else:
        value = low + u * (high - low)
    if key in INTEGER_KEYS:
        return int(round(value))
    return float(f"{value:.6g}")  # six digits, so the point (and its run id) reads well


def _expand_points(center: dict, grid: dict, oat: dict) -> list[dict]:
    points = []
    if grid:
        keys = list(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            points.append({**center, **dict(zip(keys, values, strict=True))})
    else:
        points.append(dict(center))
    for key, values in oat.items():
        for value in values:
            points.append({**center, key: value})
    return points


def _unique(points: list[dict], seeds: list) -> tuple[list[dict], list[tuple[int, ...]]]:
    """Drop repeated points, keeping the first of each with the union of their seeds."""
    unique: dict[tuple, dict] = {}
    merged: dict[tuple, list[int]] = {}
    for point, point_seeds in zip(points, seeds, strict=True):
        key = tuple(sorted(point.items()))
        unique.setdefault(key, point)
        merged.setdefault(key, [])
        merged[key] += [s for s in point_seeds if s not in merged[key]]
    return list(unique.values()), [tuple(merged[k]) for k in unique]


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a sweep spec file (TOML). See the module docstring for the format."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"sweep spec '{path}' does not exist; pass the path of a .toml spec file.")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"sweep spec '{path}' is not valid TOML: {exc}.") from None
    return parse_spec(doc, base_dir=path.parent.resolve(), path=path.resolve())


def _factor_targets(point: Mapping[str, Any], where: str) -> tuple[float, float]:
    if "N" not in point:
        raise InputError(f"{where}: no N (total non-embedding parameters); set N in [defaults].")
    n_total = float(point["N"])
    if "Na_ratio" in point and "Na" in point:
        raise InputError(f"{where}: both Na and Na_ratio are set; give one of them.")
    if "Na_ratio" in point:
        return n_total, float(point["Na_ratio"]) * n_total
    if "Na" not in point:
        raise InputError(f"{where}: no Na or Na_ratio; set one in [defaults].")
    return n_total, float(point["Na"])


INTEGER_KEYS = ("G", "d_model", "n_layers", "n_heads", "seq_len", "batch_size", "eval_every",
                "eval_tokens")  # fmt: skip


def _check_integers(point: Mapping[str, Any], where: str) -> None:
    for key in INTEGER_KEYS:
        value = point.get(key)
        if value is not None and float(value) != int(value):
            raise InputError(f"{where}: '{key}' must be a whole number, got {value!r}.")


def _check_tokens(point: Mapping[str, Any], where: str) -> None:
    """D must cover at least one optimizer step of batch_size sequences of seq_len tokens."""
    step = int(point["batch_size"]) * int(point["seq_len"])
    if not point["D"] >= step:
        raise InputError(
            f"{where}: D={point['D']:g} training tokens is less than one step of "
            f"batch_size x seq_len = {step} tokens; raise D or lower batch_size / seq_len."
        )


def describe(point: Mapping[str, Any]) -> str:
    """A short description of a point's factors, for messages and progress lines."""
    keys = [k for k in FACTOR_KEYS if k in point]
    return ", ".join(f"{k}={point[k]:g}" for k in keys)


def plan_point(point: Mapping[str, Any], seed: int, spec: SweepSpec) -> PlannedRun:
    """Resolve one point of a spec into a run configuration, refusing impossible targets."""
    from trainer.accounting import flops_per_token
    from trainer.config import RunConfig, TrainConfig
    from trainer.solve import solve_architecture

    where = f"point ({describe(point)})"
    if "D" not in point:
        raise InputError(f"{where}: no D (training tokens); set D in [defaults].")
    _check_integers(point, where)
    _check_tokens(point, where)
    n_total, n_active = _factor_targets(point, where)

    # 1. The architecture that realises the factor targets.
    try:
        solution = solve_architecture(
            n_total,
            n_active,
            int(point["G"]),
            float(point["S"]),
            d_model=int(point["d_model"]),
            n_layers=int(point["n_layers"]),
            n_heads=int(point["n_heads"]),
            seq_len=int(point["seq_len"]),
        )
    except InputError as exc:
        raise InputError(f"{where} of {spec.path or spec.name}: {exc}") from None

    # 2. Training settings.
    train_kwargs = {k: point[k] for k in TRAIN_KEYS if k in point}
    for key in ("batch_size", "eval_every", "eval_tokens"):
        if key in train_kwargs:
            train_kwargs[key] = int(train_kwargs[key])
    train = TrainConfig(
        tokens=int(point["D"]),
        seed=int(seed),
        data=tuple(str(f) for f in spec.files),
        val_fraction=spec.val_fraction,
        **train_kwargs,
    )
    run = RunConfig(model=solution.model, train=train)

    from results.schema import run_id

    cost = flops_per_token(solution.model) * train.tokens
    return PlannedRun(dict(point), int(seed), run, run_id(run.identity()), solution.achieved, cost)


def plan(spec: SweepSpec) -> list[PlannedRun]:
    """Every run of a spec (points × seeds), checked, each with its run id; duplicates removed.

    Raises
    ------
    InputError
        If any point is impossible; nothing has run yet when this is raised.
    """
    for f in spec.files:
        if not f.is_file():
            raise InputError(
                f"data file '{f}' of sweep '{spec.name}' does not exist; fix [data] files "
                "(paths are relative to the spec file)."
            )
    # Each file must hold a window of seq_len+1 tokens in both of its parts, at every seq_len
    from trainer.config import check_length, token_count

    counts = {f: token_count(f) for f in spec.files}
    for seq_len in sorted({int(p["seq_len"]) for p in spec.points if "seq_len" in p}):
        for f, n in counts.items():
            check_length(f, n, seq_len, spec.val_fraction)
    runs: dict[str, PlannedRun] = {}
    for index, point in enumerate(spec.points):
        for seed in spec.seeds_of(index):
            planned = plan_point(point, seed, spec)
            runs.setdefault(planned.run_id, planned)
    return list(runs.values())
