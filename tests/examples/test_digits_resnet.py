"""examples/digits_resnet.py: a residual CNN with BatchNorm under jtape.jit, checkpointed and
reloaded. A short run in the default suite; the full run (>= 98.5% held out) is slow."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def resnet(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module("digits_resnet")


def _check(metrics: dict, out: Path, epochs: int) -> None:
    assert (out / "curves.png").stat().st_size > 1000
    assert len(metrics["history"]["loss"]) == epochs and metrics["saved_epoch"] == epochs
    assert np.all(np.isfinite(metrics["history"]["loss"]))
    # The reloaded model (other initial weights, then the checkpoint) in eval mode is the trained one.
    assert metrics["reloaded_test_accuracy"] == metrics["test_accuracy"]
    names = safetensors.numpy.load_file(str(out / "checkpoint.safetensors"))
    assert "model/bn.running_mean" in names and "model/blocks.2.bn2.running_var" in names
    assert any(k.startswith("optimizer/") for k in names)


def test_a_short_run_learns_and_its_checkpoint_reloads(resnet, tmp_path):
    metrics = resnet.main(["--epochs", "3", "--width", "16", "--out", str(tmp_path), "--quiet"])
    _check(metrics, tmp_path, 3)
    assert metrics["history"]["loss"][-1] < metrics["history"]["loss"][0]
    assert metrics["test_accuracy"] >= 0.85, metrics["test_accuracy"]


@pytest.mark.slow
def test_the_full_run_reaches_98_5_percent_held_out(resnet, tmp_path):
    metrics = resnet.main(["--out", str(tmp_path), "--quiet"])
    _check(metrics, tmp_path, 30)
    assert metrics["test_accuracy"] >= 0.985, metrics["test_accuracy"]
