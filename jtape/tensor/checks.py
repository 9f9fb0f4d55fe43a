"""The pieces every op's check is built from: dims, dtypes and broadcasting.

An op's check (its registered function in ``jtape/ops``) looks at shapes and dtypes only — never
at array values — so it works on tracers inside ``jax.jit`` too, and raises the same message on
every backend, before any kernel runs. Each error names the op, what it got and what it expected.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .dtype import DataType
from .errors import DTypeError, ShapeError
from .shape import Shape


# -- dims -------------------------------------------------------------------------------------
def normalize_dim(op: str, dim: int, ndim: int, *, insert: bool = False) -> int:
    """Map a possibly negative ``dim`` into ``[0, ndim)`` (``[0, ndim]`` when ``insert``)."""
    top = ndim + 1 if insert else ndim
    if not -top <= dim < top:
        if top == 0:
            raise ShapeError(f"{op}: got dim={dim} for a 0-d tensor; it has no dims; expected a tensor of rank >= 1")
        raise ShapeError(f"{op}: got dim={dim} for a tensor of rank {ndim}; expected {-top} <= dim <= {top - 1}")
    return dim + top if dim < 0 else dim


def normalize_dims(op: str, dims: tuple | None, ndim: int) -> tuple[int, ...]:
    """None -> every dim; else each dim made non-negative, sorted, without repeats."""
    if dims is None:
        return tuple(range(ndim))
    out = tuple(sorted(normalize_dim(op, d, ndim) for d in dims))
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: got dims {dims} for a tensor of rank {ndim}; expected each dim at most once")
    return out


# -- dtypes -----------------------------------------------------------------------------------
def need_float(op: str, *dtypes: DataType) -> DataType:
    for d in dtypes:
        if not d.is_float:
            raise DTypeError(f"{op}: got dtype {d.value}; expected a float dtype "
                             f"(float32, float64, float16, bfloat16) — cast first")
    return dtypes[0]


def need_numeric(op: str, *dtypes: DataType) -> DataType:
    for d in dtypes:
        if d.is_bool:
            raise DTypeError(f"{op}: got dtype bool; expected a numeric dtype (use and_/or_/not_ for bool, or cast)")
    return dtypes[0]


def need_bool(op: str, *dtypes: DataType) -> DataType:
    for d in dtypes:
        if not d.is_bool:
            raise DTypeError(f"{op}: got dtype {d.value}; expected bool")
    return DataType.BOOL


def need_int(op: str, what: str, dtype: DataType) -> None:
    if not dtype.is_int:
        raise DTypeError(f"{op}: got {what} of dtype {dtype.value}; expected an integer dtype (int32, int64 or uint8)")


def same_dtype(op: str, *dtypes: DataType) -> DataType:
    if any(d is not dtypes[0] for d in dtypes):
        got = ", ".join(d.value for d in dtypes)
        raise DTypeError(f"{op}: got dtypes {got}; expected all inputs to have the same dtype (cast first)")
    return dtypes[0]


# -- shapes ------------------------------------------------------------------------------------
def broadcast_shapes(op: str, *shapes: Sequence[int]) -> Shape:
    """NumPy broadcasting (``np.broadcast_shapes``), with jtape's message when shapes do not broadcast."""
    try:
        return Shape(np.broadcast_shapes(*map(tuple, shapes)))
    except ValueError:
        pass
    got = " and ".join(str(tuple(s)) for s in shapes)
    ndim = max(len(s) for s in shapes)
    for i in range(-ndim, 0):
        sizes = sorted({s[i] for s in shapes if len(s) >= -i} - {1})
        if len(sizes) > 1:
            raise ShapeError(f"{op}: got shapes {got}, which do not broadcast (dim {i} has sizes {sizes}); "
                             f"expected equal sizes or 1 in each trailing dim")
    raise ShapeError(f"{op}: got shapes {got}, which do not broadcast")  # pragma: no cover


def same_shapes(op: str, got: Sequence[int], expected: Sequence[int]) -> None:
    if tuple(got) != tuple(expected):
        raise ShapeError(f"{op}: got shape {tuple(got)}; expected {tuple(expected)}")


def need_rank(op: str, what: str, shape: Sequence[int], rank: int, layout: str = "") -> None:
    if len(shape) != rank:
        layout = f" {layout}" if layout else ""
        raise ShapeError(f"{op}: got {what} shape {tuple(shape)}; expected rank {rank}{layout}")
