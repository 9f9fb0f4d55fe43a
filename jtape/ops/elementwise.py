"""Elementwise arithmetic with NumPy broadcasting, and the scalar ops."""

from __future__ import annotations

from .base import Operation, unbroadcast


class AddOp(Operation):
    """Sum  out = a + b  (NumPy broadcasting).

    Derivation: ∂out_i/∂a_i = ∂out_i/∂b_i = 1, so the VJP passes g through unchanged. Where a or
    b was broadcast (copied), the adjoint of the copy sums g back to the input's shape.
        grad_a = unbroadcast(g, a.shape)      grad_b = unbroadcast(g, b.shape)
    Saves: nothing (the inputs' shapes are on the inputs).
    """

    __slots__ = ()
    fuse = True

    def backward(self, g, backend):
        a, b = self._inputs
        return [unbroadcast(g, a.shape, backend), unbroadcast(g, b.shape, backend)]


class SubOp(Operation):
    """Difference  out = a - b  (NumPy broadcasting).

    Derivation: ∂out_i/∂a_i = 1 and ∂out_i/∂b_i = -1.
        grad_a = unbroadcast(g, a.shape)      grad_b = unbroadcast(-g, b.shape)
    Saves: nothing.
    """

    __slots__ = ()
    fuse = True

    def backward(self, g, backend):
        a, b = self._inputs
        return [unbroadcast(g, a.shape, backend), unbroadcast(backend.mul_scalar(g, -1), b.shape, backend)]


class MulOp(Operation):
    """Elementwise product  out = a * b  (NumPy broadcasting).

    Derivation: out_i = a_i * b_i, so ∂out_i/∂a_i = b_i and ∂out_i/∂b_i = a_i; the Jacobians
    are diagonal and the VJP is elementwise. Broadcasting copied a or b; the adjoint of a
    copy is a sum, so each gradient is summed back to its input's shape.
        grad_a = unbroadcast(g * b, a.shape)      grad_b = unbroadcast(g * a, b.shape)
    Saves: a, b (as the inputs).
    """

    __slots__ = ()
    fuse = True

    def backward(self, g, backend):
        a, b = self._inputs
        return [unbroadcast(backend.mul(g, b), a.shape, backend),
                unbroadcast(backend.mul(g, a), b.shape, backend)]


class DivOp(Operation):
    """Elementwise quotient  out = a / b  (NumPy broadcasting).

    Derivation: ∂out_i/∂a_i = 1/b_i and ∂out_i/∂b_i = -a_i/b_i² = -out_i/b_i.
        grad_a = unbroadcast(g / b, a.shape)      grad_b = unbroadcast(-(g / b) * out, b.shape)
    Saves: b (an input) and out.
    """

    __slots__ = ()
    fuse = True

    def backward(self, g, backend):
        a, b = self._inputs
        g_over_b = backend.div(g, b)
        grad_b = backend.mul_scalar(backend.mul(g_over_b, self._output), -1)
        return [unbroadcast(g_over_b, a.shape, backend), unbroadcast(grad_b, b.shape, backend)]


class AddScalarOp(Operation):
    """out = x + s  for a Python scalar s.   Derivation: ∂out/∂x = 1, so  grad_x = g.   Saves: nothing."""

    __slots__ = ()

    def __init__(self, out, x, scalar):
        super().__init__(out, x)

    def backward(self, g, backend):
        return [g]


class SubScalarOp(Operation):
    """out = x - s  for a Python scalar s.   Derivation: ∂out/∂x = 1, so  grad_x = g.   Saves: nothing."""

    __slots__ = ()

    def __init__(self, out, x, scalar):
        super().__init__(out, x)

    def backward(self, g, backend):
        return [g]


class MulScalarOp(Operation):
    """out = x * s  for a Python scalar s.   Derivation: ∂out/∂x = s, so  grad_x = g * s.   Saves: s."""

    __slots__ = ("scalar",)

    def __init__(self, out, x, scalar):
        super().__init__(out, x)
        self.scalar = scalar

    def backward(self, g, backend):
        return [backend.mul_scalar(g, self.scalar)]


class DivScalarOp(Operation):
    """out = x / s  for a Python scalar s.   Derivation: ∂out/∂x = 1/s, so  grad_x = g / s.   Saves: s."""

    __slots__ = ("scalar",)

    def __init__(self, out, x, scalar):
        super().__init__(out, x)
        self.scalar = scalar

    def backward(self, g, backend):
        return [backend.div_scalar(g, self.scalar)]
