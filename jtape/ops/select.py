"""Selection: strided slices, index_select and embedding, with their adjoints slice_scatter and
index_add. ``t[...]`` is built from these (``jtape/tensor/indexing.py``).

Each op copies elements of x into out — every out element reads exactly one x element — so each
rule sends g back to where every element came from: zeros where nothing was read, and where
several out elements read the same x element (a repeated index) their gradients add up. Index
values are checked on concrete arrays (``value_check``); kernels compute positions in int32
whatever the index dtype, so a uint8 index into more than 256 rows is exact.
"""

from __future__ import annotations

import builtins
from typing import Any

import jax.numpy as jnp
import numpy as np

from ..tensor.args import Dim, ShapeArg, Static, Tensor, as_int
from ..tensor.checks import need_int, normalize_dim
from ..tensor.errors import ShapeError
from ..tensor.registry import op
from .base import Operation
from .indexing import index_values
from .precision import HALF, wide


# -- strided slices ------------------------------------------------------------------------------
def canonical_slice(start: int, length: int, step: int) -> tuple:
    """The ``(start, stop, step)`` triple selecting ``length`` elements from ``start`` by ``step``,
    in one form per selection: Python's slice of it selects exactly those elements (a negative
    step running past index 0 has stop None), and re-normalising it gives it back."""
    if length == 0:
        return (0, 0, 1)
    if length == 1:
        return (start, start + 1, 1)
    last = start + (length - 1) * step
    if step > 0:
        return (start, last + 1, step)
    return (start, last - 1 if last > 0 else None, step)


def slice_length(triple: tuple) -> int:
    """How many elements a canonical triple selects."""
    start, stop, step = triple
    return len(range(start, -1 if stop is None else stop, step))


def normalize_slices(name: str, shape: tuple, slices: Any) -> tuple:
    """One canonical triple per dim of ``shape`` from ``slices``: a tuple of ``(start, stop, step)``
    triples read as Python's ``slice(start, stop, step)`` (None for a default, negative values
    counting from the end, out-of-range bounds clipped as NumPy does); missing trailing dims are
    taken whole."""
    if not isinstance(slices, tuple) or len(slices) > len(shape):
        raise ShapeError(f"{name}: got slices={slices!r} for shape {tuple(shape)}; expected a tuple of at most "
                         f"{len(shape)} (start, stop, step) triples")
    out = []
    for d, n in enumerate(shape):
        triple = slices[d] if d < len(slices) else (None, None, None)
        if not isinstance(triple, tuple) or len(triple) != 3:
            raise ShapeError(f"{name}: got {triple!r} for dim {d}; expected a (start, stop, step) triple")
        parts = [None if v is None else as_int(name, f"slices[{d}]", v) for v in triple]
        if parts[2] == 0:
            raise ShapeError(f"{name}: got step 0 for dim {d}; expected a non-zero step")
        start, stop, step = builtins.slice(*parts).indices(n)
        out.append(canonical_slice(start, len(range(start, stop, step)), step))
    return tuple(out)


def _python_slices(slices: tuple) -> tuple:
    return tuple(builtins.slice(*t) for t in slices)


@op(jax=lambda x, slices: x[_python_slices(slices)], numpy=lambda x, slices: x[_python_slices(slices)].copy(),
    family="indexing")
def strided_slice(x: Tensor, slices: Static):
    """``x[start:stop:step, ...]``: per dim a ``(start, stop, step)`` triple as Python's slice reads it
    (None for a default, negative counting from the end, any non-zero step; bounds clipped); dims
    past the triples are taken whole. ``t[1:, ::-2]`` records this op."""
    canon = normalize_slices("strided_slice", tuple(x.shape), slices)
    return tuple(map(slice_length, canon)), x.dtype, {"slices": canon}


@strided_slice.rule
class StridedSliceOp(Operation):
    """out = strided_slice(x, slices):  out[k₀, k₁, …] = x[start₀ + k₀·step₀, start₁ + k₁·step₁, …].

    Derivation: each out element copies one x element with slope 1, and no two out elements
    copy the same one (a slice never repeats a position). So ∂ℒ/∂x is g at the positions the
    slice selected and 0 at the others (before start, past stop, between the steps):
        grad_x = slice_scatter(x.shape, slices, g)   (zeros of x's shape, g written at the slice)
    Saves: slices.
    """

    __slots__ = ("slices",)

    def vjp(self, g, out, x):
        return [slice_scatter(x.shape, self.slices, g)]


def _slice_scatter_jax(src, shape, slices):
    return jnp.zeros(shape, src.dtype).at[_python_slices(slices)].set(src)


def _slice_scatter_np(src, shape, slices):
    """out = zeros(shape); out[slices] = src (a slice never repeats a position: nothing to add)."""
    out = np.zeros(shape, src.dtype)
    out[_python_slices(slices)] = src
    return out


@op(jax=_slice_scatter_jax, numpy=_slice_scatter_np, family="indexing", method=False)
def slice_scatter(shape: ShapeArg, slices: Static, src: Tensor):
    """Zeros of ``shape`` with ``src`` written at the positions ``slices`` selects (strided_slice's adjoint)."""
    if any(d < 0 for d in shape):
        raise ShapeError(f"slice_scatter: got shape {shape}; expected non-negative sizes")
    canon = normalize_slices("slice_scatter", shape, slices)
    expected = tuple(map(slice_length, canon))
    if tuple(src.shape) != expected:
        raise ShapeError(f"slice_scatter (src): got shape {tuple(src.shape)}; expected {expected}, the shape "
                         f"the slices select from {shape}")
    return shape, src.dtype, {"slices": canon}


@slice_scatter.rule
class SliceScatterOp(Operation):
    """out = slice_scatter(shape, slices, src): zeros of shape, src written at the slice.

    Derivation: out is linear in src and each src element lands in one out element with slope 1;
    the adjoint of writing into the slice is reading the slice back:
        grad_src = strided_slice(g, slices).
    Saves: shape, slices.
    """

    __slots__ = ("shape", "slices")

    def vjp(self, g, out, src):
        return [g.strided_slice(self.slices)]


# -- index_select and its adjoint ----------------------------------------------------------------
def _select_shapes(name: str, shape: tuple, dim: int, index) -> int:
    need_int(name, "index", index.dtype)
    d = normalize_dim(name, dim, len(shape))
    if len(index.shape) != 1:
        raise ShapeError(f"{name}: got index shape {tuple(index.shape)}; expected a 1-D index (reshape(-1) it first)")
    return d


def _along(dim: int, index) -> tuple:
    return (builtins.slice(None),) * dim + (index,)


@op(jax=lambda x, index, dim: jnp.take(x, index.astype(jnp.int32), axis=dim),
    numpy=lambda x, index, dim: np.take(x, index.astype(np.intp), axis=dim),
    value_check=index_values("index", 1, lambda ins, st: (
        ins[0].shape[st["dim"]], f" for dim {st['dim']} of x shape {tuple(ins[0].shape)}")))
def index_select(x: Tensor, dim: Dim, index: Tensor):
    """The slices of x at the positions ``index`` (1-D, integers, repeats allowed) along ``dim``:
    ``out.shape[dim] = len(index)``."""
    d = _select_shapes("index_select", tuple(x.shape), dim, index)
    return x.shape[:d] + (index.shape[0],) + x.shape[d + 1:], x.dtype, {"dim": d}


@index_select.rule
class IndexSelectOp(Operation):
    """out = index_select(x, dim, index):  out[…, j, …] = x[…, index[j], …] along dim.

    Derivation: slice j of out copies slice index[j] of x with slope 1, so slice k of x receives
    the sum of g's slices at every j with index[j] = k — a repeated index adds up, an
    index never picked gets 0. That is index-add, the adjoint of index-select:
        grad_x = index_add(x.shape, dim, index, g);   the index gets no gradient.
    Saves: dim, index (an input).
    """

    __slots__ = ("dim",)

    def vjp(self, g, out, x, index):
        return [index_add(x.shape, self.dim, index, g), None]


def _index_add_jax(index, src, shape, dim):
    total = jnp.zeros(shape, jnp.float32 if src.dtype in HALF else src.dtype)
    return total.at[_along(dim, index.astype(jnp.int32))].add(src.astype(total.dtype)).astype(src.dtype)


def _index_add_np(index, src, shape, dim):
    """out = zeros(shape); out[…, index[j], …] += src[…, j, …] for every j. ``np.add.at``, because
    ``out[idx] += src`` would keep one of two slices sent to the same place."""
    out = np.zeros(shape, np.float32 if src.dtype in HALF else src.dtype)
    np.add.at(out, _along(dim, index.astype(np.intp)), wide(src))
    return out.astype(src.dtype, copy=False)


@op(jax=_index_add_jax, numpy=_index_add_np, family="indexing", method=False,
    value_check=index_values("index", 0, lambda ins, st: (
        st["shape"][st["dim"]], f" for dim {st['dim']} of shape {st['shape']}")))
def index_add(shape: ShapeArg, dim: Dim, index: Tensor, src: Tensor):
    """Zeros of ``shape`` with src's slices added at the positions ``index`` along ``dim``
    (index_select's adjoint; a repeated index adds up)."""
    d = _select_shapes("index_add", shape, dim, index)
    expected = shape[:d] + (index.shape[0],) + shape[d + 1:]
    if tuple(src.shape) != expected:
        raise ShapeError(f"index_add (src): got shape {tuple(src.shape)}; expected {expected}")
    return shape, src.dtype, {"dim": d}


@index_add.rule
class IndexAddOp(Operation):
    """out = index_add(shape, dim, index, src): zeros of the shape; slice j of src is added to
    slice index[j] of out (along dim).

    Derivation: out is linear in src and slice j of src lands in slice index[j] of out with
    slope 1, so it reads its gradient back from there — the adjoint of index-add is index-select:
        grad_src = index_select(g, dim, index);   the index gets no gradient.
    Saves: shape, dim (index and src are the inputs).
    """

    __slots__ = ("dim", "shape")

    def vjp(self, g, out, index, src):
        return [None, g.index_select(self.dim, index)]


# -- embedding -----------------------------------------------------------------------------------
@op(jax=lambda weight, ids: jnp.take(weight, ids.astype(jnp.int32), axis=0),
    numpy=lambda weight, ids: weight[ids.astype(np.intp)],
    value_check=index_values("ids", 1, lambda ins, st: (ins[0].shape[0], f" for weight shape {tuple(ins[0].shape)}")))
def embedding(weight: Tensor, ids: Tensor):
    """The rows of ``weight`` picked by integer ``ids`` of any shape: ``out[p] = weight[ids[p]]``,
    of shape ``ids.shape + weight.shape[1:]`` (an embedding lookup; ``weight.embedding(ids)``)."""
    need_int("embedding", "ids", ids.dtype)
    if len(weight.shape) < 1:
        raise ShapeError("embedding: got weight shape (); expected rank >= 1 [num_embeddings, ...]")
    return tuple(ids.shape) + tuple(weight.shape[1:]), weight.dtype


@embedding.rule
class EmbeddingOp(Operation):
    """out = embedding(weight, ids):  out[p] = weight[ids[p]]  for every position p of ids.

    Derivation: out[p] copies row ids[p] with slope 1, so row r of weight receives the sum of the
    rows g[p] at every p with ids[p] = r (an id used twice gets both), and rows never looked up
    get 0 — a scatter-add of g's rows. With ids flattened to M positions and g to M rows:
        grad_weight = index_add(weight.shape, 0, reshape(ids, [M]), reshape(g, [M, ...]));
    the ids get no gradient.   Saves: ids (an input).
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, weight, ids):
        m = ids.shape.size
        return [index_add(weight.shape, 0, ids.reshape((m,)), g.reshape((m,) + tuple(weight.shape[1:]))), None]
