"""The kernels of ``jtape.ops.conv``: 2-D convolution and its two gradients, in ``jax.lax`` and in NumPy.

Notation as in ``conv``: x [N, C, H, W], k [O, C/G, KH, KW] (G = ``groups``), g = ∂ℒ/∂out
[N, O, OH, OW], xpad = x zero-padded by (ph, pw), s the stride, d the dilation. Kernel tap (a, b)
reads xpad at (i·sh + a·dh, j·sw + b·dw). Statics arrive normalised: ``stride``, ``padding``,
``dilation`` as ``(h, w)`` pairs, ``groups`` an int, shapes as tuples. The NumPy kernels are
written to be read; the JAX ones to compile well.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax
from numpy.lib.stride_tricks import sliding_window_view

from .precision import in_float32, upcast

_NCHW = ("NCHW", "OIHW", "NCHW")


def span(size: int, dilation: int) -> int:
    """How many input rows (or columns) a kernel of ``size`` taps dilated by ``dilation`` covers."""
    return (size - 1) * dilation + 1


# -- JAX ------------------------------------------------------------------------------------------
# Layout: the kernels keep the API's NCHW/OIHW in ``dimension_numbers``; each is one jitted program,
# and XLA's layout assignment already picks the conv's internal layout (on CPU, transposing to
# NHWC/HWIO by hand inside the kernel measured 0.96-1.20x the plain call: no gain, so not done).
# For few input channels (C/G·KH·KW <= IM2COL_MAX, G = 1) XLA:CPU's conv is slow, and on CPU the
# forward and kernel gradient run as im2col + one matmul instead (measured 0.34-0.57x forward,
# 0.48-0.73x kernel gradient; benchmarks/conv_ab.py). Both build the same channels-last patches, so a
# whole step builds them once (a CNN step 0.8-0.9x with the forward's patches NCHW and the kernel
# gradient's channels-last, built twice). Other platforms (GPU: cuDNN) keep the conv.
IM2COL_MAX = 27


def _im2col_ok(kernel_shape, groups) -> bool:
    return groups == 1 and kernel_shape[1] * kernel_shape[2] * kernel_shape[3] <= IM2COL_MAX


def _tap_slices(oh, ow, stride, dilation, a, b) -> tuple[slice, slice]:
    """The rows and columns of xpad that kernel tap (a, b) reads for the OH x OW outputs."""
    (sh, sw), (dh, dw) = stride, dilation
    return (slice(a * dh, a * dh + sh * (oh - 1) + 1, sh), slice(b * dw, b * dw + sw * (ow - 1) + 1, sw))


def _conv_lax(x, k, stride, padding, dilation, groups):
    (ph, pw) = padding
    return lax.conv_general_dilated(x, k, stride, [(ph, ph), (pw, pw)], rhs_dilation=dilation,
                                    dimension_numbers=_NCHW, feature_group_count=groups)


def _patches(x, kernel_hw, stride, padding, dilation):
    """im2col, channels last: the KH·KW strided slices of xpad that the taps read, as rows
    [N·OH·OW, KH·KW·C] (column (a·KW + b)·C + c: tap (a, b), channel c); and OH, OW. The forward and
    the kernel gradient build them the same way, so inside one program (a deferred step, jtape.jit)
    XLA computes them once for both."""
    (ph, pw), (kh, kw), (n, c) = padding, kernel_hw, x.shape[:2]
    xp = jnp.pad(x.transpose(0, 2, 3, 1), ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    oh = (xp.shape[1] - span(kh, dilation[0])) // stride[0] + 1
    ow = (xp.shape[2] - span(kw, dilation[1])) // stride[1] + 1
    cols = [xp[(slice(None),) + _tap_slices(oh, ow, stride, dilation, a, b)] for a in range(kh) for b in range(kw)]
    return jnp.concatenate(cols, axis=3).reshape(n * oh * ow, kh * kw * c), oh, ow


def _conv_im2col(x, k, stride, padding, dilation):
    """out[n, o, i, j] = Σ_{a, b, c} patches[(n, i, j), (a, b, c)] · k[o, c, a, b]: one matmul, against
    the kernel laid out [KH·KW·C, O]; the result [N·OH·OW, O] goes back to NCHW."""
    o, c, kh, kw = k.shape
    patches, oh, ow = _patches(x, (kh, kw), stride, padding, dilation)
    out = patches @ k.transpose(2, 3, 1, 0).reshape(kh * kw * c, o)
    return out.reshape(x.shape[0], oh, ow, o).transpose(0, 3, 1, 2)


def conv2d_jax(input, kernel, stride, padding, dilation, groups):
    x, k = upcast(input), upcast(kernel)
    if _im2col_ok(kernel.shape, groups):
        out = lax.platform_dependent(x, k, cpu=lambda x, k: _conv_im2col(x, k, stride, padding, dilation),
                                     default=lambda x, k: _conv_lax(x, k, stride, padding, dilation, 1))
    else:
        out = _conv_lax(x, k, stride, padding, dilation, groups)
    return out.astype(input.dtype)


def conv2d_input_grad_jax(g, kernel, input_shape, stride, padding, dilation, groups):
    # A transposed convolution: dilate g by the stride, pad it so every (dilated) kernel tap lands,
    # and correlate with the kernel flipped in space and with in/out channels swapped per group.
    o, cg, kh, kw = kernel.shape
    pads = []
    for size, kk, s, p, d, out in ((input_shape[2], kh, stride[0], padding[0], dilation[0], g.shape[2]),
                                   (input_shape[3], kw, stride[1], padding[1], dilation[1], g.shape[3])):
        lo = span(kk, d) - 1 - p
        pads.append((lo, size + p - 1 - (out - 1) * s))
    # [O, C/G, KH, KW] = [G, O/G, C/G, KH, KW] -> per group [C/G, O/G]: [G·C/G = C, O/G, KH, KW]
    swapped = upcast(kernel).reshape(groups, o // groups, cg, kh, kw).transpose(0, 2, 1, 3, 4)
    k_flipped = jnp.flip(swapped.reshape(groups * cg, o // groups, kh, kw), (2, 3))
    out = lax.conv_general_dilated(upcast(g), k_flipped, (1, 1), pads, lhs_dilation=stride, rhs_dilation=dilation,
                                   dimension_numbers=_NCHW, feature_group_count=groups)
    return out.astype(g.dtype)


def conv2d_kernel_grad_jax(input, g, kernel_shape, stride, padding, dilation, groups):
    x, gu = upcast(input), upcast(g)
    if _im2col_ok(kernel_shape, groups):
        out = lax.platform_dependent(
            x, gu, cpu=lambda x, g: _kernel_grad_im2col(x, g, kernel_shape, stride, padding, dilation),
            default=lambda x, g: _kernel_grad_lax(x, g, kernel_shape, stride, padding, dilation, 1))
    else:
        out = _kernel_grad_lax(x, gu, kernel_shape, stride, padding, dilation, groups)
    return out.astype(g.dtype)


def _kernel_grad_lax(x, g, kernel_shape, stride, padding, dilation, groups):
    # dk[o,c,a,b] = Σ_{n,i,j} g[n,o,i,j] · xpad[n, γ(o)·C/G + c, i·s + a·d, j·s + b·d]: a convolution of x
    # (batch and channel roles swapped) with g as the kernel, dilated by the stride, stepping by the
    # dilation; batch_group_count pairs the input's channel group γ with the output channels of group γ.
    pads = []
    for size, kk, s, p, d, out in ((x.shape[2], kernel_shape[2], stride[0], padding[0], dilation[0], g.shape[2]),
                                   (x.shape[3], kernel_shape[3], stride[1], padding[1], dilation[1], g.shape[3])):
        pads.append((p, span(kk, d) + (out - 1) * s - size - p))
    return lax.conv_general_dilated(x, g, dilation, pads, rhs_dilation=stride,
                                    dimension_numbers=("CNHW", "IOHW", "CNHW"), batch_group_count=groups)


def _kernel_grad_im2col(x, g, kernel_shape, stride, padding, dilation):
    """dk = patchesᵀ · g: the forward's im2col patches (``_patches``: in a whole step the forward's
    own), [N·OH·OW, KH·KW·C], against g as [N·OH·OW, O] — one matmul contracting the batch and
    output positions."""
    o, c, kh, kw = kernel_shape
    patches, oh, ow = _patches(x, (kh, kw), stride, padding, dilation)
    dk = patches.T @ g.transpose(0, 2, 3, 1).reshape(x.shape[0] * oh * ow, o)        # [KH·KW·C, O]
    return dk.reshape(kh, kw, c, o).transpose(3, 2, 0, 1)


# -- NumPy ----------------------------------------------------------------------------------------
def _pad_hw(x: np.ndarray, padding: tuple[int, int]) -> np.ndarray:
    """Zero-pad the two spatial dims of an NCHW array by ``padding = (ph, pw)`` on each side."""
    (ph, pw) = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def _taps(x: np.ndarray, taps: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]) -> np.ndarray:
    """Every window of an NCHW array whose top-left corner lies on the stride grid, read at its
    dilated taps: a read-only *view* [N, C, OH, OW, KH, KW] with
        view[n, c, i, j, a, b] = x[n, c, i·sh + a·dh, j·sw + b·dw]
    — im2col without the copy. Windows running past the bottom/right edge are dropped."""
    (sh, sw), (dh, dw) = stride, dilation
    windows = sliding_window_view(x, (span(taps[0], dh), span(taps[1], dw)), axis=(2, 3))
    return windows[:, :, ::sh, ::sw, ::dh, ::dw]


def _groups_of(a: np.ndarray, axis: int, groups: int) -> np.ndarray:
    """Split ``axis`` of ``a`` into (groups, size / groups): channel c = γ·size/G + c' becomes [γ, c']."""
    return a.reshape(a.shape[:axis] + (groups, a.shape[axis] // groups) + a.shape[axis + 1:])


@in_float32
def conv2d_np(input, kernel, stride, padding, dilation, groups):
    """The formula, literally: take every (dilated) window of xpad (im2col) and contract it with the
    kernel over (c, a, b) — within each group γ, whose output channels read only its input channels.
    ``optimize=True`` lets einsum hand this to BLAS."""
    n, o = input.shape[0], kernel.shape[0]
    win = _taps(_pad_hw(input, padding), kernel.shape[2:], stride, dilation)     # [N, C, OH, OW, KH, KW]
    out = np.einsum("ngcijab,gocab->ngoij", _groups_of(win, 1, groups), _groups_of(kernel, 0, groups), optimize=True)
    return out.reshape(n, o, *out.shape[3:])


@in_float32
def conv2d_input_grad_np(g, kernel, input_shape, stride, padding, dilation, groups):
    """dL/dx. Each xpad[n, γ·C/G + c, i·sh + a·dh, j·sw + b·dw] met k[o, c, a, b] (o in group γ) in
    out[n, o, i, j], so

        dxpad[n, γ·C/G + c, i·sh + a·dh, j·sw + b·dw] += Σ_{o in group γ} g[n, o, i, j] · k[o, c, a, b].

    For one kernel tap (a, b) the positions i·sh + a·dh form a strided slice, so we loop over the
    KH·KW taps and add a whole slice at a time (``+=``: windows overlap when the stride is smaller
    than the span, and their contributions add). Then the padding is cropped off."""
    (n, c, h, w), (sh, sw), (ph, pw), (dh, dw) = input_shape, stride, padding, dilation
    kh, kw = kernel.shape[2:]
    oh, ow = g.shape[2:]
    g_groups = _groups_of(g, 1, groups)                                          # [N, G, O/G, OH, OW]
    dxpad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=g.dtype)
    for a in range(kh):
        for b in range(kw):
            rows = slice(a * dh, a * dh + sh * (oh - 1) + 1, sh)
            cols = slice(b * dw, b * dw + sw * (ow - 1) + 1, sw)
            tap = _groups_of(kernel[:, :, a, b], 0, groups)                      # [G, O/G, C/G]
            dxpad[:, :, rows, cols] += np.einsum("ngoij,goc->ngcij", g_groups, tap).reshape(n, c, oh, ow)
    return dxpad[:, :, ph:ph + h, pw:pw + w]


@in_float32
def conv2d_kernel_grad_np(input, g, kernel_shape, stride, padding, dilation, groups):
    """dL/dk[o, c, a, b] = Σ_{n, i, j} g[n, o, i, j] · xpad[n, γ(o)·C/G + c, i·sh + a·dh, j·sw + b·dw]:
    the same windows as the forward pass, now contracted with g over (n, i, j), group by group."""
    win = _taps(_pad_hw(input, padding), kernel_shape[2:], stride, dilation)    # [N, C, OH, OW, KH, KW]
    dk = np.einsum("ngcijab,ngoij->gocab", _groups_of(win, 1, groups), _groups_of(g, 1, groups), optimize=True)
    return dk.reshape(kernel_shape)
