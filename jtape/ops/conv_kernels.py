"""The kernels of ``jtape.ops.conv``: convolution and max pooling in ``jax.lax`` and in NumPy.

Notation as in ``conv``: x [N, C, H, W], k [O, C, KH, KW], g = ∂ℒ/∂out [N, O, OH, OW], xpad = x
zero-padded by (ph, pw). Statics arrive normalised: ``stride``, ``padding``, ``kernel_size`` as
``(h, w)`` pairs, shapes as tuples. The NumPy kernels are written to be read; the JAX ones to
compile well.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax
from numpy.lib.stride_tricks import sliding_window_view

from .precision import in_float32, upcast

_NCHW = ("NCHW", "OIHW", "NCHW")


# -- JAX ------------------------------------------------------------------------------------------
def conv2d_jax(input, kernel, stride, padding):
    (ph, pw) = padding
    out = lax.conv_general_dilated(upcast(input), upcast(kernel), stride, [(ph, ph), (pw, pw)],
                                   dimension_numbers=_NCHW)
    return out.astype(input.dtype)


def conv2d_input_grad_jax(g, kernel, input_shape, stride, padding):
    # A transposed convolution: dilate g by the stride, pad it so every kernel tap lands, and
    # correlate with the kernel flipped in space and with in/out channels swapped.
    kh, kw = kernel.shape[2:]
    oh, ow = g.shape[2:]
    pads = []
    for size, kk, s, p, o in ((input_shape[2], kh, stride[0], padding[0], oh),
                              (input_shape[3], kw, stride[1], padding[1], ow)):
        lo = kk - 1 - p
        pads.append((lo, size - (o - 1) * s - 1 - lo + kk - 1))
    k_flipped = jnp.flip(upcast(kernel), (2, 3)).transpose(1, 0, 2, 3)
    out = lax.conv_general_dilated(upcast(g), k_flipped, (1, 1), pads, lhs_dilation=stride, dimension_numbers=_NCHW)
    return out.astype(g.dtype)


def conv2d_kernel_grad_jax(input, g, kernel_shape, stride, padding):
    # dk[o,c,a,b] = Σ_{n,i,j} g[n,o,i,j] · xpad[n,c,i·s+a,j·s+b]: a convolution of x (batch and
    # channel roles swapped) with g as the kernel, dilated by the stride.
    pads = []
    for size, kk, s, p, o in ((input.shape[2], kernel_shape[2], stride[0], padding[0], g.shape[2]),
                              (input.shape[3], kernel_shape[3], stride[1], padding[1], g.shape[3])):
        pads.append((p, kk - size - p + (o - 1) * s))
    out = lax.conv_general_dilated(upcast(input), upcast(g), (1, 1), pads, rhs_dilation=stride,
                                   dimension_numbers=("CNHW", "IOHW", "CNHW"))
    return out.astype(g.dtype)


def _window_views(x, kernel_size, stride, oh, ow):
    """The KH·KW strided views x[:, :, a + s·i, b + s·j] of shape [N, C, OH, OW], one per tap."""
    (kh, kw), (sh, sw) = kernel_size, stride
    return [(a, b, x[:, :, a:a + sh * (oh - 1) + 1:sh, b:b + sw * (ow - 1) + 1:sw])
            for a in range(kh) for b in range(kw)]


def max_pool2d_grad_jax(input, g, kernel_size, stride):
    # Route each window's gradient to the window's first max: a one-hot over the taps picks it,
    # then each tap's share is added back at its strided position (overlaps add up).
    oh, ow = g.shape[2:]
    if kernel_size == stride:
        return _max_pool2d_grad_tiled(input, g, kernel_size)
    views = _window_views(input, kernel_size, stride, oh, ow)
    winner = jnp.argmax(jnp.stack([v for _, _, v in views]), axis=0)
    dx = jnp.zeros(input.shape, g.dtype)
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


# -- NumPy ----------------------------------------------------------------------------------------
def _windows(x: np.ndarray, size: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """Every ``size`` window of an NCHW array whose top-left corner lies on the stride grid: a
    read-only *view* [N, C, OH, OW, KH, KW] with view[n, c, i, j, a, b] = x[n, c, i·sh + a, j·sw + b]
    — im2col without the copy. Windows running past the bottom/right edge are dropped."""
    (sh, sw) = stride
    return sliding_window_view(x, size, axis=(2, 3))[:, :, ::sh, ::sw]


def _pad_hw(x: np.ndarray, padding: tuple[int, int]) -> np.ndarray:
    """Zero-pad the two spatial dims of an NCHW array by ``padding = (ph, pw)`` on each side."""
    (ph, pw) = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


@in_float32
def conv2d_np(input, kernel, stride, padding):
    """The formula, literally: take every window of xpad (im2col) and contract it with the kernel
    over (c, a, b). ``optimize=True`` lets einsum hand this to BLAS."""
    win = _windows(_pad_hw(input, padding), kernel.shape[2:], stride)       # [N, C, OH, OW, KH, KW]
    return np.einsum("ncijab,ocab->noij", win, kernel, optimize=True)


@in_float32
def conv2d_input_grad_np(g, kernel, input_shape, stride, padding):
    """dL/dx. Each xpad[n, c, i·sh + a, j·sw + b] met k[o, c, a, b] in out[n, o, i, j], so

        dxpad[n, c, i·sh + a, j·sw + b] += Σ_o g[n, o, i, j] · k[o, c, a, b].

    For one kernel offset (a, b) the positions i·sh + a form a strided slice, so we loop over the
    KH·KW offsets and add a whole slice at a time (``+=``: windows overlap when stride < kernel,
    and their contributions add). Then the padding is cropped off."""
    (n, c, h, w), (sh, sw), (ph, pw) = input_shape, stride, padding
    kh, kw = kernel.shape[2:]
    oh, ow = g.shape[2:]
    dxpad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=g.dtype)
    for a in range(kh):
        for b in range(kw):
            rows = slice(a, a + sh * (oh - 1) + 1, sh)
            cols = slice(b, b + sw * (ow - 1) + 1, sw)
            dxpad[:, :, rows, cols] += np.einsum("noij,oc->ncij", g, kernel[:, :, a, b], optimize=True)
    return dxpad[:, :, ph:ph + h, pw:pw + w]


@in_float32
def conv2d_kernel_grad_np(input, g, kernel_shape, stride, padding):
    """dL/dk[o, c, a, b] = Σ_{n, i, j} g[n, o, i, j] · xpad[n, c, i·sh + a, j·sw + b]: the same
    windows as the forward pass, now contracted with g over (n, i, j)."""
    win = _windows(_pad_hw(input, padding), kernel_shape[2:], stride)       # [N, C, OH, OW, KH, KW]
    return np.einsum("ncijab,noij->ocab", win, g, optimize=True)


def max_pool2d_np(input, kernel_size, stride):
    """out[n, c, i, j] = max over the window at (i·sh, j·sw). A max only selects, never rounds,
    so it needs no float32 detour."""
    return _windows(input, kernel_size, stride).max(axis=(4, 5))


@in_float32
def max_pool2d_grad_np(input, g, kernel_size, stride):
    """dL/dx: out[n, c, i, j] is a copy of one input element (its window's max), so its gradient
    g[n, c, i, j] goes to that element alone. On ties, the first max in row-major window order
    wins (``argmax``'s rule); overlapping windows (stride < kernel) add up."""
    (kh, kw), (sh, sw) = kernel_size, stride
    nb, ch, oh, ow = g.shape
    win = _windows(input, kernel_size, stride).reshape(nb, ch, oh, ow, kh * kw)
    a, b = np.divmod(win.argmax(axis=-1), kw)                  # offset of each max in its window
    rows = np.arange(oh)[:, None] * sh + a                      # [N, C, OH, OW] input row indices
    cols = np.arange(ow)[None, :] * sw + b                      # [N, C, OH, OW] input col indices
    n = np.arange(nb)[:, None, None, None]
    c = np.arange(ch)[None, :, None, None]
    dx = np.zeros(input.shape, dtype=g.dtype)
    np.add.at(dx, (n, c, rows, cols), g)                        # add.at: repeated targets add up
    return dx
