"""2-D convolution (NCHW; strided, padded, dilated, grouped) and the gradient kernels its rule calls.

Notation: x is [N, C, H, W], k is [O, C/G, KH, KW] with G = ``groups``, g = ∂ℒ/∂out is
[N, O, OH, OW], xp is x with ``padding`` zeros around H and W, s the stride and d the dilation.
Output channel o belongs to group γ = ⌊o / (O/G)⌋ and reads only input channels γ·C/G + c,
c < C/G. The forward op is a cross-correlation:
    out[n, o, i, j] = Σ_{c, a, b} xp[n, γ·C/G + c, i·sh + a·dh, j·sw + b·dw] · k[o, c, a, b]

The gradient kernels (``conv2d_input_grad``, ``conv2d_kernel_grad``) are ops too, each with its own
rule — each is linear in its gradient argument, so its rule is its transpose, again an op — so a
backward pass recorded with ``create_graph=True`` can be differentiated again. Pooling is in
``jtape.ops.pool``.
"""

from __future__ import annotations

from ..tensor.args import Int, Pair, ShapeArg, Tensor
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
    span,
)


def conv_shape(name: str, si: tuple, dtype_i, sk: tuple, dtype_k, stride: tuple, padding: tuple,
               dilation: tuple = (1, 1), groups: int = 1) -> tuple:
    """conv2d's output shape and dtype, after checking ranks, channels, groups and sizes."""
    dtype = need_float(name, same_dtype(name, dtype_i, dtype_k))
    if len(si) != 4:
        raise ShapeError(f"{name}: got input shape {si}; expected rank 4 [N, C_in, H, W]")
    if len(sk) != 4:
        raise ShapeError(f"{name}: got kernel shape {sk}; expected rank 4 [C_out, C_in / groups, KH, KW]")
    if si[1] % groups or sk[0] % groups:
        raise ShapeError(f"{name}: got groups={groups} for {si[1]} input channels (input shape {si}) and {sk[0]} "
                         f"output channels (kernel shape {sk}); expected groups to divide both")
    if si[1] != groups * sk[1]:
        per = "" if groups == 1 else f" per group ({groups} groups)"
        want = "kernel.shape[1]" if groups == 1 else f"groups * kernel.shape[1] = {groups * sk[1]}"
        raise ShapeError(f"{name}: got input shape {si} with {si[1]} channels and kernel shape {sk} "
                         f"expecting {sk[1]}{per}; expected input.shape[1] == {want}")
    ph, pw = si[2] + 2 * padding[0], si[3] + 2 * padding[1]
    eh, ew = span(sk[2], dilation[0]), span(sk[3], dilation[1])
    if eh > ph or ew > pw or 0 in sk[2:]:
        dilated = "" if dilation == (1, 1) else f" with dilation {dilation} (spanning {eh}x{ew})"
        raise ShapeError(f"{name}: got kernel {sk[2]}x{sk[3]}{dilated} for input {si[2]}x{si[3]} with padding "
                         f"{padding} (padded {ph}x{pw}); expected a non-empty kernel no larger than the padded input")
    return (si[0], sk[0], (ph - eh) // stride[0] + 1, (pw - ew) // stride[1] + 1), dtype


# -- conv2d ---------------------------------------------------------------------------------------
@op(jax=conv2d_jax, numpy=conv2d_np)
def conv2d(input: Tensor, kernel: Tensor, stride: Pair(min=1) = 1, padding: Pair(min=0) = 0,
           dilation: Pair(min=1) = 1, groups: Int(min=1) = 1):
    """2-D cross-correlation, NCHW input, kernel ``[C_out, C_in / groups, KH, KW]``; ``dilation`` spaces
    the kernel's taps, ``groups`` splits the channels into independent blocks (depthwise: ``groups = C_in``)."""
    return conv_shape("conv2d", tuple(input.shape), input.dtype, tuple(kernel.shape), kernel.dtype, stride, padding,
                      dilation, groups)


@conv2d.rule
class Conv2DOp(Operation):
    """out = conv2d(x, k, stride s, padding p, dilation d, groups G)  (cross-correlation, NCHW, k [O, C/G, KH, KW]):
        out[n, o, i, j] = Σ_{c, a, b} xp[n, γ·C/G + c, i·s + a·d, j·s + b·d] · k[o, c, a, b],
    xp = x zero-padded by p, γ = ⌊o / (O/G)⌋ the group of output channel o.

    Derivation. Each product touches one input and one kernel element, so
      ∂ℒ/∂k[o,c,a,b] = Σ_{n,i,j} g[n,o,i,j] · xp[n, γ·C/G + c, i·s + a·d, j·s + b·d]
        — a correlation of the input with g, g acting as a kernel dilated by s, read at taps d apart:
        grad_kernel = conv2d_kernel_grad(x, g, k.shape, s, p, d, G);
      ∂ℒ/∂xp[n, γ·C/G + c, y, x] = Σ_{o in γ; a, b : y = i·s + a·d, x = j·s + b·d} g[n,o,i,j] · k[o,c,a,b]
        — a *transposed* convolution: g dilated by s (s-1 zeros between elements), padded by
        (KH-1)·d - p, correlated with the kernel dilated by d, flipped in space (tap a ↦ KH-1-a),
        with in/out channels swapped; the padding's rows and columns are dropped:
        grad_input = conv2d_input_grad(g, k, x.shape, s, p, d, G).
    Groups: the channel sum runs within one group only, so conv2d is block-diagonal in the
    channels — block γ is an ordinary (G = 1) convolution of input channels [γ·C/G, (γ+1)·C/G)
    with kernel rows [γ·O/G, (γ+1)·O/G). The transpose of a block-diagonal map is the block-diagonal
    map of the blocks' transposes: each gradient above is the G = 1 gradient per block, the blocks
    side by side (the channel swap happens inside each group; depthwise, G = C: one channel each).
    Both are gradient kernels (on JaxBackend, lax.conv_general_dilated with lhs/rhs dilation and
    feature/batch groups). Saves: x, k, stride, padding, dilation, groups.
    """

    __slots__ = ("stride", "padding", "dilation", "groups")
    fuse = True

    def vjp(self, g, out, x, k):
        s, p, d, groups = self.stride, self.padding, self.dilation, self.groups
        return [conv2d_input_grad(g, k, x.shape, s, p, d, groups), conv2d_kernel_grad(x, g, k.shape, s, p, d, groups)]


@op(jax=conv2d_input_grad_jax, numpy=conv2d_input_grad_np, method=False)
def conv2d_input_grad(g: Tensor, kernel: Tensor, input_shape: ShapeArg, stride: Pair(min=1) = 1,
                      padding: Pair(min=0) = 0, dilation: Pair(min=1) = 1, groups: Int(min=1) = 1):
    """∂ℒ/∂input of ``conv2d`` given ``g = ∂ℒ/∂out``: a transposed convolution (see Conv2DOp)."""
    expected, _ = conv_shape("conv2d_input_grad", input_shape, g.dtype, tuple(kernel.shape), kernel.dtype,
                             stride, padding, dilation, groups)
    same_shapes("conv2d_input_grad (g)", g.shape, expected)
    return input_shape, g.dtype


@conv2d_input_grad.rule
class Conv2DInputGradOp(Operation):
    """out = conv2d_input_grad(g, kernel, input_shape, s, p, d, G) = B(·, kernel)ᵀ g,
    B(x, k) = conv2d(x, k, s, p, d, G).

    Derivation. B is bilinear, so for h = ∂ℒ/∂out (input-shaped):
        ⟨h, out⟩ = ⟨h, B(·, k)ᵀ g⟩ = ⟨B(h, k), g⟩.
    Differentiating ⟨B(h, k), g⟩:  grad_g = B(h, k) = conv2d(h, k, s, p, d, G)  and
    grad_kernel = B(h, ·)ᵀ g = conv2d_kernel_grad(h, g, kernel.shape, s, p, d, G).
    (Here the incoming gradient is called h, since g names this op's input.)
    Saves: input_shape, stride, padding, dilation, groups (g and kernel are the inputs).
    """

    __slots__ = ("input_shape", "stride", "padding", "dilation", "groups")

    def vjp(self, h, out, g, k):
        s, p, d, groups = self.stride, self.padding, self.dilation, self.groups
        return [h.conv2d(k, s, p, d, groups), conv2d_kernel_grad(h, g, k.shape, s, p, d, groups)]


@op(jax=conv2d_kernel_grad_jax, numpy=conv2d_kernel_grad_np, method=False)
def conv2d_kernel_grad(input: Tensor, g: Tensor, kernel_shape: ShapeArg, stride: Pair(min=1) = 1,
                       padding: Pair(min=0) = 0, dilation: Pair(min=1) = 1, groups: Int(min=1) = 1):
    """∂ℒ/∂kernel of ``conv2d`` given ``g = ∂ℒ/∂out``: a correlation of input with g (see Conv2DOp)."""
    expected, _ = conv_shape("conv2d_kernel_grad", tuple(input.shape), input.dtype, kernel_shape, g.dtype,
                             stride, padding, dilation, groups)
    same_shapes("conv2d_kernel_grad (g)", g.shape, expected)
    return kernel_shape, g.dtype


@conv2d_kernel_grad.rule
class Conv2DKernelGradOp(Operation):
    """out = conv2d_kernel_grad(input, g, kernel_shape, s, p, d, G) = B(input, ·)ᵀ g  (B as in Conv2DInputGradOp).

    Derivation. For h = ∂ℒ/∂out (kernel-shaped):  ⟨h, out⟩ = ⟨B(input, h), g⟩, so
        grad_input = B(·, h)ᵀ g = conv2d_input_grad(g, h, input.shape, s, p, d, G),
        grad_g = B(input, h) = conv2d(input, h, s, p, d, G).
    Saves: kernel_shape, stride, padding, dilation, groups (input and g are the inputs).
    """

    __slots__ = ("kernel_shape", "stride", "padding", "dilation", "groups")

    def vjp(self, h, out, x, g):
        s, p, d, groups = self.stride, self.padding, self.dilation, self.groups
        return [conv2d_input_grad(g, h, x.shape, s, p, d, groups), x.conv2d(h, s, p, d, groups)]
