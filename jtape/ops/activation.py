"""More activations — gelu, leaky_relu, elu, softplus — and the log-space reductions log_softmax
and logsumexp, each computed without overflow.

Stability, forward and backward: ``softplus`` is max(x, 0) + log1p(exp(-abs(x))), its slope σ(x);
``logsumexp`` and ``log_softmax`` subtract the max before exponentiating, and their rules use
exp(x - out), which is at most 1. Half dtypes compute in float32 and round once.
Conventions at kinks are jax's: leaky_relu'(0) = 1 (x >= 0 counts as the positive side) and
elu'(0) = alpha (x > 0 does).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ..tensor.args import Bool, Dim, Dims, Scalar, Static, Tensor
from ..tensor.checks import need_float, normalize_dim
from ..tensor.errors import ShapeError
from ..tensor.registry import op
from .base import Operation
from .precision import in_float32, upcast
from .reduce import kept_shape, reduce_dims
from .unary import float_unary

SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
TANH_K, TANH_C = math.sqrt(2.0 / math.pi), 0.044715     # gelu's tanh form: tanh(k·(x + c·x³))
_erf_np = np.vectorize(math.erf, otypes=[np.float64])


def _gelu_np(x: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(TANH_K * (x + TANH_C * x ** 3)))
    return 0.5 * x * (1.0 + _erf_np(x * SQRT_HALF))


@op(jax=lambda x, approximate: jax.nn.gelu(upcast(x), approximate=approximate == "tanh").astype(x.dtype),
    numpy=in_float32(_gelu_np))
def gelu(x: Tensor, approximate: Static = "none"):
    """x·Φ(x), Φ the standard normal CDF (``approximate="none"``), or its tanh form
    ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (``approximate="tanh"``), elementwise."""
    if approximate not in ("none", "tanh"):
        raise ShapeError(f"gelu: got approximate={approximate!r}; expected 'none' or 'tanh'")
    return float_unary("gelu", x)


@gelu.rule
class GELUOp(Operation):
    """out = x·Φ(x), with Φ(x) = ½(1 + erf(x/√2)) and φ(x) = Φ'(x) = e^(-x²/2)/√(2π).

    Derivation: by the product rule,  grad_x = g · (Φ(x) + x·φ(x)).
    The tanh form out = ½x(1 + t), t = tanh(u), u = k(x + c·x³), k = √(2/π), c = 0.044715, has
        grad_x = g · (½(1 + t) + ½x·(1 - t²)·k(1 + 3c·x²)).
    Saves: x, approximate.
    """

    __slots__ = ("approximate",)
    fuse = True

    def vjp(self, g, out, x):
        if self.approximate == "tanh":
            t = ((x + x * x * x * TANH_C) * TANH_K).tanh()
            slope = (t + 1.0) * 0.5 + x * (1.0 - t * t) * (x * x * (3.0 * TANH_C) + 1.0) * (0.5 * TANH_K)
            return [g * slope]
        cdf = (x * SQRT_HALF).erf() * 0.5 + 0.5
        pdf = (x * x * -0.5).exp() * INV_SQRT_2PI
        return [g * (cdf + x * pdf)]


def _leaky_relu_jax(x, negative_slope):
    y = upcast(x)
    return jnp.where(y >= 0, y, y * negative_slope).astype(x.dtype)


@op(jax=_leaky_relu_jax, numpy=in_float32(lambda x, negative_slope: np.where(x >= 0, x, x * negative_slope)))
def leaky_relu(x: Tensor, negative_slope: Scalar = 0.01):
    """x where x >= 0, ``negative_slope``·x elsewhere, elementwise."""
    return float_unary("leaky_relu", x)


@leaky_relu.rule
class LeakyReLUOp(Operation):
    """out = x for x >= 0, s·x for x < 0  (s = negative_slope).

    Derivation: the slope is 1 on the right and s on the left; at the kink x = 0 jtape takes 1,
    as jax.nn.leaky_relu does:   grad_x = where(x >= 0, g, s·g).
    Saves: x, s.
    """

    __slots__ = ("negative_slope",)
    fuse = True

    def vjp(self, g, out, x):
        return [g.where(x >= 0, g * self.negative_slope)]


def _elu_np(x: np.ndarray, alpha: float) -> np.ndarray:
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


@op(jax=lambda x, alpha: jax.nn.elu(upcast(x), alpha).astype(x.dtype), numpy=in_float32(_elu_np))
def elu(x: Tensor, alpha: Scalar = 1.0):
    """x where x > 0, ``alpha``·(e^x - 1) elsewhere, elementwise."""
    return float_unary("elu", x)


@elu.rule
class ELUOp(Operation):
    """out = x for x > 0, α(e^x - 1) for x <= 0.

    Derivation: the slope is 1 on the right and α·e^x on the left (α at the kink x = 0, as jax):
        grad_x = where(x > 0, g, g·α·e^{x'}),   x' = where(x <= 0, x, 0).
    e^x is taken of x' (never positive), so a large x cannot overflow in the branch not taken —
    which would turn into NaN in a second-order gradient (zero times inf).
    Saves: x, α.
    """

    __slots__ = ("alpha",)
    fuse = True

    def vjp(self, g, out, x):
        left = x.where(x <= 0, 0.0)
        return [g.where(x > 0, g * left.exp() * self.alpha)]


def _softplus_np(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


@op(jax=lambda x: jax.nn.softplus(upcast(x)).astype(x.dtype), numpy=in_float32(_softplus_np))
def softplus(x: Tensor):
    """log(1 + e^x), elementwise, as max(x, 0) + log1p(exp(-abs(x))): no overflow for large abs(x)."""
    return float_unary("softplus", x)


@softplus.rule
class SoftplusOp(Operation):
    """out = log(1 + e^x).

    Derivation: d/dx log(1 + e^x) = e^x / (1 + e^x) = σ(x), the logistic sigmoid, so
        grad_x = g · σ(x)   (σ computed without overflow).
    Saves: x.
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, x):
        return [g * x.sigmoid()]


def _log_softmax_np(x: np.ndarray, dim: int) -> np.ndarray:
    """x - max - log Σ e^(x - max) along dim (every exponent <= 0)."""
    shifted = x - np.max(x, axis=dim, keepdims=True, initial=-np.inf)
    return shifted - np.log(np.sum(np.exp(shifted), axis=dim, keepdims=True))


@op(jax=lambda x, dim: jax.nn.log_softmax(upcast(x), axis=dim).astype(x.dtype), numpy=in_float32(_log_softmax_np))
def log_softmax(x: Tensor, dim: Dim = -1):
    """log softmax(x) = x - logsumexp(x) along ``dim``, computed stably (float32 for half dtypes)."""
    need_float("log_softmax", x.dtype)
    return x.shape, x.dtype, {"dim": normalize_dim("log_softmax", dim, len(x.shape))}


@log_softmax.rule
class LogSoftmaxOp(Operation):
    """out_i = x_i - log Σ_k e^{x_k}  along ``dim``.

    Derivation: ∂out_i/∂x_j = δ_ij - softmax_j, and softmax = e^out. The VJP along the dim is
        grad_x_j = g_j - e^{out_j} Σ_i g_i,
    i.e.  grad_x = g - exp(out) * sum_dim(g, dim, keep_dim=True).
    Saves: out, dim.
    """

    __slots__ = ("dim",)
    fuse = True

    def vjp(self, g, out, x):
        return [g - out.exp() * g.sum_dim(self.dim, True)]


def _logsumexp_np(x: np.ndarray, dim: tuple, keep_dim: bool) -> np.ndarray:
    """m + log Σ e^(x - m), m the max along dim (0 where it is not finite, as jax)."""
    m = np.max(x, axis=dim, keepdims=True, initial=-np.inf)
    m = np.where(np.isfinite(m), m, 0.0)
    out = np.log(np.sum(np.exp(x - m), axis=dim, keepdims=True)) + m
    return out if keep_dim else np.squeeze(out, axis=dim)


@op(jax=lambda x, dim, keep_dim: jax.nn.logsumexp(upcast(x), axis=dim, keepdims=keep_dim).astype(x.dtype),
    numpy=in_float32(_logsumexp_np))
def logsumexp(x: Tensor, dim: Dims = None, keep_dim: Bool = False):
    """log Σ e^x along ``dim`` — one dim, a tuple of dims, or None for all (kept as size 1 with
    ``keep_dim``) — shifted by the max so no exponent overflows (float32 for half dtypes). An
    empty reduction gives -inf."""
    return reduce_dims("logsumexp", x, dim, keep_dim, float_only=True)


@logsumexp.rule
class LogSumExpOp(Operation):
    """out = log Σ_k e^{x_k}  along the dims ``dim``.

    Derivation: ∂out/∂x_k = e^{x_k} / Σ_j e^{x_j} = e^{x_k - out}, the softmax of x over those dims.
    Each x element receives the g of the out element it fed, times that weight; with g' and out'
    the reduced dims put back as size 1 (a reshape) and w = exp(x - out'),
        grad_x = g' · w / Σ w   (sum over dim, kept).
    Σ w = 1 in exact arithmetic; dividing by it cancels the rounding of out (half an ulp of a large
    value scales every weight alike), so the weights are as accurate as a softmax. w <= 1: the rule
    is as stable as the forward. Where an input is +inf or the whole slice -inf, w holds NaN (as
    jax's gradient does) and Σ w is NaN: it is not divided by, so the other weights (0) stay 0.
    Saves: x, out, dim, keep_dim.
    """

    __slots__ = ("dim", "keep_dim")
    fuse = True

    def vjp(self, g, out, x):
        kept = kept_shape(x.shape, self.dim)
        w = (x - out.reshape(kept)).exp()
        total = w.sum_dim(self.dim, True)
        return [g.reshape(kept) * (w / total.where(total == total, 1.0))]      # total != total: NaN
