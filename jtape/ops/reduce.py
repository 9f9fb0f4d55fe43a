"""Reductions: sums and means, extrema (amax, amin, argmin), products and running sums."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from ..tensor.args import Bool, Dim, Dims, Scalar, Tensor
from ..tensor.checks import need_float, need_numeric, normalize_dim, normalize_dims
from ..tensor.dtype import DataType
from ..tensor.errors import ShapeError
from ..tensor.registry import composite, op
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


# -- extrema: amax, amin (ties share the gradient), argmin ---------------------------------------
def extremum_dims(name: str, x, dim: tuple | None, keep_dim: bool):
    """The check of amax/amin: a reduction whose reduced dims must not be empty (the largest of
    nothing is undefined)."""
    shape, dtype, final = reduce_dims(name, x, dim, keep_dim)
    for d in final["dim"]:
        if x.shape[d] == 0:
            raise ShapeError(f"{name}: got shape {tuple(x.shape)} with dim {d} of size 0; expected non-empty dims "
                             f"to reduce")
    return shape, dtype, final


@op(jax=lambda x, dim, keep_dim: jnp.max(x, axis=dim, keepdims=keep_dim),
    numpy=lambda x, dim, keep_dim: np.max(x, axis=dim, keepdims=keep_dim))
def amax(x: Tensor, dim: Dims = None, keep_dim: Bool = False):
    """The largest element along ``dim`` — one dim, a tuple of dims, or None for all (kept as size
    1 with ``keep_dim``). Tied maxima share the gradient equally."""
    return extremum_dims("amax", x, dim, keep_dim)


class _ExtremumOp(Operation):
    """The rule of amax and amin: g goes to the elements that attain the extremum, split equally."""

    __slots__ = ("dim", "keep_dim")
    fuse = True

    def vjp(self, g, out, x):
        kept = kept_shape(x.shape, self.dim)
        hit = (x == out.reshape(kept)).cast(x.dtype)             # 1 where x attains out, else 0
        share = hit / hit.sum_dim(self.dim, True)                 # 1/count at the ties
        return [share * g.reshape(kept)]


@amax.rule
class AmaxOp(_ExtremumOp):
    """out = max_k x[..., k, ...]  along the dims ``dim``.

    Derivation: where one element x_m is the largest, out = x_m near x, so ∂out/∂x_m = 1 and every
    other slope is 0. Where c elements tie, the maximum is not differentiable; jtape takes (as jax
    and torch.amax do) the average of the one-sided choices, slope 1/c for each tied element:
        grad_x = g · h / Σ_dim h
    where h is 1 where x equals out and 0 elsewhere (out and g put back at size 1 along dim).
    Saves: dim, keep_dim (and x, out).
    """

    __slots__ = ()


@op(jax=lambda x, dim, keep_dim: jnp.min(x, axis=dim, keepdims=keep_dim),
    numpy=lambda x, dim, keep_dim: np.min(x, axis=dim, keepdims=keep_dim))
def amin(x: Tensor, dim: Dims = None, keep_dim: Bool = False):
    """The smallest element along ``dim`` — one dim, a tuple of dims, or None for all (kept as
    size 1 with ``keep_dim``). Tied minima share the gradient equally."""
    return extremum_dims("amin", x, dim, keep_dim)


@amin.rule
class AminOp(_ExtremumOp):
    """out = min_k x[..., k, ...]  along the dims ``dim``.

    Derivation: as AmaxOp with the smallest element: slope 1 at the unique minimum, 1/c at each of
    c tied minima, 0 elsewhere:
        grad_x = g · h / Σ_dim h
    where h is 1 where x equals out and 0 elsewhere.
    Saves: dim, keep_dim (and x, out).
    """

    __slots__ = ()


@op(jax=lambda x, dim: jnp.argmin(x, axis=dim).astype(jnp.int32), numpy=lambda x, dim: np.argmin(x, axis=dim))
def argmin(x: Tensor, dim: Dim):
    """The index (int32) of the smallest element along ``dim``; the first one on ties."""
    need_numeric("argmin", x.dtype)
    d = normalize_dim("argmin", dim, len(x.shape))
    if x.shape[d] == 0:
        raise ShapeError(f"argmin: got shape {x.shape} with dim {dim} of size 0; expected a non-empty dim")
    return x.shape[:d] + x.shape[d + 1:], DataType.INT32, {"dim": d}


# -- prod and cumsum --------------------------------------------------------------------------------
@op(jax=lambda x, dim, keep_dim: jnp.prod(upcast(x), axis=dim, keepdims=keep_dim).astype(x.dtype),
    numpy=in_float32(lambda x, dim, keep_dim: np.prod(x, axis=dim, keepdims=keep_dim)))
def prod(x: Tensor, dim: Dims = None, keep_dim: Bool = False):
    """The product along ``dim`` — one dim, a tuple of dims, or None for all (kept as size 1 with
    ``keep_dim``; float32 accumulation for half dtypes; 1 over an empty dim)."""
    return reduce_dims("prod", x, dim, keep_dim)


def _shifted(x, dim: int, s: int, reverse: bool):
    """x moved ``s`` places along ``dim`` towards its end (its front when ``reverse``), ones
    moving in: the neutral element of a product."""
    n = x.shape[dim]
    s = min(s, n)
    widths = [(0, 0)] * x.ndim
    widths[dim] = (0, s) if reverse else (s, 0)
    return x.narrow(dim, s if reverse else 0, n - s).pad(widths, 1.0)


def exclusive_products(x, dim: int, reverse: bool = False):
    """Π_{j<i} x_j along ``dim`` (Π_{j>i} when ``reverse``), with no division: the products of the
    shifted x by doubling (Hillis–Steele), ⌈log₂ n⌉ steps of y ← y · shifted(y, 2ᵏ)."""
    y, s = _shifted(x, dim, 1, reverse), 1
    while s < x.shape[dim]:
        y = y * _shifted(y, dim, s, reverse)
        s *= 2
    return y


def products_of_the_others(x, dims: tuple):
    """Π_{j≠i} x_j over the elements sharing i's slice along ``dims``: exact with zeros in x."""
    if len(dims) == 1:
        return exclusive_products(x, dims[0]) * exclusive_products(x, dims[0], reverse=True)
    rest = tuple(i for i in range(x.ndim) if i not in dims)
    moved = x.permute(*rest, *dims)                                   # the reduced dims last ...
    n = 1
    for d in dims:
        n *= x.shape[d]
    flat = moved.reshape(tuple(moved.shape[:len(rest)]) + (n,))       # ... as one
    others = products_of_the_others(flat, (len(rest),)).reshape(moved.shape)
    return others.permute(*sorted(range(x.ndim), key=(rest + dims).__getitem__))


@prod.rule
class ProdOp(Operation):
    """out = Π_k x[..., k, ...]  along the dims ``dim``.

    Derivation: out is linear in each x_i with slope the product of the others:
        ∂out/∂x_i = Π_{j≠i} x_j,   so   grad_x = g · Π_{j≠i} x_j   (g put back at size 1 along dim).
    The tempting out / x_i is 0/0 where x_i = 0, so the rule never divides: Π_{j≠i} x_j is the
    product of everything before i times everything after i, two exclusive running products
    computed by doubling. Exact with one zero (only the zero's slope is non-zero) and with several
    (every slope is 0), and differentiable again (products and shifts only).
    Saves: dim, keep_dim (and x).
    """

    __slots__ = ("dim", "keep_dim")
    fuse = True

    def vjp(self, g, out, x):
        if not self.dim:
            return [g]
        return [g.reshape(kept_shape(x.shape, self.dim)) * products_of_the_others(x, self.dim)]


@op(jax=lambda x, dim: jnp.cumsum(upcast(x), axis=dim).astype(x.dtype),
    numpy=in_float32(lambda x, dim: np.cumsum(x, axis=dim)))
def cumsum(x: Tensor, dim: Dim):
    """The running sum along ``dim``: out[..., k, ...] = Σ_{i≤k} x[..., i, ...] (float32
    accumulation for half dtypes)."""
    need_numeric("cumsum", x.dtype)
    return x.shape, x.dtype, {"dim": normalize_dim("cumsum", dim, len(x.shape))}


@cumsum.rule
class CumsumOp(Operation):
    """out_k = Σ_{i≤k} x_i  along ``dim``.

    Derivation: ∂out_k/∂x_i = 1 when i ≤ k, else 0, so x_i receives every later g:
        grad_x_i = Σ_{k≥i} g_k = flip(cumsum(flip(g))),   the running sum taken from the end.
    Saves: dim.
    """

    __slots__ = ("dim",)
    fuse = True

    def vjp(self, g, out, x):
        return [g.flip(self.dim).cumsum(self.dim).flip(self.dim)]


# -- composites: variance, standard deviation, vector norms ------------------------------------------
HALF_DTYPES = (DataType.FLOAT16, DataType.BFLOAT16)


def _variance(backend, x, dim, keep_dim: bool, correction, name: str):
    """Σ (x - mean)² / max(n - correction, 0) along ``dim``, in float32 for half dtypes (cast back
    by the caller: the float32 result and x's dtype are returned)."""
    need_float(name, x.dtype)
    dims = normalize_dims(name, dim, len(x.shape))
    n = 1
    for d in dims:
        n *= x.shape[d]
    dtype = x.dtype
    if dtype in HALF_DTYPES:
        x = backend.cast(x, DataType.FLOAT32)
    centred = backend.sub(x, backend.mean_dim(x, dims, True))
    squares = backend.sum_dim(backend.mul(centred, centred), dims, keep_dim)
    return backend.div_scalar(squares, float(max(n - correction, 0))), dtype


@composite()
def var(backend, x: Tensor, dim: Dims = None, keep_dim: Bool = False, correction: Scalar = 1):
    """The variance along ``dim`` (one dim, a tuple, or None for all): Σ (x - mean)² / (n - correction),
    ``correction=1`` the unbiased estimate, 0 the population variance (inf or NaN where
    n - correction <= 0, as in jax and torch; float32 accumulation for half dtypes)."""
    out, dtype = _variance(backend, x, dim, keep_dim, correction, "var")
    return out if out.dtype is dtype else backend.cast(out, dtype)


@composite()
def std(backend, x: Tensor, dim: Dims = None, keep_dim: Bool = False, correction: Scalar = 1):
    """The standard deviation along ``dim``: sqrt(var(x, dim, keep_dim, correction)) (its gradient
    is infinite or NaN where the variance is 0, as jax's)."""
    out, dtype = _variance(backend, x, dim, keep_dim, correction, "std")
    out = backend.sqrt(out)
    return out if out.dtype is dtype else backend.cast(out, dtype)


@composite()
def norm(backend, x: Tensor, p: Scalar = 2, dim: Dims = None, keep_dim: Bool = False):
    """The vector p-norm along ``dim`` (one dim, a tuple, or None for all elements, flattened):
    p=2 sqrt(Σ x²), p=1 Σ |x|, p=inf max |x|, p=-inf min |x| (float32 accumulation for half dtypes).

    Gradients at 0 follow jax: |x| has slope +1 at 0; the 2-norm of an all-zero slice has a NaN
    gradient (sqrt's slope at 0 times 0); ties in max/min |x| share the gradient."""
    need_float("norm", x.dtype)
    if p not in (1, 2, math.inf, -math.inf):
        raise ShapeError(f"norm: got p={p!r}; expected 1, 2, inf or -inf")
    dims = normalize_dims("norm", dim, len(x.shape))
    if math.isinf(p) and any(x.shape[d] == 0 for d in dims):
        raise ShapeError(f"norm: got shape {tuple(x.shape)} and p={p} with an empty dim to reduce; expected "
                         f"non-empty dims (the largest of nothing is undefined)")
    dtype = x.dtype
    if dtype in HALF_DTYPES:
        x = backend.cast(x, DataType.FLOAT32)
    if p == 2:
        out = backend.sqrt(backend.sum_dim(backend.mul(x, x), dims, keep_dim))
    else:
        zero = backend.full((), 0, x.dtype)
        zero.requires_grad = False
        size = backend.where(backend.lower(x, zero), backend.mul_scalar(x, -1), x)     # |x|, slope +1 at 0
        reduce = backend.sum_dim if p == 1 else backend.amax if p > 0 else backend.amin
        out = reduce(size, dims, keep_dim)
    return out if dtype not in HALF_DTYPES else backend.cast(out, dtype)
