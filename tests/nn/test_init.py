"""Initializers: fans, gains, the scale of each distribution, seeds and dtypes."""

import math

import numpy as np
import pytest

from jtape import nn, tensor

init = nn.init
BIG = (400, 300)  # enough samples to check a distribution's moments


def test_fans():
    assert init.fans((5, 3)) == (3, 5)
    assert init.fans((16, 8, 3, 3)) == (72, 144)
    with pytest.raises(ValueError, match="expected rank >= 2"):
        init.fans((5,))


def test_gains():
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("linear") == 1.0
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    with pytest.raises(ValueError, match="got 'gelu'"):
        init.calculate_gain("gelu")


@pytest.mark.parametrize("name, bound, std", [
    ("xavier_uniform", math.sqrt(6 / 700), math.sqrt(2 / 700)),
    ("kaiming_uniform", math.sqrt(6 / 300), math.sqrt(2 / 300)),
    ("xavier_normal", None, math.sqrt(2 / 700)),
    ("kaiming_normal", None, math.sqrt(2 / 300)),
])
def test_scales(inner, name, bound, std):
    t = getattr(init, name)(BIG, inner, seed=0)
    values = t.numpy().astype(np.float64)
    assert t.dtype is tensor.float32 and tuple(t.shape) == BIG
    if bound is not None:
        assert np.abs(values).max() <= bound * (1 + 1e-6)
        assert np.abs(values).max() > 0.99 * bound
    assert abs(values.mean()) < 0.05 * std
    assert values.std() == pytest.approx(std, rel=0.02)


def test_kaiming_modes_and_gain(inner):
    fan_out = init.kaiming_normal((300, 100), inner, mode="fan_out", seed=0).numpy()
    assert fan_out.std() == pytest.approx(math.sqrt(2 / 300), rel=0.03)
    tanh = init.kaiming_uniform((300, 100), inner, nonlinearity="tanh", seed=0).numpy()
    assert np.abs(tanh).max() <= math.sqrt(3) * (5 / 3) / 10 * (1 + 1e-6)
    with pytest.raises(ValueError, match="mode='fan_avg'"):
        init.kaiming_uniform((3, 3), inner, mode="fan_avg", seed=0)
    gained = init.xavier_uniform((300, 100), inner, gain=2.0, seed=0).numpy()
    assert np.abs(gained).max() <= 2 * math.sqrt(6 / 400) * (1 + 1e-6)


def test_seeds_and_dtypes(inner):
    a = init.xavier_uniform((4, 3), inner, seed=1).numpy()
    b = init.xavier_uniform((4, 3), inner, seed=1).numpy()
    c = init.xavier_uniform((4, 3), inner, seed=2).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert init.kaiming_normal((2, 3, 3, 3), inner, seed=0, dtype="float64").dtype is tensor.float64
    np.testing.assert_array_equal(init.zeros((2, 2), inner).numpy(), np.zeros((2, 2)))
    u = init.uniform((1000,), inner, low=2.0, high=3.0, seed=0).numpy()
    assert u.min() >= 2.0 and u.max() < 3.0
    n = init.normal((5000,), inner, mean=1.0, std=0.5, seed=0).numpy()
    assert n.mean() == pytest.approx(1.0, abs=0.03) and n.std() == pytest.approx(0.5, rel=0.05)


def test_layers_use_their_initializer_and_seed(backend):
    a = nn.Linear(30, 20, backend, seed=3)
    b = nn.Linear(30, 20, backend, seed=3, weight_init=init.kaiming_normal)
    np.testing.assert_array_equal(a.weight.numpy(), init.xavier_uniform((20, 30), backend, seed=3).numpy())
    np.testing.assert_array_equal(b.weight.numpy(), init.kaiming_normal((20, 30), backend, seed=3).numpy())
    np.testing.assert_array_equal(a.bias.numpy(), np.zeros(20))
    conv = nn.Conv2D(3, 4, 3, backend, seed=5, weight_init=init.kaiming_uniform)
    np.testing.assert_array_equal(conv.weight.numpy(), init.kaiming_uniform((4, 3, 3, 3), backend, seed=5).numpy())
