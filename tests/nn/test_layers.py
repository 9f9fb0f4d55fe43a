"""Layers and activations: forward against a plain-jnp reference, gradients against jax.vjp.

Each check runs the module on the AutodiffBackend over both inner backends, seeds the output
with a random gradient, and compares every parameter's and the input's ``.grad`` with
``jax.vjp`` of the reference (float64, so the tolerance is tight).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jtape import nn, tensor

RTOL = 1e-10


def check_against_jax(backend, module, reference, x_np, seed=0):
    """module(x) == reference(params, x) and its VJP, for a random output gradient."""
    x = tensor.from_numpy(x_np, backend, "float64")
    params = dict(module.named_parameters())
    out = module(x)
    ref_out, vjp = jax.vjp(reference, {k: jnp.asarray(p.numpy()) for k, p in params.items()}, jnp.asarray(x_np))
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=RTOL, atol=RTOL)
    ct = np.random.default_rng(seed).standard_normal(tuple(out.shape))
    out.backward(tensor.from_numpy(ct, backend, "float64"))
    ref_params, ref_x = vjp(jnp.asarray(ct))
    np.testing.assert_allclose(x.grad.numpy(), ref_x, rtol=RTOL, atol=RTOL)
    for name, p in params.items():
        assert p.grad.dtype is p.dtype and tuple(p.grad.shape) == tuple(p.shape)
        np.testing.assert_allclose(p.grad.numpy(), ref_params[name], rtol=RTOL, atol=RTOL, err_msg=name)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("x_shape", [(5, 3), (2, 4, 3)])
def test_linear(backend, x_shape):
    layer = nn.Linear(3, 4, backend, seed=0, dtype="float64")
    layer.bias.assign(backend.from_numpy(rand(4, seed=1), "float64"))  # a non-zero bias
    assert tuple(layer.weight.shape) == (4, 3) and tuple(layer.bias.shape) == (4,)
    check_against_jax(backend, layer, lambda p, x: x @ p["weight"].T + p["bias"], rand(*x_shape))


def test_linear_without_bias(backend):
    layer = nn.Linear(3, 2, backend, bias=False, seed=0, dtype="float64")
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    check_against_jax(backend, layer, lambda p, x: x @ p["weight"].T, rand(4, 3))


@pytest.mark.parametrize("bias", [True, False])
def test_linear_records_one_op(backend, bias):
    """nn.Linear is one op on the tape — AffineOp with a bias, LinearOp without — as is
    ``x.linear(W, b)`` (PyTorch's F.linear), which equals ``x.linear(W) + b``."""
    layer = nn.Linear(3, 2, backend, bias=bias, seed=0, dtype="float64")
    x = tensor.from_numpy(rand(4, 3), backend, "float64")
    backend.tape().clear()
    y = layer(x)
    assert [type(op).__name__ for op in backend.tape().operations()] == ["AffineOp" if bias else "LinearOp"]
    if bias:
        layer.bias.assign(backend.from_numpy(rand(2, seed=1), "float64"))
        np.testing.assert_allclose(x.linear(layer.weight, layer.bias).numpy(),
                                   (x.linear(layer.weight) + layer.bias).numpy(), rtol=1e-12)
        np.testing.assert_allclose(x.linear(weight=layer.weight, bias=layer.bias).numpy(), layer(x).numpy())
    backend.tape().clear()
    del y


def conv_reference(stride, padding):
    def f(p, x):
        out = lax.conv_general_dilated(x, p["weight"], stride, [(padding[0],) * 2, (padding[1],) * 2],
                                       dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return out + p["bias"].reshape(1, -1, 1, 1)
    return f


@pytest.mark.parametrize("stride, padding", [(1, 0), (1, 1), (2, 1), ((2, 1), (0, 2))])
def test_conv2d(backend, stride, padding):
    layer = nn.Conv2D(2, 3, (3, 2), backend, stride=stride, padding=padding, seed=0, dtype="float64")
    layer.bias.assign(backend.from_numpy(rand(3, seed=1), "float64"))
    assert tuple(layer.weight.shape) == (3, 2, 3, 2)
    check_against_jax(backend, layer, conv_reference(layer.stride, layer.padding), rand(2, 2, 7, 6))


def test_conv2d_bias_flows_through_the_tape(backend):
    layer = nn.Conv2D(1, 2, 3, backend, seed=0)
    layer(tensor.ones((1, 1, 5, 5), backend))
    assert [op.name for op in backend.tape().operations()] == ["Conv2D", "Reshape", "Add"]
    assert "kernel_size=(3, 3)" in repr(layer)


def test_maxpool_and_flatten(backend):
    x_np = rand(2, 3, 6, 4)
    x = tensor.from_numpy(x_np, backend, "float64")
    pooled = nn.MaxPool2D(2)(x)
    np.testing.assert_array_equal(pooled.numpy(), x_np.reshape(2, 3, 3, 2, 2, 2).max(axis=(3, 5)))
    strided = nn.MaxPool2D(3, stride=1)(x)
    assert tuple(strided.shape) == (2, 3, 4, 2)
    flat = nn.Flatten()(pooled)
    np.testing.assert_array_equal(flat.numpy(), pooled.numpy().reshape(2, -1))
    assert tuple(nn.Flatten(2)(x).shape) == (2, 3, 24)
    check_against_jax(backend, nn.Sequential(nn.MaxPool2D(2), nn.Flatten()),
                      lambda p, x: lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2),
                                                     "VALID").reshape(2, -1), x_np)


@pytest.mark.parametrize("module, reference", [
    (nn.ReLU(), jax.nn.relu),
    (nn.Sigmoid(), jax.nn.sigmoid),
    (nn.Tanh(), jnp.tanh),
    (nn.SiLU(), jax.nn.silu),
    (nn.Softmax(), lambda x: jax.nn.softmax(x, axis=-1)),
    (nn.Softmax(dim=0), lambda x: jax.nn.softmax(x, axis=0)),
], ids=["relu", "sigmoid", "tanh", "silu", "softmax", "softmax0"])
def test_activations(backend, module, reference):
    x_np = rand(4, 5) + 0.01  # keep ReLU away from its kink
    check_against_jax(backend, module, lambda p, x: reference(x), x_np)
    assert module.parameters() == []


def test_a_small_cnn_end_to_end(backend):
    model = nn.Sequential(nn.Conv2D(1, 2, 3, backend, padding=1, seed=0, dtype="float64"), nn.SiLU(),
                          nn.MaxPool2D(2), nn.Flatten(), nn.Linear(2 * 3 * 3, 3, backend, seed=1, dtype="float64"))

    def reference(p, x):
        h = lax.conv_general_dilated(x, p["0.weight"], (1, 1), [(1, 1), (1, 1)],
                                     dimension_numbers=("NCHW", "OIHW", "NCHW")) + p["0.bias"].reshape(1, -1, 1, 1)
        h = lax.reduce_window(jax.nn.silu(h), -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        return h.reshape(2, -1) @ p["4.weight"].T + p["4.bias"]
    check_against_jax(backend, model, reference, rand(2, 1, 6, 6))


def test_dropout_train_and_eval(backend):
    drop = nn.Dropout(0.25, seed=0)
    x = tensor.ones((200, 50), backend)
    out = drop(x).numpy()
    kept = out != 0
    assert 0.7 < kept.mean() < 0.8
    np.testing.assert_allclose(out[kept], 1 / 0.75, rtol=1e-6)
    assert not np.array_equal(drop(x).numpy() != 0, kept)  # a new mask each call
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ValueError, match="expected 0 <= p < 1"):
        nn.Dropout(1.0)


def test_dropout_gradient_is_masked(backend):
    drop = nn.Dropout(0.5, seed=3)
    x = tensor.ones((4, 6), backend)
    out = drop(x)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), out.numpy())  # d(x*m)/dx = m, and out = m here
