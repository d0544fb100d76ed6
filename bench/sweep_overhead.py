"""Scheduling overhead of a sweep: 40 short runs on 2 CPU slots of a local Ray.

Run from the repository root:

    .venv/bin/python bench/sweep_overhead.py --runs 40 --seconds 2 --slots 2

Each "run" is a real planned run of a sweep spec (40 points, planned and stored exactly as a
training run is) whose executor sleeps for ``--seconds`` instead of training, so that what is
measured is the sweep machinery: planning, submission, Ray's scheduling, the result's trip back
and the atomic write to the store. Sleeping holds the slot as training would without taking CPU
from other work on the machine.

Prints:
- slot utilisation = sum of run times / (wall time x slots), targets >= 0.90; once over the whole
  call (Ray's start-up included) and once from the first submission to the last stored record;
- scheduling overhead per run = (wall time x slots - sum of run times) / runs, target <= 0.3 s.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from cluster.spec import load_spec
from cluster.sweep import run_sweep

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "austen.txt"

SPEC = """
name = "overhead"
store = "store"
[data]
files = ["{corpus}"]
[defaults]
N = 1.0e5
Na_ratio = 0.4
D = 1.0e5
d_model = 32
n_layers = 1
seq_len = 64
[oat]
D = [{tokens}]
[schedule]
order = "spec"
"""


def sleeper(seconds: float):
    """An executor with the signature of :func:`cluster.runner.execute` that only sleeps."""

    def run(run_config, run_id, source, achieved, **kwargs):
        from results.schema import RunRecord

        started = time.perf_counter()
        time.sleep(seconds)
        return RunRecord(
            run_id=run_id, source=source, status="ok",
            N=float(achieved["N"]), Na=float(achieved["Na"]),
            D=float(run_config["train"]["tokens"]), G=float(achieved["G"]),
            S=float(achieved["S"]), E=float(achieved["E"]), loss=1.0,
            seed=int(run_config["train"]["seed"]), wall_time_s=time.perf_counter() - started,
            config=run_config, architecture={}, curve=[],
        )  # fmt: skip

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--slots", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        tokens = ", ".join(str(int(1.0e5 + 512 * i)) for i in range(1, args.runs))
        path = Path(folder) / "spec.toml"
        path.write_text(SPEC.format(corpus=CORPUS, tokens=tokens))
        spec = load_spec(path)

        first_start: list[float] = []
        last_land: list[float] = []

        def on_update(event, planned, record):
            if event == "start" and not first_start:
                first_start.append(time.perf_counter())
            if event in ("ok", "failed"):
                last_land[:] = [time.perf_counter()]

        started = time.perf_counter()
        summary = run_sweep(
            spec, workers=args.slots, checkpoints=False, executor=sleeper(args.seconds),
            on_update=on_update,
        )  # fmt: skip
        wall = time.perf_counter() - started

    busy = summary.run_time_s
    steady = last_land[0] - first_start[0]
    ideal = math.ceil(summary.done / args.slots) * args.seconds
    print(f"runs {summary.done} of {args.seconds:g} s on {args.slots} slots (ideal {ideal:.1f} s)")
    print(f"wall time: {wall:.2f} s in all, {steady:.2f} s from first submission to last record")
    print(f"slot utilisation, all: {busy / (wall * args.slots):.3f}")
    print(
        f"slot utilisation, scheduling only: {busy / (steady * args.slots):.3f}  (target >= 0.90)"
    )
    print(f"overhead per run, all: {(wall * args.slots - busy) / summary.done:.3f} s")
    overhead = (steady * args.slots - busy) / summary.done
    print(f"overhead per run, scheduling only: {overhead:.3f} s  (target <= 0.3 s)")


if __name__ == "__main__":
    main()
