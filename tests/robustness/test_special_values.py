"""Special values and kinks follow the oracle.

NaN and ±Inf propagate through values *and* gradients exactly as in jax; at kinks jtape takes the
convention jax takes (documented in ``jtape/ops/unary.py`` and ``jtape/ops/conv.py``):
relu'(0) = 0 (``jax.nn.relu``), sqrt'(0) = +inf, rsqrt'(0) = -inf, and a max-pool window with
several maxima sends its gradient to the first one in row-major order — the element XLA's
select-and-scatter picks for ``jax.grad`` of ``lax.reduce_window`` max.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jtape import autodiff, tensor

SPECIAL = np.array([-1.0, 0.0, -0.0, 1.0, 4.0, np.inf, -np.inf, np.nan, 1e-200, 1e300])
COTANGENT = np.array([1.0, 1.0, 0.0, -2.0, 0.5, 1.0, 1.0, 1.0, 3.0, 0.0])


def same_specials(got, want, what=""):
    """Equal NaN positions, equal ±Inf positions (with signs), finite values equal to rounding
    (1e-14 of the largest finite magnitude: rules may group a product differently from jax's)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, what
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{what}: NaN pattern")
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want), err_msg=f"{what}: +inf pattern")
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want), err_msg=f"{what}: -inf pattern")
    finite = np.isfinite(want)
    scale = max(1.0, float(np.max(np.abs(want[finite]), initial=0.0)))
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-12, atol=1e-14 * scale, err_msg=f"{what}: finite")


UNARY = {
    "log": (lambda x: x.log(), jnp.log),
    "sqrt": (lambda x: x.sqrt(), jnp.sqrt),
    "rsqrt": (lambda x: x.rsqrt(), lax.rsqrt),
    "exp": (lambda x: x.exp(), jnp.exp),
    "relu": (lambda x: x.relu(), jax.nn.relu),
    "sin": (lambda x: x.sin(), jnp.sin),
    "tanh": (lambda x: x.tanh(), jnp.tanh),
    "sigmoid": (lambda x: x.sigmoid(), jax.nn.sigmoid),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ops_propagate_nan_and_inf_as_jax(backend, name):
    ours, theirs = UNARY[name]
    x = tensor.from_numpy(SPECIAL, backend)
    out = ours(x)
    grads = backend.tape().backward(backend.from_numpy(COTANGENT), backend, output=out.raw())
    want, vjp = jax.vjp(theirs, jnp.asarray(SPECIAL))
    same_specials(out.numpy(), want, f"{name} value")
    same_specials(backend.to_numpy(grads[x.raw()]), vjp(jnp.asarray(COTANGENT))[0], f"{name} gradient")


def test_division_by_zero_gives_jax_nan_and_inf_pattern(backend):
    """(One place jtape is deliberately not jax's twin: for a finite b whose square underflows and
    g = 0, jax's -g·a·b⁻² is 0·inf = NaN while jtape's -(g/b)·out is 0, the true value.)"""
    a_values = np.array([1.0, 0.0, -1.0, 1.0, np.inf, 1.0, np.inf, 2.0, 1.0, -3.0])
    b_values = np.array([0.0, 0.0, 0.0, -0.0, np.inf, np.inf, 1.0, 1e-200, 0.0, np.nan])
    g = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 2.0])
    a, b = tensor.from_numpy(a_values, backend), tensor.from_numpy(b_values, backend)
    out = a / b
    grads = backend.tape().backward(backend.from_numpy(g), backend, output=out.raw())
    want, vjp = jax.vjp(jnp.divide, jnp.asarray(a_values), jnp.asarray(b_values))
    want_a, want_b = vjp(jnp.asarray(g))
    same_specials(out.numpy(), want, "a / b")
    same_specials(backend.to_numpy(grads[a.raw()]), want_a, "d(a/b)/da")
    same_specials(backend.to_numpy(grads[b.raw()]), want_b, "d(a/b)/db")
    assert np.isnan(out.numpy()[1]) and np.isinf(out.numpy()[0])


def test_nan_and_inf_flow_through_a_whole_program_as_in_jax(backend):
    """log of a negative and a division by zero early on, then more ops: values and gradients
    carry the same NaN/Inf pattern as jax.value_and_grad of the same program."""
    xv = np.array([[-1.0, 0.0, 2.0], [3.0, 0.5, -4.0]])
    wv = np.array([[0.5, -1.0, 2.0], [1.0, 0.0, 3.0]])

    def ours(x, w):
        h = x.log() * w + (x * x).sqrt() / x
        return (h.tanh() * w).sum_dim(1) + h.sum_dim(0).sum()

    def theirs(x, w):
        h = jnp.log(x) * w + jnp.sqrt(x * x) / x
        return jnp.sum(jnp.tanh(h) * w, 1) + jnp.sum(jnp.sum(h, 0))

    x, w = tensor.from_numpy(xv, backend), tensor.from_numpy(wv, backend)
    out = ours(x, w)
    g = np.array([1.0, -2.0])
    grads = backend.tape().backward(backend.from_numpy(g), backend, output=out.raw())
    want, vjp = jax.vjp(theirs, jnp.asarray(xv), jnp.asarray(wv))
    want_x, want_w = vjp(jnp.asarray(g))
    same_specials(out.numpy(), want, "value")
    same_specials(backend.to_numpy(grads[x.raw()]), want_x, "gradient for x")
    same_specials(backend.to_numpy(grads[w.raw()]), want_w, "gradient for w")
    assert np.isnan(backend.to_numpy(grads[x.raw()])).any()


def test_kinks_relu_sqrt_and_rsqrt_at_zero_as_jax(backend):
    x = tensor.from_numpy(np.array([0.0, 0.0]), backend)
    relu, sqrt, rsqrt = x.relu().sum(), x.sqrt().sum(), x.rsqrt().sum()
    got = [backend.to_numpy(autodiff.backward(y, backend)[x.raw()]) for y in (relu, sqrt, rsqrt)]
    np.testing.assert_array_equal(got[0], [0.0, 0.0])              # relu'(0) = 0
    np.testing.assert_array_equal(got[1], [np.inf, np.inf])        # sqrt'(0) = +inf
    np.testing.assert_array_equal(got[2], [-np.inf, -np.inf])      # rsqrt'(0) = -inf
    zeros = jnp.zeros(2)
    for ours, f in zip(got, (jax.nn.relu, jnp.sqrt, lax.rsqrt)):
        np.testing.assert_array_equal(ours, jax.grad(lambda v, f=f: jnp.sum(f(v)))(zeros))


def _pool_ref(kernel, stride):
    return lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (1, 1) + kernel, (1, 1) + stride, "VALID")


TIES = {
    "all equal": lambda rng, shape: np.zeros(shape),
    "pairs of maxima": lambda rng, shape: np.round(rng.uniform(0, 2, shape)),       # values in {0, 1, 2}
    "constant rows": lambda rng, shape: np.repeat(rng.standard_normal(shape[:3] + (1,)), shape[3], axis=3),
}
POOLS = [((2, 2), (2, 2)), ((3, 3), (1, 1)), ((2, 2), (3, 3)), ((2, 3), (1, 2)), ((3, 1), (2, 1))]


@pytest.mark.parametrize("kind", sorted(TIES))
@pytest.mark.parametrize("kernel, stride", POOLS, ids=[f"k{k}-s{s}" for k, s in POOLS])
def test_max_pool_ties_go_to_the_first_max_as_xla_select_and_scatter(backend, kind, kernel, stride):
    rng = np.random.default_rng(0)
    xv = TIES[kind](rng, (2, 3, 7, 8))
    x = tensor.from_numpy(xv, backend)
    out = x.max_pool2d(kernel, stride)
    g = rng.standard_normal(tuple(out.shape))
    grads = backend.tape().backward(backend.from_numpy(g), backend, output=out.raw())
    _, vjp = jax.vjp(_pool_ref(kernel, stride), jnp.asarray(xv))
    np.testing.assert_allclose(backend.to_numpy(grads[x.raw()]), vjp(jnp.asarray(g))[0], rtol=1e-14, atol=1e-15)


def test_max_pool_tie_rule_explicitly(backend):
    """All-equal 2x2 windows: each window's gradient lands on its top-left element."""
    x = tensor.from_numpy(np.zeros((1, 1, 4, 4)), backend)
    out = x.max_pool2d(2)
    grads = backend.tape().backward(backend.from_numpy(np.array([[[[1.0, 2.0], [3.0, 4.0]]]])), backend,
                                    output=out.raw())
    np.testing.assert_array_equal(backend.to_numpy(grads[x.raw()])[0, 0],
                                  [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]])
