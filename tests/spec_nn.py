"""Spec rows of convolution and pooling (see ``spec.py`` for the fields): ``conv2d`` (strided, padded,
dilated, grouped, depthwise), ``max_pool2d`` and ``avg_pool2d`` (strided, padded), with their
references written here with ``jax.numpy`` / ``jax.lax`` only.

Every sample lists its kwargs in the op's signature order (the rows call ops positionally, as the
seed's examples do). Max pooling's tie rule is pinned by ``Ties`` samples — many equal values per
window — whose gradients are compared with ``jax.vjp`` of ``lax.reduce_window`` max: XLA's
select-and-scatter sends each window's gradient to its first maximum in row-major order, the -inf
padding included (a padded tap can only win a window of -inf inputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
from jax import lax
from spec import FLOATS, E, OpSpec, S, Sample, distinct, float_only_error, mixed_dtype_error


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _spatial(ph, pw):
    return ((0, 0), (0, 0), (ph, ph), (pw, pw))


def _out_size(size, window, stride):
    return (size - window) // stride + 1


# -- references ------------------------------------------------------------------------------------
def ref_conv2d(x, k, stride=1, padding=0, dilation=1, groups=1):
    """out[n, o, i, j] = sum_{c, a, b} xpad[n, g(o)*C/G + c, i*sh + a*dh, j*sw + b*dw] * k[o, c, a, b],
    one kernel tap (a, b) at a time; the channels split into G independent groups."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    n, c = x.shape[:2]
    o, cg, kh, kw = k.shape
    xp = jnp.pad(x, _spatial(ph, pw))
    oh = _out_size(xp.shape[2], (kh - 1) * dh + 1, sh)
    ow = _out_size(xp.shape[3], (kw - 1) * dw + 1, sw)
    out = jnp.zeros((n, groups, o // groups, oh, ow), x.dtype)
    for a in range(kh):
        for b in range(kw):
            view = xp[:, :, a * dh:a * dh + sh * (oh - 1) + 1:sh, b * dw:b * dw + sw * (ow - 1) + 1:sw]
            taps = k[:, :, a, b].reshape(groups, o // groups, cg)
            out = out + jnp.einsum("ngcij,goc->ngoij", view.reshape(n, groups, cg, oh, ow), taps)
    return out.reshape(n, o, oh, ow)


def ref_max_pool2d(x, kernel_size, stride=None, padding=0):
    """lax.reduce_window max over x padded with -inf: its jax.vjp is the tie rule's oracle."""
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, kh, kw), (1, 1, sh, sw), _spatial(*_pair(padding)))


def ref_avg_pool2d(x, kernel_size, stride=None, padding=0):
    """The sum of the window's taps of x zero-padded, over KH*KW (the padding counts, as torch's default)."""
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    xp = jnp.pad(x, _spatial(*_pair(padding)))
    oh, ow = _out_size(xp.shape[2], kh, sh), _out_size(xp.shape[3], kw, sw)
    total = sum(xp[:, :, a:a + sh * (oh - 1) + 1:sh, b:b + sw * (ow - 1) + 1:sw] for a in range(kh) for b in range(kw))
    return total / (kh * kw)


# -- samples ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ties(Sample):
    """A pooling sample drawn with many equal values in each window: the tie convention's own case."""

    @property
    def id(self) -> str:
        return super().id + "-ties"


def T(*shapes: tuple, **kwargs) -> Ties:
    return Ties(tuple(shapes), kwargs)


def pool_values(rng, shape, dtype, sample):
    """Distinct values (one winner per window), or for a ``Ties`` sample values in {0, 0.5}: most
    windows hold several maxima (exact in every float dtype)."""
    if isinstance(sample, Ties):
        return rng.integers(0, 2, shape) * 0.5
    return distinct(rng, shape, dtype, sample)


def pool_errors(name: str) -> tuple:
    return (
        E((1, 1, 3, 4), kernel_size=5,
          match=f"{name}: got kernel_size (5, 5) for input 3x4; expected a window no larger than the input"),
        E((1, 1, 3, 4), kernel_size=(2, 5), match=f"{name}: got kernel_size (2, 5) for input 3x4"),
        E((1, 1, 2, 2), kernel_size=6, stride=1, padding=(1, 3),
          match=f"{name}: got kernel_size (6, 6) for input 2x2 with padding (1, 3) (padded 4x8); expected a window "
                f"no larger than the padded input"),
        E((1, 1, 5, 5), kernel_size=3, stride=1, padding=2,
          match=f"{name}: got padding (2, 2) for kernel_size (3, 3); expected padding <= kernel_size // 2 in each "
                f"dim (as torch)"),
        E((1, 1, 5, 5), kernel_size=(2, 4), stride=None, padding=(1, 3),
          match=f"{name}: got padding (1, 3) for kernel_size (2, 4); expected padding <= kernel_size // 2"),
        E((1, 1, 4, 4), kernel_size=2, stride=0, match=f"{name}: got stride=0; expected values >= 1"),
        E((1, 1, 4, 4), kernel_size=2, stride=-2, match=f"{name}: got stride=-2; expected values >= 1"),
        E((1, 1, 4, 4), kernel_size=0, match=f"{name}: got kernel_size=0; expected values >= 1"),
        E((1, 1, 4, 4), kernel_size=2, stride=1, padding=-1, match=f"{name}: got padding=-1; expected values >= 0"),
        E((1, 1, 4, 4), kernel_size=2, stride=1, padding=(0, 1, 1),
          match=f"{name}: got padding=(0, 1, 1); expected an int or a pair of ints"),
        E((1, 4, 4), kernel_size=2, match=f"{name}: got input shape (1, 4, 4); expected rank 4 [N, C, H, W]"),
        float_only_error(name, (1, 1, 4, 4), kernel_size=2))


# Shared by both pooling ops: strides 1-3 (and the default), paddings 0-2, non-square inputs and
# windows, batch > 1, windows with gaps, overlapping, tiling, and windows larger than the input.
POOL_SAMPLES = (
    S((2, 3, 7, 6), kernel_size=3, stride=2, padding=1),           # padded, overlapping
    T((2, 2, 6, 7), kernel_size=3, stride=1, padding=1),           # ties, padded, overlapping
    S((1, 2, 5, 6), kernel_size=2, stride=3),                      # gaps between windows
    S((1, 1, 4, 4), kernel_size=4),                                # one window covering everything
    S((2, 2, 5, 7), kernel_size=3, stride=1),                      # overlapping windows
    S((2, 3, 7, 9), kernel_size=2),                                # stride defaults to kernel_size
    S((2, 3, 7, 9), kernel_size=(2, 3), stride=(1, 2)),
    S((2, 3, 7, 9), kernel_size=3, stride=3),                      # does not tile the input exactly
    S((1, 2, 6, 5), kernel_size=(3, 1), stride=(2, 1)),
    S((2, 2, 7, 8), kernel_size=(4, 5), stride=(3, 2), padding=2),
    S((1, 2, 5, 5), kernel_size=2, stride=None, padding=1),        # default stride, padded
    S((2, 1, 3, 4), kernel_size=(4, 2), stride=1, padding=(2, 0)),  # window taller than the input
    T((2, 3, 6, 6), kernel_size=2),                                # ties, tiled (stride == kernel)
    T((1, 2, 7, 5), kernel_size=(3, 2), stride=(2, 1), padding=(1, 1)),
    T((2, 2, 5, 5), kernel_size=(2, 3), stride=(3, 1), padding=(0, 1)),
    S((0, 2, 4, 4), kernel_size=2, stride=1, padding=1),           # empty batch
)


SPECS: tuple = (
    OpSpec("conv2d", ref_conv2d, (
        S((2, 4, 9, 8), (6, 2, 3, 2), stride=(2, 1), padding=(1, 2), dilation=(2, 3), groups=2),
        S((2, 3, 7, 9), (6, 1, 3, 3), stride=1, padding=2, dilation=2, groups=3),    # depthwise, 2 per channel
        S((2, 3, 7, 9), (4, 3, 3, 2), stride=1, padding=0),
        S((1, 2, 5, 6), (3, 2, 2, 3), stride=2, padding=1),
        S((2, 3, 7, 9), (4, 3, 3, 2), stride=3, padding=2),
        S((2, 3, 7, 9), (2, 3, 3, 3), stride=(1, 2), padding=(2, 0)),
        S((1, 1, 5, 5), (2, 1, 5, 5), stride=1, padding=0),      # kernel as large as the input
        S((1, 2, 4, 6), (3, 2, 1, 1), stride=2, padding=1),      # padding larger than kernel - 1
        S((1, 1, 3, 3), (1, 1, 5, 5), stride=1, padding=1),      # kernel larger than the unpadded input
        S((2, 1, 8, 7), (2, 1, 3, 3), stride=(3, 2), padding=(1, 2)),
        S((2, 6, 11, 10), (4, 3, 2, 3), stride=(3, 2), padding=(2, 0), dilation=(3, 1), groups=2),
        S((2, 4, 8, 7), (4, 1, 3, 2), stride=3, padding=2, dilation=(1, 2), groups=4),   # depthwise
        S((1, 2, 9, 9), (2, 2, 3, 3), stride=2, padding=0, dilation=3),
        S((3, 4, 5, 6), (4, 2, 2, 2), stride=1, padding=1, dilation=1, groups=2),
        S((1, 2, 3, 5), (2, 1, 2, 2), stride=1, padding=0, dilation=(2, 4), groups=2),   # span = the input
        S((2, 6, 6, 5), (6, 3, 1, 2), stride=(1, 3), padding=(0, 1), dilation=(1, 2), groups=2),
        S((0, 4, 5, 5), (2, 2, 3, 3), stride=1, padding=1, dilation=2, groups=2),        # empty batch
    ), FLOATS, grad=(0, 1), errors=(
        E((1, 3, 5, 5), (2, 4, 3, 3),
          match="conv2d: got input shape (1, 3, 5, 5) with 3 channels and kernel shape (2, 4, 3, 3) expecting 4; "
                "expected input.shape[1] == kernel.shape[1]"),
        E((1, 4, 5, 5), (2, 4, 3, 3), stride=1, padding=0, dilation=1, groups=2,
          match="conv2d: got input shape (1, 4, 5, 5) with 4 channels and kernel shape (2, 4, 3, 3) expecting 4 per "
                "group (2 groups); expected input.shape[1] == groups * kernel.shape[1] = 8"),
        E((1, 4, 5, 5), (2, 2, 3, 3), stride=1, padding=0, dilation=1, groups=3,
          match="conv2d: got groups=3 for 4 input channels (input shape (1, 4, 5, 5)) and 2 output channels "
                "(kernel shape (2, 2, 3, 3)); expected groups to divide both"),
        E((1, 4, 5, 5), (3, 2, 3, 3), stride=1, padding=0, dilation=1, groups=2,
          match="conv2d: got groups=2 for 4 input channels (input shape (1, 4, 5, 5)) and 3 output channels"),
        E((1, 1, 3, 3), (1, 1, 6, 6), stride=1, padding=1,
          match="conv2d: got kernel 6x6 for input 3x3 with padding (1, 1) (padded 5x5)"),
        E((1, 1, 5, 5), (1, 1, 2, 6), match="conv2d: got kernel 2x6 for input 5x5"),
        E((1, 1, 5, 6), (1, 1, 3, 3), stride=1, padding=(1, 0), dilation=(2, 3),
          match="conv2d: got kernel 3x3 with dilation (2, 3) (spanning 5x7) for input 5x6 with padding (1, 0) "
                "(padded 7x6); expected a non-empty kernel no larger than the padded input"),
        E((1, 1, 5, 5), (1, 1, 3, 3), stride=0, match="conv2d: got stride=0; expected values >= 1"),
        E((1, 1, 5, 5), (1, 1, 3, 3), stride=(1, -1), match="conv2d: got stride=(1, -1); expected values >= 1"),
        E((1, 1, 5, 5), (1, 1, 3, 3), stride=1, padding=-1, match="conv2d: got padding=-1; expected values >= 0"),
        E((1, 1, 5, 5), (1, 1, 3, 3), stride=1, padding=0, dilation=0,
          match="conv2d: got dilation=0; expected values >= 1"),
        E((1, 1, 5, 5), (1, 1, 3, 3), stride=1, padding=0, dilation=(1, 2.0),
          match="conv2d: got dilation=(1, 2.0); expected an int or a pair of ints"),
        E((1, 1, 5, 5), (1, 1, 3, 3), stride=1, padding=0, dilation=1, groups=0,
          match="conv2d: got groups=0; expected a positive int"),
        E((1, 1, 5, 5), (1, 1, 3, 3), stride=1, padding=0, dilation=1, groups=True,
          match="conv2d: got groups=True; expected a positive int"),
        E((1, 1, 5, 5), (1, 1, 3, 3), stride=(1, 2, 3),
          match="conv2d: got stride=(1, 2, 3); expected an int or a pair of ints"),
        E((3, 5, 5), (1, 3, 3, 3), match="conv2d: got input shape (3, 5, 5); expected rank 4 [N, C_in, H, W]"),
        E((1, 3, 5, 5), (3, 3, 3), match="conv2d: got kernel shape (3, 3, 3); expected rank 4"),
        float_only_error("conv2d", (1, 1, 5, 5), (1, 1, 3, 3)),
        mixed_dtype_error("conv2d", (1, 1, 5, 5), (1, 1, 3, 3)))),
    OpSpec("max_pool2d", ref_max_pool2d, POOL_SAMPLES, FLOATS, grad=(0,), domain=pool_values,
           errors=pool_errors("max_pool2d")),
    OpSpec("avg_pool2d", ref_avg_pool2d, tuple(Sample(s.shapes, s.kwargs) for s in POOL_SAMPLES), FLOATS, grad=(0,),
           errors=pool_errors("avg_pool2d")),      # (normal values: ties mean nothing to a mean)
)
