"""Argument kinds: what each parameter of an op is, and how a user's value for it is normalised.

An op's signature annotates every parameter with one of these kinds::

    def conv2d(input: Tensor, kernel: Tensor, stride: Pair(min=1) = 1, padding: Pair(min=0) = 0): ...

The kind says what the argument is (for the docs and the Backend protocol) and normalises it once,
before anything else looks at it: ``Pair`` turns ``2`` into ``(2, 2)``, ``Dim`` accepts any integer
(NumPy's too) but not ``True``, ``ShapeArg`` turns ``Shape``/list/int into a tuple. Every op rejects
the same bad value with the same message, and what comes out is plain, hashable and typed the
same way every time, so a cache keyed on it cannot confuse ``1`` with ``True``.
"""

from __future__ import annotations

import math
from typing import Any

from jax.core import Tracer

from .dtype import DataType
from .errors import DTypeError, ShapeError


def as_int(op: str, name: str, value: Any) -> int:
    """A Python int from an int-like value (Python or NumPy integers); bools and floats are refused."""
    if type(value) is int:
        return value
    if not isinstance(value, bool):
        index = getattr(value, "__index__", None)
        if index is not None:
            return index()
    raise ShapeError(f"{op}: got {name}={value!r}; expected an int")


class Kind:
    """Base class of the argument kinds; ``normalize(op, name, value)`` returns the plain value."""

    tensor = False   # True for Tensor and Tensors: the op's inputs, not static arguments
    dynamic = False  # True for Scalar: a traced argument of a compiled kernel, not a static one

    def normalize(self, op: str, name: str, value: Any) -> Any:
        return value

    def __repr__(self) -> str:
        return type(self).__name__


class _Tensor(Kind):
    """One input tensor (a RawTensor on a backend)."""

    tensor = True


class _Tensors(Kind):
    """A sequence of input tensors (``cat``, ``stack``); normalised to a tuple."""

    tensor = True

    def normalize(self, op: str, name: str, value: Any) -> tuple:
        if not isinstance(value, (list, tuple)):
            raise ShapeError(f"{op}: got {name} of type {type(value).__name__}; expected a list of tensors")
        return tuple(list(value))    # always a new tuple: deferred mode counts the references it holds


class Int(Kind):
    """An int, optionally at least ``min``."""

    def __init__(self, min: int | None = None):
        self.min = min

    def normalize(self, op: str, name: str, value: Any) -> int:
        want = "a positive int" if self.min == 1 else "an int" if self.min is None else f"an int >= {self.min}"
        try:
            v = as_int(op, name, value)
        except ShapeError:
            raise ShapeError(f"{op}: got {name}={value!r}; expected {want}") from None
        if self.min is not None and v < self.min:
            raise ShapeError(f"{op}: got {name}={value!r}; expected {want}")
        return v


class _Dim(Kind):
    """A dim index (negative counts from the end; made non-negative once the rank is known)."""

    def normalize(self, op: str, name: str, value: Any) -> int:
        if type(value) is int:
            return value
        try:
            return as_int(op, name, value)
        except ShapeError:
            raise ShapeError(f"{op}: got {name}={value!r}; expected an int") from None


class _Dims(Kind):
    """None (every dim), one dim, or a tuple of dims."""

    def normalize(self, op: str, name: str, value: Any) -> tuple | None:
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            return tuple(as_int(op, name, v) for v in value)
        return (as_int(op, name, value),)


class _Bool(Kind):
    """True or False (not 1 or 0)."""

    def normalize(self, op: str, name: str, value: Any) -> bool:
        if value is True or value is False:
            return value
        if type(value).__name__ == "bool_":  # numpy.bool_
            return bool(value)
        raise ShapeError(f"{op}: got {name}={value!r}; expected True or False")


class Pair(Kind):
    """An int or a pair of ints (stride, padding, kernel size), each at least ``min``; normalised
    to ``(h, w)``. ``optional``: None is allowed and kept (e.g. a stride defaulting to the kernel)."""

    def __init__(self, min: int = 0, optional: bool = False):
        self.min, self.optional = min, optional

    def normalize(self, op: str, name: str, value: Any) -> tuple[int, int] | None:
        if value is None and self.optional:
            return None
        if isinstance(value, (list, tuple)):
            if len(value) != 2 or any(isinstance(v, bool) or not hasattr(v, "__index__") for v in value):
                raise ShapeError(f"{op}: got {name}={value!r}; expected an int or a pair of ints")
            out = (value[0].__index__(), value[1].__index__())
        elif isinstance(value, bool) or not hasattr(value, "__index__"):
            raise ShapeError(f"{op}: got {name}={value!r}; expected an int or a pair of ints")
        else:
            out = (value.__index__(),) * 2
        if min(out) < self.min:
            raise ShapeError(f"{op}: got {name}={value!r}; expected values >= {self.min}")
        return out


class _ShapeArg(Kind):
    """A target shape: a Shape, tuple or list of ints, or one int; normalised to a tuple
    (-1 stays: the op decides what it means)."""

    def normalize(self, op: str, name: str, value: Any) -> tuple:
        if hasattr(value, "tolist") and getattr(value, "ndim", None) == 1:     # a NumPy (or jax) array of sizes
            value = tuple(value.tolist())
        if isinstance(value, (list, tuple)):
            try:
                return tuple(as_int(op, name, d) for d in value)
            except ShapeError:
                pass
        elif not isinstance(value, bool) and hasattr(value, "__index__"):
            return (value.__index__(),)
        raise ShapeError(f"{op}: got {name} {value!r}; expected a sequence of ints")


class _Ints(Kind):
    """A tuple of ints (a permutation, repeat counts, split sizes). As ``*args`` it takes the ints
    one by one or as one sequence: ``transpose(t, 1, 0)`` and ``transpose(t, (1, 0))``."""

    def normalize(self, op: str, name: str, value: Any) -> tuple:
        if not isinstance(value, (list, tuple)):
            value = (value,)
        elif len(value) == 1 and isinstance(value[0], (list, tuple)):
            value = tuple(value[0])
        for v in value:
            if isinstance(v, bool) or not hasattr(v, "__index__"):
                one = {"axes": "axis", "dims": "dim", "reps": "rep", "sizes": "size"}.get(name, name)
                raise ShapeError(f"{op}: got {one} {v!r} in {name} {tuple(value)}; expected ints")
        return tuple(v.__index__() for v in value)


class _DType(Kind):
    """A dtype: a DataType, its name, or a NumPy dtype."""

    def normalize(self, op: str, name: str, value: Any) -> DataType:
        try:
            return DataType.of(value)
        except DTypeError as e:
            raise DTypeError(f"{op}: {e}") from None


class _Scalar(Kind):
    """A Python or NumPy real number (not a bool); a traced argument of compiled kernels, so a new
    value never recompiles. Whether it suits the tensor's dtype is the op's check."""

    dynamic = True

    def normalize(self, op: str, name: str, value: Any) -> int | float:
        t = type(value)
        if t is float or t is int:
            return value
        if isinstance(value, Tracer) and value.ndim == 0 and value.dtype != bool:
            return value      # a traced scalar: an argument of a deferred program (``Operation.concrete``)
        if not isinstance(value, (bool, str)):
            item = getattr(value, "item", None)    # NumPy scalars and 0-d arrays
            if item is not None and getattr(value, "ndim", 0) == 0:
                value = item()
                if type(value) in (int, float):
                    return value
        raise DTypeError(f"{op}: got {name} {value!r} of type {type(value).__name__}; expected an int or float")


class _OptFloat(Kind):
    """A float or None (clamp's bounds)."""

    def normalize(self, op: str, name: str, value: Any) -> float | None:
        if value is None:
            return None
        return float(_Scalar().normalize(op, name, value))


class _Static(Kind):
    """Any hashable value the op checks itself (a string option, an einsum spec)."""

    def normalize(self, op: str, name: str, value: Any) -> Any:
        try:
            hash(value)
        except TypeError:
            raise ShapeError(f"{op}: got {name}={value!r}; expected a hashable value") from None
        return value


class _IntOrInts(Kind):
    """One int, kept an int, or a sequence of ints, made a tuple (``split``: a count or piece sizes)."""

    def normalize(self, op: str, name: str, value: Any) -> int | tuple:
        if isinstance(value, (list, tuple)):
            if all(not isinstance(v, bool) and hasattr(v, "__index__") for v in value):
                return tuple(v.__index__() for v in value)
        elif not isinstance(value, bool) and hasattr(value, "__index__"):
            return value.__index__()
        raise ShapeError(f"{op}: got {name}={value!r}; expected an int or a sequence of ints")


class _Widths(Kind):
    """NumPy's ``pad_width``: ``((before, after), ...)`` per dim, or one ``(before, after)`` pair,
    ``(w,)`` or ``w`` for every dim; each width a non-negative int. Normalised to a tuple of
    ``(before, after)`` pairs — one pair (every dim) or one per dim (the op checks the count)."""

    def normalize(self, op: str, name: str, value: Any) -> tuple:
        def ints(v: Any) -> bool:
            return isinstance(v, (list, tuple)) and all(not isinstance(w, bool) and hasattr(w, "__index__") for w in v)
        if hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0:        # a NumPy array of widths
            value = value.tolist()
        if not isinstance(value, bool) and hasattr(value, "__index__"):
            value = ((value, value),)
        elif ints(value) and len(value) in (1, 2):
            value = ((value[0], value[-1]),)                     # (w,) or (before, after): every dim
        elif not (isinstance(value, (list, tuple)) and all(ints(p) and len(p) in (1, 2) for p in value)):
            raise ShapeError(f"{op}: got {name}={value!r}; expected ((before, after), ...) per dim, one "
                             f"(before, after) pair or one int (NumPy's pad_width)")
        pairs = tuple((p[0].__index__(), p[-1].__index__()) for p in value)
        if any(w < 0 for p in pairs for w in p):
            raise ShapeError(f"{op}: got {name}={value!r}; expected non-negative widths (to cut elements away, "
                             f"use narrow or indexing)")
        return pairs


Tensor = _Tensor()
Tensors = _Tensors()
Dim = _Dim()
Dims = _Dims()
Bool = _Bool()
ShapeArg = _ShapeArg()
Ints = _Ints()
DType = _DType()
Scalar = _Scalar()
OptFloat = _OptFloat()
Static = _Static()
IntOrInts = _IntOrInts()
Widths = _Widths()


def scalar_for(op: str, dtype: DataType, value: int | float) -> int | float:
    """``value`` converted for a tensor of ``dtype``: an int for integer dtypes (it must be integral
    and fit), a float otherwise. Unsigned dtypes also take negatives down to -(max+1): they wrap
    modulo 2**bits, as NumPy and JAX compute uint8 arithmetic. A traced scalar (a rule's saved
    scalar inside a deferred program, whose value was checked when its op was recorded) passes as
    it is for a float tensor; an integer tensor refuses it, as its value could not be checked."""
    if isinstance(value, Tracer):
        if dtype.is_int:
            raise DTypeError(f"{op}: got a traced scalar for a tensor of dtype {dtype.value}; expected a Python int "
                             f"(a traced value's integrality and range cannot be checked)")
        return value
    if dtype.is_int:
        if not math.isfinite(value) or value != int(value):
            raise DTypeError(f"{op}: got scalar {value!r} for a tensor of dtype {dtype.value}; expected an integral "
                             f"value (cast the tensor to float first)")
        v = int(value)
        info = dtype.int_range
        lo = -(info[1] + 1) if info[0] == 0 else info[0]
        if not lo <= v <= info[1]:
            raise DTypeError(f"{op}: got scalar {value!r} for a tensor of dtype {dtype.value}; expected a value in "
                             f"[{lo}, {info[1]}] (cast the tensor to a wider dtype first)")
        return v
    return float(value)
