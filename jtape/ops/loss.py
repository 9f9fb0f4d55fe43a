"""Softmax cross-entropy, averaged over the batch."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..tensor.args import Tensor
from ..tensor.checks import need_float, need_rank
from ..tensor.errors import DTypeError, ShapeError
from ..tensor.registry import op
from .base import Operation
from .indexing import index_values, scatter_add
from .precision import in_float32, upcast


def _cross_entropy_jax(logits, targets):
    z = upcast(logits)
    picked = jnp.take_along_axis(z, targets[:, None].astype(jnp.int32), axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(z, axis=1) - picked).astype(logits.dtype)


@in_float32
def _cross_entropy_np(logits, targets):
    """mean_b ( logsumexp(logits_b) - logits_b[targets_b] ), a 0-d array. logsumexp is
    m + log Σ exp(logits_b - m) with m the row max, which cannot overflow."""
    m = np.max(logits, axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.sum(np.exp(logits - m), axis=1))
    picked = np.take_along_axis(logits, targets[:, None].astype(np.intp), axis=1)[:, 0]
    return np.mean(lse - picked)


@op(jax=_cross_entropy_jax, numpy=_cross_entropy_np,
    value_check=index_values("targets", 1, lambda ins, st: (ins[0].shape[1], f" for logits shape {ins[0].shape}")))
def cross_entropy(logits: Tensor, targets: Tensor):
    """Mean softmax cross-entropy of ``logits`` [B, C] against integer class ``targets`` [B]."""
    need_float("cross_entropy", logits.dtype)
    if not targets.dtype.is_int:
        raise DTypeError(f"cross_entropy: got targets of dtype {targets.dtype.value}; expected integer class "
                         f"indices (int32, int64 or uint8)")
    need_rank("cross_entropy", "logits", logits.shape, 2, "[B, C]")
    need_rank("cross_entropy", "targets", targets.shape, 1, "[B]")
    if logits.shape[0] != targets.shape[0]:
        raise ShapeError(f"cross_entropy: got logits shape {logits.shape} and targets shape {targets.shape}; "
                         f"expected the same batch size B")
    if logits.shape[1] == 0:
        raise ShapeError(f"cross_entropy: got logits shape {logits.shape}; expected at least one class")
    return (), logits.dtype


@cross_entropy.rule
class CrossEntropyOp(Operation):
    """out = (1/B) Σ_b [ log Σ_c exp(z[b, c]) - z[b, t_b] ]   for logits z [B, C], targets t [B].

    Derivation: for one row, ∂/∂z_c [logsumexp(z) - z_t] = softmax(z)_c - [c = t]. The mean
    divides by B, and the incoming g is a scalar, so
        grad_logits = g · (softmax(z, dim=1) - one_hot(t)) / B,
    with one_hot(t) = scatter_add((B, C), 1, t[:, None], ones) built from Backend ops.
    The forward uses the log-sum-exp shift (subtract each row's max), so it is stable for large
    logits; the rule only needs softmax, which is stable too. Targets get no gradient.
    Saves: logits, targets (the inputs); softmax is recomputed.
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, z, t):
        b = z.shape[0]
        one_hot = scatter_add(z.shape, 1, t.unsqueeze(1), z.new_ones((b, 1)))
        return [(z.softmax(1) - one_hot) * g / float(b), None]
