"""Shape ops: each moves or copies elements without changing them, so each rule moves the
gradient back the same way (reshape back, permute back, sum the copies, slice the pieces)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from ..tensor.args import Dim, Int, Ints, ShapeArg, Tensor, Tensors
from ..tensor.checks import normalize_dim, same_dtype
from ..tensor.errors import ShapeError
from ..tensor.registry import composite, op
from ..tensor.shape import Shape
from .base import Operation, pad_with_zeros, unbroadcast


def _reshape_target(shape: tuple, new: tuple) -> tuple:
    size = Shape(shape).size
    if new.count(-1) > 1 or any(d < -1 for d in new):
        raise ShapeError(f"reshape: got target shape {new}; expected non-negative sizes and at most one -1")
    if -1 in new:
        rest = Shape(d for d in new if d != -1).size
        if rest == 0 or size % rest:
            raise ShapeError(f"reshape: cannot reshape {shape} (size {size}) to {new}; the -1 cannot be "
                             f"inferred; expected the other sizes' product ({rest}) to be non-zero and divide {size}")
        new = tuple(size // rest if d == -1 else d for d in new)
    if Shape(new).size != size:
        raise ShapeError(f"reshape: cannot reshape {shape} (size {size}) to {new} (size {Shape(new).size}); "
                         f"expected the same number of elements")
    return new


@op(jax=lambda t, shape: jnp.reshape(t, shape), numpy=lambda t, shape: np.reshape(t, shape))
def reshape(t: Tensor, shape: ShapeArg):
    """The same elements in row-major order with a new ``shape`` (one -1 is inferred)."""
    new = _reshape_target(tuple(t.shape), shape)
    return new, t.dtype, {"shape": new}


@reshape.rule
class ReshapeOp(Operation):
    """out = x with a new shape (same elements, row-major order).

    Derivation: the Jacobian is the identity on the flat elements, so
        grad_x = reshape(g, x.shape).
    Saves: shape.
    """

    __slots__ = ("shape",)

    def vjp(self, g, out, x):
        return [g.reshape(x.shape)]


@op(jax=lambda t, axes: jnp.transpose(t, axes), numpy=lambda t, axes: np.transpose(t, axes))
def transpose(t: Tensor, *axes: Ints):
    """Permute the dims: ``out.shape[i] = t.shape[axes[i]]``; no axes reverses them."""
    n = len(t.shape)
    if not axes:
        axes = tuple(range(n - 1, -1, -1))
    if len(axes) != n:
        raise ShapeError(f"transpose: got axes {axes} for a tensor of rank {n}; expected no axes "
                         f"(reverse all) or a permutation of all {n} dims")
    perm = tuple(normalize_dim("transpose", a, n) for a in axes)
    if sorted(perm) != list(range(n)):
        raise ShapeError(f"transpose: got axes {axes}; expected a permutation of range({n})")
    return tuple(t.shape[p] for p in perm), t.dtype, {"axes": perm}


@transpose.rule
class TransposeOp(Operation):
    """out = x with its dims permuted: out.shape[i] = x.shape[axes[i]].

    Derivation: out[..i..] = x[..axes(i)..] moves each element once; the adjoint moves it back
    with the inverse permutation:  grad_x = transpose(g, inverse(axes)), inverse[axes[i]] = i.
    Saves: axes.
    """

    __slots__ = ("axes",)

    def vjp(self, g, out, x):
        inverse = tuple(sorted(range(len(self.axes)), key=self.axes.__getitem__))
        return [g.transpose(*inverse)]


@op(jax=lambda x, dim: jnp.squeeze(x, dim), numpy=lambda x, dim: np.squeeze(x, dim))
def squeeze(x: Tensor, dim: Dim):
    """Remove the size-1 dim ``dim``."""
    d = normalize_dim("squeeze", dim, len(x.shape))
    if x.shape[d] != 1:
        raise ShapeError(f"squeeze: got shape {x.shape} and dim={dim} of size {x.shape[d]}; expected a dim of size 1")
    return x.shape[:d] + x.shape[d + 1:], x.dtype, {"dim": d}


@squeeze.rule
class SqueezeOp(Operation):
    """out = x without its size-1 ``dim``.   Derivation: a reshape, so  grad_x = reshape(g, x.shape).
    Saves: dim."""

    __slots__ = ("dim",)

    def vjp(self, g, out, x):
        return [g.reshape(x.shape)]


@op(jax=lambda x, dim: jnp.expand_dims(x, dim), numpy=lambda x, dim: np.expand_dims(x, dim))
def unsqueeze(x: Tensor, dim: Dim):
    """Insert a size-1 dim at ``dim`` (-1: at the end)."""
    d = normalize_dim("unsqueeze", dim, len(x.shape), insert=True)
    return x.shape[:d] + (1,) + x.shape[d:], x.dtype, {"dim": d}


@unsqueeze.rule
class UnsqueezeOp(Operation):
    """out = x with a new size-1 dim at ``dim``.   Derivation: a reshape, so  grad_x = reshape(g, x.shape).
    Saves: dim."""

    __slots__ = ("dim",)

    def vjp(self, g, out, x):
        return [g.reshape(x.shape)]


def _expand_target(shape: tuple, target: tuple) -> tuple:
    if len(target) < len(shape):
        raise ShapeError(f"expand: cannot expand shape {shape} to {target}; expected a target of rank >= {len(shape)}")
    lead = len(target) - len(shape)
    out = list(target[:lead])
    if any(d < 0 for d in out):
        raise ShapeError(f"expand: got target {target}; -1 is only allowed for existing dims; expected "
                         f"non-negative sizes for the {lead} new leading dim(s)")
    for i, (s, t) in enumerate(zip(shape, target[lead:])):
        if t == -1:
            t = s
        if s != t and s != 1:
            raise ShapeError(f"expand: cannot expand shape {shape} to {target}: dim {lead + i} has size {s}; "
                             f"expected size 1 or {t}")
        if t < 0:
            raise ShapeError(f"expand: got target {target}; expected non-negative sizes or -1")
        out.append(t)
    return tuple(out)


@op(jax=lambda x, shape: jnp.broadcast_to(x, shape), numpy=lambda x, shape: np.broadcast_to(x, shape).copy())
def expand(x: Tensor, shape: ShapeArg):
    """Broadcast (copy) x to ``shape``, NumPy-style; -1 keeps an existing dim's size."""
    new = _expand_target(tuple(x.shape), shape)
    return new, x.dtype, {"shape": new}


@expand.rule
class ExpandOp(Operation):
    """out = x broadcast (copied) to a larger shape.

    Derivation: broadcasting copies elements; the adjoint of a copy is a sum, so
        grad_x = unbroadcast(g, x.shape).
    Saves: shape.
    """

    __slots__ = ("shape",)
    fuse = True

    def vjp(self, g, out, x):
        return [unbroadcast(g, x.shape)]


@op(jax=lambda tensors, dim: jnp.concatenate(tensors, axis=dim),
    numpy=lambda tensors, dim: np.concatenate(tensors, dim))
def cat(tensors: Tensors, dim: Dim = 0):
    """Join tensors along ``dim``; every other dim must agree."""
    if not tensors:
        raise ShapeError("cat: got no tensors; expected at least one")
    dtype = same_dtype("cat", *(t.dtype for t in tensors))
    first = tuple(tensors[0].shape)
    d = normalize_dim("cat", dim, len(first))
    for i, t in enumerate(tensors):
        s = tuple(t.shape)
        if len(s) != len(first) or s[:d] != first[:d] or s[d + 1:] != first[d + 1:]:
            raise ShapeError(f"cat: tensor {i} has shape {s}, tensor 0 has shape {first}; expected equal "
                             f"shapes except along dim {dim}")
    return first[:d] + (sum(t.shape[d] for t in tensors),) + first[d + 1:], dtype, {"dim": d}


@cat.rule
class CatOp(Operation):
    """out = the inputs joined along ``dim``.

    Derivation: each input's elements land in one contiguous slab of out, so each input gets
    its slab of g back:  grad_xₖ = narrow(g, dim, offsetₖ, xₖ.shape[dim]).
    Saves: dim (offsets follow from the inputs' shapes).
    """

    __slots__ = ("dim",)
    fuse = True

    def vjp(self, g, out, *xs):
        grads, offset = [], 0
        for x in xs:
            size = x.shape[self.dim]
            grads.append(g.narrow(self.dim, offset, size))
            offset += size
        return grads


@op(jax=lambda x, dim, start, length: lax.slice_in_dim(x, start, start + length, axis=dim),
    numpy=lambda x, dim, start, length: x[(slice(None),) * dim + (slice(start, start + length),)].copy())
def narrow(x: Tensor, dim: Dim, start: Int(), length: Int()):
    """The slab ``[start, start + length)`` of x along ``dim`` (a negative start counts from the end)."""
    d = normalize_dim("narrow", dim, len(x.shape))
    size = x.shape[d]
    begin = start + size if -size <= start < 0 else start
    if not (0 <= begin and 0 <= length and begin + length <= size):
        raise ShapeError(f"narrow: got start={start}, length={length} for dim {dim} of size {size} "
                         f"(shape {tuple(x.shape)}); expected 0 <= start <= start + length <= {size}")
    return x.shape[:d] + (length,) + x.shape[d + 1:], x.dtype, {"dim": d, "start": begin}


@narrow.rule
class NarrowOp(Operation):
    """out = narrow(x, dim, start, length): the slab [start, start + length) of x along dim.

    Derivation: out copies one slab of x; the rest of x does not reach out, so
        grad_x = cat([zeros(start), g, zeros(rest)], dim)  (empty pieces left out).
    Saves: dim, start, length.
    """

    __slots__ = ("dim", "start", "length")
    fuse = True

    def vjp(self, g, out, x):
        after = x.shape[self.dim] - self.start - self.length
        return [pad_with_zeros(g, self.dim, self.start, after)]


@composite()
def chunk(backend, x: Tensor, n: Int(min=1), dim: Dim = 0):
    """Split x into ``n`` equal pieces along ``dim``: a list of ``narrow``\\ s (each recorded as a
    NarrowOp; the walk sums their gradients into x)."""
    d = normalize_dim("chunk", dim, len(x.shape))
    if x.shape[d] % n:
        raise ShapeError(f"chunk: cannot split dim {dim} of size {x.shape[d]} (shape {x.shape}) into {n} "
                         f"equal chunks; expected n to divide {x.shape[d]}")
    m = x.shape[d] // n
    return [backend.narrow(x, d, i * m, m) for i in range(n)]
