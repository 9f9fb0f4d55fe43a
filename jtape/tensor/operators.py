"""The operators and the hand-written methods of ``Tensor`` (the ``TensorOperators`` mixin).

``+ - * /`` take Python numbers on either side (the scalar ops) and Tensors on the same backend
(the broadcasting ops); ``@`` is matmul; comparisons give bool tensors. The methods written here by
hand are those whose Tensor spelling differs from the backend op (``sum``, ``mean``,
``reshape(*shape)``, ``cat(others)``, ``where(condition, other)``); every other op is a generated
method (``jtape.tensor.tensor.install_op_method``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .dtype import DataType
from .errors import BackendError
from .raw import RawTensor

if TYPE_CHECKING:
    from .tensor import Tensor

_SCALARS = (int, float, np.generic)


class TensorOperators:
    """Mixed into ``Tensor``; ``self._new(raw)`` wraps a result, ``self._raw`` is the RawTensor."""

    __slots__ = ()

    # -- operands ------------------------------------------------------------------------------
    def _lift(self, other: Any, op: str) -> RawTensor:
        """A Tensor's raw (same backend), or a number / NumPy scalar / 0-d array as a 0-d constant
        of this tensor's dtype."""
        if isinstance(other, TensorOperators):
            if other.backend is not self.backend:
                raise BackendError(f"{op}: got tensors from two backends ({self.backend.name()} and "
                                   f"{other.backend.name()}); expected both on the same backend")
            return other._raw
        if isinstance(other, bool) or not isinstance(other, _SCALARS + (np.ndarray,)) or np.ndim(other) != 0:
            raise TypeError(f"{op}: got an operand of type {type(other).__name__}; expected a Tensor or a Python "
                            f"number")
        raw = self.backend.full((), other.item() if hasattr(other, "item") else other, self.dtype)
        raw.requires_grad = False
        return raw

    def _wrap(self, out: Any) -> Any:
        """An op's result(s) as Tensor(s) on this backend."""
        return self._new(out) if isinstance(out, RawTensor) else [self._new(r) for r in out]

    def _arith(self, op: str, other: Any) -> "Tensor":
        if other.__class__ in (int, float) or (isinstance(other, np.generic) and not isinstance(other, np.bool_)):
            return self._new(getattr(self.backend, op + "_scalar")(self._raw, other))
        return self._new(getattr(self.backend, op)(self._raw, self._lift(other, op)))

    # -- arithmetic ----------------------------------------------------------------------------
    def add(self, other: Any) -> "Tensor":
        return self._arith("add", other)

    def sub(self, other: Any) -> "Tensor":
        return self._arith("sub", other)

    def mul(self, other: Any) -> "Tensor":
        return self._arith("mul", other)

    def div(self, other: Any) -> "Tensor":
        return self._arith("div", other)

    __add__, __sub__, __mul__, __truediv__ = add, sub, mul, div    # Tensor overrides these with fast paths
    __radd__, __rmul__ = add, mul

    def __rsub__(self, other: Any) -> "Tensor":
        return self._new(self.backend.sub(self._lift(other, "sub"), self._raw))

    def __rtruediv__(self, other: Any) -> "Tensor":
        return self._new(self.backend.div(self._lift(other, "div"), self._raw))

    def __neg__(self) -> "Tensor":
        return self._new(self.backend.mul_scalar(self._raw, -1))

    def __pos__(self) -> "Tensor":
        return self

    def __matmul__(self, other: "Tensor") -> "Tensor":
        return self._new(self.backend.matmul(self._raw, self._lift(other, "matmul")))

    def __rmatmul__(self, other: "Tensor") -> "Tensor":
        return self._new(self.backend.matmul(self._lift(other, "matmul"), self._raw))

    # -- methods whose Tensor spelling differs from the backend op -----------------------------------
    def reshape(self, *shape: Any) -> "Tensor":
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = shape[0]
        return self._new(self.backend.reshape(self._raw, shape))

    def expand(self, *shape: Any) -> "Tensor":
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = shape[0]
        return self._new(self.backend.expand(self._raw, shape))

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    def cat(self, others: Sequence["Tensor"], dim: int = 0) -> "Tensor":
        """This tensor joined with ``others`` along ``dim``."""
        return self._new(self.backend.cat([self._raw] + [self._lift(o, "cat") for o in others], dim))

    def where(self, condition: "Tensor", other: Any) -> "Tensor":
        """``condition ? self : other`` elementwise (torch's ``x.where(cond, y)``)."""
        return self._new(self.backend.where(self._lift(condition, "where"), self._raw, self._lift(other, "where")))

    def astype(self, dtype: DataType | str) -> "Tensor":
        return self.cast(dtype)

    # -- comparisons and logic as operators --------------------------------------------------------
    def __eq__(self, other: Any) -> "Tensor":  # type: ignore[override]
        return self.equal(other)

    def __ne__(self, other: Any) -> "Tensor":  # type: ignore[override]
        return self.not_equal(other)

    def __gt__(self, other: Any) -> "Tensor":
        return self.greater(other)

    def __ge__(self, other: Any) -> "Tensor":
        return self.greater_equal(other)

    def __lt__(self, other: Any) -> "Tensor":
        return self.lower(other)

    def __le__(self, other: Any) -> "Tensor":
        return self.lower_equal(other)

    def __and__(self, other: Any) -> "Tensor":
        return self.and_(other)

    def __or__(self, other: Any) -> "Tensor":
        return self.or_(other)

    def __invert__(self) -> "Tensor":
        return self.not_()
