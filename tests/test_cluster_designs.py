"""Designs and scheduling in the spec: space-filling samples, resources, order, concurrency, and the
adaptive design's proposals."""

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from cluster.adaptive import ChinchillaModel, propose, run_adaptive
from cluster.resources import Resources, gpu_fraction, task_options
from cluster.spec import load_spec, parse_spec, plan
from cluster.sweep import order_runs
from results.errors import InputError
from results.store import Store

SHARED = Path(__file__).resolve().parents[2] / "shared"
CORPUS = SHARED / "corpus" / "austen.txt"
REPO = Path(__file__).resolve().parents[1]


def _doc(**sections):
    doc = {
        "name": "t",
        "data": {"files": [str(CORPUS)]},
        "defaults": {"N": 4.0e5, "Na_ratio": 0.3, "D": 1.0e5, "G": 2, "S": 0.0},
    }
    doc.update(sections)
    return doc


def _filling(method="lhs", n=8, seed=0, **bounds):
    bounds = bounds or {"N": [2.0e5, 2.0e6], "D": [1.0e5, 1.0e6], "G": [1, 8]}
    return {"method": method, "n": n, "seed": seed, "bounds": bounds}


def test_latin_hypercube_fills_each_stratum_once_in_log_space(tmp_path):
    spec = parse_spec(_doc(space_filling=_filling()), base_dir=tmp_path)
    assert len(spec.points) == 8
    n = np.array([p["N"] for p in spec.points])
    assert n.min() >= 2.0e5 and n.max() <= 2.0e6
    strata = np.floor(8 * np.log(n / 2.0e5) / np.log(10.0)).astype(int)
    assert sorted(strata) == list(range(8))
    assert all(isinstance(p["G"], int) and 1 <= p["G"] <= 8 for p in spec.points)


def test_space_filling_is_reproducible_by_seed(tmp_path):
    ids = [
        {
            r.run_id
            for r in plan(parse_spec(_doc(space_filling=_filling(seed=s)), base_dir=tmp_path))
        }
        for s in (0, 0, 1)
    ]
    assert ids[0] == ids[1] and ids[0] != ids[2]
    sobol = parse_spec(_doc(space_filling=_filling("sobol", n=4)), base_dir=tmp_path)
    assert len(sobol.points) == 4


@pytest.mark.parametrize(
    ("table", "words"),
    [
        (_filling("sobol", n=6), ["power of 2", "try 8"]),
        (_filling("halton"), ["'halton'", "lhs"]),
        (_filling(n=0), ["n must be"]),
        (_filling(N=[2.0e6, 2.0e5]), ["low <= high"]),
        (_filling(N=[0, 2.0e5]), ["positive"]),
        (_filling(Q=[1, 2]), ["unknown key 'Q'"]),
        ({"method": "lhs", "n": 4}, ["bounds are missing"]),
    ],
)
def test_bad_space_filling_is_refused(tmp_path, table, words):
    with pytest.raises(InputError) as err:
        parse_spec(_doc(space_filling=table), base_dir=tmp_path)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize(
    ("section", "words"),
    [
        ({"schedule": {"order": "random"}}, ["'random'", "informative"]),
        ({"schedule": {"max_concurrent": 0}}, ["at least 1"]),
        ({"schedule": {"retries": -1}}, ["retries"]),
        ({"schedule": {"backof_s": 1}}, ["Did you mean 'backoff_s'"]),
        ({"resources": {"cpus": 0}}, ["positive"]),
        ({"resources": {"gpus": 1.5}}, ["whole number"]),
        ({"resources": {"custom": {"slot": -1}}}, ["custom.slot"]),
    ],
)
def test_bad_schedule_and_resources_are_refused(tmp_path, section, words):
    with pytest.raises(InputError) as err:
        parse_spec(_doc(**section), base_dir=tmp_path)
    for word in words:
        assert word in str(err.value)


def test_bundled_spec_still_plans_the_stored_runs():
    spec = load_spec(REPO / "results" / "bundled" / "cpu-moe-v1" / "spec.toml")
    planned = {r.run_id for r in plan(spec)}
    stored = Store(spec.store, create=False).ids(status=None)
    assert len(stored) >= 24 and stored <= planned


def test_gpu_fraction_grows_with_the_model_and_custom_resources_pass_through(tmp_path):
    small = plan(parse_spec(_doc(), base_dir=tmp_path))[0].run_config
    big_doc = _doc(defaults={"N": 6.4e7, "Na_ratio": 0.3, "D": 1e5, "d_model": 512})
    big = plan(parse_spec(big_doc, base_dir=tmp_path))[0].run_config
    f_small = gpu_fraction(small.model, small.train.batch_size, 80)
    f_big = gpu_fraction(big.model, big.train.batch_size, 80)
    assert 0 < f_small < f_big <= 1
    assert math.isclose(f_small * 100, round(f_small * 100))  # whole hundredths
    options = task_options(Resources(cpus=2, gpus="auto", custom={"slot": 1}), small)
    assert options == {"num_cpus": 2, "num_gpus": f_small, "resources": {"slot": 1.0}}


def test_orders(tmp_path):
    doc = _doc(oat={"D": [2e5, 4e5, 8e5], "G": [1, 4]})
    runs = plan(parse_spec(doc, base_dir=tmp_path))
    costs = [r.cost for r in order_runs(runs, "longest")]
    assert costs == sorted(costs, reverse=True)
    assert [r.cost for r in order_runs(runs, "shortest")] == sorted(costs)
    spread = order_runs(runs, "informative")
    assert sorted(r.run_id for r in spread) == sorted(r.run_id for r in runs)
    assert spread[0].cost == min(costs)

    # Along D alone: the cheapest, then the farthest from it, then the points between.
    runs = plan(parse_spec(_doc(oat={"D": [2e5, 4e5, 8e5, 1.6e6]}), base_dir=tmp_path))
    tokens = [r.run_config.train.tokens for r in order_runs(runs, "informative")]
    assert tokens[:3] == [1e5, 1.6e6, 4e5]


def test_concurrency_limit_and_spec_order_on_ray(tmp_path):
    pytest.importorskip("ray")
    from cluster.runner import execute
    from cluster.sweep import run_sweep

    doc = _doc(oat={"D": [2e5, 4e5]}, schedule={"order": "spec", "max_concurrent": 1})
    spec = parse_spec({**doc, "store": str(tmp_path / "store")}, base_dir=tmp_path)
    log_path = tmp_path / "log.jsonl"

    def timed(run_config, run_id, *args, **kwargs):
        start = time.time()
        time.sleep(0.3)
        with open(log_path, "a") as f:
            f.write(json.dumps([run_config["train"]["tokens"], start, time.time()]) + "\n")
        run_config = {**run_config, "train": {**run_config["train"], "tokens": 0}}
        return execute(run_config, run_id, *args, **kwargs)  # fails fast: no step to train

    summary = run_sweep(spec, workers=2, executor=timed, checkpoints=False)
    assert len(summary.failed) == 3 and summary.retried == 0
    rows = sorted(json.loads(line) for line in log_path.read_text().splitlines())
    starts = sorted(rows, key=lambda r: r[1])
    assert [r[0] for r in starts] == [1e5, 2e5, 4e5]  # the spec's order
    for before, after in zip(starts, starts[1:], strict=False):
        assert after[1] >= before[2]  # never two at once


def _planted(candidates):
    truth = np.array([1.69, math.log(406.4), 0.34, math.log(410.7), 0.28])
    return ChinchillaModel().predict(truth, candidates), truth


def test_adaptive_design_stays_in_budget_and_recovers_a_planted_law():
    model = ChinchillaModel()
    grid = np.array([[n, d] for n in np.logspace(6, 8, 5) for d in np.logspace(8, 10, 5)])
    cost = 6 * grid[:, 0] * grid[:, 1]
    losses, truth = _planted(grid)
    target = np.array([1e9, 1e11])
    initial = [i * 5 + j for i in range(5) for j in range(5) if i + j <= 2]

    # 1. A proposal is an affordable run not yet trained; none when nothing is affordable.
    rest = np.setdiff1d(np.arange(25), initial)
    step = propose(grid[initial], losses[initial], grid[rest], cost[rest], target, 1e17,
                   noise_sd=0.01)  # fmt: skip
    assert cost[rest][step.index] <= 1e17 and step.score > 0 and step.target_sd >= 0
    assert propose(grid[initial], losses[initial], grid[rest], cost[rest], target, 1.0) is None

    # 2. The whole loop spends at most its budget and, without noise, predicts the target.
    budget = 0.5 * cost.sum()
    done, spent = run_adaptive(lambda i: losses[i], grid, cost, target, budget, initial,
                               noise_sd=0.01)  # fmt: skip
    assert spent <= budget and len(set(done)) == len(done) > len(initial)
    fit = model.fit(grid[done], losses[done])
    predicted = model.predict(fit, target[None, :])[0]
    assert predicted == pytest.approx(model.predict(truth, target[None, :])[0], rel=1e-3)


def test_adaptive_sweep_spends_its_budget_on_ray_and_resumes(tmp_path):
    pytest.importorskip("ray")
    from cluster.adaptive import adaptive_sweep
    from results.schema import RunRecord

    def planted(run_config, run_id, source, achieved, **kwargs):
        N, D = float(achieved["N"]), float(run_config["train"]["tokens"])
        return RunRecord(
            run_id=run_id, source=source, status="ok", N=N, Na=float(achieved["Na"]), D=D,
            G=float(achieved["G"]), S=float(achieved["S"]), E=float(achieved["E"]),
            loss=1.69 + 406.4 * N**-0.34 + 410.7 * D**-0.28, seed=0, wall_time_s=0.0,
            config=run_config, architecture={}, curve=[],
        )  # fmt: skip

    grid = {"N": [2.0e5, 4.0e5, 8.0e5], "D": [1.0e5, 3.0e5, 1.0e6]}
    pool = plan(parse_spec(_doc(grid=grid), base_dir=tmp_path))
    budget = 0.6 * sum(p.cost for p in pool)
    adaptive = {"target": {"N": 8.0e6, "D": 1.0e7}, "budget_flops": budget, "noise_sd": 0.01}
    doc = {**_doc(grid=grid, adaptive=adaptive), "store": str(tmp_path / "store")}
    spec = parse_spec(doc, base_dir=tmp_path)

    first = adaptive_sweep(spec, workers=1, executor=planted, checkpoints=False)
    stored = Store(spec.store, create=False).ids()
    assert 6 < len(first["runs"]) < 9 and first["trained"] == len(first["runs"])
    assert set(first["runs"]) == stored and first["flops"] <= budget
    again = adaptive_sweep(spec, workers=1, executor=planted, checkpoints=False)
    assert again["trained"] == 0 and set(again["runs"]) == stored


def test_bad_adaptive_table_is_refused(tmp_path):
    for table, words in [
        ({"target": {"N": 1e7}, "budget_flops": 1e15}, ["target must be"]),
        ({"target": {"N": 1e7, "D": 1e8}, "budget_flops": -1}, ["budget_flops", "positive"]),
        ({"target": {"N": 1e7, "D": 1e8}, "budget_flops": 1e15, "initial": 3}, ["at least 6"]),
    ]:
        with pytest.raises(InputError) as err:
            parse_spec(_doc(adaptive=table), base_dir=tmp_path)
        for word in words:
            assert word in str(err.value)
