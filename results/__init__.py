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
    "BUNDLED_STUDIES",
    "DEFAULT_STUDY",
    "bundled_store_path",
    "canonical_json",
    "import_clark2022",
    "run_id",
]


#: Studies shipped with moelaw: the default one (155 runs) and the first, small one (25 runs).
BUNDLED_STUDIES = ("cpu-moe-v2", "cpu-moe-v1")

#: The study every subcommand reads when no data is given.
DEFAULT_STUDY = "cpu-moe-v2"


def bundled_store_path(study: str = DEFAULT_STUDY) -> Path:
    """The results store of a study shipped with moelaw (``results/bundled/<study>/store``).

    Its sweep spec, ``spec.toml``, lies in the folder above it: running
    ``moelaw sweep results/bundled/<study>/spec.toml`` reproduces (or resumes) the study.

    Parameters
    ----------
    study : str, default :data:`DEFAULT_STUDY`
        One of :data:`BUNDLED_STUDIES`.
    """
    if study not in BUNDLED_STUDIES:
        raise InputError(f"no bundled study {study!r}; the bundled studies are {BUNDLED_STUDIES}")
    return Path(__file__).parent / "bundled" / study / "store"
