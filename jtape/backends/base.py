"""``KernelBackend``: a backend made of the registry's kernels.

Every op in ``jtape.tensor.registry`` becomes a method here (``subscribe`` installs it). A call
does three things, in this order:

1. binds and checks the arguments with the op's check (``OpDef.check``): a clear error before any
   kernel runs — the same error on every backend — and the normalised statics;
2. runs the op's kernel for this backend's ``kind`` on the raw arrays (``execute``);
3. wraps the result in a ``RawTensor``.

A concrete backend (``JaxBackend``, ``NumpyBackend``) says which kernels it runs and how
(``kind``, ``_compile``), and provides creation (``full``, ``from_numpy``) and ``to_numpy``.
Composite ops (written with other ops) become methods too, calling this backend's own ops.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np

from ..tensor.args import ShapeArg
from ..tensor.dtype import DataType
from ..tensor.errors import BackendError, ShapeError
from ..tensor.raw import Pending, RawTensor
from ..tensor.registry import NotARawTensor, OpDef, subscribe
from ..tensor.shape import Device, Shape

_ndarray = np.ndarray
_MAX_RANGES = 256     # index arrays whose range a backend remembers (see _remember_range)


class KernelBackend:
    """Base class of the concrete backends: checks arguments, runs kernels, wraps results."""

    kind: str = ""                # which kernels of each op this backend runs ("jax", "numpy")
    _device: Device = Device.CPU
    _numpy_data: bool = False     # True where the arrays are np.ndarray (NumpyBackend)

    def __init__(self) -> None:
        self._kernels: dict[str, Callable] = {}
        self._collectors: list[list] = []
        self._ranges: dict[int, tuple] = {}     # id(index array) -> (weakref, min, max): see _remember_range

    # -- info and creation -----------------------------------------------------------------
    def name(self) -> str:
        raise NotImplementedError

    def spec(self) -> tuple:
        """What this backend is, as pickle stores it: ``(kind,)`` (JaxBackend adds platform and id)."""
        return (self.kind,)

    def __reduce__(self) -> tuple:
        """Pickled as its ``spec()``, unpickled onto an equal backend (``jtape.backends.restore``)."""
        from .restore import restore
        return restore, (self.spec(),)

    def __deepcopy__(self, memo: dict) -> KernelBackend:
        return self          # a service, not state: copies of tensors and models share it

    def __copy__(self) -> KernelBackend:
        return self

    def device(self) -> Device:
        return self._device

    def from_numpy(self, array: Any, dtype: DataType | str | None = None) -> RawTensor:
        """Copy an array-like (NumPy array, list, scalar, jax array) onto this backend."""
        arr = np.asarray(array)
        dt = DataType.of(arr.dtype if dtype is None else dtype)
        self._check_dtype_available(dt)
        return RawTensor(self._from_numpy(arr.astype(dt.numpy, copy=False)), Shape(arr.shape), dt, self._device)

    def full(self, shape: Sequence[int], value: float | int | bool, dtype: DataType | str = "float32") -> RawTensor:
        """A new tensor of ``shape`` filled with ``value``."""
        dt = DataType.of(dtype)
        self._check_dtype_available(dt)
        shp = Shape(ShapeArg.normalize("full", "shape", shape))
        return RawTensor(self._full(tuple(shp), value, dt.numpy), shp, dt, self._device)

    def to_numpy(self, x: RawTensor) -> np.ndarray:
        """The tensor's values as a NumPy array (a host copy for device backends)."""
        return np.asarray(x.data)

    def _check_dtype_available(self, dtype: DataType) -> None:
        """Backends that cannot hold some dtype raise here (JaxBackend: 64-bit without x64)."""

    # -- running an op -----------------------------------------------------------------------
    def execute(self, op: OpDef, inputs: list, statics: dict, shape: Shape, dtype: DataType) -> RawTensor:
        """Run ``op``'s kernel on checked inputs (the second half of every op method; an
        AutodiffBackend calls it directly, having checked the call itself)."""
        kernel = self._kernels.get(op.name)
        if kernel is None:
            kernel = self._kernels[op.name] = self._compile(op)
        numpy_data, device = self._numpy_data, self._device
        arrays = []
        for x in inputs:
            if x.__class__ is tuple:
                for t in x:
                    if (t.value().__class__ is _ndarray) is not numpy_data or t.device is not device:
                        raise _mixed(op.name, t, self)
                arrays.append([t.data for t in x])
            else:
                data = x.data
                if data.__class__ is Pending:       # a deferred tensor handed to this backend directly
                    data = x.value()
                if (data.__class__ is _ndarray) is not numpy_data or x.device is not device:
                    raise _mixed(op.name, x, self)
                arrays.append(data)
        if op.value_check is not None:
            op.value_check(self, inputs, statics, op.name)
        if dtype.x64:
            self._check_dtype_available(dtype)
        data = kernel(*arrays, **statics)
        if numpy_data:
            data = np.asarray(data).astype(dtype.numpy, copy=False)
        return RawTensor(data, shape, dtype, device)

    def accepts(self, op: str, tensors: Sequence[RawTensor]) -> None:
        """Raise the BackendError an op would raise if ``tensors`` are not this backend's kind of
        array on its device (composite ops check their inputs so, before running other ops)."""
        for t in tensors:
            if (t.data.__class__ is _ndarray) is not self._numpy_data or t.device is not self._device:
                raise _mixed(op, t, self)

    def _compile(self, op: OpDef) -> Callable:
        """This backend's callable for ``op``'s kernel (JaxBackend jits it)."""
        kernel = op.kernels.get(self.kind)
        if kernel is None:
            raise BackendError(f"{op.name}: {self!r} has no {self.kind!r} kernel for this op")
        return kernel

    def check_index_range(self, op: str, what: str, index: RawTensor, size: int, detail: str) -> None:
        """Index *values* must lie in ``[0, size)``; shapes cannot show that, so the values' range
        is computed (``_min_max``) and checked: at once when the op runs by itself (the error comes
        from the line that caused it), and — inside a trace (jtape.jit, a deferred program) — as an
        output of the compiled program, checked after each run. Either way an out-of-range index
        raises; only a user's own ``jax.jit`` of backend ops gets JAX's rule instead."""
        if index.shape.size == 0:
            return
        if self._is_traced(index.data):
            if self._collectors:            # a jtape program is being traced: its output
                low, high = self._min_max(index.data)
                self._collectors[-1].append(IndexCheck(op, what, size, detail, low, high, index.data))
            return                          # a user's own jax.jit of backend ops: JAX's rule applies
        low, high = self.index_range(index.data)
        IndexCheck(op, what, size, detail, low, high).verify(low, high)

    def index_range(self, data: Any) -> tuple[int, int]:
        """The smallest and largest value of a concrete integer array, read back once per array."""
        known = self._ranges.get(id(data))
        if known is not None and known[0]() is data:   # this array's range was read before
            return known[1], known[2]
        low, high = self._min_max(data)
        if self._is_traced(low):        # concrete values captured by a trace: read them on the host
            values = np.asarray(data)
            low, high = values.min(), values.max()
        low, high = int(low), int(high)
        self._remember_range(data, low, high)
        return low, high

    def _remember_range(self, data: Any, low: int, high: int) -> None:
        """Keep an index array's range, so the same targets used every step are read back once (a
        host sync each). Only for arrays that cannot change (jax arrays; a NumPy array can be
        written in place), held weakly — the entry goes with its array — and at most
        ``_MAX_RANGES`` of them."""
        if data.__class__ is _ndarray:
            return
        ranges, key = self._ranges, id(data)

        def forget(ref: Any) -> None:
            if ranges.get(key, (None,))[0] is ref:
                del ranges[key]
        try:
            ref = weakref.ref(data, forget)
        except TypeError:
            return
        if len(ranges) >= _MAX_RANGES:
            ranges.clear()
        ranges[key] = (ref, low, high)

    @contextmanager
    def traced_checks(self) -> Iterator[list]:
        """Collect the index checks of the ops traced inside the block into the list it yields: the
        tracing code (jtape.jit, a deferred program) returns their values from the compiled program
        and verifies them after each run."""
        collected: list = []
        self._collectors.append(collected)
        try:
            yield collected
        finally:
            # by identity: an empty list equals every other empty one (collectors nest)
            del self._collectors[next(i for i, c in enumerate(self._collectors) if c is collected)]

    def _is_traced(self, data: Any) -> bool:
        return False

    def _min_max(self, data: Any) -> tuple[Any, Any]:
        """The smallest and largest value of an integer array (JaxBackend: device arrays or tracers)."""
        return int(np.min(data)), int(np.max(data))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name()!r})"


class IndexCheck(NamedTuple):
    """An op's index values and the range they must lie in: ``low``/``high`` are the values' min and
    max (ints, device arrays, or tracers inside a compiled program)."""

    op: str
    what: str
    size: int
    detail: str
    low: Any
    high: Any
    index: Any = None      # inside a trace: the index array's tracer (jtape.jit checks a step's own inputs before it runs)

    def verify(self, low: int, high: int) -> None:
        if low < 0 or high >= self.size:
            raise ShapeError(f"{self.op}: got {self.what} values in [{low}, {high}]{self.detail}; expected "
                             f"0 <= {self.what} < {self.size}")


def _checked(op: OpDef) -> Callable[..., RawTensor]:
    """The method of a primitive op: bind, check, execute."""
    bind, check = op.bind, op.check

    def method(self: KernelBackend, *args: Any, **kwargs: Any) -> RawTensor:
        try:
            inputs, statics, shape, dtype = check(bind(args, kwargs))
        except NotARawTensor as e:
            raise e.made_by(self) from None
        return self.execute(op, inputs, statics, shape, dtype)
    return op.describe(method, f"{op.name} on this backend's kernel, after its check.")


def _install(op: OpDef) -> None:
    setattr(KernelBackend, op.name, op.composite_method() if op.composite else _checked(op))


subscribe(_install)


def _mixed(op: str, t: Any, backend: KernelBackend) -> BackendError:
    want = "np.ndarray" if backend._numpy_data else "a jax array"
    return BackendError(f"{op}: got a tensor holding {type(t.data).__name__} on {t.device.value}; expected {want} on "
                        f"{backend.device().value}, made by {backend!r} — tensors from two backends or devices do "
                        f"not mix (move one: backend.from_numpy(other.to_numpy(t)))")


def unknown_device(device: Any, detail: str = "") -> BackendError:
    extra = f" ({detail})" if detail else ""
    return BackendError(f"device: got {device!r}{extra}; expected 'cpu', 'gpu', 'tpu' or a jax.Device")
