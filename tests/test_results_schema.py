"""Canonical JSON, run ids and the validation of RunRecord."""

import hashlib
import math

import numpy as np
import pytest

from results import FACTORS, InputError, RunRecord, canonical_json, run_id

BASE = {
    "model": {"d_model": 64, "n_layers": 2, "n_experts": 8, "top_k": 2, "tied": False},
    "train": {"lr": 0.003, "tokens": 1_000_000, "data": ["austen.txt", "ab12"], "note": None},
    "seed": 0,
}


def _leaf_changes(obj, path=()):
    """Yield (path, new value) for a small change of every leaf of a nested config."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _leaf_changes(value, (*path, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _leaf_changes(value, (*path, i))
    elif isinstance(obj, bool):
        yield path, not obj
    elif isinstance(obj, int):
        yield path, obj + 1
    elif isinstance(obj, float):
        yield path, obj * (1 + 1e-12)
    elif isinstance(obj, str):
        yield path, obj + "x"
    else:
        yield path, 0


def _changed(obj, path, value):
    if not path:
        return value
    copy = dict(obj) if isinstance(obj, dict) else list(obj)
    copy[path[0]] = _changed(obj[path[0]], path[1:], value)
    return copy


def test_canonical_json_sorted_compact_tuples_as_lists():
    assert canonical_json({"b": (1, 2.5), "a": None}) == '{"a":null,"b":[1,2.5]}'
    assert canonical_json({"x": 0.1, "y": 1e-300}) == '{"x":0.1,"y":1e-300}'
    assert canonical_json({"n": np.int64(3), "f": np.float32(0.5)}) == '{"f":0.5,"n":3}'


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ({"loss": math.nan}, "nan"),
        ({"loss": math.inf}, "inf"),
        ({1: "a"}, "non-string keys"),
        ({"path": object()}, "type object"),
        ({"s": {1, 2}}, "type set"),
    ],
)
def test_canonical_json_refuses_what_json_cannot_hold(bad, fragment):
    with pytest.raises(InputError, match=fragment):
        canonical_json(bad)


def test_run_id_is_sha256_prefix_of_canonical_json():
    assert run_id({"b": [1, 2.5], "a": 1}) == "07ac8340cb8a1f1a"
    expected = hashlib.sha256(canonical_json(BASE).encode()).hexdigest()[:16]
    assert run_id(BASE) == expected


def test_run_id_ignores_key_order_and_tuple_vs_list():
    reordered = {"seed": 0, "train": dict(reversed(BASE["train"].items())), "model": BASE["model"]}
    assert run_id(reordered) == run_id(BASE)
    as_tuple = _changed(BASE, ("train", "data"), ("austen.txt", "ab12"))
    assert run_id(as_tuple) == run_id(BASE)


def test_run_id_changes_with_every_value():
    changes = list(_leaf_changes(BASE))
    assert len(changes) == 11
    ids = {run_id(_changed(BASE, path, value)) for path, value in changes}
    assert len(ids) == len(changes)
    assert run_id(BASE) not in ids


def test_run_id_distinguishes_int_from_float_and_refuses_non_mappings():
    assert run_id({"a": 1}) != run_id({"a": 1.0})
    with pytest.raises(InputError, match="mapping"):
        run_id([("a", 1)])


def _record(**changes):
    fields = dict(
        run_id="abc123",
        source="test",
        status="ok",
        N=1e6,
        Na=2.5e5,
        D=1e7,
        G=2,
        S=0.0,
        E=8,
        loss=2.5,
        seed=1,
        wall_time_s=3.0,
        config={"a": 1},
        architecture={"d_model": 64},
        curve=[{"split": "train", "step": 1, "tokens": 256, "loss": 5.0}],
    )
    return RunRecord(**(fields | changes))


def test_record_coerces_numbers_and_fills_provenance():
    record = _record(G=np.int64(2), seed=np.int64(7))
    assert FACTORS == ("N", "Na", "D", "G", "S", "E")
    assert record.factors() == {"N": 1e6, "Na": 2.5e5, "D": 1e7, "G": 2.0, "S": 0.0, "E": 8.0}
    assert type(record.G) is float and type(record.seed) is int and record.seed == 7
    assert record.version == "0.1.0" or record.version == "unknown"
    assert record.created_at.endswith("Z") and record.created_at[4] == "-"


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"status": "done"}, "status 'done'"),
        ({"run_id": "../x"}, "not a valid id"),
        ({"loss": math.nan}, "needs a finite loss"),
        ({"N": "big"}, "N='big' is not a number"),
        ({"seed": 1.5}, "seed=1.5 is not an integer"),
        ({"config": {"p": object()}}, "type object"),
        ({"curve": [{"split": "test", "step": 1, "tokens": 1, "loss": 1.0}]}, "split 'test'"),
        ({"curve": [{"step": 1, "tokens": 1, "loss": 1.0}]}, "exactly the keys"),
    ],
)
def test_record_rejects_bad_fields(changes, fragment):
    with pytest.raises(InputError, match=fragment):
        _record(**changes)


def test_failed_record_may_have_nan_loss():
    record = _record(status="failed", loss=math.nan, error="out of memory")
    assert math.isnan(record.loss) and record.error == "out of memory"
