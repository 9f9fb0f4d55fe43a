"""Piecewise ops — abs, sign, maximum, minimum, clamp — and the conventions at their kinks.

Each of these is linear (or constant) on either side of a kink, so each rule routes ``g`` to
where the result came from. At the kink itself the derivative does not exist and jtape takes
jax's convention (the oracle), so the two agree on every input. The slope of ``abs`` at x = 0
is +1, at -0.0 too (jax's rule is select(x >= 0, g, -g)). On a tie a = b of ``maximum`` or
``minimum`` each input receives half of g (jax's balanced rule). ``clamp`` is
minimum(maximum(x, min), max), as ``jnp.clip``, so an x exactly on a bound receives half of g,
and a quarter when min = max = x. A NaN never wins: where the result is NaN, no input receives a
gradient.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..tensor.args import OptFloat, Tensor
from ..tensor.checks import need_numeric
from ..tensor.errors import DTypeError, ShapeError
from ..tensor.registry import op
from .base import Operation, unbroadcast
from .elementwise import arithmetic


def share(g, wins, tie):
    """``g`` where ``wins``, half of ``g`` where ``tie``, 0 elsewhere: the gradient of a choice
    between two values, with a tie split equally (``wins`` and ``tie`` are bool tensors)."""
    return g.where(wins, 0.0) + (g * 0.5).where(tie, 0.0)


@op(jax=jnp.abs, numpy=np.abs)
def abs(x: Tensor):
    """The absolute value ``abs(x)``, elementwise (numeric dtypes)."""
    return x.shape, need_numeric("abs", x.dtype)


@abs.rule
class AbsOp(Operation):
    """out = abs(x).

    Derivation: the slope is +1 where x > 0 and -1 where x < 0; at the kink x = 0 jtape takes +1,
    as jax does (its rule is select(x >= 0, g, -g), so -0.0 gets +1 too):
        grad_x = where(x >= 0, g, -g).
    Saves: x.
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, x):
        return [g.where(x >= 0, -g)]


@op(jax=jnp.sign, numpy=np.sign)
def sign(x: Tensor):
    """-1, 0 or +1 by the sign of x, elementwise (NaN stays NaN). Piecewise constant: no gradient
    flows through it (its derivative is 0 wherever it exists)."""
    return x.shape, need_numeric("sign", x.dtype)


@op(jax=jnp.maximum, numpy=np.maximum)
def maximum(a: Tensor, b: Tensor):
    """The larger of ``a`` and ``b``, elementwise, with NumPy broadcasting (NaN if either is NaN)."""
    return arithmetic("maximum", a, b)


@maximum.rule
class MaximumOp(Operation):
    """out = max(a, b), elementwise (NumPy broadcasting).

    Derivation: out is a where a > b (slope 1 for a, 0 for b) and b where b > a. On a tie a = b
    the derivative does not exist; jtape splits g equally, as jax does:
        grad_a = unbroadcast(g·[a > b] + ½g·[a = b], a.shape)
        grad_b = unbroadcast(g·[b > a] + ½g·[a = b], b.shape)
    Saves: a, b.
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, a, b):
        tie = a == b
        return [unbroadcast(share(g, a > b, tie), a.shape), unbroadcast(share(g, b > a, tie), b.shape)]


@op(jax=jnp.minimum, numpy=np.minimum)
def minimum(a: Tensor, b: Tensor):
    """The smaller of ``a`` and ``b``, elementwise, with NumPy broadcasting (NaN if either is NaN)."""
    return arithmetic("minimum", a, b)


@minimum.rule
class MinimumOp(Operation):
    """out = min(a, b), elementwise (NumPy broadcasting).

    Derivation: as MaximumOp with the comparisons turned round; a tie splits g equally:
        grad_a = unbroadcast(g·[a < b] + ½g·[a = b], a.shape)
        grad_b = unbroadcast(g·[b < a] + ½g·[a = b], b.shape)
    Saves: a, b.
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, a, b):
        tie = a == b
        return [unbroadcast(share(g, a < b, tie), a.shape), unbroadcast(share(g, b < a, tie), b.shape)]


def _bound(name: str, which: str, value: float | None, dtype) -> float | None:
    """A bound converted for x's dtype: a float for float dtypes; for integer dtypes an integral
    value inside the dtype's range (a clamp to -1 of a uint8 tensor would otherwise wrap)."""
    if value is None or dtype.is_float:
        return value
    low, high = dtype.int_range
    if value != int(value):
        raise DTypeError(f"{name}: got {which}={value!r} for a tensor of dtype {dtype.value}; expected an integral "
                         f"value (cast the tensor to float first)")
    if not low <= value <= high:
        raise DTypeError(f"{name}: got {which}={value!r} for a tensor of dtype {dtype.value}; expected a value in "
                         f"[{low}, {high}]")
    return int(value)


def _clamp_np(x: np.ndarray, min: float | None, max: float | None) -> np.ndarray:
    """minimum(maximum(x, min), max), each bound in x's dtype (so nothing is promoted)."""
    if min is not None:
        x = np.maximum(x, np.asarray(min, x.dtype))
    if max is not None:
        x = np.minimum(x, np.asarray(max, x.dtype))
    return x


@op(jax=jnp.clip, numpy=_clamp_np)
def clamp(x: Tensor, min: OptFloat = None, max: OptFloat = None):
    """x limited to ``[min, max]``, elementwise: ``minimum(maximum(x, min), max)`` as ``jnp.clip``
    (so min > max gives max everywhere). Either bound may be None; not both. Numeric dtypes; for an
    integer tensor the bounds must be integral and inside its dtype's range."""
    if min is None and max is None:
        raise ShapeError("clamp: got min=None and max=None; expected at least one bound")
    dtype = need_numeric("clamp", x.dtype)
    return x.shape, dtype, {"min": _bound("clamp", "min", min, dtype), "max": _bound("clamp", "max", max, dtype)}


@clamp.rule
class ClampOp(Operation):
    """out = min(max(x, lo), hi)  (a missing bound is left out).

    Derivation: the slope is 1 strictly inside the bounds and 0 outside. It is a maximum followed
    by a minimum, so by the chain rule and MaximumOp's convention for ties (the bound is the
    other, constant, input):  with t = max(x, lo),
        grad_x = g · ([x > lo] + ½[x = lo]) · ([t < hi] + ½[t = hi])
    — half of g exactly on a bound, a quarter when lo = hi = x, as jax's jnp.clip.
    Saves: x, min, max.
    """

    __slots__ = ("max", "min")
    fuse = True

    def vjp(self, g, out, x):
        t = x
        if self.min is not None:
            g = share(g, x > self.min, x == self.min)
            t = x.clamp(self.min, None)
        if self.max is not None:
            g = share(g, t < self.max, t == self.max)
        return [g]
