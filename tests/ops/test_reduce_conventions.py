"""The conventions of the new reductions, each against jax on explicit inputs: ties in amax/amin
share the gradient, prod's gradient and Hessian are exact with zeros, norm's gradient at 0 is
jax's, and half-precision var/std/norm/cumsum accumulate in float32 over long axes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from jtape import autodiff, tensor
from jtape.backends import JaxBackend, NumpyBackend

INNERS = {"numpy": NumpyBackend(), "jax": JaxBackend("cpu")}


@pytest.fixture(params=sorted(INNERS))
def backend(request):
    return autodiff.new(INNERS[request.param])


def _vjp(f, x, cotangent):
    return np.asarray(jax.vjp(f, jnp.asarray(x))[1](jnp.asarray(cotangent))[0])


TIES = np.array([[1.0, 3.0, 3.0, -2.0], [2.0, 2.0, 2.0, 2.0], [-1.0, 0.0, 4.0, -1.0]])


@pytest.mark.parametrize("name, ref", [("amax", jnp.max), ("amin", jnp.min)])
@pytest.mark.parametrize("dim", [None, 1, -2, (0, 1)], ids=str)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_ties_share_the_gradient_equally_as_in_jax(backend, name, ref, dim, dtype):
    x = tensor.from_numpy(TIES.astype(dtype), backend)
    y = getattr(x, name)(dim)
    cotangent = np.random.default_rng(0).standard_normal(tuple(y.shape)).astype(dtype)
    y.backward(tensor.from_numpy(cotangent, backend))
    expected = _vjp(lambda a: ref(a, axis=dim), TIES.astype(dtype), cotangent)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-6)


def test_tie_shares_by_hand(backend):
    x = tensor.from_numpy(TIES, backend)
    x.amax(1).sum().backward()
    assert x.grad.numpy().tolist() == [[0, 0.5, 0.5, 0], [0.25] * 4, [0, 0, 1, 0]]


@pytest.mark.parametrize("values", [[2.0, -1.5, 3.0, 0.5], [2.0, 0.0, 3.0, 0.5], [2.0, 0.0, 3.0, 0.0],
                                    [0.0, 0.0, 0.0, 1.5], [0.0, 0.0, 0.0, 0.0], [0.0], [-0.5]],
                         ids=["no-zero", "one-zero", "two-zeros", "three-zeros", "all-zeros", "one-element", "one"])
def test_prod_gradient_and_hessian_with_zeros_match_jax(backend, values):
    v = np.array(values)
    x = tensor.from_numpy(v, backend)
    tape = backend.tape()
    g = tape.gradient(x.prod(), x, create_graph=True)
    np.testing.assert_allclose(g.numpy(), np.asarray(jax.grad(jnp.prod)(jnp.asarray(v))), rtol=1e-12)
    hessian = tape.jacobian(g, x)
    np.testing.assert_allclose(hessian.numpy(), np.asarray(jax.hessian(jnp.prod)(jnp.asarray(v))), rtol=1e-12)


@pytest.mark.parametrize("dim", [1, (0, 2), None], ids=str)
def test_prod_along_dims_with_zeros_matches_jax(backend, dim):
    rng = np.random.default_rng(4)
    v = rng.uniform(0.5, 1.5, (3, 4, 5)) * rng.choice([-1.0, 1.0], (3, 4, 5))
    v[0, 1, 2] = v[1, 1, 2] = v[2, 3, 0] = v[1, 0, 4] = v[1, 2, 4] = v[1, 3, 4] = 0.0
    x = tensor.from_numpy(v, backend)
    y = x.prod(dim, keepdim=True)
    cotangent = rng.standard_normal(tuple(y.shape))
    y.backward(tensor.from_numpy(cotangent, backend))
    expected = _vjp(lambda a: jnp.prod(a, axis=dim, keepdims=True), v, cotangent)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("p", [1, 2, np.inf, -np.inf], ids=str)
@pytest.mark.parametrize("values", [[0.0, 1.5, -2.0], [0.0, -3.0, 3.0], [1.0, 0.0, -1.0]],
                         ids=["one-zero", "tied-extremes", "tie-and-zero"])
def test_norm_gradients_at_zero_and_ties_follow_jax(backend, p, values):
    v = np.array(values)
    x = tensor.from_numpy(v, backend)
    x.norm(p).backward()
    expected = np.asarray(jax.grad(lambda a: jnp.linalg.vector_norm(a, ord=p))(jnp.asarray(v)))
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)


def test_norm_gradient_of_an_all_zero_vector(backend):
    """The 2-norm is not differentiable at 0: NaN, as jax (torch gives 0); the 1-norm's |x| has
    slope +1 at 0, as jax's abs."""
    for p, expected in ((2, [np.nan] * 3), (1, [1.0] * 3)):
        x = tensor.from_numpy(np.zeros(3), backend)
        x.norm(p).backward()
        jax_grad = np.asarray(jax.grad(lambda a, p=p: jnp.linalg.vector_norm(a, ord=p))(jnp.zeros(3)))
        np.testing.assert_array_equal(x.grad.numpy(), expected)
        np.testing.assert_array_equal(jax_grad, expected)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_reductions_accumulate_in_float32_over_long_axes(backend, dtype):
    """4,096 values near 1000: a float16 sum overflows (65,504) and bfloat16 keeps 8 bits, so
    only float32 accumulation gets var, std and norm right to the output's rounding; a running sum
    of 4,096 tenths stalls in half precision (at 256 adding 0.1 rounds away)."""
    np_dtype = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    eps = 2.0 ** -8 if dtype == "bfloat16" else 2.0 ** -11
    values = (1000 + np.random.default_rng(2).standard_normal(4096) * 8).astype(np_dtype)
    exact = values.astype(np.float64)
    x = tensor.from_numpy(values, backend)
    tenths = tensor.from_numpy(np.full(4096, 0.1, np_dtype), backend)
    checks = {"var": (x.var(), np.var(exact, ddof=1)), "std": (x.std(correction=0), np.std(exact)),
              "norm": (x.norm(), np.linalg.norm(exact)),
              "cumsum": (tenths.cumsum(0), np.cumsum(np.full(4096, np_dtype.type(0.1), np.float64)))}
    for name, (got, want) in checks.items():
        assert got.dtype.value == dtype, name
        np.testing.assert_allclose(got.numpy().astype(np.float64), want, rtol=2 * eps, err_msg=name)
    tenths.cumsum(0).sum().backward()                       # grad_i = the number of k >= i: 4096 .. 1
    np.testing.assert_allclose(tenths.grad.numpy().astype(np.float64), np.arange(4096, 0, -1), rtol=2 * eps)
