"""The tensor model: ``RawTensor``, ``Shape``, ``DataType``, ``Device``, the ``Backend`` protocol,
the user-facing ``Tensor``, the creation functions, and the op registry every layer is built from."""

from .backend import OPS, Backend
from .creation import (
    arange,
    cat,
    from_numpy,
    from_slice,
    full,
    ones,
    ones_like,
    rand,
    randn,
    stack,
    where,
    zeros,
    zeros_like,
)
from .dtype import DataType, bfloat16, bool_, float16, float32, float64, int32, int64, uint8
from .errors import ArgumentError, BackendError, DTypeError, JtapeError, ShapeError, TapeError
from .indexing import IndexOutOfRangeError, einsum
from .interop import asarray
from .raw import HookHandle, RawTensor
from .registry import REGISTRY, OpDef
from .shape import Device, Shape
from .tensor import Tensor

__all__ = [
    "OPS", "REGISTRY", "ArgumentError", "Backend", "BackendError", "DTypeError", "DataType", "Device", "HookHandle",
    "IndexOutOfRangeError", "JtapeError", "OpDef", "RawTensor", "Shape", "ShapeError", "TapeError", "Tensor", "arange",
    "asarray",
    "bfloat16", "bool_", "cat", "einsum", "float16", "float32", "float64", "from_numpy", "from_slice", "full", "int32",
    "int64", "ones", "ones_like", "rand", "randn", "stack", "uint8", "where", "zeros", "zeros_like",
]
