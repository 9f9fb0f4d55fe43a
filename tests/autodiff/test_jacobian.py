"""``GradientTape.jacobian`` and ``batch_jacobian``: TF's shapes and semantics, against ``jax.jacrev``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtape import tensor
from jtape.tensor.errors import DTypeError, ShapeError, TapeError

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4))
W = RNG.standard_normal((4, 2))


def f_jtape(x, w):
    return (x @ w).tanh() * x.sum_dim(1, keep_dim=True)


def f_jax(x, w):
    return jnp.tanh(x @ w) * jnp.sum(x, axis=1, keepdims=True)


def test_jacobian_shapes_and_values_match_jax_jacrev(backend):
    x, w = tensor.from_numpy(X, backend), tensor.from_numpy(W, backend)
    y = f_jtape(x, w)                                               # [3, 2]
    tape = backend.tape()
    n_ops = tape.num_ops()
    got = tape.jacobian(y, {"x": x, "w": [w]})
    expected = jax.jacrev(f_jax, argnums=(0, 1))(X, W)
    assert got["x"].shape == (3, 2, 3, 4) and got["w"][0].shape == (3, 2, 4, 2)
    np.testing.assert_allclose(got["x"].numpy(), expected[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got["w"][0].numpy(), expected[1], rtol=1e-12, atol=1e-14)
    assert tape.num_ops() == n_ops                                 # read, not cleared nor grown
    (again,) = tape.gradient(y, [w])                               # the tape still works
    np.testing.assert_allclose(again.numpy(), expected[1].sum(axis=(0, 1)), rtol=1e-12)


def test_jacobian_of_raw_tensors_and_scalars(backend):
    x = tensor.from_numpy(np.array(0.7), backend)                   # 0-d source
    v = tensor.from_numpy(np.array([1.0, -2.0, 0.5]), backend)
    y = (v * x).sin()                                               # [3]
    j = backend.tape().jacobian(y.raw(), x.raw(), backend=backend)
    assert j.shape == (3,)                                          # a RawTensor for a RawTensor source
    np.testing.assert_allclose(backend.to_numpy(j), np.cos([0.7, -1.4, 0.35]) * [1.0, -2.0, 0.5], rtol=1e-12)
    s = (x * x).sum()                                               # 0-d target
    np.testing.assert_allclose(backend.tape().jacobian(s, x).numpy(), 1.4, rtol=1e-12)


def test_jacobian_unconnected_sources_and_rows(backend):
    x = tensor.from_numpy(np.array([1.0, 2.0]), backend)
    unused = tensor.from_numpy(np.array([5.0]), backend)
    other = tensor.from_numpy(np.array([3.0]), backend)
    y = (x * 3.0).cat([other * other], 0)                          # row 2 does not depend on x
    tape = backend.tape()
    assert tape.jacobian(y, unused) is None
    np.testing.assert_array_equal(tape.jacobian(y, unused, unconnected_gradients="zero").numpy(), np.zeros((3, 1)))
    np.testing.assert_allclose(tape.jacobian(y, x).numpy(), [[3.0, 0.0], [0.0, 3.0], [0.0, 0.0]])
    np.testing.assert_allclose(tape.jacobian(y, other).numpy(), [[0.0], [0.0], [6.0]])


def test_jacobian_of_an_empty_target_is_empty(backend):
    x = tensor.from_numpy(np.array([1.0, 2.0]), backend)
    z = tensor.from_numpy(np.zeros((0, 2)), backend) @ x.reshape(2, 1)     # [0, 1]
    for mode in ("none", "zero"):
        j = backend.tape().jacobian(z, x, unconnected_gradients=mode)
        assert j.shape == (0, 1, 2)


def _rows_jax(x, w):
    return jnp.tanh(x @ w) ** 2                                      # row b depends on x[b] only


def test_batch_jacobian_matches_per_row_jacrev(backend):
    x, w = tensor.from_numpy(X, backend), tensor.from_numpy(W, backend)
    h = (x @ w).tanh()
    y = h * h                                                       # [3, 2]
    bj = backend.tape().batch_jacobian(y, x)
    assert bj.shape == (3, 2, 4)
    expected = jax.vmap(jax.jacrev(lambda row: _rows_jax(row[None], W)[0]))(X)
    np.testing.assert_allclose(bj.numpy(), expected, rtol=1e-12, atol=1e-14)


def test_batch_jacobian_higher_rank(backend):
    xs = RNG.standard_normal((2, 3, 2))
    x = tensor.from_numpy(xs, backend)
    y = x.reshape(2, 6).softmax(-1).reshape(2, 2, 3)               # [B, 2, 3] from [B, 3, 2]
    bj = backend.tape().batch_jacobian(y, x)
    assert bj.shape == (2, 2, 3, 3, 2)
    per_row = jax.vmap(jax.jacrev(lambda r: jax.nn.softmax(r.reshape(6)).reshape(2, 3)))(xs)
    np.testing.assert_allclose(bj.numpy(), per_row, rtol=1e-12, atol=1e-14)


def test_batch_jacobian_unconnected(backend):
    x = tensor.from_numpy(X, backend)
    c = tensor.from_numpy(np.ones((3, 2)), backend)
    y = (c * 2.0).exp()
    assert backend.tape().batch_jacobian(y, x) is None
    np.testing.assert_array_equal(backend.tape().batch_jacobian(y, x, unconnected_gradients="zero").numpy(),
                                  np.zeros((3, 2, 4)))


def test_jacobian_errors(backend):
    x = tensor.from_numpy(X, backend)
    y = x * 2.0
    tape = backend.tape()
    with pytest.raises(ValueError, match="jacobian: got unconnected_gradients='nope'; expected 'none' or 'zero'"):
        tape.jacobian(y, x, unconnected_gradients="nope")
    with pytest.raises(TypeError, match="jacobian: got a target of type list; expected one Tensor or RawTensor"):
        tape.jacobian([y], x)
    with pytest.raises(TypeError, match="jacobian: got a source of type float; expected Tensors or RawTensors"):
        tape.jacobian(y, [x, 1.0])
    with pytest.raises(TapeError, match="jacobian: the target is a RawTensor; pass backend= to run the rules on"):
        tape.jacobian(y.raw(), x)
    ints = tensor.from_numpy(np.array([1, 2], np.int32), backend)
    with pytest.raises(DTypeError, match="jacobian: got a target of dtype int32; expected a float tensor"):
        tape.jacobian(ints * ints, x)
    lone = tensor.from_numpy(np.ones(2), backend)
    with pytest.raises(TapeError, match="not produced by an op on this tape"):
        tape.jacobian(lone, x)


def test_batch_jacobian_errors(backend):
    x = tensor.from_numpy(X, backend)
    y = x * 2.0
    tape = backend.tape()
    s = y.sum()
    with pytest.raises(ShapeError, match=r"batch_jacobian: got target shape \(\) and source shape \(3, 4\); expected "
                                         r"both of rank >= 1"):
        tape.batch_jacobian(s, x)
    with pytest.raises(ShapeError, match=r"batch_jacobian: got target shape \(4, 3\) and source shape \(3, 4\); "
                                         r"expected the same batch size in dim 0 \(4 != 3\)"):
        tape.batch_jacobian(y.transpose(), x)
    with pytest.raises(TypeError, match="batch_jacobian: got a source of type list; expected one Tensor or RawTensor"):
        tape.batch_jacobian(y, [x])
    with pytest.raises(ValueError, match="batch_jacobian: got unconnected_gradients='all'"):
        tape.batch_jacobian(y, x, unconnected_gradients="all")
