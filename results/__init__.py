"""The store of training runs that every other part of moelaw writes to and reads from.

:mod:`results.schema` documents what a run holds (every column and its unit),
:mod:`results.store` how runs are kept on disk, :mod:`results.clark` imports public data.
"""

from pathlib import Path

from results.clark import import_clark2022
from results.errors import InputError, StoreError
from results.schema import FACTORS, RunRecord, canonical_json, run_id
from results.store import Store

__all__ = [
    "FACTORS",
    "InputError",
    "RunRecord",
    "Store",
    "StoreError",
    "bundled_store_path",
    "canonical_json",
    "import_clark2022",
    "run_id",
]


def bundled_store_path() -> Path:
    """The results store shipped with moelaw (``results/bundled/cpu-moe-v1/store``).

    Its sweep spec, ``spec.toml``, lies in the folder above it: running
    ``moelaw sweep results/bundled/cpu-moe-v1/spec.toml`` reproduces (or resumes) the study.
    """
    return Path(__file__).parent / "bundled" / "cpu-moe-v1" / "store"
