"""The tensor model: ``RawTensor``, ``Shape``, ``DataType``, ``Device``, the ``Backend`` protocol,
the user-facing ``Tensor`` and the creation functions."""

from .backend import OPS, OPS_BY_FAMILY, Backend
from .creation import (arange, cat, from_numpy, from_slice, full, ones, ones_like, rand, randn, where, zeros,
                       zeros_like)
from .dtype import DataType, bfloat16, bool_, float16, float32, float64, int32, int64, uint8
from .errors import BackendError, DTypeError, JtapeError, ShapeError, TapeError
from .raw import RawTensor
from .shape import Device, Shape
from .tensor import Tensor

__all__ = [
    "OPS", "OPS_BY_FAMILY", "Backend", "BackendError", "DTypeError", "DataType", "Device", "JtapeError",
    "RawTensor", "Shape", "ShapeError", "TapeError", "Tensor", "arange", "bfloat16", "bool_", "cat", "float16",
    "float32", "float64", "from_numpy", "from_slice", "full", "int32", "int64", "ones", "ones_like", "rand",
    "randn", "uint8", "where", "zeros", "zeros_like",
]
