"""Operations for the gradient kernels, so that a recorded backward pass is differentiable too.

The rules of ``Conv2DOp``, ``MaxPool2DOp``, ``CatOp`` and ``GatherOp`` (and ``CrossEntropyOp``'s
one-hot) call backend *gradient kernels*. During an ordinary backward pass the rules run on the
inner backend and nothing here is used. With ``create_graph=True`` the rules run on the
AutodiffBackend, which records each gradient kernel as one of these ops, so a gradient can be
differentiated again (see ``jtape.autodiff.higher``). Each kernel is linear in its gradient
argument, so each rule is the kernel's transpose — again a Backend op.
"""

from __future__ import annotations

import numpy as np

from ..tensor import checks
from .base import Operation, pad_with_zeros


class Conv2DInputGradOp(Operation):
    """out = conv2d_input_grad(g, kernel, input_shape, s, p) = B(·, kernel)ᵀ g, B(x, k) = conv2d(x, k, s, p).

    Derivation. B is bilinear, so for h = ∂ℒ/∂out (input-shaped):
        ⟨h, out⟩ = ⟨h, B(·, k)ᵀ g⟩ = ⟨B(h, k), g⟩.
    Differentiating ⟨B(h, k), g⟩:  grad_g = B(h, k) = conv2d(h, k, s, p)  and
    grad_kernel = B(h, ·)ᵀ g = conv2d_kernel_grad(h, g, kernel.shape, s, p).
    Saves: input_shape, stride, padding (g and kernel are the inputs).
    """

    __slots__ = ("input_shape", "stride", "padding")

    def __init__(self, out, g, kernel, input_shape, stride=1, padding=0):
        super().__init__(out, g, kernel)
        self.input_shape = tuple(input_shape)
        self.stride = checks.pair("conv2d_input_grad", "stride", stride, minimum=1)
        self.padding = checks.pair("conv2d_input_grad", "padding", padding, minimum=0)

    def backward(self, h, backend):
        g, k = self._inputs
        return [backend.conv2d(h, k, self.stride, self.padding),
                backend.conv2d_kernel_grad(h, g, k.shape, self.stride, self.padding)]


class Conv2DKernelGradOp(Operation):
    """out = conv2d_kernel_grad(input, g, kernel_shape, s, p) = B(input, ·)ᵀ g  (B as in Conv2DInputGradOp).

    Derivation. For h = ∂ℒ/∂out (kernel-shaped):  ⟨h, out⟩ = ⟨B(input, h), g⟩, so
        grad_input = B(·, h)ᵀ g = conv2d_input_grad(g, h, input.shape, s, p),
        grad_g = B(input, h) = conv2d(input, h, s, p).
    Saves: kernel_shape, stride, padding (input and g are the inputs).
    """

    __slots__ = ("kernel_shape", "stride", "padding")

    def __init__(self, out, input, g, kernel_shape, stride=1, padding=0):
        super().__init__(out, input, g)
        self.kernel_shape = tuple(kernel_shape)
        self.stride = checks.pair("conv2d_kernel_grad", "stride", stride, minimum=1)
        self.padding = checks.pair("conv2d_kernel_grad", "padding", padding, minimum=0)

    def backward(self, h, backend):
        x, g = self._inputs
        return [backend.conv2d_input_grad(g, h, x.shape, self.stride, self.padding),
                backend.conv2d(x, h, self.stride, self.padding)]


class MaxPool2DGradOp(Operation):
    """out = max_pool2d_grad(input, g, K, s): each window's g added at the window's (first) max.

    Derivation. With p(w) the flat position (in input's H·W plane) of window w's max, the kernel is
    out[n, c, q] = Σ_{w : p(w) = q} g[n, c, w] — a scatter-add of g at p, linear in g. Its
    transpose reads h = ∂ℒ/∂out back at p:   grad_g[n, c, w] = h[n, c, p(w)],
    i.e. grad_g = reshape(gather(reshape(h, [N, C, H·W]), 2, p), g.shape).
    The positions p move only when the arg-max changes, so out is piecewise constant in input:
    grad_input = 0 almost everywhere, returned as None (as relu's second derivative is 0).
    p is a constant (argmax of the taps x[a + s·i, b + s·j], found with gather on a fixed index
    table), computed on the inner backend: no gradient flows through an argmax.
    Saves: kernel_size, stride (input and g are the inputs).
    """

    __slots__ = ("kernel_size", "stride")

    def __init__(self, out, input, g, kernel_size, stride=None):
        super().__init__(out, input, g)
        self.kernel_size = checks.pair("max_pool2d_grad", "kernel_size", kernel_size, minimum=1)
        self.stride = (self.kernel_size if stride is None
                       else checks.pair("max_pool2d_grad", "stride", stride, minimum=1))

    def backward(self, h, backend):
        x, g = self._inputs
        n, c, height, width = x.shape
        positions = window_max_positions(x, self.kernel_size, self.stride, g.shape[2:], backend)
        flat = backend.reshape(h, (n, c, height * width))
        return [None, backend.reshape(backend.gather(flat, 2, positions), g.shape)]


def window_max_positions(x, kernel_size, stride, out_hw, backend):
    """For each pooling window of x [N, C, H, W]: the flat index (a·W + b form, into H·W) of its
    first maximum, as an int32 tensor [N, C, OH·OW]. Runs on the inner backend (a constant)."""
    inner = backend.inner() if hasattr(backend, "inner") else backend
    n, c, height, width = x.shape
    (kh, kw), (sh, sw), (oh, ow) = kernel_size, stride, tuple(out_hw)
    rows = np.arange(oh)[:, None] * sh
    cols = np.arange(ow)[None, :] * sw
    # table[t, w]: the flat position of tap t = (a, b) of window w = (i, j); taps in row-major order,
    # so argmax's "first maximum" is the same tie rule as max_pool2d_grad's.
    table = np.stack([((rows + a) * width + cols + b).reshape(-1) for a in range(kh) for b in range(kw)])
    taps, windows = kh * kw, oh * ow
    table = inner.from_numpy(table.astype(np.int32).reshape(1, 1, taps, windows))
    table_nc = inner.expand(table, (n, c, taps, windows))
    flat_x = inner.reshape(x, (n, c, height * width))
    values = inner.gather(flat_x, 2, inner.reshape(table_nc, (n, c, taps * windows)))     # x at every tap
    values = inner.reshape(values, (n, c, taps, windows))
    winner = inner.unsqueeze(inner.argmax(values, 2), 2)                       # [N, C, 1, OH·OW]
    return inner.reshape(inner.gather(table_nc, 2, winner), (n, c, windows))


class NarrowOp(Operation):
    """out = narrow(x, dim, start, length): the slab [start, start + length) of x along dim.

    Derivation: out copies one slab of x; the rest of x does not reach out, so
        grad_x = cat([zeros(start), g, zeros(rest)], dim)  (empty pieces left out).
    Saves: dim, start.
    """

    __slots__ = ("dim", "start")

    def __init__(self, out, x, dim, start, length):
        super().__init__(out, x)
        self.dim = checks.normalize_dim("narrow", dim, len(x.shape))
        self.start = start

    def backward(self, g, backend):
        (x,) = self._inputs
        after = x.shape[self.dim] - self.start - g.shape[self.dim]
        return [pad_with_zeros(g, self.dim, self.start, after, backend)]


class ScatterAddOp(Operation):
    """out = scatter_add(shape, dim, index, src): zeros of shape, src[p] added at p with its dim-th
    coordinate replaced by index[p].

    Derivation: linear in src, each src element lands in one out element with slope 1, so it
    reads its gradient back from there — the adjoint of scatter-add is gather:
        grad_src = gather(g, dim, index);   the index gets no gradient.
    Saves: dim (index and src are the inputs).
    """

    __slots__ = ("dim",)

    def __init__(self, out, shape, dim, index, src):
        super().__init__(out, index, src)
        self.dim = checks.normalize_dim("scatter_add", dim, len(out.shape))

    def backward(self, g, backend):
        index, _ = self._inputs
        return [None, backend.gather(g, self.dim, index)]


# The op each gradient kernel records on an AutodiffBackend.
GRADIENT_OP_CLASSES: dict[str, type[Operation]] = {
    "conv2d_input_grad": Conv2DInputGradOp, "conv2d_kernel_grad": Conv2DKernelGradOp,
    "max_pool2d_grad": MaxPool2DGradOp, "narrow": NarrowOp, "scatter_add": ScatterAddOp,
}
