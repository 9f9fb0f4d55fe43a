"""Elementwise arithmetic with NumPy broadcasting, powers, and the scalar ops.

Every op here: its check (shapes and dtypes in, the result's shape and dtype out), its two
kernels, and its rule with the derivation.

Powers follow jax, the oracle, where the maths has no single answer (a zero or negative base):
``pow(a, b)`` takes jax's rule for ``jnp.power`` exactly (see ``PowOp``), and ``pow_scalar(x, p)``
takes jax's rule for a tensor raised to a Python number (see ``PowScalarOp``).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..tensor.args import Scalar, Tensor
from ..tensor.checks import broadcast_shapes, need_float, need_numeric, same_dtype
from ..tensor.registry import op
from .base import Operation, unbroadcast
from .precision import in_float32, scalar_kernel, upcast


def arithmetic(name: str, a, b, float_only: bool = False):
    """Both inputs of one dtype (numeric; float for ``float_only``); the shapes broadcast."""
    dtype = same_dtype(name, a.dtype, b.dtype)
    (need_float if float_only else need_numeric)(name, dtype)
    return broadcast_shapes(name, a.shape, b.shape), dtype


def scalar_check(name: str, x, float_only: bool = False):
    """The result keeps x's shape and dtype (the scalar is converted to it: see ``args.scalar_for``)."""
    (need_float if float_only else need_numeric)(name, x.dtype)
    return x.shape, x.dtype


# -- tensor ∘ tensor ---------------------------------------------------------------------------
@op(jax=jnp.add, numpy=np.add)
def add(a: Tensor, b: Tensor):
    """``a + b``, elementwise, with NumPy broadcasting (both of one numeric dtype)."""
    return arithmetic("add", a, b)


@add.rule
class AddOp(Operation):
    """Sum  out = a + b  (NumPy broadcasting).

    Derivation: ∂out_i/∂a_i = ∂out_i/∂b_i = 1, so the VJP passes g through unchanged. Where a or
    b was broadcast (copied), the adjoint of the copy sums g back to the input's shape.
        grad_a = unbroadcast(g, a.shape)      grad_b = unbroadcast(g, b.shape)
    Saves: nothing (the inputs' shapes are on the inputs). Not fused: without broadcasting the rule
    hands g on as it is, and a compiled kernel would only copy it.
    """

    __slots__ = ()

    def vjp(self, g, out, a, b):
        return [unbroadcast(g, a.shape), unbroadcast(g, b.shape)]


@op(jax=jnp.subtract, numpy=np.subtract)
def sub(a: Tensor, b: Tensor):
    """``a - b``, elementwise, with NumPy broadcasting."""
    return arithmetic("sub", a, b)


@sub.rule
class SubOp(Operation):
    """Difference  out = a - b  (NumPy broadcasting).

    Derivation: ∂out_i/∂a_i = 1 and ∂out_i/∂b_i = -1.
        grad_a = unbroadcast(g, a.shape)      grad_b = unbroadcast(-g, b.shape)
    Saves: nothing.
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, a, b):
        return [unbroadcast(g, a.shape), unbroadcast(-g, b.shape)]


@op(jax=jnp.multiply, numpy=np.multiply)
def mul(a: Tensor, b: Tensor):
    """``a * b``, elementwise, with NumPy broadcasting."""
    return arithmetic("mul", a, b)


@mul.rule
class MulOp(Operation):
    """Elementwise product  out = a * b  (NumPy broadcasting).

    Derivation: out_i = a_i * b_i, so ∂out_i/∂a_i = b_i and ∂out_i/∂b_i = a_i; the Jacobians
    are diagonal and the VJP is elementwise. Broadcasting copied a or b; the adjoint of a
    copy is a sum, so each gradient is summed back to its input's shape.
        grad_a = unbroadcast(g * b, a.shape)      grad_b = unbroadcast(g * a, b.shape)
    Saves: a, b (as the inputs).
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, a, b):
        return [unbroadcast(g * b, a.shape), unbroadcast(g * a, b.shape)]


@op(jax=jnp.divide, numpy=np.true_divide)
def div(a: Tensor, b: Tensor):
    """``a / b``, elementwise, with NumPy broadcasting (float dtypes)."""
    return arithmetic("div", a, b, float_only=True)


@div.rule
class DivOp(Operation):
    """Elementwise quotient  out = a / b  (NumPy broadcasting).

    Derivation: ∂out_i/∂a_i = 1/b_i and ∂out_i/∂b_i = -a_i/b_i² = -out_i/b_i.
        grad_a = unbroadcast(g / b, a.shape)      grad_b = unbroadcast(-(g / b) * out, b.shape)
    Saves: b (an input) and out.
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, a, b):
        return [unbroadcast(g / b, a.shape), unbroadcast(-(g / b) * out, b.shape)]


# -- tensor ∘ Python scalar ---------------------------------------------------------------------
_add_s, _sub_s = scalar_kernel(jnp.add, np.add), scalar_kernel(jnp.subtract, np.subtract)
_mul_s, _div_s = scalar_kernel(jnp.multiply, np.multiply), scalar_kernel(jnp.divide, np.true_divide)


@op(jax=_add_s[0], numpy=_add_s[1])
def add_scalar(x: Tensor, scalar: Scalar):
    """``x + scalar`` for a Python number; the result keeps x's dtype."""
    return scalar_check("add_scalar", x)


@add_scalar.rule
class AddScalarOp(Operation):
    """out = x + s  for a Python scalar s.   Derivation: ∂out/∂x = 1, so  grad_x = g.   Saves: s."""

    __slots__ = ("scalar",)

    def vjp(self, g, out, x):
        return [g]


@op(jax=_sub_s[0], numpy=_sub_s[1])
def sub_scalar(x: Tensor, scalar: Scalar):
    """``x - scalar`` for a Python number; the result keeps x's dtype."""
    return scalar_check("sub_scalar", x)


@sub_scalar.rule
class SubScalarOp(Operation):
    """out = x - s  for a Python scalar s.   Derivation: ∂out/∂x = 1, so  grad_x = g.   Saves: s."""

    __slots__ = ("scalar",)

    def vjp(self, g, out, x):
        return [g]


@op(jax=_mul_s[0], numpy=_mul_s[1])
def mul_scalar(x: Tensor, scalar: Scalar):
    """``x * scalar`` for a Python number; the result keeps x's dtype."""
    return scalar_check("mul_scalar", x)


@mul_scalar.rule
class MulScalarOp(Operation):
    """out = x * s  for a Python scalar s.   Derivation: ∂out/∂x = s, so  grad_x = g * s.   Saves: s."""

    __slots__ = ("scalar",)

    def vjp(self, g, out, x):
        return [g * self.scalar]


@op(jax=_div_s[0], numpy=_div_s[1])
def div_scalar(x: Tensor, scalar: Scalar):
    """``x / scalar`` for a Python number (float dtypes); the result keeps x's dtype."""
    return scalar_check("div_scalar", x, float_only=True)


@div_scalar.rule
class DivScalarOp(Operation):
    """out = x / s  for a Python scalar s.   Derivation: ∂out/∂x = 1/s, so  grad_x = g / s.   Saves: s."""

    __slots__ = ("scalar",)

    def vjp(self, g, out, x):
        return [g / self.scalar]


# -- negation and powers -----------------------------------------------------------------------
@op(jax=jnp.negative, numpy=np.negative)
def neg(x: Tensor):
    """``-x``, elementwise (numeric dtypes; uint8 wraps modulo 256, as NumPy and JAX)."""
    return x.shape, need_numeric("neg", x.dtype)


@neg.rule
class NegOp(Operation):
    """out = -x.   Derivation: ∂out/∂x = -1, so  grad_x = -g.   Saves: nothing."""

    __slots__ = ()

    def vjp(self, g, out, x):
        return [-g]


@op(jax=jnp.square, numpy=np.square)
def square(x: Tensor):
    """``x * x``, elementwise (numeric dtypes)."""
    return x.shape, need_numeric("square", x.dtype)


@square.rule
class SquareOp(Operation):
    """out = x².   Derivation: d x²/dx = 2x, so  grad_x = 2 · g · x.   Saves: x."""

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, x):
        return [(g * x) * 2.0]


@op(jax=lambda a, b: jnp.power(upcast(a), upcast(b)).astype(a.dtype), numpy=in_float32(np.power))
def pow(a: Tensor, b: Tensor):
    """``a ** b``, elementwise, with NumPy broadcasting (float dtypes; computed in float32 for half dtypes).

    As ``jnp.power``: 0 ** 0 = 1, 0 ** b = 0 for b > 0 and inf for b < 0; a negative base gives a
    finite value for an integral exponent and NaN otherwise. The gradients at these points are
    jax's (see ``PowOp``)."""
    return arithmetic("pow", a, b, float_only=True)


@pow.rule
class PowOp(Operation):
    """Elementwise power  out = a^b  (NumPy broadcasting).

    Derivation: ∂(a^b)/∂a = b · a^(b - 1) and ∂(a^b)/∂b = a^b · log a, so
        grad_a = unbroadcast(g · b · a^(b - 1), a.shape)
        grad_b = unbroadcast(g · out · log(a'), b.shape),   a' = where(a = 0, 1, a)
    The conventions are jax's rule for jnp.power, term for term. At a = 0, log a is taken as
    log 1 = 0, so grad_b = 0 there (0^b is flat in b for b > 0), and grad_a = b · 0^(b - 1) is 0
    for b > 1, g for b = 1, inf for 0 < b < 1 and NaN for b = 0 (zero times inf), as jax gives. At a < 0,
    log a is NaN, so grad_b is NaN; grad_a = b · a^(b - 1) is finite for an integral b (and NaN for
    any other b, where out is NaN too).
    Saves: a, b (the inputs) and out.
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, a, b):
        grad_a = g * b * a.pow(b - 1.0)
        grad_b = g * out * a.where(a != 0, 1.0).log()
        return [unbroadcast(grad_a, a.shape), unbroadcast(grad_b, b.shape)]


_pow_s = scalar_kernel(jnp.power, np.power)


@op(jax=lambda x, p: _pow_s[0](x, p), numpy=lambda x, p: _pow_s[1](x, p))
def pow_scalar(x: Tensor, p: Scalar):
    """``x ** p`` for a Python number ``p`` (float dtypes; computed in float32 for half dtypes).
    0 ** 0 = 1; 0 ** p is inf for p < 0; a negative x gives NaN unless p is integral."""
    return scalar_check("pow_scalar", x, float_only=True)


@pow_scalar.rule
class PowScalarOp(Operation):
    """out = x^p  for a Python number p.

    Derivation: d(x^p)/dx = p · x^(p - 1), so  grad_x = g · p · x^(p - 1);  for p = 0 the result
    is the constant 1 and  grad_x = 0  everywhere, x = 0 included.
    The conventions are jax's for a tensor raised to a Python number: at x = 0 the gradient is 0
    for p > 1 (and for p = 0), g for p = 1, inf for 0 < p < 1 and -inf for p < 0; for x < 0 it is
    finite for an integral p and NaN otherwise. (jax raises to an integral p with lax.integer_pow,
    whose rule gives 0 for p = 0; jtape takes that for p = 0.0 too, where jax's general pow rule
    gives 0 · 0^(-1) = NaN at x = 0.)
    Saves: x, p.
    """

    __slots__ = ("p",)
    fuse = True
    concrete = ("p",)          # the rule branches on p == 0

    def vjp(self, g, out, x):
        if self.p == 0:
            return [x.new_zeros(x.shape)]
        return [(g * x.pow(self.p - 1)) * self.p]
