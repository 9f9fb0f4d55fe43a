"""More shape ops: stack, flatten, permute, movedim, flip, repeat and pad, whose rules move the
gradient back the way the op moved the elements; split, tril and triu, written with other ops.

None of them changes a value: each output element is a copy of one input element (or, for pad,
a constant). So every rule routes g back along the same map — undoing a permutation, summing the
copies of a tiled element, slicing away what was padded on."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from ..tensor.args import Dim, Dims, Int, IntOrInts, Ints, Scalar, Tensor, Tensors, Widths
from ..tensor.checks import normalize_dim, normalize_dims, same_dtype
from ..tensor.errors import ShapeError
from ..tensor.registry import composite, op
from .base import Operation


def inverse_permutation(perm: tuple) -> tuple:
    """``inverse[perm[i]] = i``: the permutation that undoes ``perm``."""
    return tuple(sorted(range(len(perm)), key=perm.__getitem__))


# -- stack ---------------------------------------------------------------------------------------------
@op(jax=lambda tensors, dim: jnp.stack(tensors, axis=dim), numpy=lambda tensors, dim: np.stack(tensors, dim))
def stack(tensors: Tensors, dim: Dim = 0):
    """Join tensors of one shape along a new dim ``dim`` (``dim`` may be ``rank``: a new last dim)."""
    if not tensors:
        raise ShapeError("stack: got no tensors; expected at least one")
    dtype = same_dtype("stack", *(t.dtype for t in tensors))
    first = tuple(tensors[0].shape)
    for i, t in enumerate(tensors):
        if tuple(t.shape) != first:
            raise ShapeError(f"stack: tensor {i} has shape {tuple(t.shape)}, tensor 0 has shape {first}; "
                             f"expected equal shapes")
    d = normalize_dim("stack", dim, len(first), insert=True)
    return first[:d] + (len(tensors),) + first[d:], dtype, {"dim": d}


@stack.rule
class StackOp(Operation):
    """out = the inputs stacked along a new dim: out[..., k, ...] = x_k  (k at position ``dim``).

    Derivation: x_k is copied once, into slice k of out, so it receives that slice of g:
        grad_x_k = reshape(narrow(g, dim, k, 1), x_k.shape).
    Saves: dim.
    """

    __slots__ = ("dim",)
    fuse = True

    def vjp(self, g, out, *xs):
        return [g.narrow(self.dim, k, 1).reshape(x.shape) for k, x in enumerate(xs)]


# -- flatten, permute, movedim ---------------------------------------------------------------------------
def _flat_shape(shape: tuple, start: int, end: int) -> tuple:
    if not shape:
        return (1,)
    size = 1
    for n in shape[start:end + 1]:
        size *= n
    return shape[:start] + (size,) + shape[end + 1:]


def _flatten_dim(param: str, d: int, rank: int) -> int:
    n = max(rank, 1)                      # a 0-d tensor flattens as if it had one dim
    if not -n <= d < n:
        raise ShapeError(f"flatten: got {param}={d} for a tensor of rank {rank}; expected {-n} <= {param} <= {n - 1}")
    return d + n if d < 0 else d


@op(jax=lambda x, start_dim, end_dim: jnp.reshape(x, _flat_shape(x.shape, start_dim, end_dim)),
    numpy=lambda x, start_dim, end_dim: np.reshape(x, _flat_shape(x.shape, start_dim, end_dim)))
def flatten(x: Tensor, start_dim: Dim = 0, end_dim: Dim = -1):
    """Merge the dims ``start_dim..end_dim`` (inclusive) into one; a 0-d tensor becomes shape (1,)."""
    rank = len(x.shape)
    start, end = _flatten_dim("start_dim", start_dim, rank), _flatten_dim("end_dim", end_dim, rank)
    if start > end:
        raise ShapeError(f"flatten: got start_dim={start_dim} after end_dim={end_dim} for a tensor of rank "
                         f"{rank}; expected start_dim <= end_dim")
    return _flat_shape(tuple(x.shape), start, end), x.dtype, {"start_dim": start, "end_dim": end}


@flatten.rule
class FlattenOp(Operation):
    """out = x with the dims start_dim..end_dim merged into one (same elements, row-major order).

    Derivation: a reshape; its Jacobian is the identity on the flat elements, so
        grad_x = reshape(g, x.shape).
    Saves: start_dim, end_dim.
    """

    __slots__ = ("start_dim", "end_dim")

    def vjp(self, g, out, x):
        return [g.reshape(x.shape)]


@op(jax=lambda x, dims: jnp.transpose(x, dims), numpy=lambda x, dims: np.transpose(x, dims))
def permute(x: Tensor, *dims: Ints):
    """Reorder the dims: ``out.shape[i] = x.shape[dims[i]]``; ``dims`` names every dim once
    (``permute(x, 1, 0)`` or ``permute(x, (1, 0))``)."""
    n = len(x.shape)
    if len(dims) != n:
        raise ShapeError(f"permute: got dims {dims} for a tensor of rank {n}; expected a permutation of all {n} dims")
    perm = tuple(normalize_dim("permute", d, n) for d in dims)
    if sorted(perm) != list(range(n)):
        raise ShapeError(f"permute: got dims {dims}; expected a permutation of range({n}), each dim once")
    return tuple(x.shape[p] for p in perm), x.dtype, {"dims": perm}


@permute.rule
class PermuteOp(Operation):
    """out = x with its dims reordered: out[i₀, i₁, ...] = x[j] with j[dims[k]] = i_k.

    Derivation: every element moves once; the adjoint moves it back with the inverse permutation:
        grad_x = permute(g, inverse(dims)),   inverse[dims[k]] = k.
    Saves: dims.
    """

    __slots__ = ("dims",)

    def vjp(self, g, out, x):
        return [g.permute(*inverse_permutation(self.dims))]


def _moved_order(ndim: int, source: tuple, destination: tuple) -> tuple:
    """The permutation that puts dim source[i] at position destination[i], the rest in order."""
    order = [d for d in range(ndim) if d not in source]
    for dest, src in sorted(zip(destination, source)):
        order.insert(dest, src)
    return tuple(order)


@op(jax=lambda x, source, destination: jnp.moveaxis(x, source, destination),
    numpy=lambda x, source, destination: np.moveaxis(x, source, destination))
def movedim(x: Tensor, source: Dims, destination: Dims):
    """Move dim ``source`` to position ``destination`` (or several: tuples of equal length); the
    other dims keep their order."""
    n = len(x.shape)
    if source is None or destination is None:
        raise ShapeError(f"movedim: got source={source}, destination={destination}; expected an int or a tuple of "
                         f"ints for each")
    if len(source) != len(destination):
        raise ShapeError(f"movedim: got source {source} and destination {destination}; expected as many "
                         f"destinations as sources")
    src = tuple(normalize_dim("movedim", d, n) for d in source)
    dst = tuple(normalize_dim("movedim", d, n) for d in destination)
    for name, given, dims in (("source", source, src), ("destination", destination, dst)):
        if len(set(dims)) != len(dims):
            raise ShapeError(f"movedim: got {name} {given} for a tensor of rank {n}; expected each dim at most once")
    order = _moved_order(n, src, dst)
    return tuple(x.shape[d] for d in order), x.dtype, {"source": src, "destination": dst}


@movedim.rule
class MovedimOp(Operation):
    """out = x with dim source[i] moved to position destination[i] (a permutation of the dims).

    Derivation: a permutation moves every element once; its adjoint moves each back, so the dims
    go from where they went to where they came from:
        grad_x = movedim(g, destination, source).
    Saves: source, destination.
    """

    __slots__ = ("source", "destination")

    def vjp(self, g, out, x):
        return [g.movedim(self.destination, self.source)]


# -- flip, repeat, pad -------------------------------------------------------------------------------------
@op(jax=lambda x, dims: jnp.flip(x, dims), numpy=lambda x, dims: np.flip(x, dims).copy())
def flip(x: Tensor, dims: Dims):
    """Reverse the order of the elements along ``dims`` (one dim, a tuple, or None for all)."""
    return x.shape, x.dtype, {"dims": normalize_dims("flip", dims, len(x.shape))}


@flip.rule
class FlipOp(Operation):
    """out[..., i, ...] = x[..., n-1-i, ...]  along each dim of ``dims``.

    Derivation: a flip is a permutation that is its own inverse, so
        grad_x = flip(g, dims).
    Saves: dims.
    """

    __slots__ = ("dims",)

    def vjp(self, g, out, x):
        return [g.flip(self.dims)]


@op(jax=lambda x, reps: jnp.tile(x, reps), numpy=lambda x, reps: np.tile(x, reps))
def repeat(x: Tensor, *reps: Ints):
    """Tile x: ``reps[i]`` copies along dim i (NumPy's ``tile``): with fewer reps than dims the
    leading dims get 1, with more, x gets leading dims of size 1."""
    for r in reps:
        if r < 0:
            raise ShapeError(f"repeat: got reps {reps}; expected non-negative counts")
    n = len(x.shape)
    reps = (1,) * (n - len(reps)) + reps
    shape = (1,) * (len(reps) - n) + tuple(x.shape)
    return tuple(s * r for s, r in zip(shape, reps)), x.dtype, {"reps": reps}


@repeat.rule
class RepeatOp(Operation):
    """out = x tiled reps[i] times along each dim i (x first given leading size-1 dims to match).

    Derivation: out[..., c·s + j, ...] = x[..., j, ...] for each copy c < r of a dim of size s, so
    x_j is copied r times and receives the sum of the copies' g. Split each dim of g into
    (copy, position) — shape (r₀, s₀, r₁, s₁, ...) — and sum over the copies:
        grad_x = reshape(Σ_{c₀, c₁, ...} reshape(g, (r₀, s₀, r₁, s₁, ...)), x.shape).
    Saves: reps.
    """

    __slots__ = ("reps",)
    fuse = True

    def vjp(self, g, out, x):
        shape = (1,) * (len(self.reps) - x.ndim) + tuple(x.shape)
        copies = g.reshape(tuple(n for pair in zip(self.reps, shape) for n in pair))
        return [copies.sum_dim(tuple(range(0, 2 * len(shape), 2)), False).reshape(x.shape)]


def _pad_jax(x, widths, value):
    return lax.pad(x, jnp.asarray(value).astype(x.dtype), [(before, after, 0) for before, after in widths])


def _pad_numpy(x, widths, value):
    if x.ndim == 0:                       # nothing to pad (and np.pad cannot take zero widths)
        return x.copy()
    return np.pad(x, widths, constant_values=np.asarray(value).astype(x.dtype))


@op(jax=_pad_jax, numpy=_pad_numpy)
def pad(x: Tensor, widths: Widths, value: Scalar = 0.0):
    """Add ``value`` around x: ``widths`` is NumPy's ``((before, after), ...)`` per dim, or one pair
    (or one int) for every dim; widths are non-negative."""
    n = len(x.shape)
    if len(widths) == 1:
        widths = widths * n
    elif len(widths) != n:
        raise ShapeError(f"pad: got {len(widths)} (before, after) pairs {widths} for a tensor of rank {n}; expected "
                         f"one pair per dim, or one pair for every dim")
    shape = tuple(s + before + after for s, (before, after) in zip(x.shape, widths))
    return shape, x.dtype, {"widths": widths}


@pad.rule
class PadOp(Operation):
    """out = x with ``before`` copies of value in front and ``after`` behind along each dim.

    Derivation: x sits in out as the block starting at the before-widths; the padding is a
    constant and takes no gradient. So x gets that block of g back:
        grad_x = narrow(g, d, before_d, x.shape[d])  along every padded dim d.
    Saves: widths, value.
    """

    __slots__ = ("widths", "value")
    fuse = True

    def vjp(self, g, out, x):
        for d, (before, after) in enumerate(self.widths):
            if before or after:
                g = g.narrow(d, before, x.shape[d])
        return [g]


# -- composites: split, tril, triu -----------------------------------------------------------------------
@composite()
def split(backend, x: Tensor, sizes_or_n: IntOrInts, dim: Dim = 0):
    """Split x along ``dim``: an int n gives n equal pieces (as NumPy's ``split``; n must divide the
    size), a list gives pieces of those sizes (as ``torch.split``; they must add up to the size).
    Unlike ``torch.split``, an int is a count, not a piece size. A list of ``narrow``\\ s."""
    d = normalize_dim("split", dim, len(x.shape))
    size = x.shape[d]
    if isinstance(sizes_or_n, int):
        n = sizes_or_n
        if n < 1:
            raise ShapeError(f"split: got n={n}; expected a positive number of pieces")
        if size % n:
            raise ShapeError(f"split: cannot split dim {dim} of size {size} (shape {tuple(x.shape)}) into {n} equal "
                             f"pieces; expected n to divide {size} (for pieces of unequal sizes pass a list of sizes)")
        sizes = (size // n,) * n
    else:
        sizes = sizes_or_n
        if any(s < 0 for s in sizes) or sum(sizes) != size:
            raise ShapeError(f"split: got sizes {list(sizes)} for dim {dim} of size {size} (shape {tuple(x.shape)}); "
                             f"expected non-negative sizes adding up to {size}")
    pieces, start = [], 0
    for s in sizes:
        pieces.append(backend.narrow(x, d, start, s))
        start += s
    return pieces


def _triangle(backend, x, k: int, name: str):
    """x where the mask of the triangle (over the last two dims) holds, else 0."""
    if len(x.shape) < 2:
        raise ShapeError(f"{name}: got shape {tuple(x.shape)}; expected rank >= 2 (a matrix or a batch of them)")
    rows, cols = x.shape[-2:]
    lower = np.tri(rows, cols, k, dtype=bool)                    # j - i <= k
    keep = lower if name == "tril" else ~np.tri(rows, cols, k - 1, dtype=bool)
    zero = backend.full((), 0, x.dtype)
    zero.requires_grad = False
    return backend.where(backend.from_numpy(keep), x, zero)


@composite()
def tril(backend, x: Tensor, k: Int() = 0):
    """The lower triangle of the last two dims: x[..., i, j] where j - i <= k, else 0 (``k`` > 0
    keeps diagonals above the main one). ``where`` with a constant mask."""
    return _triangle(backend, x, k, "tril")


@composite()
def triu(backend, x: Tensor, k: Int() = 0):
    """The upper triangle of the last two dims: x[..., i, j] where j - i >= k, else 0 (``k`` < 0
    keeps diagonals below the main one). ``where`` with a constant mask."""
    return _triangle(backend, x, k, "triu")
