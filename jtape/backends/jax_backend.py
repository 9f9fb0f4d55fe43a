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

_COMPILED: dict[tuple, Callable] = {}   # (op name, on CPU) -> jitted kernel, shared by every JaxBackend

# -- compiler options ------------------------------------------------------------------------------
# XLA:CPU hands convolutions to YNNPACK by default, and a program holding them kept 1.4 of 2 cores
# busy. With YNNPACK's fusions off, XLA's own kernels measured faster on every convolution tried
# (0.3-0.9x a kernel) and on whole steps (CNN 0.77-0.87x, CNN-big 0.54x, both cores busy), while
# dots are faster through YNNPACK (an MLP step 1.10x without it). So on CPU a program — a kernel, a
# deferred step, a jtape.jit step — whose jaxpr holds a convolution is compiled without YNNPACK, and
# everything else keeps XLA's defaults (docs/performance.md, ninth pass).
NO_YNN = {"xla_cpu_experimental_ynn_fusion_type": ""}
_OPTION_KNOWN: list = []          # [bool], once probed: does this jaxlib take the option?


def _option_known() -> bool:
    if not _OPTION_KNOWN:
        try:
            one = jax.device_put(np.float32(1), jax.devices("cpu")[0])
            jax.jit(lambda x: x + 1, compiler_options=NO_YNN)(one).block_until_ready()
            _OPTION_KNOWN.append(True)
        except Exception:      # noqa: BLE001 — another jaxlib: XLA's defaults, as before
            _OPTION_KNOWN.append(False)
    return _OPTION_KNOWN[0]


def convolves(jaxpr: Any) -> bool:
    """Does a (closed) jaxpr hold a convolution — in it, or in any jaxpr nested in it (a nested jit,
    a branch of ``lax.platform_dependent``)?"""
    stack = [jaxpr]
    while stack:
        j = stack.pop()
        j = getattr(j, "jaxpr", j)            # a ClosedJaxpr's Jaxpr
        for eqn in j.eqns:
            if eqn.primitive.name == "conv_general_dilated":
                return True
            for value in eqn.params.values():
                for sub in value if isinstance(value, (tuple, list)) else (value,):
                    if hasattr(sub, "eqns") or hasattr(getattr(sub, "jaxpr", None), "eqns"):
                        stack.append(sub)
    return False


class _Kernel:
    """A CPU kernel until it knows whether it convolves: at its first call outside a trace it is
    traced, and — if its jaxpr holds a convolution — jitted again without YNNPACK for calls outside
    a trace (inside one, the program's own options apply: the plain jit). A kernel that does not
    convolve puts the plain jit in its place, in the shared table and the backend's, so its later
    calls go straight there."""

    def __init__(self, op: OpDef, static: list, table: dict):
        self.op, self.table = op, table
        self.plain = jax.jit(op.kernels["jax"], static_argnames=static)
        self.static, self.chosen = static, None

    def __call__(self, *arrays: Any, **statics: Any) -> Any:
        if self.chosen is self.plain:        # does not convolve (another backend's table still holds this)
            return self.plain(*arrays, **statics)
        if any(isinstance(a, jax.core.Tracer) for a in jax.tree_util.tree_leaves(arrays)):
            return self.plain(*arrays, **statics)
        if self.chosen is None:
            if _option_known() and convolves(self.plain.trace(*arrays, **statics).jaxpr):
                self.chosen = jax.jit(self.op.kernels["jax"], static_argnames=self.static, compiler_options=NO_YNN)
            else:
                self.chosen = _COMPILED[(self.op.name, True)] = self.table[self.op.name] = self.plain
        return self.chosen(*arrays, **statics)


def _jitted(op: OpDef, cpu: bool, table: dict) -> Callable:
    fn = _COMPILED.get((op.name, cpu))
    if fn is None:
        static = [n for n in op.static_names if n not in op.dynamic]
        if cpu:
            fn = _COMPILED[(op.name, cpu)] = _Kernel(op, static, table)
            return fn
        fn = _COMPILED[(op.name, cpu)] = jax.jit(op.kernels["jax"], static_argnames=static)
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
        return _jitted(op, self._jax_device.platform == "cpu", self._kernels)

    def compiler_options(self, jaxpr: Any) -> dict | None:
        """The XLA options for a program on this backend with this (closed) jaxpr — None: XLA's
        defaults. On CPU, a program holding a convolution is compiled without YNNPACK (``NO_YNN``)."""
        if self._jax_device.platform != "cpu" or not convolves(jaxpr) or not _option_known():
            return None
        return NO_YNN

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
