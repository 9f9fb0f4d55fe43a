"""2-D convolution and max pooling, NCHW."""

from __future__ import annotations

from ..tensor import checks
from .base import Operation


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
    Both are backend gradient kernels (on JaxBackend, lax.conv_general_dilated with lhs/rhs
    dilation). Saves: input, kernel, stride, padding.
    """

    __slots__ = ("stride", "padding")
    fuse = True

    def __init__(self, out, input, kernel, stride=1, padding=0):
        super().__init__(out, input, kernel)
        self.stride = checks.pair("conv2d", "stride", stride, minimum=1)
        self.padding = checks.pair("conv2d", "padding", padding, minimum=0)

    def backward(self, g, backend):
        x, k = self._inputs
        return [backend.conv2d_input_grad(g, k, x.shape, self.stride, self.padding),
                backend.conv2d_kernel_grad(x, g, k.shape, self.stride, self.padding)]


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

    def __init__(self, out, input, kernel_size, stride=None):
        super().__init__(out, input)
        self.kernel_size = checks.pair("max_pool2d", "kernel_size", kernel_size, minimum=1)
        self.stride = self.kernel_size if stride is None else checks.pair("max_pool2d", "stride", stride, minimum=1)

    def backward(self, g, backend):
        (x,) = self._inputs
        return [backend.max_pool2d_grad(x, g, self.kernel_size, self.stride)]
