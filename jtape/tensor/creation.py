"""Creating tensors: ``from_slice`` (Born's ``FromSlice``), ``from_numpy``, ``zeros``, ``ones``,
``full``, ``arange``, ``randn`` and ``rand``.

Each takes the backend the tensor will live on (default: ``jtape.default_backend()``); on an
``AutodiffBackend`` the new tensor is a leaf that gradients can reach. ``randn`` and ``rand``
draw with ``jax.random`` (``jtape.tensor.random``).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np

from . import random
from .args import ShapeArg
from .defaults import resolve
from .dtype import DataType
from .errors import ArgumentError, DTypeError, ShapeError
from .shape import Shape
from .tensor import Tensor


def from_slice(values: Sequence[Any], shape: Sequence[int], backend: Any = None, dtype: DataType | str = "float32",
               *, requires_grad: bool = True) -> Tensor:
    """A tensor of ``shape`` holding the flat ``values`` in row-major order (float32 by default)."""
    shp = Shape(ShapeArg.normalize("from_slice", "shape", shape))
    arr = np.asarray(values, dtype=DataType.of(dtype).numpy)
    if arr.size != shp.size:
        raise ShapeError(f"from_slice: got {arr.size} values for shape {tuple(shp)}; expected {shp.size}")
    backend = resolve(backend)
    return Tensor(backend.from_numpy(arr.reshape(shp), dtype), backend).requires_grad_(requires_grad)


def from_numpy(array: Any, backend: Any = None, dtype: DataType | str | None = None, *,
               requires_grad: bool = True) -> Tensor:
    """A copy of a NumPy array (or anything ``np.asarray`` takes) on ``backend``; keeps its dtype
    unless ``dtype`` is given. Pass ``requires_grad=False`` for data: no gradient is computed for it."""
    backend = resolve(backend)
    return Tensor(backend.from_numpy(array, dtype), backend).requires_grad_(requires_grad)


def full(shape: Sequence[int], value: Any, backend: Any = None, dtype: DataType | str = "float32") -> Tensor:
    """A tensor of ``shape`` filled with ``value`` (the backend defaults to ``jtape.default_backend()``)."""
    backend = resolve(backend)
    return Tensor(backend.full(shape, value, dtype), backend)


def zeros(shape: Sequence[int], backend: Any = None, dtype: DataType | str = "float32") -> Tensor:
    return full(shape, 0, backend, dtype)


def ones(shape: Sequence[int], backend: Any = None, dtype: DataType | str = "float32") -> Tensor:
    return full(shape, 1, backend, dtype)


def zeros_like(t: Tensor) -> Tensor:
    return zeros(t.shape, t.backend, t.dtype)


def ones_like(t: Tensor) -> Tensor:
    return ones(t.shape, t.backend, t.dtype)


def arange(start: float, stop: float | None = None, step: float = 1, *, backend: Any = None,
           dtype: DataType | str | None = None) -> Tensor:
    """Evenly spaced values in ``[start, stop)`` (``arange(n, backend=b)`` gives 0..n-1).
    int32 when all arguments are ints, else float32, unless ``dtype`` is given."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        dtype = "int32" if all(isinstance(v, int) for v in (start, stop, step)) else "float32"
    return from_numpy(np.arange(start, stop, step), backend, dtype)


def _random(kind: str, shape: Sequence[int], backend: Any, seed: int | None, key: Any,
            dtype: DataType | str) -> Tensor:
    shp = tuple(Shape(ShapeArg.normalize(kind, "shape", shape)))
    dt = DataType.of(dtype)
    if not dt.is_float:
        raise DTypeError(f"{kind}: got dtype {dt.value}; expected a float dtype")
    k = random.key(seed, key)
    draw = jax.random.normal if kind == "randn" else jax.random.uniform
    backend = resolve(backend)
    raw = random.on_backend(draw(k, shp, random.draw_dtype(dt)), backend, dt)
    raw.requires_grad = True
    return Tensor(raw, backend)


def randn(shape: Sequence[int], backend: Any = None, *, seed: int | None = None, key: Any = None,
          dtype: DataType | str = "float32") -> Tensor:
    """Standard-normal samples drawn with ``jax.random`` from ``key``, ``PRNGKey(seed)``, or the next
    key of the process default generator (``jtape.random``). The backend defaults to
    ``jtape.default_backend()``; the values are the same on every backend."""
    return _random("randn", shape, backend, seed, key, dtype)


def rand(shape: Sequence[int], backend: Any = None, *, seed: int | None = None, key: Any = None,
         dtype: DataType | str = "float32") -> Tensor:
    """Uniform samples in [0, 1), drawn as ``randn`` draws (``key``, ``seed``, or the process default)."""
    return _random("rand", shape, backend, seed, key, dtype)


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Concatenate tensors along ``dim``."""
    if not tensors:
        raise ShapeError("cat: got no tensors; expected at least one")
    return tensors[0].cat(list(tensors[1:]), dim)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Stack tensors of one shape along a new dim ``dim``."""
    if not tensors:
        raise ShapeError("stack: got no tensors; expected at least one")
    return tensors[0].stack(list(tensors[1:]), dim)


def where(condition: Tensor, x: Any, y: Any) -> Tensor:
    """``condition ? x : y`` elementwise, with broadcasting."""
    if not isinstance(x, Tensor):
        if not isinstance(y, Tensor):
            raise ArgumentError("where: expected x or y to be a Tensor")
        return Tensor(y.backend.where(condition.raw(), y._other(x, "where"), y.raw()), y.backend)
    return x.where(condition, y)
