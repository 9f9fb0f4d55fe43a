"""Indexing: gather, where, masked_fill and one_hot, and scatter_add (gather's adjoint). Their rules
route g back to where each element came from.

Index *values* cannot be checked from shapes; ``index_values`` checks them on concrete arrays
(``value_check``). Kernels compute positions in int32 whatever the index dtype, so a uint8 index
into more than 256 rows is exact.
"""

from __future__ import annotations

from typing import Any, Callable

import jax.numpy as jnp
import numpy as np
from jax import lax

from ..tensor.args import Dim, DType, Int, Scalar, ShapeArg, Tensor
from ..tensor.checks import broadcast_shapes, need_int, need_numeric, normalize_dim, same_dtype
from ..tensor.errors import DTypeError, ShapeError
from ..tensor.registry import op
from .base import Operation, unbroadcast
from .precision import HALF, wide


def gather_shapes(name: str, x_shape: tuple, dim: int, index) -> int:
    """torch.gather's rule: same rank, index no larger than x except along ``dim``."""
    need_int(name, "index", index.dtype)
    d = normalize_dim(name, dim, len(x_shape))
    si = tuple(index.shape)
    if len(si) != len(x_shape):
        raise ShapeError(f"{name}: got x shape {tuple(x_shape)} and index shape {si}; expected the same rank")
    for i, (a, b) in enumerate(zip(x_shape, si)):
        if i != d and b > a:
            raise ShapeError(f"{name}: got x shape {tuple(x_shape)} and index shape {si}; expected index.shape[{i}] "
                             f"<= x.shape[{i}] for every dim except {dim}")
    return d


def index_values(what: str, position: int, bound: Callable) -> Callable:
    """A value check: the values of input ``position`` lie in ``[0, size)``, where
    ``bound(inputs, statics)`` gives ``(size, detail)`` — detail says what the size is of."""
    def check(backend: Any, inputs: list, statics: dict, name: str) -> None:
        size, detail = bound(inputs, statics)
        backend.check_index_range(name, what, inputs[position], size, detail)
    return check


def _gather_jax(x, index, dim):
    # torch.gather: the index may be smaller than x in the other dims; look only at that corner.
    corner = tuple(slice(None) if d == dim else slice(0, n) for d, n in enumerate(index.shape))
    return jnp.take_along_axis(x[corner], index.astype(jnp.int32), axis=dim)


def _gather_np(x, index, dim):
    """out[i][j][k] = x[i][index[i][j][k]][k] (for dim = 1; likewise for any dim), on x's corner
    of index's extent in the other dims."""
    part = tuple(slice(None) if d == dim else slice(0, size) for d, size in enumerate(index.shape))
    return np.take_along_axis(x[part], index.astype(np.intp), axis=dim)


@op(jax=_gather_jax, numpy=_gather_np,
    value_check=index_values("index", 1, lambda ins, st: (
        ins[0].shape[st["dim"]], f" for dim {st['dim']} of x shape {tuple(ins[0].shape)}")))
def gather(x: Tensor, dim: Dim, index: Tensor):
    """torch.gather along ``dim``: ``out[..., j, ...] = x[..., index[..., j, ...], ...]``."""
    d = gather_shapes("gather", tuple(x.shape), dim, index)
    return index.shape, x.dtype, {"dim": d}


@gather.rule
class GatherOp(Operation):
    """out = gather(x, dim, index):  out[..., j, ...] = x[..., index[..., j, ...], ...] along dim.

    Derivation: each out element copies one x element, so x[k] receives the sum of g over every
    position that read k (repeated indices add up): the adjoint of gather is scatter-add,
        grad_x = scatter_add(x.shape, dim, index, g);   the index gets no gradient.
    Saves: dim, index (an input).
    """

    __slots__ = ("dim",)

    def vjp(self, g, out, x, index):
        return [scatter_add(x.shape, self.dim, index, g), None]


def _scatter_add_jax(index, src, shape, dim):
    grid = tuple(index.astype(jnp.int32) if d == dim else lax.broadcasted_iota(jnp.int32, index.shape, d)
                 for d in range(index.ndim))
    return jnp.zeros(shape, src.dtype).at[grid].add(src)


def _scatter_add_np(index, src, shape, dim):
    """out = zeros(shape); out[..., index[p], ...] += src[p] for every position p of index. Two
    positions that gathered the same element both send their gradient back to it, so repeated
    indices add up: ``np.add.at`` (plain ``out[idx] += src`` would keep one)."""
    out = np.zeros(shape, dtype=np.float32 if src.dtype in HALF else src.dtype)
    coords = list(np.indices(index.shape, sparse=True))
    coords[dim] = index.astype(np.intp)
    np.add.at(out, tuple(coords), wide(src))
    return out.astype(src.dtype, copy=False)


@op(jax=_scatter_add_jax, numpy=_scatter_add_np, family="indexing", method=False,
    value_check=index_values("index", 0, lambda ins, st: (
        st["shape"][st["dim"]], f" for dim {st['dim']} of shape {st['shape']}")))
def scatter_add(shape: ShapeArg, dim: Dim, index: Tensor, src: Tensor):
    """Zeros of ``shape`` with ``src`` added at ``index`` along ``dim`` (gather's adjoint)."""
    d = gather_shapes("scatter_add", shape, dim, index)
    if tuple(src.shape) != tuple(index.shape):
        raise ShapeError(f"scatter_add (src): got shape {tuple(src.shape)}; expected {tuple(index.shape)}")
    return shape, src.dtype, {"dim": d}


@scatter_add.rule
class ScatterAddOp(Operation):
    """out = scatter_add(shape, dim, index, src): zeros of shape, src[p] added at p with its dim-th
    coordinate replaced by index[p].

    Derivation: linear in src, each src element lands in one out element with slope 1, so it
    reads its gradient back from there — the adjoint of scatter-add is gather:
        grad_src = gather(g, dim, index);   the index gets no gradient.
    Saves: shape, dim (index and src are the inputs).
    """

    __slots__ = ("shape", "dim")

    def vjp(self, g, out, index, src):
        return [None, g.gather(self.dim, index)]


@op(jax=jnp.where, numpy=np.where)
def where(condition: Tensor, x: Tensor, y: Tensor):
    """``condition ? x : y`` elementwise, with broadcasting; the condition is bool."""
    if not condition.dtype.is_bool:
        raise DTypeError(f"where: got condition of dtype {condition.dtype.value}; expected bool "
                         f"(compare first, e.g. x.greater(y))")
    dtype = same_dtype("where", x.dtype, y.dtype)
    return broadcast_shapes("where", condition.shape, x.shape, y.shape), dtype


@where.rule
class WhereOp(Operation):
    """out = where(condition, x, y):  out_i = x_i if condition_i else y_i  (broadcasting).

    Derivation: out_i depends on x_i with slope 1 where the condition holds and on y_i with
    slope 1 where it does not; then undo broadcasting:
        grad_x = unbroadcast(where(c, g, 0), x.shape)   grad_y = unbroadcast(where(c, 0, g), y.shape)
    The bool condition gets no gradient.   Saves: condition (an input).
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, condition, x, y):
        zero = g.new_zeros(())
        return [None, unbroadcast(g.where(condition, zero), x.shape), unbroadcast(zero.where(condition, g), y.shape)]


def _masked_fill_jax(x, mask, value):
    return jnp.where(mask, jnp.asarray(value).astype(x.dtype), x)


def _masked_fill_np(x, mask, value):
    """x where the mask is False, ``value`` (converted to x's dtype) where it is True."""
    return np.where(mask, np.asarray(value).astype(x.dtype), x)


@op(jax=_masked_fill_jax, numpy=_masked_fill_np)
def masked_fill(x: Tensor, mask: Tensor, value: Scalar):
    """x with ``value`` wherever the bool ``mask`` (broadcasting to x's shape) is True — e.g. -inf
    at the masked positions of attention scores."""
    need_numeric("masked_fill", x.dtype)
    if not mask.dtype.is_bool:
        raise DTypeError(f"masked_fill: got mask of dtype {mask.dtype.value}; expected bool (compare first, "
                         f"e.g. x.greater(y))")
    shape = broadcast_shapes("masked_fill", x.shape, mask.shape)
    if tuple(shape) != tuple(x.shape):
        raise ShapeError(f"masked_fill: got x shape {tuple(x.shape)} and mask shape {tuple(mask.shape)}; expected a "
                         f"mask that broadcasts to x's shape (the result keeps x's shape)")
    return x.shape, x.dtype


@masked_fill.rule
class MaskedFillOp(Operation):
    """out = masked_fill(x, mask, value):  out_i = value where mask_i, else x_i.

    Derivation: where the mask holds, out_i is the constant value (slope 0 in x_i); elsewhere it
    is x_i (slope 1). The mask broadcasts to x's shape, so out has x's shape and nothing sums back:
        grad_x = where(mask, 0, g);   the bool mask and the value get no gradient.
    Saves: mask (an input), value.
    """

    __slots__ = ("value",)

    def vjp(self, g, out, x, mask):
        return [g.new_zeros(()).where(mask, g), None]


def _one_hot_jax(index, n, dtype):
    return (index.astype(jnp.int32)[..., None] == jnp.arange(n, dtype=jnp.int32)).astype(dtype.numpy)


def _one_hot_np(index, n, dtype):
    """out[..., k] = 1 where index == k, else 0 (positions compared in int64, exact for any index dtype)."""
    return (index.astype(np.int64)[..., None] == np.arange(n)).astype(dtype.numpy)


@op(jax=_one_hot_jax, numpy=_one_hot_np, value_check=index_values("index", 0, lambda ins, st: (
    st["n"], f" for n={st['n']} classes")))
def one_hot(index: Tensor, n: Int(min=1), dtype: DType = "float32"):
    """``out[..., k] = 1`` where ``index == k`` and 0 elsewhere, of shape ``index.shape + (n,)`` and
    ``dtype`` (float32 unless given); index values in [0, n). Not differentiable (an integer input)."""
    need_int("one_hot", "index", index.dtype)
    return tuple(index.shape) + (n,), dtype
