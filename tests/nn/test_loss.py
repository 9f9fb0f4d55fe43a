"""CrossEntropyLoss, MSELoss and accuracy against NumPy / jax references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtape import nn, tensor
from jtape.tensor.errors import ArgumentError, ShapeError


def cross_entropy_ref(z, t):
    return jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, t[:, None], axis=1)[:, 0])


@pytest.mark.parametrize("as_tensor", [True, False])
def test_cross_entropy_loss(backend, as_tensor):
    rng = np.random.default_rng(0)
    z_np, t_np = rng.standard_normal((6, 4)) * 3, rng.integers(0, 4, 6).astype(np.int32)
    z = tensor.from_numpy(z_np, backend, "float64")
    targets = tensor.from_numpy(t_np, backend) if as_tensor else t_np.tolist()
    loss = nn.CrossEntropyLoss()(z, targets)
    assert loss.shape == () and loss.dtype is tensor.float64
    np.testing.assert_allclose(loss.item(), cross_entropy_ref(z_np, t_np), rtol=1e-12)
    loss.backward()
    np.testing.assert_allclose(z.grad.numpy(), jax.grad(cross_entropy_ref)(z_np, t_np), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_loss(backend, reduction):
    rng = np.random.default_rng(1)
    p_np, y_np = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    pred = tensor.from_numpy(p_np, backend, "float64")
    loss = nn.MSELoss(reduction)(pred, y_np)  # a NumPy target is lifted to the backend
    reduce = np.mean if reduction == "mean" else np.sum
    np.testing.assert_allclose(loss.item(), reduce((p_np - y_np) ** 2), rtol=1e-12)
    loss.backward()
    scale = 2 / p_np.size if reduction == "mean" else 2
    np.testing.assert_allclose(pred.grad.numpy(), scale * (p_np - y_np), rtol=1e-12)


def test_mse_loss_errors(backend):
    with pytest.raises(ArgumentError, match="reduction='max'; expected 'mean', 'sum' or 'none'"):
        nn.MSELoss("max")
    with pytest.raises(ShapeError, match=r"pred shape \(2,\) and target shape \(3,\)"):
        nn.MSELoss()(tensor.ones((2,), backend), tensor.ones((3,), backend))


def test_mse_loss_target_gets_gradient_too(backend):
    pred = tensor.from_slice([1.0, 2.0], (2,), backend)
    target = tensor.from_slice([0.0, 4.0], (2,), backend)
    nn.MSELoss()(pred, target).backward()
    np.testing.assert_allclose(target.grad.numpy(), [-1.0, 2.0])


def test_accuracy(backend):
    logits = tensor.from_numpy(np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]), backend, "float32")
    assert nn.accuracy(logits, [1, 0, 0, 0]) == 0.75
    assert nn.accuracy(logits, tensor.from_numpy(np.array([1, 0, 1, 0], np.int32), backend)) == 1.0
    assert backend.tape().num_ops() == 0  # argmax and equality are never recorded
    with pytest.raises(ShapeError, match=r"got \(4,\) predictions and targets of shape \(3,\)"):
        nn.accuracy(logits, [1, 0, 1])
