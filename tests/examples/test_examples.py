"""Every example runs (with a tiny epoch count, into a temporary directory), so none can rot.

The full-length runs that check the accuracy each example promises are marked slow.
"""

import importlib
from pathlib import Path

import jax
import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def load(monkeypatch):
    """Import an example by name (examples/ on sys.path, as when run as a script)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module


def has_gpu():
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


def check_digits_run(metrics, out, epochs, min_accuracy):
    assert (out / "curves.png").stat().st_size > 1000
    with np.load(out / "weights.npz", allow_pickle=False) as weights:
        assert sum(weights[k].size for k in weights.files) == metrics["num_parameters"]
    history = metrics["history"]
    assert len(history["loss"]) == len(history["test_acc"]) == len(history["epoch_seconds"]) == epochs
    assert all(np.isfinite(history["loss"]))
    assert min_accuracy <= metrics["test_accuracy"] <= 1.0


@pytest.mark.parametrize("backend", ["jax", "numpy"])
def test_digits_cnn_one_epoch(load, tmp_path, backend):
    metrics = load("digits_cnn").main(["--epochs", "1", "--backend", backend, "--out", str(tmp_path), "--quiet"])
    check_digits_run(metrics, tmp_path, 1, min_accuracy=0.5)
    assert metrics["backend"] == f"Autodiff({backend})"


def test_digits_cnn_weights_reload(load, tmp_path):
    example = load("digits_cnn")
    metrics = example.main(["--epochs", "1", "--out", str(tmp_path), "--quiet", "--seed", "3"])
    backend = example.make_backend("jax", "cpu")
    model = example.build_cnn(backend, seed=99)
    model.load(tmp_path / "weights.npz")
    _, x_test, _, y_test = example.load_digits_split(3, images=True)
    assert example.evaluate(model, backend, x_test, y_test) == metrics["test_accuracy"]


def test_digits_mlp_one_epoch(load, tmp_path):
    metrics = load("digits_mlp").main(["--epochs", "2", "--out", str(tmp_path), "--quiet"])
    check_digits_run(metrics, tmp_path, 2, min_accuracy=0.5)


def test_linear_regression(load, capsys):
    metrics = load("linear_regression").main(["--steps", "60"])
    assert [line.split("(")[0] for line in metrics["tape"]] == ["MulOp", "AddOp", "SubOp", "MulOp", "MeanDimOp"]
    assert "MulOp((100, 1), (1,)) -> (100, 1)" in capsys.readouterr().out
    assert abs(metrics["w"] - 3.0) < 0.2 and abs(metrics["b"] + 2.0) < 0.1


def test_linear_regression_numpy(load):
    metrics = load("linear_regression").main(["--steps", "20", "--backend", "numpy"])
    assert metrics["loss"] < 1.0


def test_two_moons(load, tmp_path):
    metrics = load("two_moons").main(["--steps", "60", "--out", str(tmp_path)])
    assert (tmp_path / "decision_boundary.png").stat().st_size > 1000
    assert 0.8 <= metrics["train_accuracy"] <= 1.0
    assert 0.8 <= metrics["test_accuracy"] <= 1.0          # on 100 points the model never trained on


def test_square(load):
    assert load("square").main([]) == 4.0


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "numpy"])
def test_digits_cnn_reaches_97_percent(load, tmp_path, backend):
    metrics = load("digits_cnn").main(["--backend", backend, "--out", str(tmp_path), "--quiet"])
    check_digits_run(metrics, tmp_path, 15, min_accuracy=0.97)


@pytest.mark.slow
def test_digits_mlp_reaches_95_percent(load, tmp_path):
    metrics = load("digits_mlp").main(["--out", str(tmp_path), "--quiet"])
    check_digits_run(metrics, tmp_path, 20, min_accuracy=0.95)


@pytest.mark.skipif(not has_gpu(), reason="no GPU")
def test_digits_cnn_on_gpu(load, tmp_path):
    metrics = load("digits_cnn").main(["--device", "gpu", "--epochs", "2", "--out", str(tmp_path), "--quiet"])
    check_digits_run(metrics, tmp_path, 2, min_accuracy=0.8)
