"""``NumpyBackend``: the plain-NumPy reference backend.

This file is meant to be read. Every kernel is a few lines of NumPy that you can check against
the maths in its docstring; none of them is clever. ``KernelBackend`` (``base.py``) has already
checked shapes and dtypes and normalised the static arguments (non-negative dims, tuples for
shapes, ``(h, w)`` pairs for stride/padding/kernel size) before a kernel here runs, so the
kernels only compute: arrays in, a new ``np.ndarray`` out.

Three NumPy habits the kernels work around:

* A ufunc applied to a 0-d array returns a NumPy *scalar*, not an array; kernels wrap such
  results in ``np.asarray`` so every tensor's data is an ``np.ndarray``.
* NumPy's float16 arithmetic (and ml_dtypes' bfloat16) rounds after every step and is slow. The
  kernels that accumulate — matmul, convolutions, softmax, losses, sums — run in float32 for
  those dtypes and round once at the end (``@_in_float32``), as XLA and GPUs do.
* The output dtype is always the one ``base.py`` promised: the input's dtype for float ops
  (``np.sum`` of int32 gives int64 and a Python float scalar turns bfloat16 into float32, so
  those are cast back), bool for comparisons, int32 for argmax.

Kernels never write into an array they returned or were given, so ``reshape``/``transpose``
may safely hand back views.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import ml_dtypes
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..tensor.shape import Device
from .base import KernelBackend

_HALF = (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))


def _wide(a: np.ndarray) -> np.ndarray:
    """``a`` in float32 if it is float16/bfloat16, else ``a`` unchanged."""
    return a.astype(np.float32) if a.dtype in _HALF else a


def _in_float32(kernel: Callable) -> Callable:
    """Run ``kernel`` with its half-precision array arguments widened to float32, and cast the
    result back to the dtype of the first array argument (also returns an ndarray, never a scalar)."""
    @functools.wraps(kernel)
    def run(self: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        dtype = next(a.dtype for a in args if isinstance(a, np.ndarray))
        wide = [_wide(a) if isinstance(a, np.ndarray) else a for a in args]
        return np.asarray(kernel(self, *wide, **kwargs)).astype(dtype, copy=False)
    return run


def _ufunc(f: np.ufunc) -> Callable:
    """A kernel that applies the ufunc ``f`` elementwise, with NumPy broadcasting.

    Floating-point edge cases give their IEEE results (``1/0 = inf``, ``log(-1) = nan``)
    silently, as JAX does, instead of NumPy's RuntimeWarnings."""
    def kernel(self: Any, *arrays: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(f(*arrays))
    kernel.__doc__ = f"Elementwise ``np.{f.__name__}`` (NumPy broadcasting)."
    return kernel


def _ufunc_scalar(f: np.ufunc) -> Callable:
    """A kernel ``x (op) s`` for a Python scalar ``s``, keeping ``x``'s dtype exactly.

    ``s`` is first converted to ``x``'s dtype (JAX's "weak type" rule): bfloat16 + a Python
    float would otherwise become float32, and uint8 + (-1) would raise instead of wrapping."""
    def kernel(self: Any, x: np.ndarray, s: float | int) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(f(x, np.asarray(s).astype(x.dtype)))
    kernel.__doc__ = f"``np.{f.__name__}(x, s)`` with the scalar ``s`` in ``x``'s dtype."
    return kernel


def _stable_sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x), computed from e = e^-|x| <= 1 so that nothing overflows:
    x >= 0: 1 / (1 + e);   x < 0: e / (1 + e)   (the same value, times e^x / e^x)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _windows(x: np.ndarray, size: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """Every ``size`` window of an NCHW array whose top-left corner lies on the stride grid.

    Returns a read-only *view* of shape ``[N, C, OH, OW, KH, KW]``, with
    ``view[n, c, i, j, a, b] = x[n, c, i*sh + a, j*sw + b]`` — no data is copied until a
    kernel combines it with something (this is im2col without the copy). Windows that would
    run past the bottom/right edge are dropped, giving ``OH = (H - KH) // sh + 1``."""
    (sh, sw) = stride
    return sliding_window_view(x, size, axis=(2, 3))[:, :, ::sh, ::sw]


def _pad_hw(x: np.ndarray, padding: tuple[int, int]) -> np.ndarray:
    """Zero-pad the two spatial dims of an NCHW array by ``padding = (ph, pw)`` on each side."""
    (ph, pw) = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


class NumpyBackend(KernelBackend):
    """The reference backend: every op as a short, readable NumPy kernel, on the CPU."""

    _device = Device.CPU
    _numpy_data = True  # every tensor's data is an np.ndarray (base.py rejects anything else)

    def name(self) -> str:
        return "numpy"

    # -- creation --------------------------------------------------------------------------
    def _from_numpy(self, arr: np.ndarray) -> np.ndarray:
        """A private copy, so later writes to the caller's array cannot change the tensor."""
        return np.array(arr, copy=True)

    def _full(self, shape: tuple, value: Any, np_dtype: np.dtype) -> np.ndarray:
        return np.full(shape, value, dtype=np_dtype)

    # -- elementwise: arithmetic, scalar ops, unary maths, comparisons, logic -----------------
    # Each of these is one NumPy ufunc; broadcasting and the dtype rules (both inputs share one
    # dtype, checked in base.py) are NumPy's own. See _ufunc and _ufunc_scalar above.
    _add = _ufunc(np.add)
    _sub = _ufunc(np.subtract)
    _mul = _ufunc(np.multiply)
    _div = _ufunc(np.true_divide)

    _add_scalar = _ufunc_scalar(np.add)
    _sub_scalar = _ufunc_scalar(np.subtract)
    _mul_scalar = _ufunc_scalar(np.multiply)
    _div_scalar = _ufunc_scalar(np.true_divide)

    _exp = _ufunc(np.exp)
    _log = _ufunc(np.log)
    _sqrt = _ufunc(np.sqrt)
    _sin = _ufunc(np.sin)
    _cos = _ufunc(np.cos)
    _tanh = _ufunc(np.tanh)

    _equal = _ufunc(np.equal)
    _not_equal = _ufunc(np.not_equal)
    _greater = _ufunc(np.greater)
    _greater_equal = _ufunc(np.greater_equal)
    _lower = _ufunc(np.less)
    _lower_equal = _ufunc(np.less_equal)
    _and = _ufunc(np.logical_and)
    _or = _ufunc(np.logical_or)
    _not = _ufunc(np.logical_not)

    # -- activations -----------------------------------------------------------------------
    @_in_float32
    def _rsqrt(self, x: np.ndarray) -> np.ndarray:
        """1 / sqrt(x), rounded once (in float32 for half dtypes) rather than twice."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1.0 / np.sqrt(x)

    def _relu(self, x: np.ndarray) -> np.ndarray:
        """max(x, 0). ``np.maximum`` keeps NaN as NaN, as jax.nn.relu does."""
        return np.asarray(np.maximum(x, np.zeros((), x.dtype)))

    @_in_float32
    def _sigmoid(self, x: np.ndarray) -> np.ndarray:
        """1 / (1 + e^-x), without overflow for large |x| (see _stable_sigmoid)."""
        return _stable_sigmoid(x)

    @_in_float32
    def _silu(self, x: np.ndarray) -> np.ndarray:
        """x * sigmoid(x)."""
        return x * _stable_sigmoid(x)

    @_in_float32
    def _softmax(self, x: np.ndarray, dim: int) -> np.ndarray:
        """exp(x_i) / sum_j exp(x_j) along ``dim``.

        Subtracting the row max first changes nothing mathematically (the factor e^-max cancels)
        but keeps every exponent <= 0, so exp cannot overflow. ``initial=-inf`` lets an empty
        ``dim`` through instead of raising."""
        shifted = x - np.max(x, axis=dim, keepdims=True, initial=-np.inf)
        e = np.exp(shifted)
        return e / np.sum(e, axis=dim, keepdims=True)

    # -- linear algebra and loss -------------------------------------------------------------
    @_in_float32
    def _matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """a @ b over the last two dims; the batch dims in front broadcast as in NumPy."""
        return np.matmul(a, b)

    @_in_float32
    def _cross_entropy(self, logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """mean_b ( logsumexp(logits_b) - logits_b[targets_b] ), a 0-d array.

        -log softmax(logits_b)[t] = logsumexp(logits_b) - logits_b[t]; logsumexp is computed as
        m + log sum exp(logits_b - m) with m the row max, which cannot overflow."""
        m = np.max(logits, axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.sum(np.exp(logits - m), axis=1))
        picked = np.take_along_axis(logits, targets[:, None].astype(np.intp), axis=1)[:, 0]
        return np.mean(lse - picked)

    # -- convolution and pooling ---------------------------------------------------------------
    # Notation: x is [N, C, H, W], k is [O, C, KH, KW], g = dL/dout is [N, O, OH, OW], and
    # xpad is x with `padding` zeros around H and W. The forward op is a cross-correlation:
    #     out[n, o, i, j] = sum_{c, a, b} xpad[n, c, i*sh + a, j*sw + b] * k[o, c, a, b]

    @_in_float32
    def _conv2d(self, x: np.ndarray, k: np.ndarray, stride: tuple[int, int],
                padding: tuple[int, int]) -> np.ndarray:
        """The formula above, literally: take every window of xpad (im2col) and contract it with
        the kernel over (c, a, b). ``optimize=True`` lets einsum hand this to BLAS."""
        win = _windows(_pad_hw(x, padding), k.shape[2:], stride)       # [N, C, OH, OW, KH, KW]
        return np.einsum("ncijab,ocab->noij", win, k, optimize=True)

    @_in_float32
    def _conv2d_input_grad(self, g: np.ndarray, k: np.ndarray, input_shape: tuple,
                           stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
        """dL/dx. Each xpad[n, c, i*sh + a, j*sw + b] met k[o, c, a, b] in out[n, o, i, j], so

            dxpad[n, c, i*sh + a, j*sw + b] += sum_o g[n, o, i, j] * k[o, c, a, b].

        For one kernel offset (a, b) the positions i*sh + a form a strided slice, so we loop
        over the KH*KW offsets and add a whole slice at a time (``+=``: windows overlap when
        stride < kernel, and their contributions add). Then the padding is cropped off. Input
        rows/cols that no window reached keep a zero gradient."""
        (n, c, h, w), (sh, sw), (ph, pw) = input_shape, stride, padding
        kh, kw = k.shape[2:]
        oh, ow = g.shape[2:]
        dxpad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=g.dtype)
        for a in range(kh):
            for b in range(kw):
                rows = slice(a, a + sh * (oh - 1) + 1, sh)
                cols = slice(b, b + sw * (ow - 1) + 1, sw)
                dxpad[:, :, rows, cols] += np.einsum("noij,oc->ncij", g, k[:, :, a, b], optimize=True)
        return dxpad[:, :, ph:ph + h, pw:pw + w]

    @_in_float32
    def _conv2d_kernel_grad(self, x: np.ndarray, g: np.ndarray, kernel_shape: tuple,
                            stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
        """dL/dk[o, c, a, b] = sum_{n, i, j} g[n, o, i, j] * xpad[n, c, i*sh + a, j*sw + b]:
        the same windows as the forward pass, now contracted with g over (n, i, j)."""
        win = _windows(_pad_hw(x, padding), kernel_shape[2:], stride)  # [N, C, OH, OW, KH, KW]
        return np.einsum("ncijab,noij->ocab", win, g, optimize=True)

    def _max_pool2d(self, x: np.ndarray, kernel_size: tuple[int, int],
                    stride: tuple[int, int]) -> np.ndarray:
        """out[n, c, i, j] = max over the window at (i*sh, j*sw); no padding, so windows that do
        not fit are dropped. A max needs no float32 detour: it only selects, never rounds."""
        return np.asarray(_windows(x, kernel_size, stride).max(axis=(4, 5)))

    @_in_float32
    def _max_pool2d_grad(self, x: np.ndarray, g: np.ndarray, kernel_size: tuple[int, int],
                         stride: tuple[int, int]) -> np.ndarray:
        """dL/dx: out[n, c, i, j] is a copy of one input element (its window's max), so its
        gradient g[n, c, i, j] goes to that element alone. On ties, the first max in row-major
        window order wins (``argmax``'s rule); overlapping windows (stride < kernel) add up."""
        (kh, kw), (sh, sw) = kernel_size, stride
        nb, ch, oh, ow = g.shape
        win = _windows(x, kernel_size, stride).reshape(nb, ch, oh, ow, kh * kw)
        a, b = np.divmod(win.argmax(axis=-1), kw)               # offset of each max in its window
        rows = np.arange(oh)[:, None] * sh + a                   # [N, C, OH, OW] input row indices
        cols = np.arange(ow)[None, :] * sw + b                   # [N, C, OH, OW] input col indices
        n = np.arange(nb)[:, None, None, None]
        c = np.arange(ch)[None, :, None, None]
        dx = np.zeros(x.shape, dtype=g.dtype)
        np.add.at(dx, (n, c, rows, cols), g)                     # add.at: repeated targets add up
        return dx

    # -- reductions ----------------------------------------------------------------------------
    # Computed wide for half dtypes; @_in_float32 also casts back np.sum's int64 for int32 input.
    @_in_float32
    def _sum(self, x: np.ndarray) -> np.ndarray:
        """The sum of all elements, as a 0-d array of x's dtype."""
        return np.sum(x)

    @_in_float32
    def _sum_dim(self, x: np.ndarray, dim: int, keep_dim: bool) -> np.ndarray:
        return np.sum(x, axis=dim, keepdims=keep_dim)

    @_in_float32
    def _mean_dim(self, x: np.ndarray, dim: int, keep_dim: bool) -> np.ndarray:
        return np.mean(x, axis=dim, keepdims=keep_dim)

    # -- shape -------------------------------------------------------------------------------
    def _reshape(self, x: np.ndarray, shape: tuple) -> np.ndarray:
        return np.reshape(x, shape)

    def _transpose(self, x: np.ndarray, axes: tuple) -> np.ndarray:
        return np.transpose(x, axes)

    def _expand(self, x: np.ndarray, shape: tuple) -> np.ndarray:
        """broadcast_to gives a read-only view with stride-0 dims; copy it into a real array."""
        return np.broadcast_to(x, shape).copy()

    def _cat(self, arrays: Sequence[np.ndarray], dim: int) -> np.ndarray:
        return np.concatenate(arrays, axis=dim)

    def _chunk(self, x: np.ndarray, n: int, dim: int) -> list[np.ndarray]:
        return [piece.copy() for piece in np.split(x, n, axis=dim)]

    def _narrow(self, x: np.ndarray, dim: int, start: int, length: int) -> np.ndarray:
        """The slab [start, start + length) along ``dim``: the adjoint of one piece of ``cat``."""
        return x[(slice(None),) * dim + (slice(start, start + length),)].copy()

    # -- indexing ----------------------------------------------------------------------------
    def _gather(self, x: np.ndarray, index: np.ndarray, dim: int) -> np.ndarray:
        """out[i][j][k] = x[i][index[i][j][k]][k] (for dim = 1; likewise for any dim).

        ``index`` may be smaller than x in the other dims; torch.gather then reads only x's
        leading part, so x is cut to index's extent there before ``take_along_axis``."""
        part = tuple(slice(None) if d == dim else slice(0, size) for d, size in enumerate(index.shape))
        return np.take_along_axis(x[part], index.astype(np.intp), axis=dim)

    def _scatter_add(self, index: np.ndarray, src: np.ndarray, shape: tuple, dim: int) -> np.ndarray:
        """The adjoint of gather: out = zeros(shape); out[..., index[p], ...] += src[p] for every
        position p of index (index[p] replacing p's coordinate along ``dim``). Two positions
        that gathered the same element both send their gradient back to it, so repeated
        indices must add up: that is ``np.add.at`` (plain ``out[idx] += src`` would keep one)."""
        out = np.zeros(shape, dtype=np.float32 if src.dtype in _HALF else src.dtype)
        coords = list(np.indices(index.shape, sparse=True))   # p's own coordinates, broadcastable
        coords[dim] = index.astype(np.intp)
        np.add.at(out, tuple(coords), _wide(src))
        return out.astype(src.dtype, copy=False)

    def _where(self, cond: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.asarray(np.where(cond, x, y))

    # -- other -------------------------------------------------------------------------------
    def _argmax(self, x: np.ndarray, dim: int) -> np.ndarray:
        """Index of the largest element along ``dim`` (the first one on ties), as int32."""
        return np.asarray(np.argmax(x, axis=dim)).astype(np.int32)

    def _cast(self, x: np.ndarray, dtype: np.dtype) -> np.ndarray:
        return x.astype(dtype)
