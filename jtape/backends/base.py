"""``KernelBackend``: the checked front of a backend.

Every public op here does three things, in this order:
1. infers the output's shape and dtype with ``jtape.tensor.checks`` (raising a clear error
   before any kernel runs — the same error on every backend);
2. calls the backend's kernel on the raw arrays (``self._add(a, b)``, ...);
3. wraps the result in a ``RawTensor``.

A concrete backend (``JaxBackend``, ``NumpyBackend``) only writes kernels: functions from arrays
and normalised static arguments to arrays. Static arguments reach the kernels already
normalised — non-negative dims, tuples for shapes, pairs for stride/padding.

Besides the ops of DESIGN.md's table, a backend provides a few *gradient kernels*
(``conv2d_input_grad``, ``conv2d_kernel_grad``, ``max_pool2d_grad``, ``narrow``,
``scatter_add``) that the
hand-derived rules in ``jtape.ops`` call, as Burn's backends do, plus creation (``full``,
``from_numpy``) and ``to_numpy``.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np

from ..tensor import checks
from ..tensor.dtype import DataType
from ..tensor.errors import BackendError, ShapeError
from ..tensor.raw import RawTensor
from ..tensor.shape import Device, Shape


class KernelBackend:
    """Base class of the concrete backends: checks arguments, runs kernels, wraps results."""

    _device: Device = Device.CPU
    _numpy_data: bool = False  # True where the arrays are np.ndarray (NumpyBackend)

    # -- info and creation -----------------------------------------------------------------
    def name(self) -> str:
        raise NotImplementedError

    def device(self) -> Device:
        return self._device

    def _new(self, data: Any, shape: Shape, dtype: DataType) -> RawTensor:
        return RawTensor(data, shape, dtype, self._device)

    def from_numpy(self, array: Any, dtype: DataType | str | None = None) -> RawTensor:
        """Copy an array-like (NumPy array, list, scalar, jax array) onto this backend."""
        arr = np.asarray(array)
        dt = DataType.of(arr.dtype if dtype is None else dtype)
        self._check_dtype_available(dt)
        return self._new(self._from_numpy(arr.astype(dt.numpy, copy=False)), Shape(arr.shape), dt)

    def full(self, shape: Sequence[int], value: float | int | bool, dtype: DataType | str = "float32") -> RawTensor:
        """A new tensor of ``shape`` filled with ``value``."""
        dt = DataType.of(dtype)
        self._check_dtype_available(dt)
        shp = Shape(checks.as_shape_arg("full", shape))
        return self._new(self._full(tuple(shp), value, dt.numpy), shp, dt)

    def to_numpy(self, x: RawTensor) -> np.ndarray:
        """The tensor's values as a NumPy array (a host copy for device backends)."""
        return np.asarray(x.data)

    def run_rule(self, op: Any, g: RawTensor, wanted: tuple | None = None) -> list:
        """Apply ``op``'s backward rule on this backend. ``wanted`` flags the inputs whose gradient
        is needed (JaxBackend compiles fusable rules and lets XLA drop the others)."""
        return op.backward(g, self)

    def _check_dtype_available(self, dtype: DataType) -> None:
        """Backends that cannot hold some dtype raise here (JaxBackend: 64-bit without x64)."""

    def _mine(self, op: str, a: RawTensor, b: RawTensor | None = None) -> None:
        """Inputs must hold this backend's kind of array on its device: a NumPy array handed to
        JaxBackend, a jax array to NumpyBackend, a GPU tensor to a CPU backend raise a BackendError
        instead of being converted silently. ~0.1 µs per op (README, Guarantees)."""
        numpy_data, device = self._numpy_data, self._device
        try:
            if (type(a.data) is _ndarray) is not numpy_data or a.device is not device:
                raise _mixed(op, a, self)
            if b is not None and ((type(b.data) is _ndarray) is not numpy_data or b.device is not device):
                raise _mixed(op, b, self)
        except AttributeError:  # not a tensor at all (a list, an array): say so, not "no attribute"
            raise _mixed(op, b if isinstance(a, RawTensor) else a, self) from None

    def _check_index_values(self, op: str, what: str, index: RawTensor, size: int, detail: str) -> None:
        """Index *values* must lie in ``[0, size)``; shapes cannot show that, so this reads them —
        on concrete arrays only. Under ``jax.jit`` the index is a tracer (its values do not exist
        yet), so the check is skipped and JAX's rule applies: an index in ``[-size, 0)`` counts
        from the end; any other out-of-range index reads NaN in ``gather`` (``cross_entropy``
        gives NaN) and is dropped by ``scatter_add``."""
        if index.shape.size == 0 or isinstance(index.data, jax.core.Tracer):
            return
        if not self._index_in_range(index.data, size):
            values = np.asarray(index.data)
            raise ShapeError(f"{op}: got {what} values in [{values.min()}, {values.max()}]{detail}; "
                             f"expected 0 <= {what} < {size}")

    def _index_in_range(self, index: Any, size: int) -> bool:
        """Kernel: are all of ``index``'s values in ``[0, size)``? (JaxBackend: one jitted reduction.)"""
        return bool(np.asarray(index).min() >= 0) and bool(np.asarray(index).max() < size)

    # -- arithmetic --------------------------------------------------------------------------
    def _binary(self, op: str, a: RawTensor, b: RawTensor, float_only: bool = False) -> RawTensor:
        self._mine(op, a, b)
        shape, dtype = checks.binary_arith(op, a.shape, a.dtype, b.shape, b.dtype, float_only)
        return self._new(getattr(self, "_" + op)(a.data, b.data), shape, dtype)

    def add(self, a: RawTensor, b: RawTensor) -> RawTensor:
        return self._binary("add", a, b)

    def sub(self, a: RawTensor, b: RawTensor) -> RawTensor:
        return self._binary("sub", a, b)

    def mul(self, a: RawTensor, b: RawTensor) -> RawTensor:
        return self._binary("mul", a, b)

    def div(self, a: RawTensor, b: RawTensor) -> RawTensor:
        return self._binary("div", a, b, float_only=True)

    # -- scalar ------------------------------------------------------------------------------
    def _scalar(self, op: str, x: RawTensor, scalar: Any, float_only: bool = False) -> RawTensor:
        self._mine(op, x)
        s = checks.scalar(op, x.dtype, scalar, float_only)
        return self._new(getattr(self, "_" + op)(x.data, s), x.shape, x.dtype)

    def add_scalar(self, x: RawTensor, scalar: Any) -> RawTensor:
        return self._scalar("add_scalar", x, scalar)

    def sub_scalar(self, x: RawTensor, scalar: Any) -> RawTensor:
        return self._scalar("sub_scalar", x, scalar)

    def mul_scalar(self, x: RawTensor, scalar: Any) -> RawTensor:
        return self._scalar("mul_scalar", x, scalar)

    def div_scalar(self, x: RawTensor, scalar: Any) -> RawTensor:
        return self._scalar("div_scalar", x, scalar, float_only=True)

    # -- unary math and activations ------------------------------------------------------------
    def _unary(self, op: str, x: RawTensor) -> RawTensor:
        self._mine(op, x)
        checks.unary_float(op, x.dtype)
        return self._new(getattr(self, "_" + op)(x.data), x.shape, x.dtype)

    def exp(self, x: RawTensor) -> RawTensor:
        return self._unary("exp", x)

    def log(self, x: RawTensor) -> RawTensor:
        return self._unary("log", x)

    def sqrt(self, x: RawTensor) -> RawTensor:
        return self._unary("sqrt", x)

    def rsqrt(self, x: RawTensor) -> RawTensor:
        return self._unary("rsqrt", x)

    def sin(self, x: RawTensor) -> RawTensor:
        return self._unary("sin", x)

    def cos(self, x: RawTensor) -> RawTensor:
        return self._unary("cos", x)

    def relu(self, x: RawTensor) -> RawTensor:
        return self._unary("relu", x)

    def sigmoid(self, x: RawTensor) -> RawTensor:
        return self._unary("sigmoid", x)

    def tanh(self, x: RawTensor) -> RawTensor:
        return self._unary("tanh", x)

    def silu(self, x: RawTensor) -> RawTensor:
        return self._unary("silu", x)

    def softmax(self, x: RawTensor, dim: int = -1) -> RawTensor:
        self._mine("softmax", x)
        d = checks.softmax(x.shape, x.dtype, dim)
        return self._new(self._softmax(x.data, dim=d), x.shape, x.dtype)

    # -- linear algebra, convolution, loss -------------------------------------------------------
    def matmul(self, a: RawTensor, b: RawTensor) -> RawTensor:
        self._mine("matmul", a, b)
        shape, dtype = checks.matmul(a.shape, a.dtype, b.shape, b.dtype)
        return self._new(self._matmul(a.data, b.data), shape, dtype)

    def conv2d(self, input: RawTensor, kernel: RawTensor, stride: int | tuple = 1, padding: int | tuple = 0) -> RawTensor:
        self._mine("conv2d", input, kernel)
        st = checks.pair("conv2d", "stride", stride, minimum=1)
        pd = checks.pair("conv2d", "padding", padding, minimum=0)
        shape, dtype = checks.conv2d(input.shape, input.dtype, kernel.shape, kernel.dtype, st, pd)
        return self._new(self._conv2d(input.data, kernel.data, stride=st, padding=pd), shape, dtype)

    def max_pool2d(self, input: RawTensor, kernel_size: int | tuple, stride: int | tuple | None = None) -> RawTensor:
        self._mine("max_pool2d", input)
        ks = checks.pair("max_pool2d", "kernel_size", kernel_size, minimum=1)
        st = ks if stride is None else checks.pair("max_pool2d", "stride", stride, minimum=1)
        shape, dtype = checks.max_pool2d(input.shape, input.dtype, ks, st)
        return self._new(self._max_pool2d(input.data, kernel_size=ks, stride=st), shape, dtype)

    def cross_entropy(self, logits: RawTensor, targets: RawTensor) -> RawTensor:
        """Mean softmax cross-entropy; target values are checked outside jax.jit (``_check_index_values``)."""
        self._mine("cross_entropy", logits, targets)
        shape, dtype = checks.cross_entropy(logits.shape, logits.dtype, targets.shape, targets.dtype)
        self._check_index_values("cross_entropy", "targets", targets, logits.shape[1],
                                 f" for logits shape {tuple(logits.shape)}")
        return self._new(self._cross_entropy(logits.data, targets.data), shape, dtype)

    # -- reductions --------------------------------------------------------------------------
    def sum(self, x: RawTensor) -> RawTensor:
        self._mine("sum", x)
        shape, dtype = checks.sum_all(x.dtype)
        return self._new(self._sum(x.data), shape, dtype)

    def sum_dim(self, x: RawTensor, dim: int, keep_dim: bool = False) -> RawTensor:
        self._mine("sum_dim", x)
        shape, dtype, d = checks.reduce_dim("sum_dim", x.shape, x.dtype, dim, keep_dim, False)
        return self._new(self._sum_dim(x.data, dim=d, keep_dim=keep_dim), shape, dtype)

    def mean_dim(self, x: RawTensor, dim: int, keep_dim: bool = False) -> RawTensor:
        self._mine("mean_dim", x)
        shape, dtype, d = checks.reduce_dim("mean_dim", x.shape, x.dtype, dim, keep_dim, True)
        return self._new(self._mean_dim(x.data, dim=d, keep_dim=keep_dim), shape, dtype)

    # -- shape -------------------------------------------------------------------------------
    def reshape(self, t: RawTensor, shape: Sequence[int]) -> RawTensor:
        self._mine("reshape", t)
        new = checks.reshape(t.shape, checks.as_shape_arg("reshape", shape))
        return self._new(self._reshape(t.data, shape=tuple(new)), new, t.dtype)

    def transpose(self, t: RawTensor, *axes: int) -> RawTensor:
        if len(axes) == 1 and not isinstance(axes[0], int):
            axes = tuple(axes[0])  # transpose(t, (1, 0)) as well as transpose(t, 1, 0)
        self._mine("transpose", t)
        shape, perm = checks.transpose(t.shape, tuple(axes))
        return self._new(self._transpose(t.data, axes=perm), shape, t.dtype)

    def squeeze(self, x: RawTensor, dim: int) -> RawTensor:
        self._mine("squeeze", x)
        shape, _ = checks.squeeze(x.shape, dim)
        return self._new(self._reshape(x.data, shape=tuple(shape)), shape, x.dtype)

    def unsqueeze(self, x: RawTensor, dim: int) -> RawTensor:
        self._mine("unsqueeze", x)
        shape, _ = checks.unsqueeze(x.shape, dim)
        return self._new(self._reshape(x.data, shape=tuple(shape)), shape, x.dtype)

    def expand(self, x: RawTensor, shape: Sequence[int]) -> RawTensor:
        self._mine("expand", x)
        new = checks.expand(x.shape, checks.as_shape_arg("expand", shape))
        return self._new(self._expand(x.data, shape=tuple(new)), new, x.dtype)

    def cat(self, tensors: Sequence[RawTensor], dim: int = 0) -> RawTensor:
        tensors = list(tensors)
        for t in tensors:
            self._mine("cat", t)
        shape, dtype, d = checks.cat(tuple(t.shape for t in tensors), tuple(t.dtype for t in tensors), dim)
        return self._new(self._cat([t.data for t in tensors], dim=d), shape, dtype)

    def chunk(self, x: RawTensor, n: int, dim: int = 0) -> list[RawTensor]:
        self._mine("chunk", x)
        piece, d = checks.chunk(x.shape, n, dim)
        return [self._new(a, piece, x.dtype) for a in self._chunk(x.data, n=n, dim=d)]

    # -- indexing ----------------------------------------------------------------------------
    def gather(self, x: RawTensor, dim: int, index: RawTensor) -> RawTensor:
        """torch.gather along ``dim``; index values are checked outside jax.jit (``_check_index_values``)."""
        self._mine("gather", x, index)
        shape, d = checks.gather(x.shape, dim, index.shape, index.dtype)
        self._check_index_values("gather", "index", index, x.shape[d], f" for dim {d} of x shape {tuple(x.shape)}")
        return self._new(self._gather(x.data, index.data, dim=d), shape, x.dtype)

    def where(self, condition: RawTensor, x: RawTensor, y: RawTensor) -> RawTensor:
        self._mine("where", condition, x)
        self._mine("where", y)
        shape, dtype = checks.where(condition.shape, condition.dtype, x.shape, x.dtype, y.shape, y.dtype)
        return self._new(self._where(condition.data, x.data, y.data), shape, dtype)

    # -- comparisons and logic -------------------------------------------------------------------
    def _compare(self, op: str, a: RawTensor, b: RawTensor, ordered: bool = True) -> RawTensor:
        self._mine(op, a, b)
        shape, dtype = checks.compare(op, a.shape, a.dtype, b.shape, b.dtype, ordered)
        return self._new(getattr(self, "_" + op)(a.data, b.data), shape, dtype)

    def equal(self, a: RawTensor, other: RawTensor) -> RawTensor:
        return self._compare("equal", a, other, ordered=False)

    def not_equal(self, a: RawTensor, other: RawTensor) -> RawTensor:
        return self._compare("not_equal", a, other, ordered=False)

    def greater(self, a: RawTensor, other: RawTensor) -> RawTensor:
        return self._compare("greater", a, other)

    def greater_equal(self, a: RawTensor, other: RawTensor) -> RawTensor:
        return self._compare("greater_equal", a, other)

    def lower(self, a: RawTensor, other: RawTensor) -> RawTensor:
        return self._compare("lower", a, other)

    def lower_equal(self, a: RawTensor, other: RawTensor) -> RawTensor:
        return self._compare("lower_equal", a, other)

    def and_(self, a: RawTensor, other: RawTensor) -> RawTensor:
        self._mine("and_", a, other)
        shape, dtype = checks.logical("and_", a.shape, a.dtype, other.shape, other.dtype)
        return self._new(self._and(a.data, other.data), shape, dtype)

    def or_(self, a: RawTensor, other: RawTensor) -> RawTensor:
        self._mine("or_", a, other)
        shape, dtype = checks.logical("or_", a.shape, a.dtype, other.shape, other.dtype)
        return self._new(self._or(a.data, other.data), shape, dtype)

    def not_(self, x: RawTensor) -> RawTensor:
        self._mine("not_", x)
        shape, dtype = checks.logical("not_", x.shape, x.dtype)
        return self._new(self._not(x.data), shape, dtype)

    # -- other -------------------------------------------------------------------------------
    def argmax(self, x: RawTensor, dim: int) -> RawTensor:
        self._mine("argmax", x)
        shape, dtype, d = checks.argmax(x.shape, x.dtype, dim)
        return self._new(self._argmax(x.data, dim=d), shape, dtype)

    def cast(self, x: RawTensor, dtype: DataType | str) -> RawTensor:
        self._mine("cast", x)
        dt = checks.cast_target(dtype)
        self._check_dtype_available(dt)
        if dt is x.dtype:  # still a new tensor, so the tape can tell input and output apart
            return self._new(x.data, x.shape, dt)
        return self._new(self._cast(x.data, dtype=dt.numpy), x.shape, dt)

    # -- gradient kernels (called by the backward rules in jtape.ops) ----------------------------
    def conv2d_input_grad(self, g: RawTensor, kernel: RawTensor, input_shape: Sequence[int],
                          stride: int | tuple = 1, padding: int | tuple = 0) -> RawTensor:
        """∂ℒ/∂input of ``conv2d`` given ``g = ∂ℒ/∂out``: a transposed convolution (see Conv2DOp)."""
        self._mine("conv2d_input_grad", g, kernel)
        st = checks.pair("conv2d_input_grad", "stride", stride, minimum=1)
        pd = checks.pair("conv2d_input_grad", "padding", padding, minimum=0)
        shape = Shape(checks.as_shape_arg("conv2d_input_grad", input_shape))
        expected, _ = checks.conv2d(tuple(shape), g.dtype, kernel.shape, kernel.dtype, st, pd)
        checks.same_shapes("conv2d_input_grad (g)", g.shape, expected)
        return self._new(self._conv2d_input_grad(g.data, kernel.data, input_shape=tuple(shape), stride=st, padding=pd),
                         shape, g.dtype)

    def conv2d_kernel_grad(self, input: RawTensor, g: RawTensor, kernel_shape: Sequence[int],
                           stride: int | tuple = 1, padding: int | tuple = 0) -> RawTensor:
        """∂ℒ/∂kernel of ``conv2d`` given ``g = ∂ℒ/∂out``: a correlation of input with g (see Conv2DOp)."""
        self._mine("conv2d_kernel_grad", input, g)
        st = checks.pair("conv2d_kernel_grad", "stride", stride, minimum=1)
        pd = checks.pair("conv2d_kernel_grad", "padding", padding, minimum=0)
        shape = Shape(checks.as_shape_arg("conv2d_kernel_grad", kernel_shape))
        expected, _ = checks.conv2d(input.shape, input.dtype, tuple(shape), g.dtype, st, pd)
        checks.same_shapes("conv2d_kernel_grad (g)", g.shape, expected)
        return self._new(self._conv2d_kernel_grad(input.data, g.data, kernel_shape=tuple(shape), stride=st, padding=pd),
                         shape, g.dtype)

    def max_pool2d_grad(self, input: RawTensor, g: RawTensor, kernel_size: int | tuple,
                        stride: int | tuple | None = None) -> RawTensor:
        """∂ℒ/∂input of ``max_pool2d``: each window's ``g`` routed to the window's (first) max."""
        self._mine("max_pool2d_grad", input, g)
        ks = checks.pair("max_pool2d_grad", "kernel_size", kernel_size, minimum=1)
        st = ks if stride is None else checks.pair("max_pool2d_grad", "stride", stride, minimum=1)
        expected, _ = checks.max_pool2d(input.shape, input.dtype, ks, st)
        checks.same_shapes("max_pool2d_grad (g)", g.shape, expected)
        return self._new(self._max_pool2d_grad(input.data, g.data, kernel_size=ks, stride=st), input.shape, input.dtype)

    def narrow(self, x: RawTensor, dim: int, start: int, length: int) -> RawTensor:
        """The slab ``[start, start + length)`` of ``x`` along ``dim`` (the adjoint piece of cat)."""
        self._mine("narrow", x)
        d = checks.normalize_dim("narrow", dim, len(x.shape))
        if not (0 <= start and 0 <= length and start + length <= x.shape[d]):
            raise ShapeError(f"narrow: got start={start}, length={length} for dim {dim} of size {x.shape[d]} "
                             f"(shape {tuple(x.shape)}); expected 0 <= start <= start + length <= {x.shape[d]}")
        shape = Shape(x.shape[:d] + (length,) + x.shape[d + 1:])
        return self._new(self._narrow(x.data, dim=d, start=start, length=length), shape, x.dtype)

    def scatter_add(self, shape: Sequence[int], dim: int, index: RawTensor, src: RawTensor) -> RawTensor:
        """Zeros of ``shape`` with ``src`` added at ``index`` along ``dim`` (the adjoint of gather)."""
        self._mine("scatter_add", index, src)
        shp = Shape(checks.as_shape_arg("scatter_add", shape))
        out, d = checks.gather(tuple(shp), dim, index.shape, index.dtype)
        self._check_index_values("scatter_add", "index", index, shp[d], f" for dim {d} of shape {tuple(shp)}")
        checks.same_shapes("scatter_add (src)", src.shape, out)
        return self._new(self._scatter_add(index.data, src.data, shape=tuple(shp), dim=d), shp, src.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name()!r})"


_ndarray = np.ndarray


def _mixed(op: str, t: Any, backend: KernelBackend) -> BackendError:
    if not isinstance(t, RawTensor):
        return BackendError(f"{op}: got a {type(t).__name__}; expected a RawTensor made by {backend!r}")
    want = "np.ndarray" if backend._numpy_data else "a jax array"
    return BackendError(f"{op}: got a tensor holding {type(t.data).__name__} on {t.device.value}; expected {want} on "
                        f"{backend.device().value}, made by {backend!r} — tensors from two backends or devices do "
                        f"not mix (move one: backend.from_numpy(other.to_numpy(t)))")


def unknown_device(device: Any, detail: str = "") -> BackendError:
    extra = f" ({detail})" if detail else ""
    return BackendError(f"device: got {device!r}{extra}; expected 'cpu', 'gpu', 'tpu' or a jax.Device")
