"""The kernels of ``jtape.ops.pool``: max and average pooling and their gradients, in ``jax.lax`` and NumPy.

Notation as in ``pool``: x [N, C, H, W], windows of K = (KH, KW) taps whose top-left corners lie
``stride`` s apart on x padded by p = (ph, pw) on each side — with -inf for max pooling, zeros for
average pooling — and g = ∂ℒ/∂out [N, C, OH, OW]. Statics arrive normalised as ``(h, w)`` pairs.
The NumPy kernels are written to be read; the JAX ones to compile well.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax
from numpy.lib.stride_tricks import sliding_window_view

from .precision import in_float32, upcast


def _spatial(padding: tuple[int, int]) -> tuple:
    """``padding`` as lax/NumPy pad widths of an NCHW array: nothing on N and C, (p, p) on H and W."""
    (ph, pw) = padding
    return ((0, 0), (0, 0), (ph, ph), (pw, pw))


# -- JAX ------------------------------------------------------------------------------------------
def max_pool2d_jax(x, kernel_size, stride, padding):
    # A Python scalar init value (not a jnp array) keeps the kernel differentiable by jax, which
    # jtape.testing's oracle needs (jtape's own gradient never uses it). The padding is -inf.
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1) + kernel_size, (1, 1) + stride, _spatial(padding))


def _window_views(x, kernel_size, stride, oh, ow):
    """The KH·KW strided views x[:, :, a + s·i, b + s·j] of shape [N, C, OH, OW], one per tap."""
    (kh, kw), (sh, sw) = kernel_size, stride
    return [(a, b, x[:, :, a:a + sh * (oh - 1) + 1:sh, b:b + sw * (ow - 1) + 1:sw])
            for a in range(kh) for b in range(kw)]


def max_pool2d_grad_jax(input, g, kernel_size, stride, padding):
    # Measured per platform (benchmarks/conv_ab.py and benchmarks/results/pool_ab_gpu.txt): on CPU
    # XLA's select-and-scatter took 1.2-20x the one-hot formulation below; on an H200 it took
    # 0.26-0.29x on CNN-big's shapes (1.14-1.2x on CNN's ~50 µs ones). So CPU routes the gradient
    # with a one-hot, other platforms use XLA's own select-and-scatter (what jax.grad would use).
    return lax.platform_dependent(
        input, g, cpu=lambda x, g: _max_pool2d_grad_onehot(x, g, kernel_size, stride, padding),
        default=lambda x, g: _max_pool2d_grad_select_scatter(x, g, kernel_size, stride, padding))


def _max_pool2d_grad_select_scatter(x, g, kernel_size, stride, padding):
    """XLA's SelectAndScatter: each window's gradient goes to the element its select (>=, scanning
    the window row-major: the first max wins) picks; overlapping windows add."""
    return lax.select_and_scatter_add_p.bind(g, x, select_prim=lax.ge_p, window_dimensions=(1, 1) + kernel_size,
                                             window_strides=(1, 1) + stride, padding=_spatial(padding))


def _max_pool2d_grad_onehot(input, g, kernel_size, stride, padding):
    # Route each window's gradient to the window's first max (row-major, the -inf padding
    # included: it only wins a window of -inf inputs, and its share is then cropped, as XLA's
    # select-and-scatter does): a one-hot over the taps picks it, then each tap's share is added
    # back at its strided position (overlaps add up).
    oh, ow = g.shape[2:]
    if kernel_size == stride and padding == (0, 0):
        return _max_pool2d_grad_tiled(input, g, kernel_size)
    xp = jnp.pad(input, _spatial(padding), constant_values=-jnp.inf)
    views = _window_views(xp, kernel_size, stride, oh, ow)
    winner = jnp.argmax(jnp.stack([v for _, _, v in views]), axis=0)
    dxp = jnp.zeros(xp.shape, g.dtype)
    (sh, sw), (ph, pw) = stride, padding
    for t, (a, b, _) in enumerate(views):
        share = jnp.where(winner == t, g, jnp.zeros((), g.dtype))
        dxp = dxp.at[:, :, a:a + sh * (oh - 1) + 1:sh, b:b + sw * (ow - 1) + 1:sw].add(share)
    return dxp[:, :, ph:ph + input.shape[2], pw:pw + input.shape[3]]


def _max_pool2d_grad_tiled(x, g, kernel_size):
    """Non-overlapping windows (stride == kernel, no padding): view x as tiles [N, C, OH, KH, OW, KW],
    mark each tile's first max with a one-hot, scale by g — no scatter at all (much faster on CPU).
    Rows/columns past the last full window get no gradient."""
    (kh, kw), (n, c, oh, ow) = kernel_size, g.shape
    tiles = x[:, :, :oh * kh, :ow * kw].reshape(n, c, oh, kh, ow, kw).transpose(0, 1, 2, 4, 3, 5)
    winner = jnp.argmax(tiles.reshape(n, c, oh, ow, kh * kw), axis=-1)
    one_hot = winner[..., None] == jnp.arange(kh * kw)
    share = jnp.where(one_hot, g[..., None], jnp.zeros((), g.dtype)).reshape(n, c, oh, ow, kh, kw)
    dx = share.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, oh * kh, ow * kw)
    return jnp.pad(dx, ((0, 0), (0, 0), (0, x.shape[2] - oh * kh), (0, x.shape[3] - ow * kw)))


def avg_pool2d_jax(x, kernel_size, stride, padding):
    # Window sums (zero padding, counted in the divisor), accumulated in float32 for half dtypes.
    total = lax.reduce_window(upcast(x), 0.0, lax.add, (1, 1) + kernel_size, (1, 1) + stride, _spatial(padding))
    return (total / (kernel_size[0] * kernel_size[1])).astype(x.dtype)


def avg_pool2d_grad_jax(g, input_shape, kernel_size, stride, padding):
    # The transpose of window averaging: dilate g / (KH·KW) by the stride (s - 1 zeros between
    # elements), pad it by K - 1 - p (negative: crop), and sum every K window — a transposed
    # convolution of g with a constant kernel, channel by channel.
    share = upcast(g) / (kernel_size[0] * kernel_size[1])
    config = [(0, 0, 0), (0, 0, 0)]
    for size, k, s, p, o in zip(input_shape[2:], kernel_size, stride, padding, g.shape[2:]):
        config.append((k - 1 - p, size + p - 1 - (o - 1) * s, s - 1))
    spread = lax.pad(share, jnp.zeros((), share.dtype), config)
    out = lax.reduce_window(spread, 0.0, lax.add, (1, 1) + kernel_size, (1, 1, 1, 1), "VALID")
    return out.astype(g.dtype)


# -- NumPy ----------------------------------------------------------------------------------------
def _windows(x: np.ndarray, size: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """Every ``size`` window of an NCHW array whose top-left corner lies on the stride grid: a
    read-only *view* [N, C, OH, OW, KH, KW] with view[n, c, i, j, a, b] = x[n, c, i·sh + a, j·sw + b].
    Windows running past the bottom/right edge are dropped."""
    (sh, sw) = stride
    return sliding_window_view(x, size, axis=(2, 3))[:, :, ::sh, ::sw]


def _pad(x: np.ndarray, padding: tuple[int, int], value: float) -> np.ndarray:
    return np.pad(x, _spatial(padding), constant_values=value)


def max_pool2d_np(input, kernel_size, stride, padding):
    """out[n, c, i, j] = max over the window at (i·sh, j·sw) of x padded with -inf. A max only
    selects, never rounds, so it needs no float32 detour."""
    return _windows(_pad(input, padding, -np.inf), kernel_size, stride).max(axis=(4, 5))


@in_float32
def max_pool2d_grad_np(input, g, kernel_size, stride, padding):
    """dL/dx: out[n, c, i, j] is a copy of one element of the padded input (its window's max), so
    its gradient g[n, c, i, j] goes to that element alone. On ties, the first max in row-major
    window order wins (``argmax``'s rule); overlapping windows (stride < kernel) add up. The
    padding's -inf only wins a window of -inf inputs; its share is cropped with the padding."""
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    nb, ch, oh, ow = g.shape
    xp = _pad(input, padding, -np.inf)
    win = _windows(xp, kernel_size, stride).reshape(nb, ch, oh, ow, kh * kw)
    a, b = np.divmod(win.argmax(axis=-1), kw)                  # offset of each max in its window
    rows = np.arange(oh)[:, None] * sh + a                      # [N, C, OH, OW] padded row indices
    cols = np.arange(ow)[None, :] * sw + b                      # [N, C, OH, OW] padded col indices
    n = np.arange(nb)[:, None, None, None]
    c = np.arange(ch)[None, :, None, None]
    dxp = np.zeros(xp.shape, dtype=g.dtype)
    np.add.at(dxp, (n, c, rows, cols), g)                       # add.at: repeated targets add up
    return dxp[:, :, ph:ph + input.shape[2], pw:pw + input.shape[3]]


@in_float32
def avg_pool2d_np(input, kernel_size, stride, padding):
    """out[n, c, i, j] = the mean of the window at (i·sh, j·sw) of x padded with zeros (the zeros
    count: the divisor is always KH·KW)."""
    return _windows(_pad(input, padding, 0.0), kernel_size, stride).mean(axis=(4, 5))


@in_float32
def avg_pool2d_grad_np(g, input_shape, kernel_size, stride, padding):
    """dL/dx: every element of window (i, j) got g[n, c, i, j] / (KH·KW) of the window's mean, so

        dxpad[n, c, i·sh + a, j·sw + b] += g[n, c, i, j] / (KH·KW)    for each tap (a, b).

    One tap's positions form a strided slice: loop over the KH·KW taps, add a slice at a time
    (overlapping windows add), then crop the padding off."""
    (n, c, h, w), (kh, kw), (sh, sw), (ph, pw) = input_shape, kernel_size, stride, padding
    oh, ow = g.shape[2:]
    share = g / (kh * kw)
    dxpad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=g.dtype)
    for a in range(kh):
        for b in range(kw):
            dxpad[:, :, a:a + sh * (oh - 1) + 1:sh, b:b + sw * (ow - 1) + 1:sw] += share
    return dxpad[:, :, ph:ph + h, pw:pw + w]
