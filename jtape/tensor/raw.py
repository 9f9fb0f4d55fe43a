"""``RawTensor``: the raw data holder that backends and the tape pass around."""

from __future__ import annotations

import itertools
from typing import Any, Callable

import jax
import numpy as np

from .dtype import DataType
from .errors import ArgumentError, BackendError, DTypeError, ShapeError, TapeError
from .shape import Device, Shape

_hook_keys = itertools.count()


class _Hooks:
    """Whether any tensor was ever given a hook: until then a backward walk need not look for them."""

    ever = False


HOOKS = _Hooks()


class RawTensor:
    """A backend's array with its shape, dtype and device.

    ``data`` is whatever the backend computes with (a ``jax.Array`` — or a tracer inside
    ``jax.jit`` — for JaxBackend, an ``np.ndarray`` for NumpyBackend). A RawTensor is hashed and
    compared by *identity*, so it can key the gradient map: two tensors with equal values are
    still two different tensors. Besides its values it holds its own state for the tape:

    * ``grad``: the gradient that ``Tensor.backward()`` left here;
    * ``requires_grad`` (default True): whether gradients flow to this tensor — data and other
      constants opt out (``Tensor.requires_grad_(False)``), and then the tape neither records ops
      that only read such tensors nor computes their gradients;
    * ``hooks`` (None, or key -> fn) and ``name`` (a label for tables, drawings and traces);
    * ``released``: True once a ``Tensor.backward`` cleared the tape holding the op that produced
      this tensor — its history is gone, and a gradient reaching it would silently stop there.

    RawTensor is a JAX pytree (its leaf is ``data``; shape, dtype and device are static), so it
    can cross ``jax.jit`` boundaries.
    """

    __slots__ = ("data", "shape", "dtype", "device", "grad", "requires_grad", "hooks", "name", "released",
                 "__weakref__")

    def __init__(self, data: Any, shape: Shape, dtype: DataType, device: Device):
        self.data = data
        self.shape = shape
        self.dtype = dtype
        self.device = device
        self.grad: RawTensor | None = None
        self.requires_grad = True
        self.hooks: dict[int, Callable] | None = None
        self.name: str | None = None
        self.released = False

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def value(self) -> Any:
        """``data``, computed first if the tensor's op is still pending (deferred eager mode)."""
        data = self.data
        return data.value() if data.__class__ is Pending else data

    def register_hook(self, fn: Callable) -> "HookHandle":
        """Call ``fn(grad)`` with this tensor's gradient once it is complete in a backward walk;
        ``fn`` returns None to only look, or a replacement gradient (see ``jtape.autodiff.observers``)."""
        if not callable(fn):
            raise ArgumentError(f"register_hook: got {type(fn).__name__}; expected a callable fn(grad) -> None or a "
                            f"gradient")
        if not self.dtype.is_float:
            raise DTypeError(f"register_hook: got a tensor of dtype {self.dtype.value}; expected a float tensor "
                             f"(no gradient reaches integer or bool tensors)")
        if self.hooks is None:
            self.hooks = {}
        HOOKS.ever = True
        key = next(_hook_keys)
        self.hooks[key] = fn
        return HookHandle(self.hooks, key)

    def carry_state_to(self, new: "RawTensor") -> None:
        """Hand this tensor's gradient, hooks, name and ``requires_grad`` to ``new`` — for code that
        swaps the RawTensor behind a Tensor (an optimizer step gives a Parameter new values), so they
        keep applying."""
        new.grad, new.hooks, new.name, new.requires_grad = self.grad, self.hooks, self.name, self.requires_grad

    def __repr__(self) -> str:
        return f"RawTensor(shape={tuple(self.shape)}, dtype={self.dtype.value}, device={self.device.value})"


class Pending(tuple):
    """The value of a tensor whose op was recorded but has not run yet (deferred eager mode, see
    ``jtape.autodiff.deferred``): reading it (``RawTensor.value()``, NumPy's ``__array__``, jax's
    ``__jax_array__``) runs the pending ops first. It is the pair (weakref to the program, weakref
    to its own tensor): the program holds the pending op and that op's inputs, which hold their
    Pending values, so both are held weakly and nothing makes a reference cycle (a dropped backend
    runs what is still pending first). A tuple, so making one runs no Python code: it is made for
    every deferred op."""

    __slots__ = ()

    def value(self) -> Any:
        program, owner = self[0](), self[1]()
        if program is not None:
            program.flush()
        if owner is None or owner.data is self:
            raise TapeError("a deferred tensor's value was asked for, but its pending op did not run: a flush drops "
                            "a pending op whose result only the recorded ops held (e.g. read through an Operation kept "
                            "from a tape that backward() then released). Expected the tensor itself to be held — or "
                            "autodiff.new(JaxBackend(), defer=False), where every op runs when called")
        return owner.data

    def copy(self, owner: "RawTensor") -> "RawTensor":
        """A new RawTensor with ``owner``'s value, itself pending in the same program (``detach``).
        Sharing this Pending instead would leave the copy without a value: the program sets the
        value of the one tensor its op made."""
        program = self[0]()
        if program is None:
            return RawTensor(owner.value(), owner.shape, owner.dtype, owner.device)
        return program.copy(owner)

    def belongs_to(self, program: Any) -> bool:
        """Is this value pending in ``program``?"""
        return self[0]() is program

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = np.asarray(self.value())
        return a if dtype is None else a.astype(dtype)

    def __jax_array__(self) -> Any:
        return self.value()

    def __repr__(self) -> str:
        return "Pending()"


class HookHandle:
    """Returned by ``register_hook``; ``remove()`` takes the hook off again. It holds the hook table
    itself, which moves with a Parameter's values (``carry_state_to``), so removing still works
    after optimizer steps."""

    def __init__(self, hooks: dict, key: int):
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)


def check_gradient(where: str, g: Any, x: RawTensor) -> None:
    """A gradient for ``x`` must be a RawTensor of exactly ``x``'s shape and dtype, from ``x``'s
    backend and device. The one check for rule results, hook results and preset ``.grad``s."""
    if not isinstance(g, RawTensor):
        raise TapeError(f"{where}: got a gradient of type {type(g).__name__}; expected a RawTensor or None")
    if g.shape != x.shape:
        raise ShapeError(f"{where}: got a gradient of shape {tuple(g.shape)}; expected the tensor's shape "
                         f"{tuple(x.shape)}")
    if g.dtype is not x.dtype:
        raise DTypeError(f"{where}: got a gradient of dtype {g.dtype.value}; expected the tensor's dtype "
                         f"{x.dtype.value}")
    if g.device is not x.device or (type(g.data) is np.ndarray) is not (type(x.data) is np.ndarray):
        raise BackendError(f"{where}: got a gradient holding {type(g.data).__name__} on {g.device.value}; expected one "
                           f"from the tensor's backend ({type(x.data).__name__} on {x.device.value})")


def _flatten(t: RawTensor):
    return (t.value(),), (t.shape, t.dtype, t.device, t.requires_grad)


def _unflatten(aux, children) -> RawTensor:
    shape, dtype, device, requires_grad = aux
    t = RawTensor(children[0], shape, dtype, device)
    t.requires_grad = requires_grad
    return t


jax.tree_util.register_pytree_node(RawTensor, _flatten, _unflatten)
