"""``DataType``: the dtypes jtape knows, with their NumPy and JAX spellings."""

from __future__ import annotations

import enum
from typing import Any

import ml_dtypes
import numpy as np

from .errors import DTypeError

_NUMPY_NAMES: dict[str, Any] = {"bfloat16": ml_dtypes.bfloat16, "bool": np.bool_}


class DataType(enum.Enum):
    """A tensor's element type. ``.numpy`` is the NumPy dtype (bfloat16 comes from ml_dtypes,
    the same type JAX uses), so it is also what ``jax.numpy`` accepts."""

    FLOAT32 = "float32"
    FLOAT64 = "float64"
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"
    INT32 = "int32"
    INT64 = "int64"
    UINT8 = "uint8"
    BOOL = "bool"

    # The properties read attributes set once per member below the class: an Enum member's ``in``
    # a tuple of others, or a dict keyed by it, calls ``__eq__``/``__hash__`` in Python (≈0.4 µs,
    # on the path of every op with a scalar).
    @property
    def numpy(self) -> np.dtype:
        return self.np_dtype

    @property
    def jax(self) -> np.dtype:
        """The dtype to hand to ``jax.numpy`` (identical to ``numpy``; named for readability)."""
        return self.np_dtype

    @property
    def is_float(self) -> bool:
        return self.floating

    @property
    def is_int(self) -> bool:
        return self.integer

    @property
    def is_bool(self) -> bool:
        return self is DataType.BOOL

    @property
    def needs_x64(self) -> bool:
        """True for the 64-bit dtypes, which JAX only provides with ``jax_enable_x64`` on."""
        return self.x64

    @property
    def itemsize(self) -> int:
        return self.np_dtype.itemsize

    @property
    def int_range(self) -> tuple[int, int]:
        """``(min, max)`` of an integer dtype (uint8: ``(0, 255)``)."""
        info = np.iinfo(self.np_dtype)
        return int(info.min), int(info.max)

    @property
    def max_finite(self) -> float:
        """The largest finite value of a float dtype (float16: 65504)."""
        return float(ml_dtypes.finfo(self.np_dtype).max)

    def __init__(self, value: str) -> None:
        # the NumPy dtype's hash, computed once: a DataType equals its NumPy dtype (``__eq__``), so
        # the two must hash alike (``{np.dtype("float32"): 1}[jtape.float32]`` finds the entry)
        self._hash = hash(np.dtype(_NUMPY_NAMES.get(value, value)))

    def __eq__(self, other: object) -> bool:
        """``t.dtype == np.float32``, ``== "float32"``, ``== jnp.float32``, ``== np.dtype("float32")``:
        True when ``other`` names this dtype. Between DataTypes it is identity (members are
        singletons), decided before anything else."""
        if other.__class__ is DataType:
            return self is other
        if other is None:
            return False
        try:
            return DataType.of(other) is self
        except (DTypeError, TypeError):
            return False

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return self._hash

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype, under the name NumPy looks for: ``np.dtype(t.dtype)`` and
        ``np.zeros(3, t.dtype)`` take a DataType through it."""
        return self.np_dtype

    def __repr__(self) -> str:
        return f"jtape.{self.value}"

    __str__ = __repr__

    @staticmethod
    def of(value: Any) -> "DataType":
        """Normalise a DataType, a name (``"float32"``), a NumPy dtype or a scalar type."""
        if isinstance(value, DataType):
            return value
        if isinstance(value, str):
            try:
                return DataType(value)
            except ValueError:
                pass
        else:
            try:
                found = _FROM_NUMPY.get(np.dtype(value))
            except TypeError:
                found = None
            if found is not None:
                return found
        raise DTypeError(
            f"dtype: got {value!r}; expected one of {', '.join(d.value for d in DataType)}"
        )


_NUMPY = {
    DataType.FLOAT32: np.dtype(np.float32),
    DataType.FLOAT64: np.dtype(np.float64),
    DataType.FLOAT16: np.dtype(np.float16),
    DataType.BFLOAT16: np.dtype(ml_dtypes.bfloat16),
    DataType.INT32: np.dtype(np.int32),
    DataType.INT64: np.dtype(np.int64),
    DataType.UINT8: np.dtype(np.uint8),
    DataType.BOOL: np.dtype(np.bool_),
}
_FROM_NUMPY = {v: k for k, v in _NUMPY.items()}
_FLOATS = (DataType.FLOAT32, DataType.FLOAT64, DataType.FLOAT16, DataType.BFLOAT16)
for _d in DataType:  # plain attributes, read on every op: what the properties above return
    _d.x64 = _d in (DataType.FLOAT64, DataType.INT64)
    _d.floating = _d in _FLOATS
    _d.integer = _d in (DataType.INT32, DataType.INT64, DataType.UINT8)
    _d.np_dtype = _NUMPY[_d]
    _d.code = _d.value     # the name ("float32") without the Enum's descriptor: deferred programs key on it

float32 = DataType.FLOAT32
float64 = DataType.FLOAT64
float16 = DataType.FLOAT16
bfloat16 = DataType.BFLOAT16
int32 = DataType.INT32
int64 = DataType.INT64
uint8 = DataType.UINT8
bool_ = DataType.BOOL
