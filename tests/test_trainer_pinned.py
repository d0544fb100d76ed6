"""The default configuration's numerics are frozen: the bundled study was trained with them.

The numbers below were measured with trainer_version 1 (torch 2.13, CPU, one thread). A change
to the trainer that moves them must bump ``trainer.config.TRAINER_VERSION`` and update them.
"""

from pathlib import Path

import pytest

from trainer.config import TRAINER_VERSION, RunConfig
from trainer.train import train

AUSTEN = str(Path(__file__).resolve().parents[2] / "shared" / "corpus" / "austen.txt")

FINAL_LOSS = 2.8685317039489746
FIRST_TRAIN_LOSSES = [5.5487931, 5.552258, 5.4639754, 5.2795663, 5.0189662, 4.6937251]


@pytest.mark.parametrize("dispatch", ["auto", "loop"])
def test_tiny_run_reproduces_trainer_version_1(dispatch):
    assert TRAINER_VERSION == 1, "numerics changed on purpose: re-measure the numbers above"
    result = train(RunConfig.tiny(data=(AUSTEN,)), dispatch=dispatch)
    assert result.loss == pytest.approx(FINAL_LOSS, abs=1e-6)
    losses = [p["loss"] for p in result.curve][: len(FIRST_TRAIN_LOSSES)]
    assert losses == pytest.approx(FIRST_TRAIN_LOSSES, abs=1e-6)
