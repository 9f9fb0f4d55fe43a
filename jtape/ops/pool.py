"""2-D max and average pooling (NCHW; strided, padded) and the gradient kernels their rules call.

Notation: x is [N, C, H, W]; each window has K = (KH, KW) taps, its top-left corner s = ``stride``
apart (s defaults to K), on x padded by p = ``padding`` on each side; g = ∂ℒ/∂out is [N, C, OH, OW]
with OH = (H + 2·ph - KH) // sh + 1. As in torch, p is at most K // 2 in each dim, so every window
overlaps the input. Max pooling pads with -inf (padding never wins against an input value);
average pooling pads with zeros and divides by KH·KW, the zeros included (torch's default,
``count_include_pad=True``).

The gradient kernels (``max_pool2d_grad``, ``avg_pool2d_grad``) are ops too, each with its own rule
— each is linear in its gradient argument, so its rule is its transpose, again an op — so a
backward pass recorded with ``create_graph=True`` can be differentiated again.
"""

from __future__ import annotations

import numpy as np

from ..tensor.args import Pair, ShapeArg, Tensor
from ..tensor.checks import need_float, same_shapes
from ..tensor.errors import ShapeError
from ..tensor.registry import op
from .base import Operation
from .pool_kernels import (
    avg_pool2d_grad_jax,
    avg_pool2d_grad_np,
    avg_pool2d_jax,
    avg_pool2d_np,
    max_pool2d_grad_jax,
    max_pool2d_grad_np,
    max_pool2d_jax,
    max_pool2d_np,
)


def pool_shape(name: str, si: tuple, dtype, kernel_size: tuple, stride: tuple, padding: tuple) -> tuple:
    """A pooling op's output shape and dtype, after checking the rank, the padding and the window."""
    need_float(name, dtype)
    if len(si) != 4:
        raise ShapeError(f"{name}: got input shape {si}; expected rank 4 [N, C, H, W]")
    if padding[0] > kernel_size[0] // 2 or padding[1] > kernel_size[1] // 2:
        raise ShapeError(f"{name}: got padding {padding} for kernel_size {kernel_size}; expected padding <= "
                         f"kernel_size // 2 in each dim (as torch), so that every window overlaps the input")
    ph, pw = si[2] + 2 * padding[0], si[3] + 2 * padding[1]
    if kernel_size[0] > ph or kernel_size[1] > pw:
        padded = "" if padding == (0, 0) else f" with padding {padding} (padded {ph}x{pw})"
        raise ShapeError(f"{name}: got kernel_size {kernel_size} for input {si[2]}x{si[3]}{padded}; "
                         f"expected a window no larger than the {'padded ' if padded else ''}input")
    return (si[0], si[1], (ph - kernel_size[0]) // stride[0] + 1, (pw - kernel_size[1]) // stride[1] + 1), dtype


# -- max pooling ----------------------------------------------------------------------------------
@op(jax=max_pool2d_jax, numpy=max_pool2d_np)
def max_pool2d(input: Tensor, kernel_size: Pair(min=1), stride: Pair(min=1, optional=True) = None,
               padding: Pair(min=0) = 0):
    """The max over each ``kernel_size`` window (NCHW, padded with -inf); ``stride`` defaults to the kernel size."""
    stride = kernel_size if stride is None else stride
    shape, dtype = pool_shape("max_pool2d", tuple(input.shape), input.dtype, kernel_size, stride, padding)
    return shape, dtype, {"stride": stride}


@max_pool2d.rule
class MaxPool2DOp(Operation):
    """out[n, c, i, j] = max_{a<KH, b<KW} xp[n, c, i·s + a, j·s + b]  (NCHW, xp = x padded by p with -inf).

    Derivation: a max is locally a selection: ∂out/∂xp is 1 at the window's arg-max and 0
    elsewhere. On ties jtape picks the window's first max in row-major order — the element XLA's
    select-and-scatter picks, so this matches jax.grad of lax.reduce_window max. Each window's g
    goes to its arg-max element, and where windows overlap (s < K) an element collects from each;
    the padding (-inf) is never an input's max, and its rows and columns are dropped:
        grad_x = max_pool2d_grad(x, g, kernel_size, stride, padding)   (route-to-argmax, then add).
    Saves: x, kernel_size, stride, padding.
    """

    __slots__ = ("kernel_size", "stride", "padding")

    def vjp(self, g, out, x):
        return [max_pool2d_grad(x, g, self.kernel_size, self.stride, self.padding)]


@op(jax=max_pool2d_grad_jax, numpy=max_pool2d_grad_np, method=False)
def max_pool2d_grad(input: Tensor, g: Tensor, kernel_size: Pair(min=1), stride: Pair(min=1, optional=True) = None,
                    padding: Pair(min=0) = 0):
    """∂ℒ/∂input of ``max_pool2d``: each window's ``g`` routed to the window's (first) max."""
    stride = kernel_size if stride is None else stride
    expected, _ = pool_shape("max_pool2d_grad", tuple(input.shape), input.dtype, kernel_size, stride, padding)
    same_shapes("max_pool2d_grad (g)", g.shape, expected)
    return input.shape, input.dtype, {"stride": stride}


@max_pool2d_grad.rule
class MaxPool2DGradOp(Operation):
    """out = max_pool2d_grad(input, g, K, s, p): each window's g added at the window's (first) max.

    Derivation. With q(w) the flat position (in the input's H·W plane) of window w's max, the kernel
    is out[n, c, r] = Σ_{w : q(w) = r} g[n, c, w] — a scatter-add of g at q, linear in g. Its
    transpose reads h = ∂ℒ/∂out back at q:   grad_g[n, c, w] = h[n, c, q(w)],
    i.e. grad_g = reshape(gather(reshape(h, [N, C, H·W]), 2, q), g.shape). (With padding, a window
    of -inf inputs may pick a padded tap; q is then the extra slot H·W, where h reads as 0.)
    The positions q move only when the arg-max changes, so out is piecewise constant in input:
    grad_input = 0 almost everywhere, returned as None (as relu's second derivative is 0).
    q is a constant (argmax of the taps x[a + s·i - p, b + s·j - p], found with gather on a fixed
    index table, on x detached from the tape): no gradient flows through an argmax.
    Saves: kernel_size, stride, padding (input and g are the inputs).
    """

    __slots__ = ("kernel_size", "stride", "padding")

    def vjp(self, h, out, x, g):
        n, c, height, width = x.shape
        positions = window_max_positions(x.detach(), self.kernel_size, self.stride, self.padding, g.shape[2:])
        plane = h.reshape(n, c, height * width)
        if self.padding != (0, 0):
            plane = plane.cat([h.new_zeros((n, c, 1))], 2)            # the padding's slot reads 0
        return [None, plane.gather(2, positions).reshape(g.shape)]


def window_max_positions(x, kernel_size: tuple, stride: tuple, padding: tuple, out_hw: tuple):
    """For each pooling window of x [N, C, H, W] padded by ``padding`` with -inf: the flat index
    (r·W + c form, into H·W) of its first maximum, as an int32 tensor [N, C, OH·OW]; a padded tap
    has index H·W (a slot holding -inf), which only a window of -inf inputs can pick."""
    n, c, height, width = x.shape
    (kh, kw), (sh, sw), (ph, pw), (oh, ow) = kernel_size, stride, padding, tuple(out_hw)
    # table[t, w]: the flat position of tap t = (a, b) of window w = (i, j); taps in row-major order,
    # so argmax's "first maximum" is the same tie rule as max_pool2d_grad's.
    rows = [(np.arange(oh)[:, None] * sh + a - ph) for a in range(kh)]
    cols = [(np.arange(ow)[None, :] * sw + b - pw) for b in range(kw)]
    table = np.stack([np.where((r >= 0) & (r < height) & (q >= 0) & (q < width), r * width + q, height * width)
                      .reshape(-1) for r in rows for q in cols])
    taps, windows = kh * kw, oh * ow
    table_nc = x.new_tensor(table.astype(np.int32).reshape(1, 1, taps, windows)).expand(n, c, taps, windows)
    plane = x.reshape(n, c, height * width)
    if padding != (0, 0):
        plane = plane.cat([x.new_full((n, c, 1), -np.inf)], 2)
    values = plane.gather(2, table_nc.reshape(n, c, taps * windows))                     # x at every tap
    winner = values.reshape(n, c, taps, windows).argmax(2).unsqueeze(2)                   # [N, C, 1, OH·OW]
    return table_nc.gather(2, winner).reshape(n, c, windows)


# -- average pooling ------------------------------------------------------------------------------
@op(jax=avg_pool2d_jax, numpy=avg_pool2d_np)
def avg_pool2d(input: Tensor, kernel_size: Pair(min=1), stride: Pair(min=1, optional=True) = None,
               padding: Pair(min=0) = 0):
    """The mean over each ``kernel_size`` window (NCHW, zero padding counted in the divisor KH·KW, as
    torch's ``count_include_pad=True``); ``stride`` defaults to the kernel size."""
    stride = kernel_size if stride is None else stride
    shape, dtype = pool_shape("avg_pool2d", tuple(input.shape), input.dtype, kernel_size, stride, padding)
    return shape, dtype, {"stride": stride}


@avg_pool2d.rule
class AvgPool2DOp(Operation):
    """out[n, c, i, j] = (1 / (KH·KW)) · Σ_{a<KH, b<KW} xp[n, c, i·s + a, j·s + b]  (xp = x zero-padded by p).

    Derivation. out is linear in x: ∂out[n,c,i,j]/∂xp[n,c,y,x] = 1/(KH·KW) when (y, x) lies in
    window (i, j), else 0. So
        ∂ℒ/∂xp[n,c,y,x] = Σ_{i, j : 0 ≤ y - i·s < KH, 0 ≤ x - j·s < KW} g[n,c,i,j] / (KH·KW):
    each window spreads g/(KH·KW) evenly over its KH·KW elements, overlapping windows (s < K) add,
    and the padding's share is dropped. This is the transpose of window averaging — a transposed
    convolution of g (dilated by s, padded by K - 1 - p) with a constant kernel 1/(KH·KW), channel
    by channel:
        grad_x = avg_pool2d_grad(g, x.shape, kernel_size, stride, padding).
    Saves: kernel_size, stride, padding (and x's shape).
    """

    __slots__ = ("kernel_size", "stride", "padding")

    def vjp(self, g, out, x):
        return [avg_pool2d_grad(g, x.shape, self.kernel_size, self.stride, self.padding)]


@op(jax=avg_pool2d_grad_jax, numpy=avg_pool2d_grad_np, method=False)
def avg_pool2d_grad(g: Tensor, input_shape: ShapeArg, kernel_size: Pair(min=1),
                    stride: Pair(min=1, optional=True) = None, padding: Pair(min=0) = 0):
    """∂ℒ/∂input of ``avg_pool2d`` given ``g = ∂ℒ/∂out``: g / (KH·KW) spread over each window (see AvgPool2DOp)."""
    stride = kernel_size if stride is None else stride
    expected, _ = pool_shape("avg_pool2d_grad", input_shape, g.dtype, kernel_size, stride, padding)
    same_shapes("avg_pool2d_grad (g)", g.shape, expected)
    return input_shape, g.dtype, {"stride": stride}


@avg_pool2d_grad.rule
class AvgPool2DGradOp(Operation):
    """out = avg_pool2d_grad(g, input_shape, K, s, p) = Aᵀ g,  A(x) = avg_pool2d(x, K, s, p).

    Derivation. A is linear, so for h = ∂ℒ/∂out (input-shaped):  ⟨h, Aᵀ g⟩ = ⟨A h, g⟩, and
        grad_g = A h = avg_pool2d(h, K, s, p).
    (Here the incoming gradient is called h, since g names this op's input. A is linear, so
    avg_pool2d's second derivative is 0; this rule carries the first-order terms of a recorded
    backward pass.) Saves: input_shape, kernel_size, stride, padding (g is the input).
    """

    __slots__ = ("input_shape", "kernel_size", "stride", "padding")

    def vjp(self, h, out, g):
        return [h.avg_pool2d(self.kernel_size, self.stride, self.padding)]
