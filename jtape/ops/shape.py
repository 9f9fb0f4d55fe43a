"""Shape ops: each moves or copies elements without changing them, so each rule moves the
gradient back the same way (reshape back, permute back, sum the copies, slice the pieces)."""

from __future__ import annotations

from ..tensor import checks
from .base import Operation, pad_with_zeros, unbroadcast


class ReshapeOp(Operation):
    """out = x with a new shape (same elements, row-major order).

    Derivation: the Jacobian is a permutation-free identity on the flat elements, so
        grad_x = reshape(g, x.shape).
    Saves: nothing (x's shape is on x).
    """

    __slots__ = ()

    def __init__(self, out, x, shape):
        super().__init__(out, x)

    def backward(self, g, backend):
        (x,) = self._inputs
        return [backend.reshape(g, x.shape)]


class SqueezeOp(ReshapeOp):
    """out = x without its size-1 ``dim``.   Derivation: a reshape, so  grad_x = reshape(g, x.shape)."""

    __slots__ = ()

    def __init__(self, out, x, dim):
        Operation.__init__(self, out, x)


class UnsqueezeOp(ReshapeOp):
    """out = x with a new size-1 dim at ``dim``.   Derivation: a reshape, so  grad_x = reshape(g, x.shape)."""

    __slots__ = ()

    def __init__(self, out, x, dim):
        Operation.__init__(self, out, x)


class TransposeOp(Operation):
    """out = x with its dims permuted: out.shape[i] = x.shape[perm[i]] (no axes: reversed).

    Derivation: out[..i..] = x[..perm(i)..] moves each element once; the adjoint moves it back
    with the inverse permutation:  grad_x = transpose(g, inverse(perm)), inverse[perm[i]] = i.
    Saves: the inverse permutation.
    """

    __slots__ = ("inverse",)

    def __init__(self, out, x, *axes):
        super().__init__(out, x)
        if len(axes) == 1 and not isinstance(axes[0], int):
            axes = tuple(axes[0])
        _, perm = checks.transpose(x.shape, tuple(axes))
        self.inverse = tuple(sorted(range(len(perm)), key=perm.__getitem__))

    def backward(self, g, backend):
        return [backend.transpose(g, *self.inverse)]


class ExpandOp(Operation):
    """out = x broadcast (copied) to a larger shape.

    Derivation: broadcasting copies elements; the adjoint of a copy is a sum, so
        grad_x = unbroadcast(g, x.shape).
    Saves: nothing.
    """

    __slots__ = ()
    fuse = True

    def __init__(self, out, x, shape):
        super().__init__(out, x)

    def backward(self, g, backend):
        (x,) = self._inputs
        return [unbroadcast(g, x.shape, backend)]


class CatOp(Operation):
    """out = the inputs joined along ``dim``.

    Derivation: each input's elements land in one contiguous slab of out, so each input gets
    its slab of g back:  grad_xₖ = narrow(g, dim, offsetₖ, xₖ.shape[dim]).
    Saves: dim (offsets follow from the inputs' shapes).
    """

    __slots__ = ("dim",)
    fuse = True

    def __init__(self, out, tensors, dim=0):
        super().__init__(out, *tensors)
        self.dim = checks.normalize_dim("cat", dim, len(out.shape))

    def backward(self, g, backend):
        grads, offset = [], 0
        for x in self._inputs:
            size = x.shape[self.dim]
            grads.append(backend.narrow(g, self.dim, offset, size))
            offset += size
        return grads


class ChunkOp(Operation):
    """out = piece ``index`` of ``chunk(x, n, dim)``: x's slab [index·m, (index+1)·m) along dim.

    Derivation: the piece copies one slab of x; every other element of x does not reach this
    output, so its gradient there is 0:  grad_x = cat([0…, g, …0], dim). The n pieces are n
    operations on the tape, and the walk sums their gradients into x.
    Saves: dim, index.
    """

    __slots__ = ("dim", "index")
    fuse = True

    def __init__(self, out, x, n, dim, index):
        super().__init__(out, x)
        self.dim = checks.normalize_dim("chunk", dim, len(x.shape))
        self.index = index

    def backward(self, g, backend):
        (x,) = self._inputs
        size = g.shape[self.dim]
        before, after = self.index * size, x.shape[self.dim] - (self.index + 1) * size
        return [pad_with_zeros(g, self.dim, before, after, backend)]
