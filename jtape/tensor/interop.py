"""Getting arrays in and out of jtape without copies where none is needed.

* ``asarray(x, backend=None, dtype=None)``: NumPy arrays, (nested) lists, Python and NumPy
  scalars, jax arrays — concrete or traced — and jtape Tensors become Tensors. A jax array given
  to a JaxBackend is used **as it is** (no host copy; ``jax.device_put`` device to device only
  when it lives on another device), so ``asarray`` works on a GPU without a round trip through
  the host, and inside ``jax.jit`` on tracers.
* DLPack: ``Tensor.__dlpack__`` / ``__dlpack_device__`` hand the tensor's array to
  ``np.from_dlpack``, ``jax.dlpack.from_dlpack`` or ``torch.from_dlpack`` (zero-copy where the
  two sides share a device).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from .dtype import DataType
from .errors import ArgumentError, TapeError
from .raw import RawTensor


def plain_backend(backend: Any) -> Any:
    """The backend that holds the arrays: an AutodiffBackend's inner backend, or ``backend``."""
    inner = getattr(backend, "inner", None)
    return backend if inner is None else inner()


def jax_raw(backend: Any, array: Any, dtype: DataType | str | None, where: str) -> RawTensor:
    """A jax array (or tracer) as a RawTensor of ``backend``, with no host copy when ``backend``
    holds jax arrays (its ``from_jax``); a NumPy-based backend must take the values to the host,
    which a tracer cannot do."""
    kernel = plain_backend(backend)
    from_jax = getattr(kernel, "from_jax", None)
    if from_jax is not None:
        return from_jax(array, dtype)
    if isinstance(array, jax.core.Tracer):
        raise TapeError(f"{where}: got a traced jax array (inside jax.jit) for backend {backend.name()}; expected a "
                        f"JaxBackend (a NumPy-based backend needs concrete values on the host)")
    return backend.from_numpy(np.asarray(array), dtype)


def _python_dtype(x: Any) -> DataType | None:
    """The dtype for plain Python data: float32 for floats, int32 for ints, bool for bools (as
    ``jax.numpy`` does without 64-bit mode), None to keep NumPy's own (arrays, NumPy scalars)."""
    arr = np.asarray(x)
    if arr.dtype == np.float64:
        return DataType.FLOAT32
    if arr.dtype == np.int64:
        return DataType.INT32
    return None


def asarray(x: Any, backend: Any = None, dtype: DataType | str | None = None, *,
            requires_grad: bool = False) -> Any:
    """``x`` as a Tensor on ``backend`` (default: ``jtape.default_backend()``), copying only when needed.

    * a **jax array** on a JaxBackend: used directly (moved device to device if it lives on another
      device); a **tracer** (inside ``jax.jit`` of your code) works too. No host transfer either way.
    * a **Tensor** on the same backend: the tensor itself (or ``t.cast(dtype)``, recorded like any
      cast); on another backend: its values copied over as a new leaf.
    * a **NumPy array** or NumPy scalar keeps its dtype; **Python scalars and (nested) lists** become
      float32 / int32 / bool (as ``jnp.asarray`` without 64-bit mode), unless ``dtype`` is given.

    ``requires_grad`` is False by default — ``asarray`` is how data comes in (as ``np.asarray`` and
    ``torch.as_tensor``), where ``from_numpy`` makes leaves that gradients reach by default. It
    applies to every new tensor made here; a Tensor already on ``backend`` keeps its own flag.
    """
    from .defaults import resolve
    from .tensor import Tensor

    backend = resolve(backend)
    dt = None if dtype is None else DataType.of(dtype)
    if isinstance(x, Tensor):
        if x.backend is backend:
            return x if dt is None or dt is x.dtype else x.cast(dt)
        raw = values_on(x, backend, dt).raw()
    elif isinstance(x, jax.Array):
        raw = jax_raw(backend, x, dt, "asarray")
    elif isinstance(x, (np.ndarray, np.generic)):
        raw = backend.from_numpy(x, dt)
    elif isinstance(x, (bool, int, float, list, tuple)):
        try:
            raw = backend.from_numpy(x, dt or _python_dtype(x))
        except ValueError as e:     # ragged nested lists
            raise ArgumentError(f"asarray: got a {type(x).__name__} NumPy cannot make an array of ({e}); expected "
                                f"a rectangular nested list of numbers") from None
    else:
        raise ArgumentError(f"asarray: got a {type(x).__name__}; expected a NumPy array, a jax array, a Tensor, a "
                            f"(nested) list or a number")
    raw.requires_grad = bool(requires_grad)
    return Tensor(raw, backend)


def _concrete(t: Any, what: str) -> Any:
    data = t.raw().value()
    if isinstance(data, jax.core.Tracer):
        raise TapeError(f"{what}: the tensor of shape {tuple(t.shape)} holds a traced value (inside jtape.jit or "
                        f"jax.jit); expected a concrete tensor")
    return data


def dlpack(t: Any, stream: Any = None, **kwargs: Any) -> Any:
    """``Tensor.__dlpack__``: the DLPack capsule of the tensor's array (jax's or NumPy's own export,
    so what they support — dtypes, devices, ``max_version``/``dl_device``/``copy`` — is what it supports)."""
    data = _concrete(t, "__dlpack__")
    options = {k: v for k, v in kwargs.items() if v is not None}
    if isinstance(data, np.ndarray):
        if stream is not None:
            raise ArgumentError(f"__dlpack__: got stream={stream!r} for a NumPy (host) tensor; expected None")
        return data.__dlpack__(**options)
    return data.__dlpack__(stream=stream, **options)


def dlpack_device(t: Any) -> tuple[Any, int]:
    """``Tensor.__dlpack_device__``: (device type, device id) of the tensor's array."""
    return _concrete(t, "__dlpack_device__").__dlpack_device__()



def values_on(t: Any, backend: Any, dtype: DataType | str | None = None) -> Any:
    """``t``'s values as a new constant leaf on ``backend`` in ``dtype`` (default: its own), off the
    tape: a jax array is cast on its device and never leaves it for a JaxBackend (``Module.to``)."""
    from .tensor import Tensor

    dt = t.dtype if dtype is None else DataType.of(dtype)
    value = t.raw().value()
    if isinstance(value, jax.Array):
        raw = jax_raw(backend, value, dt, "to")
    else:
        raw = backend.from_numpy(np.asarray(value), dt)
    raw.requires_grad = False
    return Tensor(raw, backend)


def is_dtype_like(target: Any) -> bool:
    """Whether ``to(target)`` means a dtype (a DataType, a name, a NumPy dtype or scalar type) rather
    than a backend."""
    return isinstance(target, (DataType, str, np.dtype, type))
