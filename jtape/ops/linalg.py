"""Matrix multiplication, 2-D and batched with broadcast batch dims."""

from __future__ import annotations

from .base import Operation, unbroadcast


def _swap_last(x, backend):
    n = len(x.shape)
    return backend.transpose(x, *range(n - 2), n - 1, n - 2)


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

    def backward(self, g, backend):
        a, b = self._inputs
        return [unbroadcast(backend.matmul(g, _swap_last(b, backend)), a.shape, backend),
                unbroadcast(backend.matmul(_swap_last(a, backend), g), b.shape, backend)]
