"""What the layers of issue 15 share when they build their state: the backend (the process default
when none is given) and constant-filled parameters and buffers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..tensor.defaults import resolve
from ..tensor.dtype import DataType
from ..tensor.errors import ArgumentError, DTypeError
from ..tensor.tensor import Tensor


def backend_of(backend: Any) -> Any:
    """``backend``, or ``jtape.default_backend()`` when it is None."""
    return resolve(backend)


def filled(shape: Sequence[int], value: float, backend: Any, dtype: DataType | str) -> Tensor:
    """A new tensor of ``shape`` filled with ``value`` on ``backend`` (a leaf: wrap it in a Parameter
    or register it as a buffer)."""
    return Tensor(backend.full(tuple(shape), value, DataType.of(dtype)), backend)


def float_dtype(layer: str, dtype: Any) -> DataType:
    """``dtype`` as a float DataType, or a clear error."""
    try:
        dt = DataType.of(dtype)
    except Exception as exc:  # DataType.of says what it could not read
        raise DTypeError(f"{layer}: got dtype={dtype!r}; expected a float dtype such as 'float32'") from exc
    if not dt.is_float:
        raise DTypeError(f"{layer}: got dtype={dt.value}; expected a float dtype such as 'float32'")
    return dt


def positive_int(layer: str, name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, or a clear error."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ArgumentError(f"{layer}: got {name}={value!r}; expected an int >= {minimum}")
    return value


def number(layer: str, name: str, value: Any) -> float:
    """``value`` as a float, or a clear error (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgumentError(f"{layer}: got {name}={value!r} ({type(value).__name__}); expected a number")
    return float(value)
