"""Conv2D with dilation and groups, MaxPool2D with padding, AvgPool2D: forward and gradients against
plain jax (``lax.conv_general_dilated``, ``lax.reduce_window``); and a small CNN step with a grouped,
dilated convolution, a depthwise one and average pooling, compiled with ``jtape.jit``, equal to the
same step run eagerly and to ``jax.value_and_grad`` of the same network written in jax."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend
from jtape.tensor.errors import ShapeError

from ..training import cross_entropy_step
from .test_layers import check_against_jax, rand

NCHW = ("NCHW", "OIHW", "NCHW")


def _conv(x, w, b, stride, padding, dilation, groups):
    out = lax.conv_general_dilated(x, w, stride, [(padding[0],) * 2, (padding[1],) * 2], rhs_dilation=dilation,
                                   dimension_numbers=NCHW, feature_group_count=groups)
    return out + b.reshape(1, -1, 1, 1)


def _pool(x, kind, kernel, stride, padding):
    pads = ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2)
    if kind == "max":
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1) + kernel, (1, 1) + stride, pads)
    return lax.reduce_window(x, 0.0, lax.add, (1, 1) + kernel, (1, 1) + stride, pads) / (kernel[0] * kernel[1])


@pytest.mark.parametrize("c_in, c_out, groups, dilation", [(4, 6, 2, (2, 1)), (3, 6, 3, 2), (4, 4, 4, 1)],
                         ids=["grouped", "depthwise-x2", "depthwise"])
def test_conv2d_with_dilation_and_groups(backend, c_in, c_out, groups, dilation):
    layer = nn.Conv2D(c_in, c_out, (3, 2), backend, stride=(1, 2), padding=(2, 1), dilation=dilation, groups=groups,
                      seed=0, dtype="float64")
    layer.bias.assign(backend.from_numpy(rand(c_out, seed=1), "float64"))
    assert tuple(layer.weight.shape) == (c_out, c_in // groups, 3, 2)
    assert f"groups={groups}" in repr(layer) and f"dilation={layer.dilation}" in repr(layer)

    def reference(p, x):
        return _conv(x, p["weight"], p["bias"], layer.stride, layer.padding, layer.dilation, groups)
    check_against_jax(backend, layer, reference, rand(2, c_in, 7, 6))


def test_conv2d_groups_must_divide_the_channels(backend):
    with pytest.raises(ShapeError, match="Conv2D: got groups=2 for in_channels=3 and out_channels=4; expected groups "
                                         "to divide both"):
        nn.Conv2D(3, 4, 3, backend, groups=2)
    with pytest.raises(ShapeError, match="Conv2D: got groups=0; expected a positive int"):
        nn.Conv2D(3, 3, 3, backend, groups=0)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("kernel, stride, padding", [(3, 2, 1), ((2, 3), None, (1, 1)), (2, 1, 0)])
def test_pooling_layers_with_padding(backend, kind, kernel, stride, padding):
    layer = (nn.MaxPool2D if kind == "max" else nn.AvgPool2D)(kernel, stride, padding=padding)
    assert f"padding={layer.padding}" in repr(layer) and layer.parameters() == []
    x = rand(2, 3, 7, 8)     # distinct values: no ties in a max
    check_against_jax(backend, layer, lambda p, x: _pool(x, kind, layer.kernel_size, layer.stride, layer.padding), x)


def test_pooling_layers_reject_padding_beyond_half_the_window(backend):
    x = tensor.from_numpy(rand(1, 1, 5, 5), backend)
    with pytest.raises(ShapeError, match=r"avg_pool2d: got padding \(2, 2\) for kernel_size \(3, 3\)"):
        nn.AvgPool2D(3, padding=2)(x)
    with pytest.raises(ShapeError, match="MaxPool2D: got padding=-1; expected values >= 0"):
        nn.MaxPool2D(3, padding=-1)


# -- a compiled CNN step -------------------------------------------------------------------------------
def _cnn(backend):
    return nn.Sequential(
        nn.Conv2D(4, 8, 3, backend, padding=2, dilation=2, groups=2, seed=0), nn.Tanh(),
        nn.AvgPool2D(3, 2, padding=1),
        nn.Conv2D(8, 8, 3, backend, padding=1, groups=8, seed=1), nn.Tanh(),        # depthwise
        nn.MaxPool2D(2), nn.Flatten(), nn.Linear(8 * 2 * 2, 3, backend, seed=2))


def _cnn_jax(p, x, y):
    h = jnp.tanh(_conv(x, p["0.weight"], p["0.bias"], (1, 1), (2, 2), (2, 2), 2))
    h = _pool(h, "avg", (3, 3), (2, 2), (1, 1))
    h = jnp.tanh(_conv(h, p["3.weight"], p["3.bias"], (1, 1), (1, 1), (1, 1), 8))
    h = _pool(h, "max", (2, 2), (2, 2), (0, 0)).reshape(x.shape[0], -1)
    logits = h @ p["7.weight"].T + p["7.bias"]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - logits[jnp.arange(x.shape[0]), y])


def _batch(backend, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, 4, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 6).astype(np.int32)
    return tensor.from_numpy(x, backend), tensor.from_numpy(y, backend)


def test_compiled_cnn_with_grouped_dilated_conv_and_avg_pool_equals_eager_and_jax():
    backend = autodiff.new(JaxBackend("cpu"))
    eager_model, compiled_model = _cnn(backend), _cnn(backend)

    def loss_and_grads(model):
        def run(x, y):
            loss = model(x).cross_entropy(y)
            loss.backward()
            return loss
        return run

    x, y = _batch(backend, 0)
    eager_loss = loss_and_grads(eager_model)(x, y).item()
    compiled_loss = jtape.jit(loss_and_grads(compiled_model), state=[compiled_model])(x, y).item()
    params = {name: jnp.asarray(p.numpy()) for name, p in eager_model.named_parameters()}
    jax_loss, jax_grads = jax.jit(jax.value_and_grad(_cnn_jax))(params, jnp.asarray(x.numpy()), jnp.asarray(y.numpy()))
    np.testing.assert_allclose(compiled_loss, eager_loss, rtol=1e-6)
    np.testing.assert_allclose(compiled_loss, float(jax_loss), rtol=1e-5)
    for (name, p), (_, q) in zip(eager_model.named_parameters(), compiled_model.named_parameters()):
        scale = float(np.max(np.abs(jax_grads[name])))
        np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=1e-5, atol=1e-6 * scale, err_msg=name)
        np.testing.assert_allclose(q.grad.numpy(), jax_grads[name], rtol=1e-4, atol=1e-5 * scale, err_msg=name)


def test_compiled_cnn_training_steps_match_eager():
    backend = autodiff.new(JaxBackend("cpu"))
    models = _cnn(backend), _cnn(backend)
    opts = [optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in models]

    eager = cross_entropy_step(models[0], opts[0])
    compiled = jtape.jit(cross_entropy_step(models[1], opts[1]), state=[models[1], opts[1]])
    for seed in range(3):
        x, y = _batch(backend, seed)
        np.testing.assert_allclose(compiled(x, y).item(), eager(x, y).item(), rtol=1e-5)
    for (name, p), (_, q) in zip(models[0].named_parameters(), models[1].named_parameters()):
        np.testing.assert_allclose(q.numpy(), p.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
