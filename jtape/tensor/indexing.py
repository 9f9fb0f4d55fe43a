"""``Tensor`` indexing (the ``TensorIndexing`` mixin): ``t[...]`` as ops on the tape, with NumPy's rules.

- Basic indexing — ints (negative count from the end), slices with any step, ``None``, ``...`` —
  is one ``strided_slice`` and, where ints drop dims or ``None`` adds them, one ``reshape``.
- Advanced indexing — integer arrays, lists, int Tensors, bool masks — flattens the indexed dims
  into one and picks from it with ``index_select``, whose rule scatter-adds (so a repeated index
  accumulates its gradients). Several index arrays broadcast together; their dims replace the
  indexed dims where those are adjacent, and go first where a slice (or ``None``) separates them,
  as in NumPy. Ints next to an index array count as 0-d index arrays, as in NumPy.
- A bool mask selects its True positions: its ``nonzero`` positions become index arrays. The
  result's shape depends on the mask's values, so a mask must be concrete: under ``jtape.jit``
  (a traced mask) it raises, naming ``masked_fill`` and ``where``, which keep the shape.

The index is turned into the ops' static arguments (ints and tuples) and index tensors before
anything runs, so a compiled step replays it. ``t[i] = v`` raises: tensors on the tape are not
modified in place (see ``__setitem__``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from .errors import DTypeError, ShapeError

if TYPE_CHECKING:
    from .tensor import Tensor

_INT32_MAX = 2**31 - 1


class IndexOutOfRangeError(ShapeError, IndexError):
    """An index value outside ``[-size, size)`` of its dim (an ``IndexError`` too, as NumPy's)."""


class _Array:
    """An advanced index over one dim: host int64 values (``np.ndarray``) or an int Tensor. ``new``:
    the dim is a new one of size 1 (a 0-d bool mask's)."""

    __slots__ = ("new", "values")

    def __init__(self, values: Any, new: bool = False):
        self.values, self.new = values, new


class TensorIndexing:
    """Mixed into ``Tensor``; ``self._new(raw)`` wraps a result, ``self._raw`` is the RawTensor."""

    __slots__ = ()

    def __getitem__(self, key: Any) -> Tensor:
        """``t[key]`` with NumPy's indexing rules (see the module docstring); recorded on the tape."""
        entries = _expand(self, key if isinstance(key, tuple) else (key,))
        if any(isinstance(e, _Array) for e in entries):
            return _advanced(self, entries)
        return _basic(self, entries)

    def __setitem__(self, key: Any, value: Any) -> None:
        raise TypeError("Tensor does not support item assignment (t[key] = value): a tensor on the tape is never "
                        "changed in place, so its gradient stays correct; expected an out-of-place op instead: "
                        "t.masked_fill(mask, value) puts a value where a bool mask is True, and "
                        "other.where(mask, t) takes other's elements there (mask: a bool tensor of t's shape)")

    def __iter__(self) -> Iterator[Tensor]:
        """The sub-tensors ``t[0], t[1], ...`` along the first dim."""
        for i in range(len(self)):   # type: ignore[arg-type]
            yield self[i]

    def einsum(self, spec: str, *others: Tensor) -> Tensor:
        """``einsum(spec, self, *others)``: this tensor is the first operand."""
        return self._new(self.backend.einsum(spec, self._raw, *[self._lift(o, "einsum") for o in others]))


# -- reading the key -------------------------------------------------------------------------------
def _expand(t: Any, key: tuple) -> list:
    """The key with ``...`` expanded and bool masks turned into index arrays: a list of ``None``,
    ``int``, ``slice`` and ``_Array``, one entry per dim of t (``None`` entries add a dim)."""
    items = [_classify(t, k) for k in key]
    used = sum(_width(k) for k in items)
    if used > t.ndim:
        raise IndexOutOfRangeError(f"getitem: got an index for {used} dims of a tensor of rank {t.ndim} (shape "
                                   f"{tuple(t.shape)}); expected at most {t.ndim}")
    ellipses = [i for i, k in enumerate(items) if k is Ellipsis]      # `is`: == on a Tensor is elementwise
    if len(ellipses) > 1:
        raise ShapeError(f"getitem: got {len(ellipses)} '...' in one index; expected at most one")
    full = slice(None)
    if ellipses:
        at = ellipses[0]
        items[at:at + 1] = [full] * (t.ndim - used)
    else:
        items += [full] * (t.ndim - used)
    out, dim = [], 0
    for k in items:
        if isinstance(k, np.ndarray) or _is_bool_tensor(k):
            out += _mask_positions(t, k, dim)
        else:
            out.append(k)
        dim += _width(k)
    return out


def _width(k: Any) -> int:
    """How many of t's dims an index entry reads."""
    if k is None or k is Ellipsis:
        return 0
    if isinstance(k, np.ndarray) or _is_bool_tensor(k):      # a bool mask reads as many dims as it has
        return k.ndim
    return 1


def _is_bool_tensor(k: Any) -> bool:
    return isinstance(k, TensorIndexing) and k.dtype.is_bool    # type: ignore[attr-defined]


def _classify(t: Any, k: Any) -> Any:
    """One entry of the key: None, Ellipsis, an int, a slice, a bool mask (np.ndarray or bool
    Tensor), or an _Array."""
    if k is None or k is Ellipsis:
        return k
    if isinstance(k, slice):
        for v in (k.start, k.stop, k.step):
            if v is not None and (isinstance(v, bool) or not hasattr(v, "__index__")):
                raise ShapeError(f"getitem: got {k}; expected ints or None as its start, stop and step")
        if k.step is not None and k.step.__index__() == 0:
            raise ShapeError(f"getitem: got {k}; expected a non-zero step")
        return slice(*(None if v is None else v.__index__() for v in (k.start, k.stop, k.step)))
    if isinstance(k, (bool, np.bool_)):
        return np.asarray(bool(k))
    if isinstance(k, (int, np.integer)):
        return int(k)
    if isinstance(k, TensorIndexing):
        raw = t._lift(k, "getitem")
        if raw.dtype.is_bool:
            return k
        if not raw.dtype.is_int:
            raise DTypeError(f"getitem: got an index tensor of dtype {raw.dtype.value}; expected an integer or bool "
                             f"dtype (cast first)")
        return _Array(k)
    if isinstance(k, jax.core.Tracer):
        raise ShapeError("getitem: got a traced jax array as an index; expected an int or bool Tensor on the "
                         "tensor's backend (tensor.from_numpy / the step's arguments)")
    if isinstance(k, (list, tuple, np.ndarray, jax.Array)):
        a = np.asarray(k)
        if a.dtype == np.bool_:
            return a
        if a.size == 0 and a.dtype.kind == "f":       # [] is an empty integer index, as in NumPy
            a = a.astype(np.int64)
        if a.dtype.kind not in "iu":
            raise DTypeError(f"getitem: got an index array of dtype {a.dtype}; expected integers or bools")
        return _Array(a.astype(np.int64))
    raise TypeError(f"getitem: got an index of type {type(k).__name__}; expected an int, slice, None, ..., a list "
                    f"or array of ints or bools, or an int/bool Tensor")


def _mask_positions(t: Any, mask: Any, dim: int) -> list:
    """A bool mask over dims [dim, dim + mask.ndim) as the index arrays of its True positions
    (its ``nonzero``); a 0-d mask adds a dim of size 1 and selects it once (True) or never (False)."""
    if not isinstance(mask, np.ndarray):
        if isinstance(mask.raw().data, jax.core.Tracer):
            raise ShapeError(f"getitem: got a bool mask of shape {tuple(mask.shape)} holding a traced value (inside "
                             f"jtape.jit or jax.jit): the result's shape would depend on the mask's values; expected "
                             f"a concrete mask — to keep the shape, use x.masked_fill(mask, value) or "
                             f"x.where(mask, other)")
        mask = mask.numpy()
    covered = tuple(t.shape[dim:dim + mask.ndim])
    if mask.shape != covered:
        raise IndexOutOfRangeError(f"getitem: got a bool mask of shape {mask.shape} for dims {dim}..{dim + mask.ndim - 1} "
                                   f"of shape {tuple(t.shape)}; expected the mask's shape {covered}")
    if mask.ndim == 0:
        return [_Array(np.zeros(int(mask), np.int64), new=True)]
    return [_Array(p.astype(np.int64)) for p in np.nonzero(mask)]


# -- basic indexing: one strided_slice, one reshape --------------------------------------------------
def _in_range(i: int, size: int, dim: int, shape: tuple) -> int:
    if not -size <= i < size:
        raise IndexOutOfRangeError(f"getitem: got index {i} for dim {dim} of size {size} (shape {shape}); expected "
                                   f"{-size} <= index < {size}")
    return i + size if i < 0 else i


def _basic(t: Any, entries: list) -> Tensor:
    slices, shape, dim = [], [], 0
    for k in entries:
        if k is None:
            shape.append(1)
            continue
        size = t.shape[dim]
        if isinstance(k, int):
            i = _in_range(k, size, dim, tuple(t.shape))
            slices.append((i, i + 1, 1))
        else:
            slices.append((k.start, k.stop, k.step))
            shape.append(len(range(*k.indices(size))))
        dim += 1
    whole = all(s == (None, None, None) for s in slices)
    out = t if whole and tuple(shape) != tuple(t.shape) else t._new(t.backend.strided_slice(t._raw, tuple(slices)))
    return out if tuple(shape) == tuple(out.shape) else out.reshape(tuple(shape))


# -- advanced indexing: flatten the indexed dims, index_select ------------------------------------
def _advanced(t: Any, entries: list) -> Tensor:
    if any(k is None or isinstance(k, _Array) and k.new for k in entries):   # new dims of size 1 first
        shape, dim = [], 0
        for k in entries:
            if k is None or isinstance(k, _Array) and k.new:
                shape.append(1)
            else:
                shape.append(t.shape[dim])
                dim += 1
        t = t.reshape(tuple(shape))
        entries = [slice(None) if k is None else k for k in entries]
    entries = [_Array(np.asarray(k, np.int64)) if isinstance(k, int) else k for k in entries]
    slices = tuple((None, None, None) if isinstance(k, _Array) else (k.start, k.stop, k.step) for k in entries)
    if any(s != (None, None, None) for s in slices):
        t = t._new(t.backend.strided_slice(t._raw, slices))
    dims = [d for d, k in enumerate(entries) if isinstance(k, _Array)]
    flat, batch = _flat_index(t, [entries[d].values for d in dims], dims)
    rest = [n for d, n in enumerate(t.shape) if d not in dims]
    positions = math.prod([t.shape[d] for d in dims])
    if dims == list(range(dims[0], dims[0] + len(dims))):   # adjacent: the index's dims replace them in place
        at = dims[0]
        if len(dims) > 1:
            t = t.reshape(tuple(rest[:at]) + (positions,) + tuple(rest[at:]))
        out = t.index_select(at, flat)
        final = tuple(rest[:at]) + batch + tuple(rest[at:])
    else:                                                   # separated: the index's dims go first
        others = [d for d in range(t.ndim) if d not in dims]
        t = t.transpose(*dims, *others).reshape((positions,) + tuple(rest))
        out = t.index_select(0, flat)
        final = batch + tuple(rest)
    return out if tuple(out.shape) == final else out.reshape(final)


def _flat_index(t: Any, indices: list, dims: list) -> tuple:
    """The positions in the flattened indexed dims (row-major), as a 1-D int32 Tensor, and the
    indices' broadcast shape. Negative values count from the end; out-of-range values raise on
    concrete indices (under tracing they follow jax's rule: an out-of-range read gives NaN)."""
    sizes = [t.shape[d] for d in dims]
    shapes = [tuple(i.shape) for i in indices]
    try:
        batch = tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError(f"getitem: got index arrays of shapes {' and '.join(map(str, shapes))}, which do not "
                         f"broadcast; expected shapes that broadcast together") from None
    if math.prod(sizes) > _INT32_MAX:
        raise ShapeError(f"getitem: the indexed dims {tuple(sizes)} hold more than 2**31 - 1 positions; expected "
                         f"fewer (index fewer dims at once)")
    strides = [math.prod(sizes[j + 1:]) for j in range(len(sizes))]
    negative = [_check_values(t, i, dims[j], sizes[j]) for j, i in enumerate(indices)]
    if all(isinstance(i, np.ndarray) for i in indices):     # host constants: computed here, once
        flat = sum((np.where(i < 0, i + n, i) * s for i, n, s in zip(indices, sizes, strides)), np.zeros((), np.int64))
        flat = np.broadcast_to(flat, batch).reshape(-1).astype(np.int32)
        return t.new_tensor(flat, "int32"), batch
    flat = None
    for i, n, s, neg in zip(indices, sizes, strides, negative):
        if isinstance(i, np.ndarray):
            i = t.new_tensor(np.where(i < 0, i + n, i), "int32")
        elif neg or len(indices) > 1:                        # positions in int32, whatever the index dtype
            i = i if i.dtype.value == "int32" else i.cast("int32")
            i = (i + n).where(i < 0, i) if neg else i        # negative: from the end
        term = i * s if s != 1 else i
        flat = term if flat is None else flat + term
    if tuple(flat.shape) != batch:
        flat = flat.expand(batch)
    return flat.reshape((math.prod(batch),)), batch


def _check_values(t: Any, index: Any, dim: int, size: int) -> bool:
    """Index values lie in [-size, size): read on concrete indices only (never on tracers). Returns
    whether some may be negative (on a tracer: whether its dtype is signed)."""
    if not isinstance(index, np.ndarray):
        if isinstance(index.raw().data, jax.core.Tracer):
            return index.dtype.value != "uint8"
        index = index.numpy()
    if index.size == 0:
        return False
    low, high = int(index.min()), int(index.max())
    if low < -size or high >= size:
        raise IndexOutOfRangeError(f"getitem: got index values in [{low}, {high}] for dim {dim} of size {size} "
                                   f"(shape {tuple(t.shape)}); expected {-size} <= index < {size}")
    return low < 0


def einsum(spec: str, *tensors: Tensor) -> Tensor:
    """``einsum("ij,jk->ik", a, b)``: Einstein summation over Tensors on one backend (the op
    ``einsum``; see its docstring for the spec's rules)."""
    if not tensors:
        raise ShapeError(f"einsum: got spec {spec!r} and no tensors; expected at least one")
    return tensors[0].einsum(spec, *tensors[1:])
