"""2-D convolution and max pooling (NCHW), and the gradient kernels their rules call.

Notation: x is [N, C, H, W], k is [O, C, KH, KW], g = ∂ℒ/∂out is [N, O, OH, OW], and xpad is x with
``padding`` zeros around H and W. The forward op is a cross-correlation:
    out[n, o, i, j] = Σ_{c, a, b} xpad[n, c, i·sh + a, j·sw + b] · k[o, c, a, b]

The gradient kernels (``conv2d_input_grad``, ``conv2d_kernel_grad``, ``max_pool2d_grad``) are ops
too, each with its own rule — each is linear in its gradient argument, so its rule is its
transpose, again an op — so a backward pass recorded with ``create_graph=True`` can be
differentiated again.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from ..tensor.args import Pair, ShapeArg, Tensor
from ..tensor.checks import need_float, same_dtype, same_shapes
from ..tensor.errors import ShapeError
from ..tensor.registry import op
from .base import Operation
from .conv_kernels import (
    conv2d_input_grad_jax,
    conv2d_input_grad_np,
    conv2d_jax,
    conv2d_kernel_grad_jax,
    conv2d_kernel_grad_np,
    conv2d_np,
    max_pool2d_grad_jax,
    max_pool2d_grad_np,
    max_pool2d_np,
)


def conv_shape(name: str, si: tuple, dtype_i, sk: tuple, dtype_k, stride: tuple, padding: tuple) -> tuple:
    """conv2d's output shape and dtype, after checking ranks, channels and sizes."""
    dtype = need_float(name, same_dtype(name, dtype_i, dtype_k))
    if len(si) != 4:
        raise ShapeError(f"{name}: got input shape {si}; expected rank 4 [N, C_in, H, W]")
    if len(sk) != 4:
        raise ShapeError(f"{name}: got kernel shape {sk}; expected rank 4 [C_out, C_in, KH, KW]")
    if si[1] != sk[1]:
        raise ShapeError(f"{name}: got input shape {si} with {si[1]} channels and kernel shape {sk} "
                         f"expecting {sk[1]}; expected input.shape[1] == kernel.shape[1]")
    ph, pw = si[2] + 2 * padding[0], si[3] + 2 * padding[1]
    if sk[2] > ph or sk[3] > pw or 0 in sk[2:]:
        raise ShapeError(f"{name}: got kernel {sk[2]}x{sk[3]} for input {si[2]}x{si[3]} with padding "
                         f"{padding} (padded {ph}x{pw}); expected a non-empty kernel no larger than the padded input")
    oh = (si[2] + 2 * padding[0] - sk[2]) // stride[0] + 1
    ow = (si[3] + 2 * padding[1] - sk[3]) // stride[1] + 1
    return (si[0], sk[0], oh, ow), dtype


def pool_shape(name: str, si: tuple, dtype, kernel_size: tuple, stride: tuple) -> tuple:
    need_float(name, dtype)
    if len(si) != 4:
        raise ShapeError(f"{name}: got input shape {si}; expected rank 4 [N, C, H, W]")
    if kernel_size[0] > si[2] or kernel_size[1] > si[3]:
        raise ShapeError(f"{name}: got kernel_size {kernel_size} for input {si[2]}x{si[3]}; "
                         f"expected a window no larger than the input")
    return (si[0], si[1], (si[2] - kernel_size[0]) // stride[0] + 1, (si[3] - kernel_size[1]) // stride[1] + 1), dtype


# -- conv2d ---------------------------------------------------------------------------------------
@op(jax=conv2d_jax, numpy=conv2d_np)
def conv2d(input: Tensor, kernel: Tensor, stride: Pair(min=1) = 1, padding: Pair(min=0) = 0):
    """2-D cross-correlation, NCHW input, kernel ``[C_out, C_in, KH, KW]``."""
    return conv_shape("conv2d", tuple(input.shape), input.dtype, tuple(kernel.shape), kernel.dtype, stride, padding)


@conv2d.rule
class Conv2DOp(Operation):
    """out = conv2d(input, kernel, stride s, padding p)  (cross-correlation, NCHW, kernel [O, C, KH, KW]):
        out[n, o, i, j] = Σ_{c, a, b} xp[n, c, i·s + a, j·s + b] · k[o, c, a, b],   xp = input zero-padded by p.

    Derivation. Each product touches one input and one kernel element, so
      ∂ℒ/∂k[o,c,a,b] = Σ_{n,i,j} g[n,o,i,j] · xp[n,c,i·s+a, j·s+b]
        — a correlation of the input with g (g acting as a kernel dilated by s):
        grad_kernel = conv2d_kernel_grad(input, g, kernel.shape, s, p);
      ∂ℒ/∂xp[n,c,y,x] = Σ_{o,a,b : y = i·s+a, x = j·s+b} g[n,o,i,j] · k[o,c,a,b]
        — a *transposed* convolution: g dilated by s (s-1 zeros between elements), padded by
        KH-1-p, correlated with the kernel flipped in space and with in/out channels swapped;
        the padding's rows and columns are dropped:
        grad_input = conv2d_input_grad(g, kernel, input.shape, s, p).
    Both are gradient kernels (on JaxBackend, lax.conv_general_dilated with lhs/rhs dilation).
    Saves: input, kernel, stride, padding.
    """

    __slots__ = ("stride", "padding")
    fuse = True

    def vjp(self, g, out, x, k):
        return [conv2d_input_grad(g, k, x.shape, self.stride, self.padding),
                conv2d_kernel_grad(x, g, k.shape, self.stride, self.padding)]


@op(jax=conv2d_input_grad_jax, numpy=conv2d_input_grad_np, method=False)
def conv2d_input_grad(g: Tensor, kernel: Tensor, input_shape: ShapeArg, stride: Pair(min=1) = 1,
                      padding: Pair(min=0) = 0):
    """∂ℒ/∂input of ``conv2d`` given ``g = ∂ℒ/∂out``: a transposed convolution (see Conv2DOp)."""
    expected, _ = conv_shape("conv2d_input_grad", input_shape, g.dtype, tuple(kernel.shape), kernel.dtype,
                             stride, padding)
    same_shapes("conv2d_input_grad (g)", g.shape, expected)
    return input_shape, g.dtype


@conv2d_input_grad.rule
class Conv2DInputGradOp(Operation):
    """out = conv2d_input_grad(g, kernel, input_shape, s, p) = B(·, kernel)ᵀ g, B(x, k) = conv2d(x, k, s, p).

    Derivation. B is bilinear, so for h = ∂ℒ/∂out (input-shaped):
        ⟨h, out⟩ = ⟨h, B(·, k)ᵀ g⟩ = ⟨B(h, k), g⟩.
    Differentiating ⟨B(h, k), g⟩:  grad_g = B(h, k) = conv2d(h, k, s, p)  and
    grad_kernel = B(h, ·)ᵀ g = conv2d_kernel_grad(h, g, kernel.shape, s, p).
    (Here the incoming gradient is called h, since g names this op's input.)
    Saves: input_shape, stride, padding (g and kernel are the inputs).
    """

    __slots__ = ("input_shape", "stride", "padding")

    def vjp(self, h, out, g, k):
        return [h.conv2d(k, self.stride, self.padding), conv2d_kernel_grad(h, g, k.shape, self.stride, self.padding)]


@op(jax=conv2d_kernel_grad_jax, numpy=conv2d_kernel_grad_np, method=False)
def conv2d_kernel_grad(input: Tensor, g: Tensor, kernel_shape: ShapeArg, stride: Pair(min=1) = 1,
                       padding: Pair(min=0) = 0):
    """∂ℒ/∂kernel of ``conv2d`` given ``g = ∂ℒ/∂out``: a correlation of input with g (see Conv2DOp)."""
    expected, _ = conv_shape("conv2d_kernel_grad", tuple(input.shape), input.dtype, kernel_shape, g.dtype,
                             stride, padding)
    same_shapes("conv2d_kernel_grad (g)", g.shape, expected)
    return kernel_shape, g.dtype


@conv2d_kernel_grad.rule
class Conv2DKernelGradOp(Operation):
    """out = conv2d_kernel_grad(input, g, kernel_shape, s, p) = B(input, ·)ᵀ g  (B as in Conv2DInputGradOp).

    Derivation. For h = ∂ℒ/∂out (kernel-shaped):  ⟨h, out⟩ = ⟨B(input, h), g⟩, so
        grad_input = B(·, h)ᵀ g = conv2d_input_grad(g, h, input.shape, s, p),
        grad_g = B(input, h) = conv2d(input, h, s, p).
    Saves: kernel_shape, stride, padding (input and g are the inputs).
    """

    __slots__ = ("kernel_shape", "stride", "padding")

    def vjp(self, h, out, x, g):
        return [conv2d_input_grad(g, h, x.shape, self.stride, self.padding), x.conv2d(h, self.stride, self.padding)]


# -- max pooling ------------------------------------------------------------------------------
def _max_pool2d_jax(x, kernel_size, stride):
    # A Python scalar init value (not a jnp array) keeps the kernel differentiable by jax, which
    # jtape.testing's oracle needs (jtape's own gradient never uses it).
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1) + kernel_size, (1, 1) + stride, "VALID")


@op(jax=_max_pool2d_jax, numpy=max_pool2d_np)
def max_pool2d(input: Tensor, kernel_size: Pair(min=1), stride: Pair(min=1, optional=True) = None):
    """The max over each ``kernel_size`` window (NCHW, no padding); ``stride`` defaults to the kernel size."""
    stride = kernel_size if stride is None else stride
    shape, dtype = pool_shape("max_pool2d", tuple(input.shape), input.dtype, kernel_size, stride)
    return shape, dtype, {"stride": stride}


@max_pool2d.rule
class MaxPool2DOp(Operation):
    """out[n, c, i, j] = max_{a<KH, b<KW} x[n, c, i·s + a, j·s + b]  (NCHW, no padding).

    Derivation: a max is locally a selection: ∂out/∂x is 1 at the window's arg-max and 0
    elsewhere. On ties jtape picks the window's first max in row-major order — the element XLA's
    select-and-scatter picks, so this matches jax.grad of lax.reduce_window max. Each window's g
    goes to its arg-max element, and where windows overlap (s < K) an element collects from each:
        grad_x = max_pool2d_grad(x, g, kernel_size, stride)   (route-to-argmax, then add).
    Saves: x, kernel_size, stride.
    """

    __slots__ = ("kernel_size", "stride")

    def vjp(self, g, out, x):
        return [max_pool2d_grad(x, g, self.kernel_size, self.stride)]


@op(jax=max_pool2d_grad_jax, numpy=max_pool2d_grad_np, method=False)
def max_pool2d_grad(input: Tensor, g: Tensor, kernel_size: Pair(min=1), stride: Pair(min=1, optional=True) = None):
    """∂ℒ/∂input of ``max_pool2d``: each window's ``g`` routed to the window's (first) max."""
    stride = kernel_size if stride is None else stride
    expected, _ = pool_shape("max_pool2d_grad", tuple(input.shape), input.dtype, kernel_size, stride)
    same_shapes("max_pool2d_grad (g)", g.shape, expected)
    return input.shape, input.dtype, {"stride": stride}


@max_pool2d_grad.rule
class MaxPool2DGradOp(Operation):
    """out = max_pool2d_grad(input, g, K, s): each window's g added at the window's (first) max.

    Derivation. With p(w) the flat position (in input's H·W plane) of window w's max, the kernel is
    out[n, c, q] = Σ_{w : p(w) = q} g[n, c, w] — a scatter-add of g at p, linear in g. Its
    transpose reads h = ∂ℒ/∂out back at p:   grad_g[n, c, w] = h[n, c, p(w)],
    i.e. grad_g = reshape(gather(reshape(h, [N, C, H·W]), 2, p), g.shape).
    The positions p move only when the arg-max changes, so out is piecewise constant in input:
    grad_input = 0 almost everywhere, returned as None (as relu's second derivative is 0).
    p is a constant (argmax of the taps x[a + s·i, b + s·j], found with gather on a fixed index
    table, on x detached from the tape): no gradient flows through an argmax.
    Saves: kernel_size, stride (input and g are the inputs).
    """

    __slots__ = ("kernel_size", "stride")

    def vjp(self, h, out, x, g):
        n, c, height, width = x.shape
        positions = window_max_positions(x.detach(), self.kernel_size, self.stride, g.shape[2:])
        return [None, h.reshape(n, c, height * width).gather(2, positions).reshape(g.shape)]


def window_max_positions(x, kernel_size: tuple, stride: tuple, out_hw: tuple):
    """For each pooling window of x [N, C, H, W]: the flat index (a·W + b form, into H·W) of its
    first maximum, as an int32 tensor [N, C, OH·OW]."""
    n, c, height, width = x.shape
    (kh, kw), (sh, sw), (oh, ow) = kernel_size, stride, tuple(out_hw)
    rows = np.arange(oh)[:, None] * sh
    cols = np.arange(ow)[None, :] * sw
    # table[t, w]: the flat position of tap t = (a, b) of window w = (i, j); taps in row-major order,
    # so argmax's "first maximum" is the same tie rule as max_pool2d_grad's.
    table = np.stack([((rows + a) * width + cols + b).reshape(-1) for a in range(kh) for b in range(kw)])
    taps, windows = kh * kw, oh * ow
    table_nc = x.new_tensor(table.astype(np.int32).reshape(1, 1, taps, windows)).expand(n, c, taps, windows)
    values = x.reshape(n, c, height * width).gather(2, table_nc.reshape(n, c, taps * windows))     # x at every tap
    winner = values.reshape(n, c, taps, windows).argmax(2).unsqueeze(2)                             # [N, C, 1, OH·OW]
    return table_nc.gather(2, winner).reshape(n, c, windows)
