"""Matrix multiplication, 2-D and batched with broadcast batch dims."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..tensor.args import Tensor
from ..tensor.checks import broadcast_shapes, need_float, same_dtype
from ..tensor.errors import ShapeError
from ..tensor.registry import op
from .base import Operation, unbroadcast
from .precision import HALF, in_float32


def _matmul_jax(a, b):
    wide = jnp.float32 if a.dtype in HALF else None
    return jnp.matmul(a, b, preferred_element_type=wide).astype(a.dtype)


@op(jax=_matmul_jax, numpy=in_float32(np.matmul))
def matmul(a: Tensor, b: Tensor):
    """``a @ b`` over the last two dims; the batch dims in front broadcast as in NumPy (both of
    rank >= 2; float32 accumulation for half dtypes)."""
    sa, sb = tuple(a.shape), tuple(b.shape)
    dtype = need_float("matmul", same_dtype("matmul", a.dtype, b.dtype))
    if len(sa) < 2 or len(sb) < 2:
        raise ShapeError(f"matmul: got shapes {sa} and {sb}; expected both of rank >= 2 "
                         f"(unsqueeze a vector to [1, n] or [n, 1] first)")
    if sa[-1] != sb[-2]:
        raise ShapeError(f"matmul: got shapes {sa} and {sb}; expected a.shape[-1] ({sa[-1]}) "
                         f"to equal b.shape[-2] ({sb[-2]})")
    return broadcast_shapes("matmul", sa[:-2], sb[:-2]) + (sa[-2], sb[-1]), dtype


def swap_last(x):
    """x with its last two dims swapped: ᵀ of each matrix in a batch."""
    n = x.ndim
    return x.transpose(*range(n - 2), n - 1, n - 2)


@matmul.rule
class MatMulOp(Operation):
    """out = a @ b:  out[..., i, j] = Σ_k a[..., i, k] · b[..., k, j]  (batch dims broadcast).

    Derivation: ∂out_ij/∂a_ik = b_kj and ∂out_ij/∂b_kj = a_ik, so
        ∂ℒ/∂a_ik = Σ_j g_ij b_kj = (g @ bᵀ)_ik      ∂ℒ/∂b_kj = Σ_i a_ik g_ij = (aᵀ @ g)_kj
    with ᵀ swapping the last two dims. Batch dims were broadcast, so each is summed back:
        grad_a = unbroadcast(g @ bᵀ, a.shape)       grad_b = unbroadcast(aᵀ @ g, b.shape)
    Saves: a, b.
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, a, b):
        return [unbroadcast(g @ swap_last(b), a.shape), unbroadcast(swap_last(a) @ g, b.shape)]


def _linear_jax(x, weight):
    wide = jnp.float32 if x.dtype in HALF else None
    out = jax.lax.dot_general(x, weight, (((x.ndim - 1,), (1,)), ((), ())), preferred_element_type=wide)
    return out.astype(x.dtype)


@op(jax=_linear_jax, numpy=in_float32(lambda x, weight: np.matmul(x, weight.T)))
def linear(x: Tensor, weight: Tensor):
    """``x @ weightᵀ`` for a weight ``[out, in]`` (a layer's weight as stored), with no transpose
    materialised: one dot over x's last dim and the weight's second; x is ``[..., in]``."""
    dtype = need_float("linear", same_dtype("linear", x.dtype, weight.dtype))
    sx, sw = tuple(x.shape), tuple(weight.shape)
    if len(sx) < 1 or len(sw) != 2:
        raise ShapeError(f"linear: got x shape {sx} and weight shape {sw}; expected x of rank >= 1 and a weight "
                         f"[out, in]")
    if sx[-1] != sw[1]:
        raise ShapeError(f"linear: got x shape {sx} and weight shape {sw}; expected x.shape[-1] ({sx[-1]}) to equal "
                         f"weight.shape[1] ({sw[1]})")
    return sx[:-1] + (sw[0],), dtype


@linear.rule
class LinearOp(Operation):
    """out = x @ Wᵀ:  out[..., o] = Σ_i x[..., i] · W[o, i]  (W is [out, in], x is [..., in]).

    Derivation: ∂out[..., o]/∂x[..., i] = W[o, i] and ∂out[..., o]/∂W[o, i] = x[..., i], so
        grad_x[..., i] = Σ_o g[..., o] W[o, i]            i.e.  grad_x = g @ W
        grad_W[o, i] = Σ_{all rows r} g[r, o] x[r, i]     i.e.  grad_W = gᵀ @ x, rows flattened.
    Neither needs Wᵀ: the forward and both gradients are single dots.
    Saves: x, W.
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, x, w):
        rows_g, rows_x = g.reshape(-1, w.shape[0]), x.reshape(-1, w.shape[1])
        return [(rows_g @ w).reshape(x.shape), swap_last(rows_g) @ rows_x]
