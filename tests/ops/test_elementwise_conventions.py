"""The conventions of the elementwise ops where the maths has no single answer — 0 ** b, a
negative base, abs at 0, ties, clamp's bounds, -inf and empty reductions, overflow — checked
against jax itself, NaN and inf included (the spec table's tolerance checks need finite values).

Every case runs on the AutodiffBackend over both inner backends, in float32 and float64: the
value, the gradient for random cotangents, and (where the case says so) the second derivative
through ``create_graph``, each compared with jax position by position (NaN where jax has NaN,
±inf where jax has ±inf).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtape import autodiff, tensor
from jtape.backends import JaxBackend, NumpyBackend

INNERS = {"jax": JaxBackend("cpu"), "numpy": NumpyBackend()}
RTOL = {"float32": 2e-6, "float64": 1e-13}


def tape_vjp(inner_name: str, fn, arrays: list, cotangent: np.ndarray, second: bool = False):
    """fn's value, its VJP with ``cotangent`` for each input, and (``second``) the derivative of
    Σ VJP_0 in the first input — all through the tape."""
    backend = autodiff.new(INNERS[inner_name])
    ts = [tensor.from_numpy(a, backend) for a in arrays]
    out = fn(*ts)
    ct = tensor.from_numpy(cotangent, backend).requires_grad_(False)
    tape = backend.tape()
    grads = tape.gradient((out * ct).sum(), ts, unconnected_gradients="zero", create_graph=second)
    hess = None
    if second:   # a gradient that is a constant (x ** 0) has no history: its derivative is 0
        total = grads[0].sum()
        hess = (tape.gradient(total, [ts[0]], unconnected_gradients="zero")[0].numpy() if total.requires_grad
                else np.zeros_like(arrays[0]))
    return out.numpy(), [g.numpy() for g in grads], hess


def jax_vjp(fn, arrays: list, cotangent: np.ndarray, second: bool = False):
    out, pullback = jax.vjp(fn, *map(jnp.asarray, arrays))
    grads = [np.asarray(g) for g in pullback(jnp.asarray(cotangent))]
    hess = None
    if second:
        first = lambda *xs: jnp.sum(jax.vjp(fn, *xs)[1](jnp.asarray(cotangent))[0])  # noqa: E731
        hess = np.asarray(jax.grad(first)(*map(jnp.asarray, arrays)))
    return np.asarray(out), grads, hess


def assert_same(got, want, dtype: str, what: str) -> None:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{what}: NaN positions\n{got}\n{want}")
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want), err_msg=f"{what}: +inf positions\n{got}")
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want), err_msg=f"{what}: -inf positions\n{got}")
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=RTOL[dtype], atol=RTOL[dtype], err_msg=what)


def check(inner_name, dtype, jt_fn, jax_fn, arrays, second=False, seed=0):
    arrays = [np.asarray(a, dtype) for a in arrays]
    out_shape = np.shape(jax.eval_shape(jax_fn, *map(jnp.asarray, arrays)))
    cotangent = np.random.default_rng(seed).uniform(0.5, 1.5, out_shape).astype(dtype)
    got = tape_vjp(inner_name, jt_fn, arrays, cotangent, second)
    want = jax_vjp(jax_fn, arrays, cotangent, second)
    what = f"{inner_name}/{dtype}"
    assert_same(got[0], want[0], dtype, f"{what}: value")
    for i, (g, w) in enumerate(zip(got[1], want[1])):
        assert_same(g, w, dtype, f"{what}: gradient of input {i}")
    if second:
        assert_same(got[2], want[2], dtype, f"{what}: second derivative")


cases = pytest.mark.parametrize("inner_name, dtype", [(i, d) for i in INNERS for d in ("float32", "float64")])

# a = 0 with b > 1, = 1, in (0, 1), = 0, < 0; a = -0.0; a < 0 with integral and other b; a > 0 with b = 0.
POW_A = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.0, -2.0, -2.0, -2.0, -2.0, -1.5, 2.0, 3.0]
POW_B = [2.0, 3.0, 1.0, 0.5, 0.0, -1.0, 2.0, 3.0, 2.0, 0.0, 2.5, -1.0, 0.0, -0.5]


@cases
def test_pow_at_zero_and_negative_bases_is_jnp_power(inner_name, dtype):
    """d/da = b·a^(b-1): at a = 0 it is 0 (b > 1), 1 (b = 1), inf (0 < b < 1), NaN (b = 0, 0·inf),
    -inf (b < 0); d/db = out·log a with log 0 taken as 0, so 0 at a = 0 (NaN for b < 0: 0·inf... as
    jax) and NaN for every a < 0 — jax's jnp.power rule, entry for entry."""
    check(inner_name, dtype, lambda a, b: a.pow(b), jnp.power, [POW_A, POW_B])
    check(inner_name, dtype, lambda a, b: a ** b, jnp.power, [POW_A, POW_B], seed=1)


@cases
def test_pow_second_derivative_at_conventions_is_jaxs(inner_name, dtype):
    """The rule is written with pow again, so its derivative at 0 ** b follows jax's too."""
    check(inner_name, dtype, lambda a, b: a.pow(b), jnp.power, [POW_A, POW_B], second=True)


@cases
def test_pow_broadcasts_a_zero_base_and_sums_its_gradients(inner_name, dtype):
    a = np.array([[0.0], [2.0], [-1.0]])
    b = np.array([[2.0, 3.0, 1.0, 2.5]])
    check(inner_name, dtype, lambda x, y: x ** y, jnp.power, [a, b])


P_VALUES = [0, 1, 2, 3, -1, -2, 0.5, 2.5, -0.5, 1.0, 2.0]
X_VALUES = [0.0, -0.0, 2.0, -2.0, -1.5, 0.25]


@cases
@pytest.mark.parametrize("p", P_VALUES, ids=[repr(p) for p in P_VALUES])
def test_pow_scalar_is_x_to_a_python_number_as_jax_writes_it(inner_name, dtype, p):
    """x ** p for a Python number: jax's conventions (integral p as lax.integer_pow): at x = 0 the
    gradient is 0 for p = 0 and p > 1, 1 for p = 1, inf for 0 < p < 1, -inf for p < 0; a negative
    x is finite for an integral p and NaN otherwise."""
    second = p not in (1.0, 2.0)   # jax's float 1.0/2.0 use lax.pow: their second derivative at 0 is 0·inf
    check(inner_name, dtype, lambda x: x ** p, lambda x: x ** p, [X_VALUES], second=second)


@cases
def test_pow_scalar_zero_power_has_gradient_zero_even_for_a_float_zero(inner_name, dtype):
    """The one place jtape picks between two jax spellings: x ** 0.0 has gradient 0 at x = 0 (as
    jax's x ** 0), where jax's general pow gives 0 · 0⁻¹ = NaN."""
    x = np.asarray([0.0, 1.5, -2.0], dtype)
    _, grads, _ = tape_vjp(inner_name, lambda t: t ** 0.0, [x], np.ones(3, dtype))
    np.testing.assert_array_equal(grads[0], [0.0, 0.0, 0.0])
    assert np.isnan(np.asarray(jax.grad(lambda t: t ** 0.0)(jnp.asarray(x[0]))))   # jax's lax.pow rule
    np.testing.assert_array_equal(jax.vmap(jax.grad(lambda t: t ** 0))(jnp.asarray(x)), [0.0, 0.0, 0.0])


@cases
@pytest.mark.parametrize("s", [2.0, 0.5, 0.0, -2.0, 1.0])
def test_number_to_a_tensor_power_is_pow_with_a_constant_base(inner_name, dtype, s):
    """s ** t: 0 ** t has gradient 0 in t (NaN where t < 0, 0·inf), a negative s gives NaN
    gradients, 1 ** t gradient 0 — as jax's ``s ** t``."""
    x = [0.0, 1.0, 2.0, 0.5, -1.0, -0.5, 3.0]
    check(inner_name, dtype, lambda t: s ** t, lambda t: s ** t, [x], second=True)


@cases
def test_abs_has_slope_plus_one_at_zero_as_jax(inner_name, dtype):
    """jax: select(x >= 0, g, -g) — so +1 at 0 and at -0.0 (not sign(0) = 0); second derivative 0."""
    check(inner_name, dtype, lambda x: abs(x), jnp.abs, [[0.0, -0.0, 1.5, -2.0]], second=True)


@cases
@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_ties_split_the_gradient_and_nan_sends_none(inner_name, dtype, name):
    a = [1.0, 1.0, 2.0, -0.0, np.nan, 3.0, np.nan]
    b = [1.0, 2.0, 1.0, 0.0, 1.0, np.nan, np.nan]
    check(inner_name, dtype, lambda x, y: getattr(x, name)(y), getattr(jnp, name), [a, b])
    check(inner_name, dtype, lambda x, y: getattr(x, name)(y), getattr(jnp, name),     # a 0-d tie feeds 3 places
          [1.0, [1.0, 0.0, 1.0]], seed=2)


CLAMP_X = [-1.0, -0.5, 0.0, 0.5, 1.0, 0.75, np.nan]


@cases
@pytest.mark.parametrize("lo, hi", [(-0.5, 0.5), (0.5, 0.5), (0.5, -0.5), (None, 0.5), (-0.5, None), (0.75, 0.75)])
def test_clamp_is_jnp_clip_at_its_bounds(inner_name, dtype, lo, hi):
    """½ of g exactly on a bound, ¼ where min = max = x, max everywhere when min > max, 0 for NaN."""
    check(inner_name, dtype, lambda x: x.clamp(lo, hi), lambda x: jnp.clip(x, lo, hi), [CLAMP_X], second=True)


@cases
def test_leaky_relu_elu_and_gelu_at_their_kinks_are_jax_nn(inner_name, dtype):
    x = [0.0, -0.0, -1e-3, 1e-3, -30.0, 30.0, 3.0]
    check(inner_name, dtype, lambda t: t.leaky_relu(0.1), lambda t: jax.nn.leaky_relu(t, 0.1), [x], second=True)
    check(inner_name, dtype, lambda t: t.elu(0.7), lambda t: jax.nn.elu(t, 0.7), [x], second=True)
    big = [0.0, -3.0, 3.0, -30.0, 30.0, 1e4, -1e4]
    check(inner_name, dtype, lambda t: t.elu(), jax.nn.elu, [big], second=True)       # no inf·0 from e^x
    check(inner_name, dtype, lambda t: t.gelu(), lambda t: jax.nn.gelu(t, approximate=False), [big], second=True)
    check(inner_name, dtype, lambda t: t.gelu(approximate="tanh"), jax.nn.gelu, [x], second=True)


@cases
def test_softplus_does_not_overflow(inner_name, dtype):
    x = [-1000.0, -50.0, 0.0, 50.0, 1000.0, 1e30]
    check(inner_name, dtype, lambda t: t.softplus(), jax.nn.softplus, [x], second=True)


@cases
def test_logsumexp_of_infinities_and_huge_values_is_jaxs(inner_name, dtype):
    rows = [[-np.inf, -np.inf, -np.inf], [-np.inf, 0.0, 1.0], [1e4, 1e4, -1e4], [np.inf, 0.0, 1.0]]
    check(inner_name, dtype, lambda t: t.logsumexp(1), lambda t: jax.nn.logsumexp(t, axis=1), [rows])
    check(inner_name, dtype, lambda t: t.log_softmax(1), lambda t: jax.nn.log_softmax(t, axis=1), [rows])


@cases
def test_logsumexp_of_nothing_is_minus_infinity(inner_name, dtype):
    check(inner_name, dtype, lambda t: t.logsumexp(0), lambda t: jax.nn.logsumexp(t, axis=0), [np.zeros((0, 3))])
    check(inner_name, dtype, lambda t: t.logsumexp((0, 1), keepdim=True),
          lambda t: jax.nn.logsumexp(t, axis=(0, 1), keepdims=True), [np.zeros((2, 0))])


@pytest.mark.parametrize("inner_name", INNERS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_log_space_reductions_accumulate_half_dtypes_in_float32(inner_name, dtype):
    """8192 terms: summed in float16 the ones would stall at 2048 (log 2048 = 7.62, not log 8192 = 9.01);
    float32 accumulation, rounded once, is within the dtype's rounding of the float64 value."""
    x = np.random.default_rng(3).uniform(-0.5, 0.5, (2, 8192))
    backend = autodiff.new(INNERS[inner_name])
    t = tensor.from_numpy(x, backend, dtype)
    widened = np.asarray(t.numpy(), np.float64)
    want = np.asarray(jax.nn.logsumexp(widened, axis=1))
    got = t.logsumexp(1)
    np.testing.assert_allclose(np.asarray(got.numpy(), np.float64), want, rtol=8e-3)
    log_softmax = np.asarray(t.log_softmax(1).numpy(), np.float64)
    np.testing.assert_allclose(log_softmax, np.asarray(jax.nn.log_softmax(widened, axis=1)), rtol=8e-3, atol=8e-2)
    got.sum().backward()                      # the softmax weights, each about 1/8192, sum to 1 per row
    np.testing.assert_allclose(np.asarray(t.grad.numpy(), np.float64).sum(axis=1), [1.0, 1.0], rtol=2e-2)
