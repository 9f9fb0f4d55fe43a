"""Indexing: gather and where. Their rules route g back to where each element came from."""

from __future__ import annotations

from ..tensor import checks
from .base import Operation, unbroadcast


class GatherOp(Operation):
    """out = gather(x, dim, index):  out[..., j, ...] = x[..., index[..., j, ...], ...] along dim.

    Derivation: each out element copies one x element, so x[k] receives the sum of g over every
    position that read k (repeated indices add up): the adjoint of gather is scatter-add,
        grad_x = scatter_add(x.shape, dim, index, g);   the index gets no gradient.
    Saves: dim, index (an input).
    """

    __slots__ = ("dim",)

    def __init__(self, out, x, dim, index):
        super().__init__(out, x, index)
        self.dim = checks.normalize_dim("gather", dim, len(x.shape))

    def backward(self, g, backend):
        x, index = self._inputs
        return [backend.scatter_add(x.shape, self.dim, index, g), None]


class WhereOp(Operation):
    """out = where(condition, x, y):  out_i = x_i if condition_i else y_i  (broadcasting).

    Derivation: out_i depends on x_i with slope 1 where the condition holds and on y_i with
    slope 1 where it does not; then undo broadcasting:
        grad_x = unbroadcast(where(c, g, 0), x.shape)   grad_y = unbroadcast(where(c, 0, g), y.shape)
    The bool condition gets no gradient.   Saves: condition (an input).
    """

    __slots__ = ()
    fuse = True

    def backward(self, g, backend):
        condition, x, y = self._inputs
        zero = backend.full((), 0, g.dtype)
        return [None,
                unbroadcast(backend.where(condition, g, zero), x.shape, backend),
                unbroadcast(backend.where(condition, zero, g), y.shape, backend)]
