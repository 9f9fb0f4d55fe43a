"""Comparisons, logic and argmax: bool or integer results, so no gradient flows through them
and none of them has a rule. A recording AutodiffBackend passes them straight through."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..tensor.args import Dim, Tensor
from ..tensor.checks import broadcast_shapes, need_bool, need_numeric, normalize_dim, same_dtype
from ..tensor.dtype import DataType
from ..tensor.errors import ShapeError
from ..tensor.registry import op


def comparison(name: str, a, b, ordered: bool = True):
    """Both of one dtype (numeric when ``ordered``), broadcast shapes, a bool result."""
    dtype = same_dtype(name, a.dtype, b.dtype)
    if ordered:
        need_numeric(name, dtype)
    return broadcast_shapes(name, a.shape, b.shape), DataType.BOOL


@op(jax=jnp.equal, numpy=np.equal)
def equal(a: Tensor, other: Tensor):
    """``a == other`` elementwise (bool)."""
    return comparison("equal", a, other, ordered=False)


@op(jax=jnp.not_equal, numpy=np.not_equal)
def not_equal(a: Tensor, other: Tensor):
    """``a != other`` elementwise (bool)."""
    return comparison("not_equal", a, other, ordered=False)


@op(jax=jnp.greater, numpy=np.greater)
def greater(a: Tensor, other: Tensor):
    """``a > other`` elementwise (bool)."""
    return comparison("greater", a, other)


@op(jax=jnp.greater_equal, numpy=np.greater_equal)
def greater_equal(a: Tensor, other: Tensor):
    """``a >= other`` elementwise (bool)."""
    return comparison("greater_equal", a, other)


@op(jax=jnp.less, numpy=np.less)
def lower(a: Tensor, other: Tensor):
    """``a < other`` elementwise (bool)."""
    return comparison("lower", a, other)


@op(jax=jnp.less_equal, numpy=np.less_equal)
def lower_equal(a: Tensor, other: Tensor):
    """``a <= other`` elementwise (bool)."""
    return comparison("lower_equal", a, other)


@op(jax=jnp.logical_and, numpy=np.logical_and)
def and_(a: Tensor, other: Tensor):
    """Logical and of two bool tensors (broadcasting)."""
    need_bool("and_", a.dtype, other.dtype)
    return broadcast_shapes("and_", a.shape, other.shape), DataType.BOOL


@op(jax=jnp.logical_or, numpy=np.logical_or)
def or_(a: Tensor, other: Tensor):
    """Logical or of two bool tensors (broadcasting)."""
    need_bool("or_", a.dtype, other.dtype)
    return broadcast_shapes("or_", a.shape, other.shape), DataType.BOOL


@op(jax=jnp.logical_not, numpy=np.logical_not)
def not_(x: Tensor):
    """Logical not of a bool tensor."""
    return x.shape, need_bool("not_", x.dtype)


@op(jax=lambda x, dim: jnp.argmax(x, axis=dim).astype(jnp.int32), numpy=lambda x, dim: np.argmax(x, axis=dim))
def argmax(x: Tensor, dim: Dim):
    """The index (int32) of the largest element along ``dim``; the first one on ties."""
    need_numeric("argmax", x.dtype)
    d = normalize_dim("argmax", dim, len(x.shape))
    if x.shape[d] == 0:
        raise ShapeError(f"argmax: got shape {x.shape} with dim {dim} of size 0; expected a non-empty dim")
    return x.shape[:d] + x.shape[d + 1:], DataType.INT32, {"dim": d}
