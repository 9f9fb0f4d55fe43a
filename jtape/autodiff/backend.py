"""``AutodiffBackend``: the decorator that adds a gradient tape to any Backend.

Every op is forwarded to the inner backend; while the tape records, each differentiable op
also appends an ``Operation`` (from ``jtape.ops.OP_CLASSES``) holding its inputs, its output and
what its backward rule needs. The recording ceremony is written once, in ``_recorded`` below,
not once per op. Ops with bool or integer results (comparisons, logic, argmax, integer
arithmetic) pass straight through: no gradient can flow through them. The gradient kernels
(``conv2d_input_grad``, ``scatter_add``, ...) are recorded too (``jtape.ops.GRADIENT_OP_CLASSES``),
so that a backward pass run on this backend (``create_graph=True``) can be differentiated again.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Protocol, runtime_checkable

from ..ops import GRADIENT_OP_CLASSES, OP_CLASSES
from ..ops.shape import ChunkOp
from ..ops.unary import CastOp
from ..tensor.backend import GRADIENT_KERNELS, NON_DIFFERENTIABLE, Backend
from ..tensor.dtype import DataType
from ..tensor.raw import RawTensor
from ..tensor.shape import Device
from .grad_mode import no_grad
from .tape import GradientTape


class AutodiffBackend:
    """Wraps ``inner`` (any Backend) and records differentiable ops on its ``GradientTape``."""

    def __init__(self, inner: Backend, tape: GradientTape | None = None):
        self._inner = inner
        self._tape = GradientTape() if tape is None else tape

    def inner(self) -> Backend:
        """The wrapped backend (ops called on it directly are never recorded)."""
        return self._inner

    def name(self) -> str:
        return f"Autodiff({self._inner.name()})"

    def device(self) -> Device:
        return self._inner.device()

    def tape(self) -> GradientTape:
        return self._tape

    get_tape = tape  # the seed's GetTape, for BackwardCapable

    def no_grad(self, fn: Callable[[], Any] | None = None) -> Any:
        """``backend.no_grad(fn)`` runs fn without recording; ``with backend.no_grad():`` too.
        Only the calling thread stops recording."""
        return no_grad(fn)

    def __repr__(self) -> str:
        return f"AutodiffBackend({self._inner!r}, {self._tape!r})"

    # -- creation and transfer pass through --------------------------------------------------
    def from_numpy(self, array: Any, dtype: DataType | str | None = None) -> RawTensor:
        return self._inner.from_numpy(array, dtype)

    def full(self, shape: Any, value: Any, dtype: DataType | str = "float32") -> RawTensor:
        return self._inner.full(shape, value, dtype)

    def to_numpy(self, x: RawTensor) -> Any:
        return self._inner.to_numpy(x)

    # -- ops that need more than the generic recording -------------------------------------------
    def chunk(self, x: RawTensor, n: int, dim: int = 0) -> list[RawTensor]:
        """Split into n pieces; each piece is recorded as its own ChunkOp."""
        pieces = self._inner.chunk(x, n, dim)
        if x.dtype.is_float and self._tape.is_recording():
            for i, piece in enumerate(pieces):
                if x.requires_grad:
                    self._tape.record(ChunkOp(piece, x, n, dim, i))
                else:
                    piece.requires_grad = False
        return pieces

    def cast(self, x: RawTensor, dtype: DataType | str) -> RawTensor:
        """Convert dtype; recorded only from a float dtype to a float dtype."""
        out = self._inner.cast(x, dtype)
        if x.dtype.is_float and out.dtype.is_float and self._tape.is_recording():
            if x.requires_grad:
                self._tape.record(CastOp(out, x, dtype))
            else:
                out.requires_grad = False
        return out


def _needs_grad(args: tuple) -> bool:
    """Does any float tensor among the op's arguments (cat: in its list) want a gradient?"""
    for a in args:
        if isinstance(a, RawTensor):
            if a.requires_grad and a.dtype.is_float:
                return True
        elif isinstance(a, (list, tuple)) and any(isinstance(t, RawTensor) and t.requires_grad for t in a):
            return True
    return False


def _positional(name: str) -> Callable[[tuple, dict], tuple]:
    """Turn a call's keyword arguments into positional ones, by the Backend protocol's signature,
    so every Operation is built as ``OpClass(out, *args)`` however the op was called."""
    params = [p for p in inspect.signature(getattr(Backend, name)).parameters.values() if p.name != "self"]

    def bind(args: tuple, kwargs: dict) -> tuple:
        if not kwargs:
            return args
        out, rest = list(args), dict(kwargs)
        for p in params[len(args):]:
            if p.kind is inspect.Parameter.VAR_POSITIONAL:
                break
            if p.name in rest:
                out.append(rest.pop(p.name))
            elif p.default is not inspect.Parameter.empty:
                out.append(p.default)
            else:
                raise TypeError(f"{name}() missing required argument {p.name!r}")
        if rest:
            raise TypeError(f"{name}() got unexpected keyword arguments {sorted(rest)}")
        return tuple(out)
    return bind


def _recorded(name: str, op_class: type) -> Callable[..., RawTensor]:
    """The one recording wrapper: forward to the inner op, then record ``op_class(out, *args)``.

    Recorded only while the tape records, for a float result, and when some input wants a
    gradient; otherwise the result is a constant too (``requires_grad`` False)."""
    bind = _positional(name)

    def method(self: AutodiffBackend, *args: Any, **kwargs: Any) -> RawTensor:
        args = bind(args, kwargs)
        out = getattr(self._inner, name)(*args)
        if out.dtype.is_float and self._tape.is_recording():
            if _needs_grad(args):
                self._tape.record(op_class(out, *args))
            else:
                out.requires_grad = False
        return out
    _describe(method, name, f"{name} on the inner backend, recorded as {op_class.__name__} on the tape.")
    return method


def _forwarded(name: str) -> Callable[..., Any]:
    """Ops with no gradient (bool/int results): forwarded, not recorded."""
    def method(self: AutodiffBackend, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._inner, name)(*args, **kwargs)
    _describe(method, name, f"{name} on the inner backend (not recorded: no gradient flows through it).")
    return method


def _describe(method: Callable, name: str, doc: str) -> None:
    method.__name__ = method.__qualname__ = name
    method.__doc__ = doc
    method.__annotations__ = getattr(Backend, name).__annotations__


for _name, _cls in OP_CLASSES.items():
    if _name not in ("chunk", "cast"):
        setattr(AutodiffBackend, _name, _recorded(_name, _cls))
for _name in sorted(NON_DIFFERENTIABLE):
    setattr(AutodiffBackend, _name, _forwarded(_name))
for _name in GRADIENT_KERNELS:  # recorded, for gradients of gradients (jtape.autodiff.higher)
    setattr(AutodiffBackend, _name, _recorded(_name, GRADIENT_OP_CLASSES[_name]))


@runtime_checkable
class BackwardCapable(Backend, Protocol):
    """A Backend with a gradient tape (the seed's BackwardCapable): AutodiffBackend is one."""

    def get_tape(self) -> GradientTape: ...


def new(backend: Backend) -> AutodiffBackend:
    """Wrap ``backend`` with autodiff; the new tape is already recording."""
    ad = AutodiffBackend(backend)
    ad.tape().start_recording()
    return ad
