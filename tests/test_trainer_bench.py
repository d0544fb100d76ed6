"""Trainer benchmark scripts run at tiny sizes; the GPU check refuses a machine without CUDA."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
AUSTEN = str(REPO.parent / "shared" / "corpus" / "austen.txt")


def run_script(*args):
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def test_moe_vs_dense_prints_ratios_and_tokens_per_second():
    done = run_script(
        "bench/moe_vs_dense.py",
        "--d-model",
        "64",
        "--layers",
        "1",
        "--seq-len",
        "32",
        "--batch-size",
        "2",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--points",
        "4x2",
        "--threads",
        "1",
    )
    assert done.returncode == 0, done.stderr
    assert "(E, G) = (4, 2): MoE/dense" in done.stdout and "grouped/loop" in done.stdout
    assert "tok/s" in done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_gpu_check_fails_fast_without_cuda():
    done = run_script("bench/gpu_check.py")
    assert done.returncode == 2
    assert "needs a CUDA GPU" in done.stderr and "is_available() is False" in done.stderr


@pytest.mark.slow
def test_compiled_training_matches_eager():
    from trainer.config import RunConfig
    from trainer.train import train

    eager = train(RunConfig.tiny(data=(AUSTEN,)))
    compiled = train(RunConfig.tiny(data=(AUSTEN,), compile=True))
    assert compiled.extra["compile"] is True
    assert compiled.loss == pytest.approx(eager.loss, abs=1e-3)
