"""Softmax cross-entropy, averaged over the batch."""

from __future__ import annotations

from .base import Operation


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

    def backward(self, g, backend):
        z, t = self._inputs
        b = z.shape[0]
        one_hot = backend.scatter_add(z.shape, 1, backend.unsqueeze(t, 1), backend.full((b, 1), 1, z.dtype))
        diff = backend.sub(backend.softmax(z, 1), one_hot)
        return [backend.div_scalar(backend.mul(diff, g), float(b)), None]
