"""Reductions: sum of everything, and sum / mean along one dim."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..tensor.args import Bool, Dims, Tensor
from ..tensor.checks import need_float, need_numeric, normalize_dims
from ..tensor.registry import op
from .base import Operation
from .precision import in_float32, upcast


def reduce_dims(name: str, x, dim: tuple | None, keep_dim: bool, float_only: bool = False):
    """The check of a reduction along ``dim`` (one dim, a tuple of dims, or None for all): those
    dims removed (kept as size 1 with ``keep_dim``); ``dim`` normalised to a sorted tuple."""
    (need_float if float_only else need_numeric)(name, x.dtype)
    dims = normalize_dims(name, dim, len(x.shape))
    shape = tuple(1 if i in dims else n for i, n in enumerate(x.shape) if keep_dim or i not in dims)
    return shape, x.dtype, {"dim": dims}


def kept_shape(shape: tuple, dims: tuple) -> tuple:
    """``shape`` with each reduced dim as size 1: where a reduction's gradient is spread from."""
    return tuple(1 if i in dims else n for i, n in enumerate(shape))


@op(jax=lambda x: jnp.sum(upcast(x)).astype(x.dtype), numpy=in_float32(np.sum))
def sum(x: Tensor):
    """The sum of all elements, a 0-d tensor of x's dtype (float32 accumulation for half dtypes)."""
    return (), need_numeric("sum", x.dtype)


@sum.rule
class SumOp(Operation):
    """out = Σ_i x_i  (a 0-d tensor).

    Derivation: ∂out/∂x_i = 1 for every i, so every element receives the same (scalar) g:
        grad_x = expand(g, x.shape).
    Saves: nothing.
    """

    __slots__ = ()

    def vjp(self, g, out, x):
        return [g.expand(x.shape)]


@op(jax=lambda x, dim, keep_dim: jnp.sum(upcast(x), axis=dim, keepdims=keep_dim).astype(x.dtype),
    numpy=in_float32(lambda x, dim, keep_dim: np.sum(x, axis=dim, keepdims=keep_dim)))
def sum_dim(x: Tensor, dim: Dims, keep_dim: Bool = False):
    """The sum along ``dim`` — one dim, a tuple of dims, or None for all (kept as size 1 with ``keep_dim``)."""
    return reduce_dims("sum_dim", x, dim, keep_dim)


@sum_dim.rule
class SumDimOp(Operation):
    """out = Σ_k x[..., k, ...]  along the dims ``dim`` (kept as size 1 when ``keep_dim``).

    Derivation: each x element feeds exactly one out element with slope 1, so it receives that
    element's g: put the summed dims back as size 1 (a reshape) and copy along them:
        grad_x = expand(reshape(g, kept_shape), x.shape),   kept_shape = x.shape with 1 at each dim.
    Saves: dim, keep_dim.
    """

    __slots__ = ("dim", "keep_dim")
    fuse = True

    def vjp(self, g, out, x):
        return [g.reshape(kept_shape(x.shape, self.dim)).expand(x.shape)]


@op(jax=lambda x, dim, keep_dim: jnp.mean(upcast(x), axis=dim, keepdims=keep_dim).astype(x.dtype),
    numpy=in_float32(lambda x, dim, keep_dim: np.mean(x, axis=dim, keepdims=keep_dim)))
def mean_dim(x: Tensor, dim: Dims, keep_dim: Bool = False):
    """The mean along ``dim`` — one dim, a tuple of dims, or None for all (float dtypes; computed
    in float32 for half dtypes, so any number of elements is exact)."""
    return reduce_dims("mean_dim", x, dim, keep_dim, float_only=True)


@mean_dim.rule
class MeanDimOp(Operation):
    """out = (1/n) Σ_k x[..., k, ...]  along the dims ``dim``, n = the number of elements averaged.

    Derivation: as SumDimOp, with every slope 1/n:
        grad_x = expand(reshape(g, kept_shape), x.shape) / n
    (the division runs in float32 for half dtypes: n may be larger than float16 can hold).
    Saves: dim, keep_dim.
    """

    __slots__ = ("dim", "keep_dim")
    fuse = True

    def vjp(self, g, out, x):
        n = 1
        for d in self.dim:
            n *= x.shape[d]
        return [g.reshape(kept_shape(x.shape, self.dim)).expand(x.shape) / float(n)]
