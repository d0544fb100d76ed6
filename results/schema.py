"""What one training run is, as moelaw stores it.

A run is one :class:`RunRecord`. On disk it is one Parquet file with one row,
``<store>/runs/<run_id>.parquet``, whose columns follow :data:`ARROW_SCHEMA` exactly
(schema version :data:`SCHEMA_VERSION`):

================  ==============  ===============================================================
column            arrow type      meaning (unit)
================  ==============  ===============================================================
``run_id``        string          first 16 hex digits of sha256 of the canonical JSON of the run's
                                  identity (its fully resolved configuration); see :func:`run_id`
``source``        string          where the run comes from: a sweep name, or a public data set
                                  such as ``"clark2022"``
``status``        string          ``"ok"`` or ``"failed"``
``error``         string          why a failed run failed (empty when ``status == "ok"``)
``N``             float64         total parameters, non-embedding (count)
``Na``            float64         parameters activated per token, non-embedding (count)
``D``             float64         training tokens (count)
``G``             float64         routed experts activated per token, top-k (count)
``S``             float64         shared-expert ratio, shared / (shared + activated routed); [0, 1)
``E``             float64         routed experts (count)
``loss``          float64         final validation loss, nats per token; NaN for a failed run
``seed``          int64           random seed of the run
``wall_time_s``   float64         wall-clock training time (seconds); NaN when unknown
``version``       string          version of the ``moelaw`` distribution that wrote the run
                                  (``importlib.metadata``), ``"unknown"`` when not installed
``created_at``    string          when the record was made, ISO-8601 in UTC (``...Z``)
``config``        string          the fully resolved configuration, canonical JSON
``architecture``  string          the model's shape, canonical JSON (keys such as ``d_model``,
                                  ``n_layers``, ``n_heads``, ``n_experts``, ``top_k``,
                                  ``n_shared``, ``d_expert``)
``extra``         string          anything else worth keeping, canonical JSON
``curve``         list<struct>    the training and validation curve, one struct per evaluation:
                                  ``split`` (string, ``"train"`` or ``"validation"``), ``step``
                                  (int64, optimizer steps), ``tokens`` (int64, training tokens
                                  seen so far), ``loss`` (float64, nats per token)
================  ==============  ===============================================================

The factors use the paper's symbols (:data:`FACTORS`); both parameter counts leave the embedding
and un-embedding tables out. A loss is a mean negative log-likelihood in nats per token; for
byte-level models a token is a byte.

Identity. :func:`run_id` hashes whatever mapping the caller calls the run's identity (for trained
runs, the resolved configuration without settings that cannot change the result). The hash is over
:func:`canonical_json`, so key order does not matter and every value does, including its type:
``1`` and ``1.0`` are different identities.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from results.errors import InputError

__all__ = [
    "ARROW_SCHEMA",
    "CURVE_SPLITS",
    "FACTORS",
    "SCHEMA_VERSION",
    "STATUSES",
    "RunRecord",
    "canonical_json",
    "package_version",
    "run_id",
]

FACTORS = ("N", "Na", "D", "G", "S", "E")
STATUSES = ("ok", "failed")
CURVE_SPLITS = ("train", "validation")
SCHEMA_VERSION = 1

CURVE_TYPE = pa.list_(
    pa.struct(
        [
            ("split", pa.string()),
            ("step", pa.int64()),
            ("tokens", pa.int64()),
            ("loss", pa.float64()),
        ]
    )
)

ARROW_SCHEMA = pa.schema(
    [("run_id", pa.string()), ("source", pa.string()), ("status", pa.string())]
    + [("error", pa.string())]
    + [(name, pa.float64()) for name in FACTORS]
    + [("loss", pa.float64()), ("seed", pa.int64()), ("wall_time_s", pa.float64())]
    + [("version", pa.string()), ("created_at", pa.string())]
    + [("config", pa.string()), ("architecture", pa.string()), ("extra", pa.string())]
    + [("curve", CURVE_TYPE)]
)

# A run id becomes a file name, so it is restricted to characters safe on every file system.
_RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def package_version() -> str:
    """Version of the installed ``moelaw`` distribution, or ``"unknown"``."""
    try:
        return importlib.metadata.version("moelaw")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(obj, where: str):
    """Turn ``obj`` into plain JSON types, refusing what JSON cannot hold exactly."""
    # numpy scalars are unwrapped so that np.int64(3) and 3 hash alike.
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise InputError(
                f"{where} is {obj!r}; canonical JSON holds only finite numbers — "
                "use None for a missing value"
            )
        return obj
    if isinstance(obj, Mapping):
        bad = [key for key in obj if not isinstance(key, str)]
        if bad:
            raise InputError(
                f"{where} has non-string keys {bad[:5]!r}; JSON keys must be strings — convert them"
            )
        return {key: _plain(value, f"{where}[{key!r}]") for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(value, f"{where}[{i}]") for i, value in enumerate(obj)]
    raise InputError(
        f"{where} has type {type(obj).__name__} ({obj!r:.60}); only None, bool, int, float, str, "
        "lists, tuples and string-keyed mappings can be stored — convert it (e.g. str(path))"
    )


def canonical_json(obj) -> str:
    """Serialise ``obj`` to one canonical JSON string.

    Keys are sorted, separators are compact, tuples become lists, floats are written with
    ``repr`` (shortest round-tripping form) and numpy scalars as the Python scalar they hold.

    Parameters
    ----------
    obj : object
        None, bool, int, float, str, list, tuple or a mapping with string keys, nested freely.

    Returns
    -------
    str
        The canonical JSON text; equal objects give equal text whatever their key order.

    Raises
    ------
    InputError
        For NaN or infinite floats, non-string keys and any other type.

    Examples
    --------
    >>> canonical_json({"b": (1, 2.5), "a": None})
    '{"a":null,"b":[1,2.5]}'
    """
    plain = _plain(obj, "value")
    return json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def run_id(identity: Mapping) -> str:
    """Run id of a configuration: the first 16 hex digits of sha256 of its canonical JSON.

    Parameters
    ----------
    identity : Mapping
        Everything that changes the result of the run (see :func:`canonical_json` for the types).

    Returns
    -------
    str
        16 lowercase hexadecimal characters.

    Examples
    --------
    >>> run_id({"lr": 0.001, "seed": 0}) == run_id({"seed": 0, "lr": 0.001})
    True
    """
    if not isinstance(identity, Mapping):
        raise InputError(
            f"run_id needs a mapping (the run's configuration), got {type(identity).__name__}; "
            "pass a dict such as RunConfig.identity()"
        )
    text = canonical_json(identity)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclasses.dataclass
class RunRecord:
    """One training run: its configuration, factors, final loss, curve and provenance.

    Parameters
    ----------
    run_id : str
        Usually :func:`run_id` of the configuration; letters, digits, ``_`` and ``-`` only.
    source : str
        Sweep name or public data set.
    status : str
        ``"ok"`` or ``"failed"``.
    N, Na : float
        Total and activated parameters per token, both without embeddings.
    D : float
        Training tokens.
    G, S, E : float
        Activated routed experts, shared-expert ratio, routed experts.
    loss : float
        Final validation loss in nats per token; NaN for a failed run.
    seed : int
        Random seed.
    wall_time_s : float
        Training time in seconds (NaN when unknown).
    config, architecture, extra : dict
        Resolved configuration, model shape, anything else; JSON-compatible (see
        :func:`canonical_json`).
    curve : list of dict
        ``{"split": "train" | "validation", "step": int, "tokens": int, "loss": float}``.
    error : str, default ""
        Why the run failed.
    version : str, default the installed moelaw version
    created_at : str, default now, ISO-8601 UTC
    """

    run_id: str
    source: str
    status: str
    N: float
    Na: float
    D: float
    G: float
    S: float
    E: float
    loss: float
    seed: int
    wall_time_s: float
    config: dict
    architecture: dict
    curve: list
    error: str = ""
    version: str = dataclasses.field(default_factory=package_version)
    created_at: str = dataclasses.field(default_factory=_utc_now)
    extra: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        # Names and status first: they decide where and whether the run is stored.
        if not isinstance(self.run_id, str) or not _RUN_ID_PATTERN.match(self.run_id):
            raise InputError(
                f"run_id {self.run_id!r} is not a valid id; use 1-128 letters, digits, '_' or '-' "
                "(results.schema.run_id(config) makes one)"
            )
        if self.status not in STATUSES:
            raise InputError(f"status {self.status!r} is not one of {STATUSES}; pick one of them")

        # Numbers: factors and losses as floats, the seed as an int.
        for name in (*FACTORS, "loss", "wall_time_s"):
            setattr(self, name, self._float(name, getattr(self, name)))
        if self.status == "ok" and not math.isfinite(self.loss):
            raise InputError(
                f"run {self.run_id}: status 'ok' needs a finite loss, got {self.loss!r}; "
                "record the run as status='failed' with an error instead"
            )
        self.seed = self._int("seed", self.seed)

        # Free-form parts must be storable as JSON; the curve is checked point by point.
        for name in ("config", "architecture", "extra"):
            canonical_json(getattr(self, name))
        self.curve = [self._point(i, point) for i, point in enumerate(self.curve)]
        for name in ("source", "error", "version", "created_at"):
            if not isinstance(getattr(self, name), str):
                value = getattr(self, name)
                raise InputError(f"run {self.run_id}: {name} must be a string, got {value!r}")

    def _float(self, name, value) -> float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InputError(
                f"run {self.run_id}: {name}={value!r} is not a number; pass a float"
            ) from None

    def _int(self, name, value) -> int:
        try:
            as_int = int(value)
        except (TypeError, ValueError):
            as_int = None
        if as_int is None or isinstance(value, (bool, np.bool_)) or as_int != value:
            raise InputError(f"run {self.run_id}: {name}={value!r} is not an integer; pass an int")
        return as_int

    def _point(self, i: int, point: Mapping) -> dict:
        where = f"run {self.run_id}: curve[{i}]"
        if not isinstance(point, Mapping) or set(point) != {"split", "step", "tokens", "loss"}:
            raise InputError(
                f"{where} is {point!r}; each point needs exactly the keys split, step, tokens, loss"
            )
        if point["split"] not in CURVE_SPLITS:
            raise InputError(f"{where} has split {point['split']!r}; use one of {CURVE_SPLITS}")
        return {
            "split": str(point["split"]),
            "step": self._int(f"curve[{i}].step", point["step"]),
            "tokens": self._int(f"curve[{i}].tokens", point["tokens"]),
            "loss": self._float(f"curve[{i}].loss", point["loss"]),
        }

    def factors(self) -> dict[str, float]:
        """The six factors as a dict keyed by their symbols."""
        return {name: getattr(self, name) for name in FACTORS}

    def to_row(self) -> dict:
        """This record as one row of :data:`ARROW_SCHEMA` (dicts become canonical JSON)."""
        row = dataclasses.asdict(self)
        for name in ("config", "architecture", "extra"):
            row[name] = canonical_json(row[name])
        return row

    @classmethod
    def from_row(cls, row: Mapping) -> RunRecord:
        """Rebuild a record from a row of :data:`ARROW_SCHEMA` (the inverse of :meth:`to_row`)."""
        fields = {field.name for field in dataclasses.fields(cls)}
        values = {name: row[name] for name in fields}
        for name in ("config", "architecture", "extra"):
            values[name] = json.loads(values[name])
        return cls(**values)
