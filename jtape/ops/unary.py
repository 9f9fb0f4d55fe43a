"""Unary math, activations, softmax and cast: a table of derivatives.

Every rule here is elementwise (softmax couples the elements along one dim), so each VJP is the
incoming ``g`` times the derivative, evaluated with what the forward pass saved.

Special values follow jax, the oracle: NaN and ±Inf propagate through values and gradients as in
jax (log of a negative is NaN, its slope g/x stays finite; g·∞ and 0/0 give what jax's rule
gives). At kinks and singular points jtape takes jax's convention: relu'(0) = 0 (``jax.nn.relu``),
sqrt'(0) = +inf and rsqrt'(0) = -inf (a zero g there gives NaN, 0·∞, as in jax).
Tested in ``tests/robustness/test_special_values.py``.
"""

from __future__ import annotations

from ..tensor import checks
from .base import Operation


class ExpOp(Operation):
    """out = exp(x).   Derivation: d exp(x)/dx = exp(x) = out, so  grad_x = g * out.   Saves: out."""

    __slots__ = ()

    def backward(self, g, backend):
        return [backend.mul(g, self._output)]


class LogOp(Operation):
    """out = log(x).   Derivation: d log(x)/dx = 1/x, so  grad_x = g / x.   Saves: x."""

    __slots__ = ()

    def backward(self, g, backend):
        (x,) = self._inputs
        return [backend.div(g, x)]


class SqrtOp(Operation):
    """out = √x.   Derivation: d√x/dx = 1/(2√x) = 1/(2·out), so  grad_x = (g / 2) / out.   Saves: out.

    At x = 0 the slope is +inf (g/2 divided by 0), as jax's sqrt'(0); x < 0 gives NaN.
    """

    __slots__ = ()
    fuse = True

    def backward(self, g, backend):
        return [backend.div(backend.mul_scalar(g, 0.5), self._output)]


class RsqrtOp(Operation):
    """out = x^(-1/2).

    Derivation: d x^(-1/2)/dx = -½ x^(-3/2) = -½ · out / x, so  grad_x = -½ · g · out / x.
    Saves: x, out.
    """

    __slots__ = ()
    fuse = True

    def backward(self, g, backend):
        (x,) = self._inputs
        return [backend.mul_scalar(backend.mul(g, backend.div(self._output, x)), -0.5)]


class SinOp(Operation):
    """out = sin(x).   Derivation: d sin(x)/dx = cos(x), so  grad_x = g * cos(x).   Saves: x."""

    __slots__ = ()
    fuse = True

    def backward(self, g, backend):
        (x,) = self._inputs
        return [backend.mul(g, backend.cos(x))]


class CosOp(Operation):
    """out = cos(x).   Derivation: d cos(x)/dx = -sin(x), so  grad_x = -g * sin(x).   Saves: x."""

    __slots__ = ()
    fuse = True

    def backward(self, g, backend):
        (x,) = self._inputs
        return [backend.mul_scalar(backend.mul(g, backend.sin(x)), -1)]


class ReLUOp(Operation):
    """out = max(x, 0).

    Derivation: the slope is 1 where x > 0 and 0 where x < 0; at the kink x = 0 jtape takes 0
    (as jax and torch do). So the gradient is g masked:  grad_x = where(x > 0, g, 0).
    Saves: x.
    """

    __slots__ = ()
    fuse = True

    def backward(self, g, backend):
        (x,) = self._inputs
        zero = backend.full((), 0, x.dtype)
        return [backend.where(backend.greater(x, zero), g, zero)]


class SigmoidOp(Operation):
    """out = σ(x) = 1 / (1 + e^-x).

    Derivation: σ'(x) = e^-x / (1 + e^-x)² = σ(x)·(1 - σ(x)), so
        grad_x = g·out·(1 - out) = g·out - (g·out)·out.
    Saves: out.
    """

    __slots__ = ()
    fuse = True

    def backward(self, g, backend):
        g_out = backend.mul(g, self._output)
        return [backend.sub(g_out, backend.mul(g_out, self._output))]


class TanhOp(Operation):
    """out = tanh(x).   Derivation: tanh' = 1 - tanh², so  grad_x = g - (g·out)·out.   Saves: out."""

    __slots__ = ()
    fuse = True

    def backward(self, g, backend):
        return [backend.sub(g, backend.mul(backend.mul(g, self._output), self._output))]


class SiLUOp(Operation):
    """out = x·σ(x)  (SiLU, or swish).

    Derivation: by the product rule, d/dx [x·σ(x)] = σ(x) + x·σ(x)·(1 - σ(x))
    = σ + out·(1 - σ), so  grad_x = g · (σ + out - out·σ), with σ = σ(x) recomputed.
    Saves: x, out (σ is recomputed rather than stored).
    """

    __slots__ = ()
    fuse = True

    def backward(self, g, backend):
        (x,) = self._inputs
        s = backend.sigmoid(x)
        slope = backend.add(s, backend.sub(self._output, backend.mul(self._output, s)))
        return [backend.mul(g, slope)]


class SoftmaxOp(Operation):
    """out = softmax(x) along ``dim``:  out_i = e^{x_i} / Σ_k e^{x_k}  (sums along dim).

    Derivation: ∂out_i/∂x_j = out_i (δ_ij - out_j). The VJP along the dim is
        grad_x_j = Σ_i g_i out_i (δ_ij - out_j) = out_j (g_j - Σ_i g_i out_i),
    i.e.  grad_x = out * (g - sum_dim(g * out, dim, keep_dim=True)), for any rank and dim.
    Saves: out, dim.
    """

    __slots__ = ("dim",)
    fuse = True

    def __init__(self, out, x, dim=-1):
        super().__init__(out, x)
        self.dim = checks.normalize_dim("softmax", dim, len(x.shape))

    def backward(self, g, backend):
        dot = backend.sum_dim(backend.mul(g, self._output), self.dim, True)
        return [backend.mul(self._output, backend.sub(g, dot))]


class CastOp(Operation):
    """out = x converted to another float dtype.

    Derivation: the value is unchanged (up to rounding), so ∂out/∂x = 1 and the gradient only
    changes dtype back:  grad_x = cast(g, x.dtype).   Recorded only between float dtypes.
    Saves: nothing (x's dtype is on x).
    """

    __slots__ = ()

    def __init__(self, out, x, dtype):
        super().__init__(out, x)

    def backward(self, g, backend):
        (x,) = self._inputs
        return [backend.cast(g, x.dtype)]
