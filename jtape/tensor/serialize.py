"""``pickle`` and ``copy.deepcopy`` of Tensors (Parameters and Buffers too).

**deepcopy** gives a tensor of the same class on the **same backend object**, with its own
RawTensor holding the same values (jax arrays are immutable, so they are shared; NumPy arrays are
copied), the same ``requires_grad``, name and a copy of ``.grad``. Hooks are not copied (they are
the original's callbacks). Two tensors sharing one RawTensor still share one in the copy.

**pickle** stores the values as a NumPy array (a deferred tensor's pending ops run first), the
dtype, ``requires_grad``, the name, ``.grad`` (values, or None) and the backend. A backend pickles
as what it *is* — its kind and device, e.g. ``Autodiff(jax)`` deferred on ``cpu:0`` — and unpickles
onto an *equal* backend: the process default (``jtape.default_backend()``) when it is equal, else
one backend per kind and device made for unpickling, shared by everything unpickled in the process
(see ``jtape.backends`` and ``jtape.autodiff.backend``). So a model pickled in one process and
loaded in another lands on that process's default backend, and tensors from separate loads work
together. Hooks are not pickled. A tensor holding a tracer (inside ``jax.jit``) cannot be pickled.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from .dtype import DataType
from .errors import TapeError
from .raw import RawTensor


def _host_values(raw: RawTensor, where: str) -> np.ndarray:
    data = raw.value()                     # runs pending (deferred) ops first
    if isinstance(data, jax.core.Tracer):
        raise TapeError(f"{where}: got a tensor of shape {tuple(raw.shape)} holding a traced value (inside jtape.jit "
                        f"or jax.jit); expected a concrete tensor (pickle the state after the step)")
    return np.asarray(data)


def reduce_tensor(t: Any) -> tuple:
    """``Tensor.__reduce_ex__``: how to rebuild ``t`` (see the module docstring)."""
    raw = t.raw()
    grad = None if raw.grad is None else _host_values(raw.grad, "pickle")
    state = (_host_values(raw, "pickle"), raw.dtype.value, raw.requires_grad, raw.name, grad)
    return rebuild_tensor, (type(t), t.backend, state)


def rebuild_tensor(cls: type, backend: Any, state: tuple) -> Any:
    """The other half of ``reduce_tensor``: a ``cls`` on ``backend`` holding the pickled values."""
    values, dtype, requires_grad, name, grad = state
    dt = DataType(dtype)
    raw = backend.from_numpy(values, dt)
    raw.requires_grad, raw.name = requires_grad, name
    if grad is not None:
        raw.grad = backend.from_numpy(grad, dt)
    return _make(cls, raw, backend)


def _make(cls: type, raw: RawTensor, backend: Any) -> Any:
    from .tensor import Tensor
    t = object.__new__(cls)
    Tensor.__init__(t, raw, backend)           # not cls.__init__: a Parameter's checks already held
    return t


def _copy_raw(raw: RawTensor, memo: dict) -> RawTensor:
    found = memo.get(id(raw))
    if found is not None:
        return found
    data = raw.value()
    if isinstance(data, np.ndarray):
        data = np.array(data, copy=True)
    new = RawTensor(data, raw.shape, raw.dtype, raw.device)
    new.requires_grad, new.name = raw.requires_grad, raw.name
    if raw.grad is not None:
        new.grad = _copy_raw(raw.grad, memo)
    memo[id(raw)] = new
    memo.setdefault(id(memo), []).append(raw)    # as copy.deepcopy does: keeps id(raw) unique
    return new


def deepcopy_tensor(t: Any, memo: dict) -> Any:
    """``Tensor.__deepcopy__``: see the module docstring."""
    return _make(type(t), _copy_raw(t.raw(), memo), t.backend)


def shallow_copy(t: Any) -> Any:
    """``Tensor.__copy__``: another tensor object of the same class on the same RawTensor and backend."""
    return _make(type(t), t.raw(), t.backend)
