"""``Tensor``: the user-facing wrapper of a ``RawTensor`` and the backend that made it.

Every method forwards to one backend op, so on an ``AutodiffBackend`` every method is recorded
on the tape. Operators map onto the same ops: ``+ - * /`` (with Python scalars on either side),
``@``, unary ``-``, and comparisons, which give bool tensors.
"""

from __future__ import annotations

from numbers import Number
from typing import Any, Sequence

import jax
import numpy as np

from .dtype import DataType
from .errors import BackendError, ShapeError
from .raw import RawTensor
from .shape import Device, Shape


class Tensor:
    """A tensor on a backend. ``t.raw()`` is its RawTensor, ``t.backend`` the backend.

    After ``loss.backward()``, ``t.grad`` holds ∂loss/∂t for every leaf tensor ``t`` (one that
    was not produced by a recorded op); see ``Tensor.backward`` for the accumulation rule.
    """

    __slots__ = ("_raw", "backend", "__weakref__")
    __array_priority__ = 1000  # so `np_array + tensor` calls Tensor.__radd__
    __hash__ = object.__hash__  # `==` builds a bool tensor; identity still keys dicts and sets

    def __init__(self, raw: RawTensor, backend: Any):
        self._raw = raw
        self.backend = backend

    # -- data and metadata ---------------------------------------------------------------------
    def raw(self) -> RawTensor:
        return self._raw

    @property
    def data(self) -> Any:
        """The backend's array (a jax.Array on JaxBackend, an np.ndarray on NumpyBackend)."""
        return self._raw.data

    @property
    def shape(self) -> Shape:
        return self._raw.shape

    @property
    def dtype(self) -> DataType:
        return self._raw.dtype

    @property
    def device(self) -> Device:
        return self._raw.device

    @property
    def ndim(self) -> int:
        return len(self._raw.shape)

    def numpy(self) -> np.ndarray:
        return np.asarray(self.backend.to_numpy(self._raw))

    def item(self) -> float | int | bool:
        if self.shape.size != 1:
            raise ShapeError(f"item: got a tensor of shape {tuple(self.shape)}; expected exactly one element")
        return self.numpy().reshape(()).item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __bool__(self) -> bool:
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        """``Tensor([4.], shape=(1,), dtype=float32, backend=Autodiff(jax))``: values elided past 20
        elements ("traced" inside jax.jit); ``requires_grad=False`` marks a constant."""
        if isinstance(self._raw.data, jax.core.Tracer):
            values = "traced"
        else:
            values = np.array2string(self.numpy(), precision=4, threshold=20, separator=", ", prefix="Tensor(")
        const = "" if self._raw.requires_grad else ", requires_grad=False"
        return (f"Tensor({values}, shape={tuple(self.shape)}, dtype={self.dtype.value}, "
                f"backend={self.backend.name()}{const})")

    # -- gradients -----------------------------------------------------------------------------
    @property
    def grad(self) -> "Tensor | None":
        g = self._raw.grad
        return None if g is None else Tensor(g, self.backend)

    @grad.setter
    def grad(self, value: "Tensor | None") -> None:
        self._raw.grad = None if value is None else value.raw()

    def zero_grad(self) -> None:
        """Forget the gradient accumulated in ``.grad``."""
        self._raw.grad = None

    def backward(self, grad: "Tensor | None" = None, *, retain_graph: bool = False, create_graph: bool = False,
                 trace: Any = None) -> None:
        """Backpropagate from this tensor; see ``jtape.autodiff.tensor_backward``. ``create_graph``
        records the backward pass, so ``.grad`` can be differentiated again. ``trace`` (e.g.
        ``print``) is called with each step of the walk (see ``jtape.autodiff.watch``)."""
        from ..autodiff.engine import tensor_backward
        from ..autodiff.watch import tracing
        with tracing(trace):
            tensor_backward(self, grad, retain_graph=retain_graph, create_graph=create_graph)

    def register_hook(self, fn: Any) -> Any:
        """Call ``fn(grad)`` when this tensor's gradient is complete in a backward walk; ``fn`` may
        return a replacement. Returns a handle whose ``remove()`` takes the hook off again
        (see ``jtape.autodiff.watch.register_hook``)."""
        from ..autodiff.watch import register_hook
        return register_hook(self, fn)

    @property
    def requires_grad(self) -> bool:
        """Whether gradients flow to this tensor (True unless switched off for a constant)."""
        return self._raw.requires_grad

    def requires_grad_(self, flag: bool = True) -> "Tensor":
        """Mark this tensor as needing gradients or not (data: ``x.requires_grad_(False)``); returns self.

        Ops that read only tensors without ``requires_grad`` are not recorded, and rules skip
        the gradients of such inputs (on JaxBackend XLA never computes them)."""
        self._raw.requires_grad = bool(flag)
        return self

    def detach(self) -> "Tensor":
        """The same values as a new constant leaf: no recorded op produced it, no gradient flows to it."""
        raw = RawTensor(self._raw.data, self.shape, self.dtype, self.device)
        raw.requires_grad = False
        return Tensor(raw, self.backend)

    # -- helpers -------------------------------------------------------------------------------
    def _wrap(self, raw: RawTensor) -> "Tensor":
        return Tensor(raw, self.backend)

    def _other(self, other: Any, op: str) -> RawTensor:
        """A Tensor's raw, or a Python/NumPy scalar lifted to a 0-d tensor of this dtype."""
        if isinstance(other, Tensor):
            if other.backend is not self.backend:
                raise BackendError(f"{op}: got tensors from two backends ({self.backend!r} and {other.backend!r}); "
                                   f"expected both on the same backend")
            return other._raw
        if isinstance(other, (Number, np.generic)) or (isinstance(other, np.ndarray) and other.ndim == 0):
            return self.backend.full((), other.item() if hasattr(other, "item") else other, self.dtype)
        raise TypeError(f"{op}: got an operand of type {type(other).__name__}; expected a Tensor or a Python scalar")

    def _arith(self, op: str, other: Any) -> "Tensor":
        if isinstance(other, (Number, np.generic)) and not isinstance(other, bool):
            return self._wrap(getattr(self.backend, op + "_scalar")(self._raw, other))
        return self._wrap(getattr(self.backend, op)(self._raw, self._other(other, op)))

    def _rarith(self, op: str, other: Any) -> "Tensor":
        return self._wrap(getattr(self.backend, op)(self._other(other, op), self._raw))

    # -- arithmetic ----------------------------------------------------------------------------
    def add(self, other: Any) -> "Tensor":
        return self._arith("add", other)

    def sub(self, other: Any) -> "Tensor":
        return self._arith("sub", other)

    def mul(self, other: Any) -> "Tensor":
        return self._arith("mul", other)

    def div(self, other: Any) -> "Tensor":
        return self._arith("div", other)

    def add_scalar(self, s: Any) -> "Tensor":
        return self._wrap(self.backend.add_scalar(self._raw, s))

    def sub_scalar(self, s: Any) -> "Tensor":
        return self._wrap(self.backend.sub_scalar(self._raw, s))

    def mul_scalar(self, s: Any) -> "Tensor":
        return self._wrap(self.backend.mul_scalar(self._raw, s))

    def div_scalar(self, s: Any) -> "Tensor":
        return self._wrap(self.backend.div_scalar(self._raw, s))

    __add__, __sub__, __mul__, __truediv__ = add, sub, mul, div

    def __radd__(self, other: Any) -> "Tensor":
        return self._arith("add", other)

    def __rmul__(self, other: Any) -> "Tensor":
        return self._arith("mul", other)

    def __rsub__(self, other: Any) -> "Tensor":
        return self._rarith("sub", other)

    def __rtruediv__(self, other: Any) -> "Tensor":
        return self._rarith("div", other)

    def __neg__(self) -> "Tensor":
        return self.mul_scalar(-1)

    def __pos__(self) -> "Tensor":
        return self

    def __matmul__(self, other: "Tensor") -> "Tensor":
        return self.matmul(other)

    def __rmatmul__(self, other: "Tensor") -> "Tensor":
        return self._wrap(self.backend.matmul(self._other(other, "matmul"), self._raw))

    # -- unary math and activations --------------------------------------------------------------
    def exp(self) -> "Tensor":
        return self._wrap(self.backend.exp(self._raw))

    def log(self) -> "Tensor":
        return self._wrap(self.backend.log(self._raw))

    def sqrt(self) -> "Tensor":
        return self._wrap(self.backend.sqrt(self._raw))

    def rsqrt(self) -> "Tensor":
        return self._wrap(self.backend.rsqrt(self._raw))

    def sin(self) -> "Tensor":
        return self._wrap(self.backend.sin(self._raw))

    def cos(self) -> "Tensor":
        return self._wrap(self.backend.cos(self._raw))

    def relu(self) -> "Tensor":
        return self._wrap(self.backend.relu(self._raw))

    def sigmoid(self) -> "Tensor":
        return self._wrap(self.backend.sigmoid(self._raw))

    def tanh(self) -> "Tensor":
        return self._wrap(self.backend.tanh(self._raw))

    def silu(self) -> "Tensor":
        return self._wrap(self.backend.silu(self._raw))

    def softmax(self, dim: int = -1) -> "Tensor":
        return self._wrap(self.backend.softmax(self._raw, dim))

    # -- linear algebra, convolution, loss -------------------------------------------------------
    def matmul(self, other: "Tensor") -> "Tensor":
        return self._wrap(self.backend.matmul(self._raw, self._other(other, "matmul")))

    def conv2d(self, kernel: "Tensor", stride: int | tuple = 1, padding: int | tuple = 0) -> "Tensor":
        return self._wrap(self.backend.conv2d(self._raw, self._other(kernel, "conv2d"), stride, padding))

    def max_pool2d(self, kernel_size: int | tuple, stride: int | tuple | None = None) -> "Tensor":
        return self._wrap(self.backend.max_pool2d(self._raw, kernel_size, stride))

    def cross_entropy(self, targets: "Tensor") -> "Tensor":
        return self._wrap(self.backend.cross_entropy(self._raw, self._other(targets, "cross_entropy")))

    # -- reductions --------------------------------------------------------------------------
    def sum(self) -> "Tensor":
        return self._wrap(self.backend.sum(self._raw))

    def sum_dim(self, dim: int, keep_dim: bool = False) -> "Tensor":
        return self._wrap(self.backend.sum_dim(self._raw, dim, keep_dim))

    def mean_dim(self, dim: int, keep_dim: bool = False) -> "Tensor":
        return self._wrap(self.backend.mean_dim(self._raw, dim, keep_dim))

    def mean(self) -> "Tensor":
        """Mean of all elements (``sum`` then ``div_scalar``: two recorded ops)."""
        return self.sum().div_scalar(float(self.shape.size))

    # -- shape -------------------------------------------------------------------------------
    def reshape(self, *shape: Any) -> "Tensor":
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = tuple(shape[0])
        return self._wrap(self.backend.reshape(self._raw, shape))

    def transpose(self, *axes: int) -> "Tensor":
        return self._wrap(self.backend.transpose(self._raw, *axes))

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    def squeeze(self, dim: int) -> "Tensor":
        return self._wrap(self.backend.squeeze(self._raw, dim))

    def unsqueeze(self, dim: int) -> "Tensor":
        return self._wrap(self.backend.unsqueeze(self._raw, dim))

    def expand(self, *shape: Any) -> "Tensor":
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = tuple(shape[0])
        return self._wrap(self.backend.expand(self._raw, shape))

    def cat(self, others: Sequence["Tensor"], dim: int = 0) -> "Tensor":
        return self._wrap(self.backend.cat([self._raw] + [self._other(o, "cat") for o in others], dim))

    def chunk(self, n: int, dim: int = 0) -> list["Tensor"]:
        return [self._wrap(r) for r in self.backend.chunk(self._raw, n, dim)]

    # -- indexing ----------------------------------------------------------------------------
    def gather(self, dim: int, index: "Tensor") -> "Tensor":
        return self._wrap(self.backend.gather(self._raw, dim, self._other(index, "gather")))

    def where(self, condition: "Tensor", other: Any) -> "Tensor":
        """``condition ? self : other`` elementwise (torch's ``x.where(cond, y)``)."""
        return self._wrap(self.backend.where(self._other(condition, "where"), self._raw, self._other(other, "where")))

    # -- comparisons and logic -------------------------------------------------------------------
    def _cmp(self, op: str, other: Any) -> "Tensor":
        return self._wrap(getattr(self.backend, op)(self._raw, self._other(other, op)))

    def equal(self, other: Any) -> "Tensor":
        return self._cmp("equal", other)

    def not_equal(self, other: Any) -> "Tensor":
        return self._cmp("not_equal", other)

    def greater(self, other: Any) -> "Tensor":
        return self._cmp("greater", other)

    def greater_equal(self, other: Any) -> "Tensor":
        return self._cmp("greater_equal", other)

    def lower(self, other: Any) -> "Tensor":
        return self._cmp("lower", other)

    def lower_equal(self, other: Any) -> "Tensor":
        return self._cmp("lower_equal", other)

    def and_(self, other: Any) -> "Tensor":
        return self._cmp("and_", other)

    def or_(self, other: Any) -> "Tensor":
        return self._cmp("or_", other)

    def not_(self) -> "Tensor":
        return self._wrap(self.backend.not_(self._raw))

    __eq__, __ne__ = equal, not_equal  # type: ignore[assignment]
    __gt__, __ge__, __lt__, __le__ = greater, greater_equal, lower, lower_equal
    __and__, __or__, __invert__ = and_, or_, not_

    # -- other -------------------------------------------------------------------------------
    def argmax(self, dim: int) -> "Tensor":
        return self._wrap(self.backend.argmax(self._raw, dim))

    def cast(self, dtype: DataType | str) -> "Tensor":
        return self._wrap(self.backend.cast(self._raw, dtype))

    astype = cast
