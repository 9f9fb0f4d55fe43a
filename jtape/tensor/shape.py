"""``Shape`` (a tuple of non-negative ints) and ``Device`` (where a tensor lives)."""

from __future__ import annotations

import enum
from typing import Iterable, SupportsIndex

from .errors import ShapeError


class Shape(tuple):
    """A tensor shape: a tuple of non-negative ints, e.g. ``Shape((2, 3))``.

    ``Shape`` is a plain tuple subclass, so it hashes, compares and unpacks like a tuple and
    ``Shape((2, 3)) == (2, 3)``.
    """

    __slots__ = ()

    def __new__(cls, dims: Iterable[SupportsIndex] | SupportsIndex = ()) -> "Shape":
        if isinstance(dims, Shape):
            return dims
        if not isinstance(dims, Iterable):
            dims = (dims,)
        try:
            out = tuple(int(d.__index__()) for d in dims)
        except (AttributeError, TypeError):
            raise ShapeError(f"Shape: got {dims!r}; expected a sequence of ints") from None
        if any(d < 0 for d in out):
            raise ShapeError(f"Shape: got {out}; expected non-negative sizes")
        return super().__new__(cls, out)

    @property
    def ndim(self) -> int:
        return len(self)

    @property
    def size(self) -> int:
        n = 1
        for d in self:
            n *= d
        return n

    def __repr__(self) -> str:
        return f"Shape({tuple(self)})"

    def __str__(self) -> str:
        """``(3, 4)``: how error messages and tables print a shape."""
        return str(tuple(self))


class Device(enum.Enum):
    """The kind of device a tensor lives on."""

    CPU = "cpu"
    GPU = "gpu"
    TPU = "tpu"

    def __repr__(self) -> str:
        return f"Device.{self.name}"

    @staticmethod
    def of(platform: str) -> "Device":
        p = platform.lower()
        if p in ("cuda", "rocm", "gpu", "metal"):
            return Device.GPU
        return Device(p)
