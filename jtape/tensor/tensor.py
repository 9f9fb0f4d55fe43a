"""``Tensor``: the user-facing wrapper of a ``RawTensor`` and the backend that made it.

Every op of the registry is a ``Tensor`` method of the same name (installed by
``install_op_method`` when the op is registered), so on an ``AutodiffBackend`` every method is
recorded on the tape. The operators and the few hand-written methods are in ``operators.py``.

This module imports nothing of jtape outside ``jtape.tensor``: gradients are the backend's
business (``Tensor.backward`` asks its backend, which a plain backend answers with an error).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
from jax.core import Tracer

from . import interop, serialize
from .dtype import DataType
from .errors import ArgumentError, DTypeError, ShapeError, TapeError
from .indexing import TensorIndexing
from .methods import TensorMethods
from .operators import TensorOperators, _made_by_an_op
from .raw import HookHandle, Pending, RawTensor, check_gradient
from .shape import Device, Shape


class Tensor(TensorOperators, TensorMethods, TensorIndexing):
    """A tensor on a backend. ``t.raw()`` is its RawTensor, ``t.backend`` the backend.

    After ``loss.backward()``, ``t.grad`` holds ∂loss/∂t for every leaf tensor ``t`` (one that
    was not produced by a recorded op); see ``Tensor.backward`` for the accumulation rule.
    """

    __slots__ = ("_raw", "backend", "__weakref__")
    __array_priority__ = 1000  # NumPy asks __array_ufunc__ (operators.py): `ndarray + t` runs on the tape
    __hash__ = object.__hash__  # `==` builds a bool tensor; identity still keys dicts and sets

    def __init__(self, raw: RawTensor, backend: Any):
        self._raw = raw
        self.backend = backend

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _register_pytree(cls)

    # -- data and metadata ---------------------------------------------------------------------
    def raw(self) -> RawTensor:
        return self._raw

    @property
    def data(self) -> Any:
        """The backend's array (a jax.Array on JaxBackend, an np.ndarray on NumpyBackend)."""
        return self._raw.value()

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
        if isinstance(self._raw.data, jax.core.Tracer):
            raise TapeError(f"item: the tensor of shape {tuple(self.shape)} holds a traced value (inside jtape.jit or "
                            f"jax.jit its value does not exist yet); expected a concrete tensor — return it from the "
                            f"step and call .item() on the result")
        return self.numpy().reshape(()).item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def __len__(self) -> int:
        if not self.shape:
            raise ArgumentError("len() of a 0-d tensor")
        return self.shape[0]

    def __bool__(self) -> bool:
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if isinstance(self._raw.data, jax.core.Tracer):
            self.item()  # raises the traced-value error
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
        if value is None:
            self._raw.grad = None
            return
        if not isinstance(value, Tensor):
            raise ArgumentError(f"Tensor.grad: got a {type(value).__name__}; expected a Tensor on the same backend "
                                f"(or None)")
        check_gradient("Tensor.grad", value._raw, self._raw)
        self._raw.grad = value._raw

    def zero_grad(self) -> None:
        """Forget the gradient accumulated in ``.grad``."""
        self._raw.grad = None

    def backward(self, grad: "Tensor | None" = None, *, retain_graph: bool = False, create_graph: bool = False,
                 trace: Any = None) -> None:
        """Backpropagate from this tensor into ``.grad`` of every leaf it depends on (see
        ``jtape.autodiff.tensor_backward``). Without ``grad`` the tensor must have one element
        (as in PyTorch). ``create_graph`` records the backward pass, so ``.grad`` can be
        differentiated again; ``trace`` (e.g. ``print``) is called with each step of the walk."""
        run = getattr(self.backend, "tensor_backward", None)
        if run is None:
            raise TapeError(f"Tensor.backward: backend {self.backend.name()} records no tape; expected an "
                            f"AutodiffBackend (wrap the backend: jtape.autodiff.new(backend))")
        if grad is not None and not isinstance(grad, Tensor):
            raise ArgumentError(f"Tensor.backward: got grad of type {type(grad).__name__}; expected a Tensor on the "
                                f"same backend (tensor.from_numpy(array, backend)) or None")
        run(self, grad, retain_graph=retain_graph, create_graph=create_graph, trace=trace)

    def register_hook(self, fn: Any) -> HookHandle:
        """Call ``fn(grad)`` when this tensor's gradient is complete in a backward walk; ``fn`` may
        return a replacement (same shape, dtype and backend). Returns a handle whose ``remove()``
        takes the hook off again."""
        return self._raw.register_hook(fn)

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

    def assign(self, value: "Tensor | RawTensor") -> None:
        """Swap in new values of the same shape and dtype — a Tensor (its values) or a RawTensor —
        without mutating any array: how an optimizer step, or an update written by hand
        (``p.assign(p - lr * p.grad)`` under ``no_grad``), gives a Parameter new values. What makes
        this tensor itself moves to the new values (``RawTensor.carry_state_to``): the gradient (so
        ``.grad`` still reads the last gradient after a step), hooks, name and ``requires_grad`` (a
        trained parameter keeps getting gradients, a frozen one stays frozen). A value made by an
        op the tape recorded is refused: its history would become this tensor's."""
        old = self._raw
        raw = value._raw if isinstance(value, Tensor) else value
        if not isinstance(raw, RawTensor):
            raise ArgumentError(f"{type(self).__name__}.assign: got a {type(value).__name__}; expected a Tensor or a "
                                f"RawTensor of shape {tuple(old.shape)} and dtype {old.dtype.value}")
        if raw.shape != old.shape:
            raise ShapeError(f"{type(self).__name__}.assign: got shape {tuple(raw.shape)}; expected {tuple(old.shape)}")
        if raw.dtype is not old.dtype:
            raise DTypeError(f"{type(self).__name__}.assign: got dtype {raw.dtype.value}; expected {old.dtype.value}")
        if raw is not old:
            if isinstance(value, Tensor) and raw.requires_grad and raw.dtype.floating and _recorded(raw, self.backend):
                raise TapeError(f"{type(self).__name__}.assign: the new values (shape {tuple(raw.shape)}) were made "
                                f"by an op the tape recorded, so their history would become this tensor's; write the "
                                f"update inside `with jtape.no_grad():` (p.assign(p - lr * p.grad))")
            if isinstance(raw.data, Tracer) and not isinstance(old.data, Tracer):
                raise ArgumentError(f"{type(self).__name__}.assign: this tensor (shape {tuple(old.shape)}) was made "
                                    f"outside the jax trace its new values come from (a jtape.jit step captured it); it "
                                    f"would be left holding a tracer. Expected it in the step's state=[...] (a "
                                    f"Parameter, Buffer or Module)")
            self._swap(raw)

    def _swap(self, raw: RawTensor) -> None:
        """``assign`` without its checks: jtape.jit puts its tracers in and the caller's arrays back."""
        self._raw.carry_state_to(raw)
        self._raw = raw

    def detach(self) -> "Tensor":
        """The same values as a new constant leaf: no recorded op produced it, no gradient flows to it."""
        data = self._raw.data
        if data.__class__ is Pending:            # deferred: a pending copy (one value has one owner)
            raw = data.copy(self._raw)
        else:
            raw = RawTensor(data, self.shape, self.dtype, self.device)
        raw.requires_grad = False
        return Tensor(raw, self.backend)

    # -- interop: DLPack, pickle and deepcopy, dtype and backend moves (interop.py, serialize.py) ----
    def __dlpack__(self, stream: Any = None, **kwargs: Any) -> Any:
        """The DLPack capsule of the values: ``np.from_dlpack(t)``, ``jax.dlpack.from_dlpack(t)``,
        ``torch.from_dlpack(t)`` import the tensor (off the tape)."""
        return interop.dlpack(self, stream, **kwargs)

    def __dlpack_device__(self) -> tuple[Any, int]:
        return interop.dlpack_device(self)

    def __reduce_ex__(self, protocol: Any) -> tuple:
        return serialize.reduce_tensor(self)

    def __deepcopy__(self, memo: dict) -> Tensor:
        return serialize.deepcopy_tensor(self, memo)

    def __copy__(self) -> Tensor:
        """A shallow copy: a new tensor object on the same RawTensor (values, grad and flags shared)."""
        return serialize.shallow_copy(self)

    def to(self, target: Any) -> Tensor:
        """``t.to("bfloat16")``: ``cast`` (recorded like any op); ``t.to(backend)``: the values on another
        backend (``tensor.asarray``: a new leaf keeping ``requires_grad``; the tensor itself if on it already)."""
        if interop.is_dtype_like(target):
            return self.cast(target)
        return interop.asarray(self, target, requires_grad=self.requires_grad)

    def set_(self, source: Tensor) -> Tensor:
        """Make this tensor hold ``source``'s RawTensor and backend — dtype, shape and backend may change
        (``Module.to`` recasts Parameters so). Unlike ``assign`` nothing is checked and ``.grad`` is
        dropped (it would not fit); ``requires_grad``, hooks and name stay. Returns self."""
        if not isinstance(source, Tensor):
            raise ArgumentError(f"set_: got a {type(source).__name__}; expected a Tensor")
        raw, old = source.raw(), self._raw
        if raw is not old:
            raw.requires_grad, raw.hooks, raw.name, raw.grad = old.requires_grad, old.hooks, old.name, None
            self._raw, self.backend = raw, source.backend
        return self

    # -- new tensors on the same backend -----------------------------------------------------
    def new_full(self, shape: Sequence[int], value: Any, dtype: DataType | str | None = None) -> "Tensor":
        """A constant of ``shape`` filled with ``value``, on this backend, of this dtype unless given."""
        raw = self.backend.full(shape, value, self.dtype if dtype is None else dtype)
        raw.requires_grad = False
        return Tensor(raw, self.backend)

    def new_zeros(self, shape: Sequence[int], dtype: DataType | str | None = None) -> "Tensor":
        return self.new_full(shape, 0, dtype)

    def new_ones(self, shape: Sequence[int], dtype: DataType | str | None = None) -> "Tensor":
        return self.new_full(shape, 1, dtype)

    def new_tensor(self, values: Any, dtype: DataType | str | None = None) -> "Tensor":
        """A constant holding ``values`` (an array-like) on this backend; its own dtype unless given."""
        raw = self.backend.from_numpy(values, dtype)
        raw.requires_grad = False
        return Tensor(raw, self.backend)

    # -- the arithmetic operators' fast path (everything else: TensorOperators) --------------------
    def __mul__(self, other: Any) -> "Tensor":   # fast path: Tensor ∘ Tensor, one backend
        if other.__class__ is Tensor and other.backend is self.backend:
            return Tensor(self.backend.mul(self._raw, other._raw), self.backend)
        return self._arith("mul", other)

    def __add__(self, other: Any) -> "Tensor":
        if other.__class__ is Tensor and other.backend is self.backend:
            return Tensor(self.backend.add(self._raw, other._raw), self.backend)
        return self._arith("add", other)

    def __sub__(self, other: Any) -> "Tensor":
        if other.__class__ is Tensor and other.backend is self.backend:
            return Tensor(self.backend.sub(self._raw, other._raw), self.backend)
        return self._arith("sub", other)

    def __truediv__(self, other: Any) -> "Tensor":
        if other.__class__ is Tensor and other.backend is self.backend:
            return Tensor(self.backend.div(self._raw, other._raw), self.backend)
        return self._arith("div", other)

    def _new(self, raw: RawTensor) -> "Tensor":
        """A result on this tensor's backend (always a plain Tensor, also for a Parameter)."""
        return Tensor(raw, self.backend)


def _recorded(raw: RawTensor, backend: Any) -> bool:
    """Is ``raw`` the output of an op on ``backend``'s tape (``Tensor.assign`` refuses it)?"""
    tape = getattr(backend, "tape", None)
    return tape is not None and _made_by_an_op(raw, tape())


def install_op_method(op: Any) -> None:
    """Give ``Tensor`` a method for a registered op (unless written by hand above): ``t.softmax(1)``
    calls ``t.backend.softmax(t.raw(), 1)``. The tensor fills the op's first tensor parameter;
    other Tensor arguments are unwrapped, and numbers passed for tensor parameters become 0-d
    constants of the tensor's dtype; PyTorch's ``keepdim=`` is accepted for ``keep_dim``. Results
    come back as Tensors."""
    existing = getattr(Tensor, op.name, None)
    if not op.method or (existing is not None and getattr(existing, "op", None) is None):
        return
    params = op.params
    if not params or not params[0].annotation.tensor:
        return
    name = op.name
    tensor_params = {p.name for p in params if p.annotation.tensor}
    names = {p.name for p in params}
    positions = {i - 1 for i, p in enumerate(params) if p.annotation.tensor and i > 0}

    def unwrap(self: Tensor, value: Any, is_tensor: bool) -> Any:
        if isinstance(value, Tensor) and value.backend is self.backend:     # the usual case, first
            return value._raw
        if isinstance(value, Tensor) or (is_tensor and not isinstance(value, (list, tuple))):
            return self._lift(value, name)
        if isinstance(value, (list, tuple)) and is_tensor:
            return [self._lift(v, name) for v in value]
        return value

    def method(self: Tensor, *args: Any, **kwargs: Any) -> Any:
        if args:
            args = [unwrap(self, a, i in positions) for i, a in enumerate(args)]
        if kwargs:
            if "keepdim" in kwargs and "keep_dim" in names:       # PyTorch's spelling of keep_dim
                kwargs["keep_dim"] = kwargs.pop("keepdim")
            kwargs = {k: unwrap(self, v, k in tensor_params) for k, v in kwargs.items()}
        out = getattr(self.backend, name)(self._raw, *args, **kwargs)
        return Tensor(out, self.backend) if out.__class__ is RawTensor else self._wrap(out)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = op.doc
    method.op = op  # type: ignore[attr-defined]  # marks a generated method (hand-written ones have none)
    setattr(Tensor, name, method)


def _flatten(t: Tensor) -> tuple:
    return (t._raw,), (type(t), t.backend)


def _unflatten(aux: tuple, children: tuple) -> Tensor:
    cls, backend = aux
    t = object.__new__(cls)
    Tensor.__init__(t, children[0], backend)
    return t


def _register_pytree(cls: type) -> None:
    """Tensors (and subclasses, e.g. Parameter) cross jax transformations: the leaf is the
    RawTensor, the backend is static."""
    jax.tree_util.register_pytree_node(cls, _flatten, _unflatten)


_register_pytree(Tensor)
