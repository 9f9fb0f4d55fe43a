"""Elementwise arithmetic with NumPy broadcasting, and the scalar ops.

Every op here: its check (shapes and dtypes in, the result's shape and dtype out), its two
kernels, and its rule with the derivation.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..tensor.args import Scalar, Tensor
from ..tensor.checks import broadcast_shapes, need_float, need_numeric, same_dtype
from ..tensor.registry import op
from .base import Operation, unbroadcast
from .precision import scalar_kernel


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
