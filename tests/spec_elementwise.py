"""Spec rows of the second round's elementwise maths, activations and the Python operators' ops
(see ``spec.py`` for the fields).

Values are drawn away from kinks and singular points, except in the samples marked ``at=...``,
which put inputs exactly where a convention decides the gradient (0 for abs and powers, ties for
maximum/minimum, the bounds for clamp, a negative base for powers). ``at`` only steers the input
domain: the calls and references below leave it out. Conventions whose gradients are not finite
in jax (0 ** b with b <= 0 or b < 1, a negative base's gradient in b) cannot go through the
finite-tolerance checks here: ``tests/ops/test_elementwise_conventions.py`` compares those with
jax, NaN and inf included.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import jax.scipy.special
import numpy as np
from jax import lax
from spec import (
    BINARY,
    FLOATS,
    INTS,
    NUMERIC,
    UNARY,
    E,
    OpSpec,
    S,
    broadcast_errors,
    dim_errors,
    float_only_error,
    mixed_dtype_error,
    normal,
    unary,
)


# -- calls and references that leave the marker `at` out ------------------------------------------
def by_name(name: str):
    """Call ``backend.<name>(*tensors, **kwargs)`` without the sample's ``at`` marker."""
    return lambda b, xs, kw: getattr(b, name)(*xs, **{k: v for k, v in kw.items() if k != "at"})


def ignoring_at(ref):
    return lambda *xs, at=None, **kw: ref(*xs, **kw)


def _at(sample) -> str | None:
    return sample.kwargs.get("at") if sample is not None else None


# -- input domains -------------------------------------------------------------------------------------
def kink_zero(rng, shape, dtype, sample):
    """|x| in [0.5, 2] with a random sign; at="zero": about 40% exact zeros, half of them -0.0."""
    if dtype in INTS or dtype == "bool":
        return normal(rng, shape, dtype)
    x = rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    if _at(sample) == "zero":
        u = rng.random(shape)
        x = np.where(u < 0.2, 0.0, np.where(u < 0.4, -0.0, x))
    return x


def pow_base(rng, shape, dtype, sample):
    """In [0.5, 2]; at="zero_base": about 40% exact zeros; at="negative": in [-2, -0.5]."""
    x = rng.uniform(0.5, 2.0, shape)
    if _at(sample) == "zero_base" or _at(sample) == "zero":
        x = np.where(rng.random(shape) < 0.4, 0.0, x)
    elif _at(sample) == "negative":
        x = -x
    return x


def pow_exponent(rng, shape, dtype, sample):
    """In [-2, 2]; at="zero_base": 2, 2.5 or 3 (> 1, where every derivative of 0 ** b is finite)."""
    if _at(sample) == "zero_base":
        return rng.choice([2.0, 2.5, 3.0], shape)
    return rng.uniform(-2.0, 2.0, shape)


def ties(rng, shape, dtype, sample):
    """N(0, 1); at="ties": values in {-0.5, 0, 0.5}, so a and b tie in about a third of the places."""
    if _at(sample) == "ties" and dtype not in INTS:
        return rng.integers(-1, 2, shape) * 0.5
    return normal(rng, shape, dtype)


def clamp_values(rng, shape, dtype, sample):
    """N(0, 1) (ints in [-5, 5)); at="bounds": about 40% of the values exactly on min or max."""
    x = normal(rng, shape, dtype)
    if _at(sample) == "bounds":
        bounds = [v for v in (sample.kwargs.get("min"), sample.kwargs.get("max")) if v is not None]
        u = rng.random(shape)
        x = np.where(u < 0.4, np.asarray(bounds)[rng.integers(0, len(bounds), shape)], x)
    return x


def near_zero(rng, shape, dtype, sample=None):
    """In [-1.2, 1.2]: tan stays away from its poles at ±π/2."""
    return rng.uniform(-1.2, 1.2, shape)


def large(rng, shape, dtype, sample):
    """N(0, 1); at="large": |x| in [20, 100], where e^x overflows float16 and e^-x underflows."""
    if _at(sample) == "large":
        return rng.uniform(20.0, 100.0, shape) * rng.choice([-1.0, 1.0], shape)
    return normal(rng, shape, dtype)


def near_1000(rng, shape, dtype, sample):
    """N(0, 1); at="large": around 1000, where a naive log Σ e^x overflows in every float dtype."""
    if _at(sample) == "large":
        return rng.standard_normal(shape) * 4 + 1000
    return normal(rng, shape, dtype)


# -- references: jax.numpy, never jtape ------------------------------------------------------------------
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def ref_gelu(x, approximate):
    if approximate == "tanh":
        return 0.5 * x * (1 + jnp.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + jax.scipy.special.erf(x / math.sqrt(2.0)))


def ref_elu(x, alpha=1.0, at=None):
    return jnp.where(x > 0, x, alpha * jnp.expm1(jnp.where(x > 0, 0.0, x)))


def ref_log_softmax(x, dim=-1, at=None):
    shifted = x - lax.stop_gradient(jnp.max(x, axis=dim, keepdims=True, initial=-jnp.inf))   # (empty: -inf)
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=dim, keepdims=True))


def ref_logsumexp(x, dim, keep_dim, at=None):
    m = lax.stop_gradient(jnp.max(x, axis=dim, keepdims=True, initial=-jnp.inf))   # an empty sum: log 0 = -inf
    out = jnp.log(jnp.sum(jnp.exp(x - m), axis=dim, keepdims=True)) + m
    return out if keep_dim else jnp.squeeze(out, axis=dim)


def bool_error(name: str, arity: int = 1, **kwargs) -> tuple:
    return (E(*((3,),) * arity, dtypes=("bool",) * arity, error="DTypeError", **kwargs,
              match=f"{name}: got dtype bool; expected a numeric dtype"),)


def numeric_unary(name: str, ref, grad: tuple = (0,), kinks: bool = False) -> OpSpec:
    """An elementwise op on every numeric dtype; ``kinks``: also samples with exact zeros."""
    extra = (S((3, 4), at="zero"), S((2, 1, 3), at="zero")) if kinks else ()
    return OpSpec(name, ignoring_at(ref), UNARY + extra, NUMERIC, grad=grad, domain=kink_zero if kinks else None,
                  call=by_name(name), errors=bool_error(name))


def choice(name: str, ref) -> OpSpec:
    """maximum / minimum: broadcasting, every numeric dtype, ties split the gradient."""
    tie_samples = (S((3, 4), (3, 4), at="ties"), S((3, 1), (1, 4), at="ties"), S((), (5,), at="ties"))
    return OpSpec(name, ignoring_at(ref), BINARY + tie_samples, NUMERIC, grad=(0, 1), domain=(ties, ties),
                  call=by_name(name), errors=broadcast_errors(name) + (mixed_dtype_error(name, (3,), (3,)),)
                  + bool_error(name, arity=2))


def float_errors(name: str, **kwargs) -> tuple:
    return (float_only_error(name, (3,), **kwargs), float_only_error(name, (3,), dtype="bool", **kwargs))


SPECS: tuple = (
    # negation, powers (the ops behind -t, t * t, t ** u, t ** p, s ** t)
    numeric_unary("neg", jnp.negative),
    numeric_unary("square", jnp.square),
    OpSpec("pow", ignoring_at(jnp.power), BINARY + (S((3, 4), (3, 4), at="zero_base"),
                                                     S((3, 1), (1, 4), at="zero_base")),
           FLOATS, grad=(0, 1), domain=(pow_base, pow_exponent), call=by_name("pow"),
           errors=broadcast_errors("pow") + (mixed_dtype_error("pow", (3,), (3,)),
                                             float_only_error("pow", (3,), (3,)))),
    OpSpec("pow_scalar", lambda x, p, at=None: x ** p, (
        S((3, 4), p=2), S((2, 1, 3), p=0.5), S((5,), p=-1.5), S((), p=3), S((1,), p=1), S((0, 1, 3), p=2.5),
        S((3, 4), p=0), S((2, 3), p=-2),
        S((3, 4), p=2, at="zero"), S((3, 4), p=3, at="zero"), S((3, 4), p=1, at="zero"),
        S((3, 4), p=0, at="zero"), S((3, 4), p=2.5, at="zero"),
        S((3, 4), p=3, at="negative"), S((3, 4), p=2, at="negative"), S((3, 4), p=-1, at="negative"),
        S((3, 4), p=0, at="negative"),
    ), FLOATS, grad=(0,), domain=pow_base, call=lambda b, xs, kw: b.pow_scalar(xs[0], kw["p"]), errors=(
        float_only_error("pow_scalar", (3,), p=2),
        E((3,), p="2", error="DTypeError", match="pow_scalar: got p '2' of type str; expected an int or float"),
        E((3,), p=True, error="DTypeError", match="pow_scalar: got p True of type bool; expected an int or float"))),

    # piecewise: kinks and ties
    numeric_unary("abs", jnp.abs, kinks=True),
    numeric_unary("sign", jnp.sign, grad=(), kinks=True),
    choice("maximum", jnp.maximum),
    choice("minimum", jnp.minimum),
    OpSpec("clamp", lambda x, min=None, max=None, at=None: jnp.clip(x, min, max), (
        S((3, 4), min=0, max=2), S((2, 1, 3), min=1, max=None), S((5,), min=None, max=0.25),
        S((), min=-1.0, max=1.0), S((1,), min=0.5, max=-0.5), S((0, 1, 3), min=0.0, max=1.0),
        S((2, 3, 4), min=-0.5, max=0.5),
        S((3, 4), min=-0.5, max=0.5, at="bounds"), S((4, 5), min=0.25, max=0.25, at="bounds"),
        S((3, 4), min=None, max=0.5, at="bounds"), S((3, 4), min=0.5, max=None, at="bounds"),
    ), NUMERIC, grad=(0,), domain=clamp_values, call=lambda b, xs, kw: b.clamp(xs[0], kw.get("min"), kw.get("max")),
        errors=(
        E((3,), min=None, max=None, match="clamp: got min=None and max=None; expected at least one bound"),
        E((3,), dtypes=("int32",), min=0.5, max=None, error="DTypeError",
          match="clamp: got min=0.5 for a tensor of dtype int32; expected an integral value"),
        E((3,), dtypes=("uint8",), min=-1, max=None, error="DTypeError",
          match="clamp: got min=-1.0 for a tensor of dtype uint8; expected a value in [0, 255]"),
        E((3,), dtypes=("int32",), min=None, max=2.0**40, error="DTypeError",
          match="clamp: got max=1099511627776.0 for a tensor of dtype int32; expected a value in"),
        E((3,), min="a", max=None, error="DTypeError",
          match="clamp: got min 'a' of type str; expected an int or float"),
        E((3,), dtypes=("bool",), min=0, max=1, error="DTypeError",
          match="clamp: got dtype bool; expected a numeric dtype"))),

    # more unary maths
    unary("expm1", jnp.expm1),
    unary("erf", jax.scipy.special.erf),
    unary("tan", jnp.tan, domain=near_zero),
    unary("atan", jnp.arctan),

    # activations
    OpSpec("gelu", ref_gelu, (
        S((3, 4), approximate="none"), S((2, 1, 3), approximate="tanh"), S((), approximate="none"),
        S((1,), approximate="tanh"), S((5,), approximate="none"), S((0,), approximate="tanh"),
        S((0, 1, 3), approximate="none"), S((3, 4), approximate="tanh"),
    ), FLOATS, grad=(0,), errors=float_errors("gelu", approximate="none") + (
        E((3,), approximate="exact", match="gelu: got approximate='exact'; expected 'none' or 'tanh'"),
        E((3,), approximate=True, match="gelu: got approximate=True; expected 'none' or 'tanh'"))),
    OpSpec("leaky_relu", lambda x, negative_slope=0.01, at=None: jnp.where(x >= 0, x, negative_slope * x), (
        S((3, 4)), S((2, 1, 3), negative_slope=0.2), S(()), S((1,), negative_slope=0.5), S((5,), negative_slope=-0.1),
        S((0,)), S((0, 1, 3), negative_slope=0.3), S((3, 4), at="zero"), S((2, 3), negative_slope=0.2, at="zero"),
    ), FLOATS, grad=(0,), domain=kink_zero, call=by_name("leaky_relu"), errors=float_errors("leaky_relu") + (
        E((3,), negative_slope="a", error="DTypeError",
          match="leaky_relu: got negative_slope 'a' of type str; expected an int or float"),)),
    OpSpec("elu", ref_elu, (
        S((3, 4)), S((2, 1, 3), alpha=0.5), S(()), S((1,), alpha=2.0), S((5,), alpha=1.5), S((0,)),
        S((0, 1, 3), alpha=0.3), S((3, 4), at="zero"), S((2, 3), alpha=0.5, at="zero"),
    ), FLOATS, grad=(0,), domain=kink_zero, call=by_name("elu"), errors=float_errors("elu") + (
        E((3,), alpha=None, error="DTypeError",
          match="elu: got alpha None of type NoneType; expected an int or float"),)),
    OpSpec("softplus", lambda x, at=None: jnp.logaddexp(x, 0.0), UNARY + (S((3, 4), at="large"),), FLOATS, grad=(0,),
           domain=large, call=by_name("softplus"), errors=float_errors("softplus")),
    OpSpec("log_softmax", ref_log_softmax, (
        S((3, 4), dim=-1), S((2, 3, 4), dim=-2), S((3, 4), dim=0), S((2, 1, 3), dim=1), S((2, 3, 4), dim=0),
        S((5,), dim=0), S((1,), dim=-1), S((0, 1, 3), dim=-1), S((3, 5), dim=1, at="large"),
    ), FLOATS, grad=(0,), domain=near_1000, call=by_name("log_softmax"), errors=dim_errors("log_softmax", (3, 4)) + (
        float_only_error("log_softmax", (3,), dim=0),
        E((), dim=-1, match="log_softmax: got dim=-1 for a 0-d tensor; it has no dims"))),
    OpSpec("logsumexp", ref_logsumexp, (
        S((3, 4), dim=-1, keep_dim=False), S((2, 3, 4), dim=(0, 2), keep_dim=True),
        S((3, 4), dim=None, keep_dim=False), S((2, 1, 3), dim=1, keep_dim=True), S((5,), dim=0, keep_dim=False),
        S((), dim=None, keep_dim=True), S((0, 1, 3), dim=-1, keep_dim=False),
        S((2, 3, 4), dim=(-1, -3), keep_dim=False), S((3, 4), dim=(), keep_dim=True),
        S((3, 5), dim=1, keep_dim=False, at="large"), S((2, 3, 4), dim=None, keep_dim=True, at="large"),
    ), FLOATS, grad=(0,), domain=near_1000, call=by_name("logsumexp"), errors=dim_errors("logsumexp", (3, 4)) + (
        E((3, 4), dim=(0, 0),
          match="logsumexp: got dims (0, 0) for a tensor of rank 2; expected each dim at most once"),
        E((3, 4), dim=0, keep_dim=1, match="logsumexp: got keep_dim=1; expected True or False"),
        E((3, 4), dim=0.5, match="logsumexp: got dim=0.5; expected an int"),
        float_only_error("logsumexp", (3, 4), dim=0))),
)
