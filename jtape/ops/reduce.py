"""Reductions: sum of everything, and sum / mean along one dim."""

from __future__ import annotations

from ..tensor import checks
from .base import Operation


class SumOp(Operation):
    """out = Σ_i x_i  (a 0-d tensor).

    Derivation: ∂out/∂x_i = 1 for every i, so every element receives the same (scalar) g:
        grad_x = expand(g, x.shape).
    Saves: nothing.
    """

    __slots__ = ()

    def backward(self, g, backend):
        (x,) = self._inputs
        return [backend.expand(g, x.shape)]


class SumDimOp(Operation):
    """out = Σ_k x[..., k, ...]  along ``dim`` (kept as size 1 when ``keep_dim``).

    Derivation: each x element feeds exactly one out element with slope 1, so it receives that
    element's g: put the summed dim back (unsqueeze, unless it was kept) and copy along it:
        grad_x = expand(keep_dim ? g : unsqueeze(g, dim), x.shape).
    Saves: dim, keep_dim.
    """

    __slots__ = ("dim", "keep_dim")
    fuse = True

    def __init__(self, out, x, dim, keep_dim=False):
        super().__init__(out, x)
        self.dim = checks.normalize_dim("sum_dim", dim, len(x.shape))
        self.keep_dim = keep_dim

    def backward(self, g, backend):
        (x,) = self._inputs
        if not self.keep_dim:
            g = backend.unsqueeze(g, self.dim)
        return [backend.expand(g, x.shape)]


class MeanDimOp(SumDimOp):
    """out = (1/n) Σ_k x[..., k, ...]  along ``dim``, n = x.shape[dim].

    Derivation: as SumDimOp, with every slope 1/n:
        grad_x = expand(keep_dim ? g : unsqueeze(g, dim), x.shape) / n.
    Saves: dim, keep_dim.
    """

    __slots__ = ()

    def backward(self, g, backend):
        (x,) = self._inputs
        (spread,) = super().backward(g, backend)
        return [backend.div_scalar(spread, float(x.shape[self.dim]))]
