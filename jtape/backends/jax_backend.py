"""``JaxBackend``: every op as a jitted ``jax.numpy`` / ``jax.lax`` kernel.

Each kernel is a module-level function compiled with ``jax.jit`` once; static arguments (dims,
shapes, stride, padding) are ``static_argnames`` and reach the kernels already normalised to
ints and tuples by ``KernelBackend``, so a new list object never triggers a re-compile.
Python scalars (``add_scalar(x, 0.5)``) are traced arguments: a new value never re-compiles
either. The kernels only use shapes and dtypes, so the whole backend also runs inside
``jax.jit`` with tracers in the RawTensors.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..tensor.dtype import DataType
from ..tensor.errors import DTypeError
from ..tensor.shape import Device
from .base import KernelBackend, unknown_device

_HALF = (jnp.float16, jnp.bfloat16)


def _upcast(x):
    """Half-precision inputs are computed in float32 where accumulation matters."""
    return x.astype(jnp.float32) if x.dtype in _HALF else x


_jit = jax.jit


def _static(*names):
    return partial(jax.jit, static_argnames=names)


# -- elementwise ------------------------------------------------------------------------------
_add, _sub, _mul, _div = _jit(jnp.add), _jit(jnp.subtract), _jit(jnp.multiply), _jit(jnp.divide)
_add_scalar = _jit(lambda x, s: (x + s).astype(x.dtype))
_sub_scalar = _jit(lambda x, s: (x - s).astype(x.dtype))
_mul_scalar = _jit(lambda x, s: (x * s).astype(x.dtype))
_div_scalar = _jit(lambda x, s: (x / s).astype(x.dtype))
_exp, _log, _sqrt, _rsqrt = _jit(jnp.exp), _jit(jnp.log), _jit(jnp.sqrt), _jit(lax.rsqrt)
_sin, _cos, _tanh = _jit(jnp.sin), _jit(jnp.cos), _jit(jnp.tanh)
_relu = _jit(lambda x: jnp.maximum(x, jnp.zeros((), x.dtype)))
_sigmoid, _silu = _jit(jax.nn.sigmoid), _jit(jax.nn.silu)


@_static("dim")
def _softmax(x, dim):
    return jax.nn.softmax(_upcast(x), axis=dim).astype(x.dtype)


# -- comparisons and logic --------------------------------------------------------------------
_equal, _not_equal = _jit(jnp.equal), _jit(jnp.not_equal)
_greater, _greater_equal = _jit(jnp.greater), _jit(jnp.greater_equal)
_lower, _lower_equal = _jit(jnp.less), _jit(jnp.less_equal)
_and, _or, _not = _jit(jnp.logical_and), _jit(jnp.logical_or), _jit(jnp.logical_not)


# -- linear algebra, convolution, pooling, loss ----------------------------------------------
@_jit
def _matmul(a, b):
    return jnp.matmul(a, b, preferred_element_type=jnp.float32 if a.dtype in _HALF else None).astype(a.dtype)


_NCHW = ("NCHW", "OIHW", "NCHW")


@_static("stride", "padding")
def _conv2d(x, k, stride, padding):
    (ph, pw) = padding
    out = lax.conv_general_dilated(_upcast(x), _upcast(k), stride, [(ph, ph), (pw, pw)], dimension_numbers=_NCHW)
    return out.astype(x.dtype)


@_static("input_shape", "stride", "padding")
def _conv2d_input_grad(g, k, input_shape, stride, padding):
    # A transposed convolution: dilate g by the stride, pad it so every kernel tap lands, and
    # correlate with the kernel flipped in space and with in/out channels swapped.
    kh, kw = k.shape[2:]
    oh, ow = g.shape[2:]
    pads = []
    for size, kk, s, p, o in ((input_shape[2], kh, stride[0], padding[0], oh), (input_shape[3], kw, stride[1], padding[1], ow)):
        lo = kk - 1 - p
        pads.append((lo, size - (o - 1) * s - 1 - lo + kk - 1))
    k_flipped = jnp.flip(_upcast(k), (2, 3)).transpose(1, 0, 2, 3)
    out = lax.conv_general_dilated(_upcast(g), k_flipped, (1, 1), pads, lhs_dilation=stride, dimension_numbers=_NCHW)
    return out.astype(g.dtype)


@_static("kernel_shape", "stride", "padding")
def _conv2d_kernel_grad(x, g, kernel_shape, stride, padding):
    # dk[o,c,a,b] = sum_{n,i,j} g[n,o,i,j] * xpad[n,c,i*s+a,j*s+b]: a convolution of x (batch and
    # channel roles swapped) with g as the kernel, dilated by the stride.
    pads = []
    for size, kk, s, p, o in ((x.shape[2], kernel_shape[2], stride[0], padding[0], g.shape[2]),
                              (x.shape[3], kernel_shape[3], stride[1], padding[1], g.shape[3])):
        pads.append((p, kk - size - p + (o - 1) * s))
    out = lax.conv_general_dilated(_upcast(x), _upcast(g), (1, 1), pads, rhs_dilation=stride,
                                   dimension_numbers=("CNHW", "IOHW", "CNHW"))
    return out.astype(g.dtype)


@_static("kernel_size", "stride")
def _max_pool2d(x, kernel_size, stride):
    # A Python scalar init value (not a jnp array) keeps the kernel differentiable by jax, which
    # jtape.testing's oracle needs (jtape's own gradient never uses it).
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1) + kernel_size, (1, 1) + stride, "VALID")


def _window_views(x, kernel_size, stride, oh, ow):
    """The KH*KW strided views x[:, :, a + s*i, b + s*j] of shape [N, C, OH, OW], one per tap."""
    (kh, kw), (sh, sw) = kernel_size, stride
    return [(a, b, x[:, :, a:a + sh * (oh - 1) + 1:sh, b:b + sw * (ow - 1) + 1:sw]) for a in range(kh) for b in range(kw)]


@_static("kernel_size", "stride")
def _max_pool2d_grad(x, g, kernel_size, stride):
    # Route each window's gradient to the window's first max: a one-hot over the taps picks it,
    # then each tap's share is added back at its strided position (overlaps add up).
    oh, ow = g.shape[2:]
    if kernel_size == stride:
        return _max_pool2d_grad_tiled(x, g, kernel_size)
    views = _window_views(x, kernel_size, stride, oh, ow)
    winner = jnp.argmax(jnp.stack([v for _, _, v in views]), axis=0)
    dx = jnp.zeros(x.shape, g.dtype)
    (sh, sw) = stride
    for t, (a, b, _) in enumerate(views):
        share = jnp.where(winner == t, g, jnp.zeros((), g.dtype))
        dx = dx.at[:, :, a:a + sh * (oh - 1) + 1:sh, b:b + sw * (ow - 1) + 1:sw].add(share)
    return dx


def _max_pool2d_grad_tiled(x, g, kernel_size):
    """Non-overlapping windows (stride == kernel): view x as tiles [N, C, OH, KH, OW, KW], mark
    each tile's first max with a one-hot, scale by g — no scatter at all (much faster on CPU).
    Rows/columns past the last full window get no gradient."""
    (kh, kw), (n, c, oh, ow) = kernel_size, g.shape
    tiles = x[:, :, :oh * kh, :ow * kw].reshape(n, c, oh, kh, ow, kw).transpose(0, 1, 2, 4, 3, 5)
    winner = jnp.argmax(tiles.reshape(n, c, oh, ow, kh * kw), axis=-1)
    one_hot = winner[..., None] == jnp.arange(kh * kw)
    share = jnp.where(one_hot, g[..., None], jnp.zeros((), g.dtype)).reshape(n, c, oh, ow, kh, kw)
    dx = share.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, oh * kh, ow * kw)
    return jnp.pad(dx, ((0, 0), (0, 0), (0, x.shape[2] - oh * kh), (0, x.shape[3] - ow * kw)))


@_jit
def _cross_entropy(logits, targets):
    z = _upcast(logits)
    picked = jnp.take_along_axis(z, targets[:, None].astype(jnp.int32), axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(z, axis=1) - picked).astype(logits.dtype)


# -- reductions, shape, indexing ---------------------------------------------------------------
_sum = _jit(lambda x: jnp.sum(_upcast(x)).astype(x.dtype))


@_static("dim", "keep_dim")
def _sum_dim(x, dim, keep_dim):
    return jnp.sum(_upcast(x), axis=dim, keepdims=keep_dim).astype(x.dtype)


@_static("dim", "keep_dim")
def _mean_dim(x, dim, keep_dim):
    return jnp.mean(_upcast(x), axis=dim, keepdims=keep_dim).astype(x.dtype)


_reshape = _static("shape")(lambda x, shape: jnp.reshape(x, shape))
_transpose = _static("axes")(lambda x, axes: jnp.transpose(x, axes))
_expand = _static("shape")(lambda x, shape: jnp.broadcast_to(x, shape))
_cat = _static("dim")(lambda xs, dim: jnp.concatenate(xs, axis=dim))
_chunk = _static("n", "dim")(lambda x, n, dim: jnp.split(x, n, axis=dim))
_where = _jit(jnp.where)
_argmax = _static("dim")(lambda x, dim: jnp.argmax(x, axis=dim).astype(jnp.int32))
_cast = _static("dtype")(lambda x, dtype: x.astype(dtype))


@_static("dim")
def _gather(x, index, dim):
    # torch.gather: the index may be smaller than x in the other dims; look only at that corner.
    corner = tuple(slice(None) if d == dim else slice(0, n) for d, n in enumerate(index.shape))
    return jnp.take_along_axis(x[corner], index, axis=dim)


@_static("dim", "start", "length")
def _narrow(x, dim, start, length):
    return lax.slice_in_dim(x, start, start + length, axis=dim)


@_static("shape", "dim")
def _scatter_add(index, src, shape, dim):
    grid = tuple(index if d == dim else lax.broadcasted_iota(index.dtype, index.shape, d) for d in range(index.ndim))
    return jnp.zeros(shape, src.dtype).at[grid].add(src)


_full = _static("shape", "dtype")(lambda value, shape, dtype: jnp.full(shape, value, dtype))
# Are all index values in [0, n)? One fused reduction; n is traced, so a new size never re-compiles.
_index_in_range = _jit(lambda index, n: jnp.logical_and(jnp.min(index) >= 0, jnp.max(index) < n))


def _run_rule(cls, statics, wanted, backend, inputs, output, g):
    """A rebuilt op (same class, statics, tensors) applying its rule: the body of a rule kernel."""
    op = object.__new__(cls)
    op._inputs, op._output = inputs, output
    for name, value in zip(cls.static_slots(), statics):
        setattr(op, name, value)
    grads = op.backward(g, backend)
    if wanted is None or len(grads) != len(wanted):
        return grads
    return [gx if w else None for gx, w in zip(grads, wanted)]


class JaxBackend(KernelBackend):
    """Runs every op as a jitted ``jax.numpy`` / ``jax.lax`` kernel on one JAX device.

    ``JaxBackend()`` uses JAX's default device (a GPU or TPU when there is one);
    ``JaxBackend("cpu")``, ``"gpu"``, ``"tpu"`` or a ``jax.Device`` picks one.
    """

    def __init__(self, device: str | Any | None = None):
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
        self._rule_kernels: dict = {}

    def name(self) -> str:
        return "jax"

    def run_rule(self, op: Any, g: Any, wanted: tuple | None = None) -> list:
        """Run a fusable rule (``op.fuse``) as one jitted kernel: one dispatch instead of one per
        backend call, and XLA fuses the pieces (e.g. the transposes into matmul's dot). The rule
        is traced with this backend's ops on tracers; its static saved values and the ``wanted``
        flags key the cache (an unwanted gradient is not returned, so XLA never computes it), and
        jax re-traces only for new shapes and dtypes. Other rules run op by op."""
        cls = type(op)
        if not cls.fuse:
            return op.backward(g, self)
        statics = tuple(getattr(op, n) for n in cls.static_slots())
        key = (cls, statics, wanted)
        kernel = self._rule_kernels.get(key)
        if kernel is None:
            kernel = self._rule_kernels[key] = jax.jit(partial(_run_rule, cls, statics, wanted, self))
        return kernel(op.inputs(), op.output(), g)

    @property
    def jax_device(self) -> Any:
        """The ``jax.Device`` this backend places its arrays on."""
        return self._jax_device

    def _check_dtype_available(self, dtype: DataType) -> None:
        if dtype.needs_x64 and not jax.config.jax_enable_x64:
            raise DTypeError(f"JaxBackend: {dtype.value} needs JAX's 64-bit mode, which is off; turn it on "
                             f"with jax.config.update('jax_enable_x64', True) at start-up (or set "
                             f"JAX_ENABLE_X64=1), or use float32/int32")

    def _from_numpy(self, arr: np.ndarray):
        return jax.device_put(arr, self._jax_device)

    def _full(self, shape, value, np_dtype):
        return jax.device_put(_full(value, shape=shape, dtype=np_dtype), self._jax_device)

    _add, _sub, _mul, _div = staticmethod(_add), staticmethod(_sub), staticmethod(_mul), staticmethod(_div)
    _add_scalar, _sub_scalar = staticmethod(_add_scalar), staticmethod(_sub_scalar)
    _mul_scalar, _div_scalar = staticmethod(_mul_scalar), staticmethod(_div_scalar)
    _exp, _log, _sqrt, _rsqrt = staticmethod(_exp), staticmethod(_log), staticmethod(_sqrt), staticmethod(_rsqrt)
    _sin, _cos, _tanh = staticmethod(_sin), staticmethod(_cos), staticmethod(_tanh)
    _relu, _sigmoid, _silu, _softmax = staticmethod(_relu), staticmethod(_sigmoid), staticmethod(_silu), staticmethod(_softmax)
    _matmul, _conv2d, _max_pool2d = staticmethod(_matmul), staticmethod(_conv2d), staticmethod(_max_pool2d)
    _cross_entropy = staticmethod(_cross_entropy)
    _sum, _sum_dim, _mean_dim = staticmethod(_sum), staticmethod(_sum_dim), staticmethod(_mean_dim)
    _reshape, _transpose, _expand = staticmethod(_reshape), staticmethod(_transpose), staticmethod(_expand)
    _cat, _chunk, _gather, _where = staticmethod(_cat), staticmethod(_chunk), staticmethod(_gather), staticmethod(_where)
    _equal, _not_equal = staticmethod(_equal), staticmethod(_not_equal)
    _greater, _greater_equal = staticmethod(_greater), staticmethod(_greater_equal)
    _lower, _lower_equal = staticmethod(_lower), staticmethod(_lower_equal)
    _and, _or, _not = staticmethod(_and), staticmethod(_or), staticmethod(_not)
    _argmax, _cast = staticmethod(_argmax), staticmethod(_cast)
    _conv2d_input_grad, _conv2d_kernel_grad = staticmethod(_conv2d_input_grad), staticmethod(_conv2d_kernel_grad)
    _max_pool2d_grad, _scatter_add = staticmethod(_max_pool2d_grad), staticmethod(_scatter_add)
    _narrow = staticmethod(_narrow)

    def _index_in_range(self, index: Any, size: int) -> bool:
        return bool(_index_in_range(index, size))
