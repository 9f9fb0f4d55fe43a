"""``JaxBackend``: every op as a jitted ``jax.numpy`` / ``jax.lax`` kernel.

Each op's ``jax`` kernel (in its family's file under ``jtape/ops``) is compiled with ``jax.jit``
once, on first use; its static arguments (dims, shapes, stride, padding) are ``static_argnames``
and arrive already normalised by the op's check, so a new list object never triggers a
re-compile. Python scalars (``add_scalar(x, 0.5)``) are traced arguments: a new value never
re-compiles either. The kernels only use shapes and dtypes, so the whole backend also runs
inside ``jax.jit`` with tracers in the RawTensors.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..tensor.dtype import DataType
from ..tensor.errors import DTypeError
from ..tensor.raw import RawTensor
from ..tensor.registry import OpDef
from ..tensor.shape import Device, Shape
from .base import KernelBackend, unknown_device

_COMPILED: dict[str, Callable] = {}   # op name -> jitted kernel, shared by every JaxBackend


def _jitted(op: OpDef) -> Callable:
    fn = _COMPILED.get(op.name)
    if fn is None:
        static = [n for n in op.static_names if n not in op.dynamic]
        fn = _COMPILED[op.name] = jax.jit(op.kernels["jax"], static_argnames=static)
    return fn


_full = jax.jit(lambda value, shape, dtype: jnp.full(shape, value, dtype), static_argnames=("shape", "dtype"))


@jax.jit
def _min_max(index):
    i = index.astype(jnp.int64 if index.dtype == jnp.int64 else jnp.int32)
    return jnp.min(i), jnp.max(i)


class JaxBackend(KernelBackend):
    """Runs every op as a jitted ``jax.numpy`` / ``jax.lax`` kernel on one JAX device.

    ``JaxBackend()`` uses JAX's default device (a GPU or TPU when there is one);
    ``JaxBackend("cpu")``, ``"gpu"``, ``"tpu"`` or a ``jax.Device`` picks one.
    """

    kind = "jax"
    jit_compatible = True   # its ops run on tracers, so a caller may trace them under jax.jit

    def __init__(self, device: str | Any | None = None):
        super().__init__()
        if device is None:  # local: in a multi-process run jax.devices() also lists other processes' devices
            self._jax_device = jax.local_devices()[0]
        elif isinstance(device, str):
            try:
                self._jax_device = jax.local_devices(backend=device.lower())[0]
            except RuntimeError as e:
                raise unknown_device(device, str(e)) from None
        elif isinstance(device, jax.Device):
            self._jax_device = device
        else:
            raise unknown_device(device)
        self._device = Device.of(self._jax_device.platform)

    def name(self) -> str:
        return "jax"

    def spec(self) -> tuple:
        """``("jax", platform, device id)``: what pickle stores (``jtape.backends.restore``)."""
        return ("jax", self._jax_device.platform, self._jax_device.id)

    def _compile(self, op: OpDef) -> Callable:
        super()._compile(op)       # a clear error if the op has no jax kernel
        return _jitted(op)

    def _check_dtype_available(self, dtype: DataType) -> None:
        if dtype.x64 and not jax.config.jax_enable_x64:
            raise DTypeError(f"JaxBackend: {dtype.value} needs JAX's 64-bit mode, which is off; turn it on "
                             f"with jax.config.update('jax_enable_x64', True) at start-up (or set "
                             f"JAX_ENABLE_X64=1), or use float32/int32")

    def from_numpy(self, array: Any, dtype: DataType | str | None = None) -> RawTensor:
        """An array-like onto this backend's device; a jax array goes through ``from_jax`` (no host copy)."""
        if isinstance(array, jax.Array):
            return self.from_jax(array, dtype)
        return super().from_numpy(array, dtype)

    def from_jax(self, array: Any, dtype: DataType | str | None = None) -> RawTensor:
        """A jax array (or a tracer inside ``jax.jit``) as a RawTensor **without a host copy**: used as it
        is when it lives on this backend's device (or is traced), else moved there device to device
        with ``jax.device_put``; ``dtype`` casts on the device."""
        dt = DataType.of(array.dtype if dtype is None else dtype)
        self._check_dtype_available(dt)
        if not isinstance(array, jax.core.Tracer) and self._jax_device not in array.devices():
            array = jax.device_put(array, self._jax_device)
        if array.dtype != dt.jax:
            array = array.astype(dt.jax)
        return RawTensor(array, Shape(array.shape), dt, self._device)

    def _from_numpy(self, arr: np.ndarray) -> Any:
        # A private host copy first: device_put may share the NumPy buffer (on a CPU) or read it later
        # (the transfer is asynchronous), so a write to the caller's array right after this call
        # could change the tensor. Nobody else holds the copy.
        return jax.device_put(np.array(arr, copy=True), self._jax_device)

    def _full(self, shape: tuple, value: Any, np_dtype: Any) -> Any:
        return jax.device_put(_full(value, shape=shape, dtype=np_dtype), self._jax_device)

    def _is_traced(self, data: Any) -> bool:
        return isinstance(data, jax.core.Tracer)

    def _min_max(self, data: Any) -> tuple[Any, Any]:
        return _min_max(data)      # one fused jitted reduction (tracers inside a compiled program)
