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

import math

import jax
import jax.numpy as jnp
import jax.scipy.special
import numpy as np
from jax import lax

from ..tensor.args import Dim, DType, Tensor
from ..tensor.checks import need_float, normalize_dim
from ..tensor.registry import op
from .base import Operation
from .precision import in_float32, upcast


def float_unary(name: str, x):
    """The check of an elementwise float op: same shape and dtype as x, which must be a float."""
    return x.shape, need_float(name, x.dtype)


def _stable_sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x), computed from e = e^-|x| <= 1 so that nothing overflows:
    x >= 0: 1 / (1 + e);   x < 0: e / (1 + e)   (the same value, times e^x / e^x)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@op(jax=jnp.exp, numpy=np.exp)
def exp(x: Tensor):
    """e^x, elementwise."""
    return float_unary("exp", x)


@exp.rule
class ExpOp(Operation):
    """out = exp(x).   Derivation: d exp(x)/dx = exp(x) = out, so  grad_x = g * out.   Saves: out."""

    __slots__ = ()

    def vjp(self, g, out, x):
        return [g * out]


@op(jax=jnp.log, numpy=np.log)
def log(x: Tensor):
    """Natural logarithm, elementwise (NaN below 0, -inf at 0)."""
    return float_unary("log", x)


@log.rule
class LogOp(Operation):
    """out = log(x).   Derivation: d log(x)/dx = 1/x, so  grad_x = g / x.   Saves: x."""

    __slots__ = ()

    def vjp(self, g, out, x):
        return [g / x]


@op(jax=jnp.log1p, numpy=np.log1p)
def log1p(x: Tensor):
    """log(1 + x), elementwise, accurate for small x (NaN below -1, -inf at -1)."""
    return float_unary("log1p", x)


@log1p.rule
class Log1pOp(Operation):
    """out = log(1 + x).   Derivation: d log(1 + x)/dx = 1/(1 + x), so  grad_x = g / (1 + x).   Saves: x."""

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, x):
        return [g / (x + 1.0)]


@op(jax=jnp.expm1, numpy=np.expm1)
def expm1(x: Tensor):
    """e^x - 1, elementwise, accurate for small x."""
    return float_unary("expm1", x)


@expm1.rule
class Expm1Op(Operation):
    """out = e^x - 1.   Derivation: d(e^x - 1)/dx = e^x = out + 1, so  grad_x = g · (out + 1).   Saves: out."""

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, x):
        return [g * (out + 1.0)]


@op(jax=jax.scipy.special.erf, numpy=in_float32(np.vectorize(math.erf, otypes=[np.float64])))
def erf(x: Tensor):
    """The error function erf(x) = (2/√π) ∫_0^x e^(-t²) dt, elementwise."""
    return float_unary("erf", x)


@erf.rule
class ErfOp(Operation):
    """out = erf(x) = (2/√π) ∫_0^x e^(-t²) dt.

    Derivation: by the fundamental theorem of calculus d erf(x)/dx = (2/√π) e^(-x²), so
        grad_x = g · (2/√π) · exp(-x²).
    Saves: x.
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, x):
        return [g * (-(x * x)).exp() * (2.0 / math.sqrt(math.pi))]


@op(jax=jnp.sqrt, numpy=np.sqrt)
def sqrt(x: Tensor):
    """√x, elementwise."""
    return float_unary("sqrt", x)


@sqrt.rule
class SqrtOp(Operation):
    """out = √x.   Derivation: d√x/dx = 1/(2√x) = 1/(2·out), so  grad_x = (g / 2) / out.   Saves: out.

    At x = 0 the slope is +inf (g/2 divided by 0), as jax's sqrt'(0); x < 0 gives NaN.
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, x):
        return [(g * 0.5) / out]


@op(jax=lax.rsqrt, numpy=in_float32(lambda x: 1.0 / np.sqrt(x)))
def rsqrt(x: Tensor):
    """1/√x, elementwise (rounded once: in float32 for half dtypes)."""
    return float_unary("rsqrt", x)


@rsqrt.rule
class RsqrtOp(Operation):
    """out = x^(-1/2).

    Derivation: d x^(-1/2)/dx = -½ x^(-3/2) = -½ · out / x, so  grad_x = -½ · g · out / x.
    Saves: x, out.
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, x):
        return [(g * (out / x)) * -0.5]


@op(jax=jnp.sin, numpy=np.sin)
def sin(x: Tensor):
    """sin x, elementwise (radians)."""
    return float_unary("sin", x)


@sin.rule
class SinOp(Operation):
    """out = sin(x).   Derivation: d sin(x)/dx = cos(x), so  grad_x = g * cos(x).   Saves: x."""

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, x):
        return [g * x.cos()]


@op(jax=jnp.cos, numpy=np.cos)
def cos(x: Tensor):
    """cos x, elementwise (radians)."""
    return float_unary("cos", x)


@cos.rule
class CosOp(Operation):
    """out = cos(x).   Derivation: d cos(x)/dx = -sin(x), so  grad_x = -(g * sin(x)).   Saves: x."""

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, x):
        return [-(g * x.sin())]


@op(jax=jnp.tan, numpy=np.tan)
def tan(x: Tensor):
    """tan x, elementwise (radians)."""
    return float_unary("tan", x)


@tan.rule
class TanOp(Operation):
    """out = tan(x).   Derivation: tan' = 1/cos² = 1 + tan², so  grad_x = g + (g·out)·out.   Saves: out."""

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, x):
        return [g + (g * out) * out]


@op(jax=jnp.arctan, numpy=np.arctan)
def atan(x: Tensor):
    """arctan x, elementwise (radians, in (-π/2, π/2))."""
    return float_unary("atan", x)


@atan.rule
class AtanOp(Operation):
    """out = arctan(x).   Derivation: d arctan(x)/dx = 1/(1 + x²), so  grad_x = g / (1 + x²).   Saves: x."""

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, x):
        return [g / (x * x + 1.0)]


@op(jax=lambda x: jnp.maximum(x, jnp.zeros((), x.dtype)), numpy=lambda x: np.maximum(x, np.zeros((), x.dtype)))
def relu(x: Tensor):
    """max(x, 0), elementwise (NaN stays NaN, as jax.nn.relu)."""
    return float_unary("relu", x)


@relu.rule
class ReLUOp(Operation):
    """out = max(x, 0).

    Derivation: the slope is 1 where x > 0 and 0 where x < 0; at the kink x = 0 jtape takes 0
    (as jax and torch do). So the gradient is g masked:  grad_x = where(x > 0, g, 0).
    Saves: x.
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, x):
        return [g.where(x > 0, 0)]


@op(jax=jax.nn.sigmoid, numpy=in_float32(_stable_sigmoid))
def sigmoid(x: Tensor):
    """σ(x) = 1 / (1 + e^-x), elementwise, without overflow for large |x|."""
    return float_unary("sigmoid", x)


@sigmoid.rule
class SigmoidOp(Operation):
    """out = σ(x) = 1 / (1 + e^-x).

    Derivation: σ'(x) = e^-x / (1 + e^-x)² = σ(x)·(1 - σ(x)), so
        grad_x = g·out·(1 - out) = g·out - (g·out)·out.
    Saves: out.
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, x):
        g_out = g * out
        return [g_out - g_out * out]


@op(jax=jnp.tanh, numpy=np.tanh)
def tanh(x: Tensor):
    """tanh x, elementwise."""
    return float_unary("tanh", x)


@tanh.rule
class TanhOp(Operation):
    """out = tanh(x).   Derivation: tanh' = 1 - tanh², so  grad_x = g - (g·out)·out.   Saves: out."""

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, x):
        return [g - (g * out) * out]


@op(jax=jax.nn.silu, numpy=in_float32(lambda x: x * _stable_sigmoid(x)))
def silu(x: Tensor):
    """x·σ(x) (SiLU, or swish), elementwise."""
    return float_unary("silu", x)


@silu.rule
class SiLUOp(Operation):
    """out = x·σ(x)  (SiLU, or swish).

    Derivation: by the product rule, d/dx [x·σ(x)] = σ(x) + x·σ(x)·(1 - σ(x))
    = σ + out·(1 - σ), so  grad_x = g · (σ + out - out·σ), with σ = σ(x) recomputed.
    Saves: x, out (σ is recomputed rather than stored).
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, x):
        s = x.sigmoid()
        return [g * (s + (out - out * s))]


def _softmax_np(x: np.ndarray, dim: int) -> np.ndarray:
    """exp(x_i) / sum_j exp(x_j) along ``dim``. Subtracting the row max first changes nothing
    mathematically (e^-max cancels) but keeps every exponent <= 0, so exp cannot overflow;
    ``initial=-inf`` lets an empty ``dim`` through."""
    shifted = x - np.max(x, axis=dim, keepdims=True, initial=-np.inf)
    e = np.exp(shifted)
    return e / np.sum(e, axis=dim, keepdims=True)


@op(jax=lambda x, dim: jax.nn.softmax(upcast(x), axis=dim).astype(x.dtype), numpy=in_float32(_softmax_np))
def softmax(x: Tensor, dim: Dim = -1):
    """e^{x_i} / Σ_k e^{x_k} along ``dim`` (float32 accumulation for half dtypes)."""
    need_float("softmax", x.dtype)
    return x.shape, x.dtype, {"dim": normalize_dim("softmax", dim, len(x.shape))}


@softmax.rule
class SoftmaxOp(Operation):
    """out = softmax(x) along ``dim``:  out_i = e^{x_i} / Σ_k e^{x_k}  (sums along dim).

    Derivation: ∂out_i/∂x_j = out_i (δ_ij - out_j). The VJP along the dim is
        grad_x_j = Σ_i g_i out_i (δ_ij - out_j) = out_j (g_j - Σ_i g_i out_i),
    i.e.  grad_x = out * (g - sum_dim(g * out, dim, keep_dim=True)), for any rank and dim.
    Saves: out, dim.
    """

    __slots__ = ("dim",)
    fuse = True

    def vjp(self, g, out, x):
        return [out * (g - (g * out).sum_dim(self.dim, True))]


@op(jax=lambda x, dtype: x.astype(dtype.numpy), numpy=lambda x, dtype: x.astype(dtype.numpy))
def cast(x: Tensor, dtype: DType):
    """x converted to ``dtype`` (a DataType, its name, or a NumPy dtype). Recorded (differentiable)
    only from a float dtype to a float dtype."""
    return x.shape, dtype


@cast.rule
class CastOp(Operation):
    """out = x converted to another float dtype.

    Derivation: the value is unchanged (up to rounding), so ∂out/∂x = 1 and the gradient only
    changes dtype back:  grad_x = cast(g, x.dtype).   Recorded only between float dtypes.
    Saves: dtype.
    """

    __slots__ = ("dtype",)

    def vjp(self, g, out, x):
        return [g.cast(x.dtype)]
