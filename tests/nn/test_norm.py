"""LayerNorm, BatchNorm1d and BatchNorm2d against plain-jnp references: values and jax.grad gradients,
float32 and float64; BatchNorm's running statistics over several training steps, and eval mode."""

import jax.numpy as jnp
import numpy as np
import pytest

from jtape import nn, tensor
from jtape.tensor.errors import ArgumentError, DTypeError, ShapeError

from .reference import compare, randn

DTYPES = ["float32", "float64"]


def layer_norm_ref(k, eps=1e-5, affine=True, bias=True):
    def f(p, x):
        dims = tuple(range(x.ndim - k, x.ndim))
        mu = jnp.mean(x, axis=dims, keepdims=True)
        var = jnp.mean((x - mu) ** 2, axis=dims, keepdims=True)
        y = (x - mu) / jnp.sqrt(var + eps)
        if affine:
            y = y * p["weight"]
        return y + p["bias"] if affine and bias else y
    return f


def with_random_affine(layer, backend, dtype, seed=5):
    """Non-trivial weight and bias (ones and zeros would hide mistakes)."""
    for i, (name, p) in enumerate(layer.named_parameters()):
        p.assign(backend.from_numpy(1.0 + 0.5 * randn(*p.shape, seed=seed + i), dtype))
    return layer


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,normalized", [((4, 6), 6), ((2, 3, 5), (5,)), ((2, 3, 4), (3, 4)), ((7,), 7)])
def test_layer_norm(backend, dtype, shape, normalized):
    layer = with_random_affine(nn.LayerNorm(normalized, backend=backend, dtype=dtype), backend, dtype)
    k = 1 if isinstance(normalized, int) else len(normalized)
    compare(layer, layer_norm_ref(k), [randn(*shape) * 3 + 1], backend, dtype)


def test_layer_norm_options(backend):
    plain = nn.LayerNorm(4, eps=1e-3, elementwise_affine=False, backend=backend, dtype="float64")
    assert list(plain.named_parameters()) == []
    compare(plain, layer_norm_ref(1, eps=1e-3, affine=False), [randn(3, 4)], backend, "float64")
    no_bias = with_random_affine(nn.LayerNorm(4, bias=False, backend=backend, dtype="float64"), backend, "float64")
    assert [n for n, _ in no_bias.named_parameters()] == ["weight"]
    compare(no_bias, layer_norm_ref(1, bias=False), [randn(3, 4)], backend, "float64")
    x = tensor.from_numpy(randn(2, 4), backend, "float64")
    plain.eval()
    np.testing.assert_allclose(plain(x).numpy(), layer_norm_ref(1, eps=1e-3, affine=False)({}, x.numpy()))


def test_layer_norm_errors(backend):
    layer = nn.LayerNorm((3, 4), backend=backend)
    with pytest.raises(ShapeError, match=r"got input shape \(2, 4, 3\); expected \[\.\.\., 3, 4\]"):
        layer(tensor.ones((2, 4, 3), backend))
    with pytest.raises(ShapeError, match=r"got input shape \(4,\)"):
        layer(tensor.ones((4,), backend))
    with pytest.raises(DTypeError, match="got input of dtype int32; expected a float tensor"):
        layer(tensor.from_numpy(np.ones((3, 4), np.int32), backend))
    with pytest.raises(ArgumentError, match="normalized_shape=0"):
        nn.LayerNorm(0, backend=backend)
    with pytest.raises(DTypeError, match="dtype=int32"):
        nn.LayerNorm(3, backend=backend, dtype="int32")


def batch_norm_train_ref(eps=1e-5):
    def f(p, x):
        dims = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mu = jnp.mean(x, axis=dims, keepdims=True)
        var = jnp.var(x, axis=dims, keepdims=True)
        return (x - mu) / jnp.sqrt(var + eps) * p["weight"].reshape(shape) + p["bias"].reshape(shape)
    return f


def batch_norm_eval_ref(mean, var, eps=1e-5):
    def f(p, x):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return (x - mean.reshape(shape)) / jnp.sqrt(var.reshape(shape) + eps) * p["weight"].reshape(shape) \
            + p["bias"].reshape(shape)
    return f


CASES = [(nn.BatchNorm1d, (8, 3)), (nn.BatchNorm1d, (4, 3, 5)), (nn.BatchNorm2d, (2, 3, 4, 5)),
         (nn.BatchNorm2d, (5, 2, 3, 1))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls,shape", CASES)
def test_batch_norm_train_eval_and_running_stats(backend, dtype, cls, shape):
    c = shape[1]
    layer = with_random_affine(cls(c, momentum=0.2, backend=backend, dtype=dtype), backend, dtype)
    assert [n for n, _ in layer.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    mean, var = np.zeros(c), np.ones(c)
    dims = (0,) + tuple(range(2, len(shape)))
    n = int(np.prod([shape[d] for d in dims]))
    for step in range(3):
        x = randn(*shape, seed=step) * (step + 1) + step
        compare(layer, batch_norm_train_ref(), [x], backend, dtype, seed=step)
        for p in layer.parameters():
            p.zero_grad()
        mean = 0.8 * mean + 0.2 * x.mean(axis=dims)
        var = 0.8 * var + 0.2 * x.var(axis=dims) * n / (n - 1)   # the unbiased batch variance, as torch
        tol = 1e-12 if dtype == "float64" else 1e-5
        np.testing.assert_allclose(layer.running_mean.numpy(), mean, rtol=tol, atol=tol)
        np.testing.assert_allclose(layer.running_var.numpy(), var, rtol=tol, atol=tol)
        assert int(layer.num_batches_tracked.numpy()) == step + 1
        assert not layer.running_mean.requires_grad and layer.running_mean.grad is None
    layer.eval()
    compare(layer, batch_norm_eval_ref(mean, var), [randn(*shape, seed=9)], backend, dtype)
    np.testing.assert_allclose(layer.running_mean.numpy(), mean, rtol=1e-5)   # eval leaves the stats alone
    assert int(layer.num_batches_tracked.numpy()) == 3


def test_batch_norm_cumulative_average_and_no_tracking(backend):
    layer = nn.BatchNorm1d(2, momentum=None, backend=backend, dtype="float64")
    xs = [randn(6, 2, seed=s) + s for s in range(4)]
    for x in xs:
        layer(tensor.from_numpy(x, backend))
    np.testing.assert_allclose(layer.running_mean.numpy(), np.mean([x.mean(0) for x in xs], axis=0), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var.numpy(), np.mean([x.var(0, ddof=1) for x in xs], axis=0),
                               rtol=1e-12)
    free = nn.BatchNorm2d(3, affine=False, track_running_stats=False, backend=backend, dtype="float64")
    assert list(free.named_buffers()) == [] and list(free.named_parameters()) == []
    free.eval()   # no running stats: eval normalises with the batch's, as torch
    x = randn(2, 3, 2, 2)
    got = free(tensor.from_numpy(x, backend)).numpy()
    mu, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(got, (x - mu) / np.sqrt(var + 1e-5), rtol=1e-12)


def test_batch_norm_state_dict_has_the_buffers(backend):
    model = nn.Sequential(nn.BatchNorm1d(2, backend=backend, dtype="float64"))
    model(tensor.from_numpy(randn(4, 2), backend))
    assert set(dict(model.named_buffers())) == {"0.running_mean", "0.running_var", "0.num_batches_tracked"}
    assert backend.tape().num_ops() > 0
    model(tensor.from_numpy(randn(4, 2), backend)).sum().backward()   # buffers are not on the tape's gradient path
    assert model[0].running_var.grad is None


def test_batch_norm_errors(backend):
    layer = nn.BatchNorm2d(3, backend=backend)
    with pytest.raises(ShapeError, match=r"BatchNorm2d: got input shape \(2, 4, 5, 5\); expected \[N, C, H, W\] with "
                                         r"C=3"):
        layer(tensor.ones((2, 4, 5, 5), backend))
    with pytest.raises(ShapeError, match=r"BatchNorm1d: got input shape \(2, 3, 4, 5\); expected \[N, C\] or"):
        nn.BatchNorm1d(3, backend=backend)(tensor.ones((2, 3, 4, 5), backend))
    with pytest.raises(ShapeError, match="expected more than 1 value per channel"):
        nn.BatchNorm1d(3, backend=backend)(tensor.ones((1, 3), backend))
    with pytest.raises(DTypeError, match="got input of dtype int32"):
        layer(tensor.from_numpy(np.ones((2, 3, 2, 2), np.int32), backend))
    with pytest.raises(ArgumentError, match="num_features=0"):
        nn.BatchNorm1d(0, backend=backend)
    with pytest.raises(ArgumentError, match="momentum='fast'"):
        nn.BatchNorm1d(2, momentum="fast", backend=backend)
