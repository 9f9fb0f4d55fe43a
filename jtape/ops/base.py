"""``Operation``: one recorded op and its hand-derived backward rule; and ``unbroadcast``.

The contract, in maths. An op computes ``out = f(x₁, …, xₙ)``. Reverse mode carries, for the
scalar ℒ being differentiated, the gradient ``g = ∂ℒ/∂out`` (same shape as ``out``) backwards.
``backward(g, backend)`` returns, for each input, ``∂ℒ/∂xᵢ = Σⱼ gⱼ · ∂outⱼ/∂xᵢ`` — the
vector-Jacobian product (VJP) — with exactly ``xᵢ``'s shape and dtype, or ``None`` for an input
that carries no gradient (an integer index, a bool condition).

Rules are written with Backend ops, so they run on any inner backend, and never with jax.grad:
each derivation is in its class's docstring. Notation in every rule: ``g`` is the incoming
gradient, ``out`` the op's result, inputs by the op's own names.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

from ..tensor.raw import RawTensor


class Operation:
    """One op on the tape: its inputs, its output, what its rule saved, and its VJP.

    Subclasses are constructed as ``OpClass(out, *args)`` with the same arguments as the backend
    op that produced ``out``, set ``self._inputs`` to the tensors a gradient flows to, and save
    by name only what ``backward`` needs.
    """

    __slots__ = ("_inputs", "_output", "_source", "__weakref__")  # _source: see ``source``

    # A backend may run a rule with several backend calls as one compiled kernel (JaxBackend
    # jits it: one dispatch, and XLA fuses the pieces). Only for rules that are pure functions of
    # their tensors and their static (hashable) saved values; single-call rules gain nothing.
    fuse: ClassVar[bool] = False

    # Whether ``backward`` is itself differentiable: it uses only Backend ops of the backend it is
    # given (no ``backend.inner()``, no NumPy), so running it on a recording AutodiffBackend records
    # the backward pass (``create_graph=True``). An op whose rule is not says False, and a
    # second-order walk that reaches it raises instead of silently dropping terms.
    differentiable_backward: ClassVar[bool] = True

    def __init__(self, out: RawTensor, *inputs: RawTensor):
        self._output = out
        self._inputs = inputs

    def inputs(self) -> tuple[RawTensor, ...]:
        """The tensors this op read; ``backward`` returns one gradient (or None) for each."""
        return self._inputs

    def output(self) -> RawTensor:
        """The tensor this op produced."""
        return self._output

    @property
    def source(self) -> Any:
        """Where user code recorded this op (a ``SourceLocation``: file, line, function), or None.

        Set only while ``jtape.autodiff.capture_source`` or ``detect_anomaly`` is on; otherwise
        the slot is never written, so recording pays nothing for it."""
        return getattr(self, "_source", None)

    @source.setter
    def source(self, value: Any) -> None:
        self._source = value

    def backward(self, g: RawTensor, backend: Any) -> list[RawTensor | None]:
        """Given ``g = ∂ℒ/∂out``, return ``[∂ℒ/∂x for x in inputs()]`` (None where no gradient)."""
        raise NotImplementedError(f"{type(self).__name__}.backward")

    @classmethod
    def static_slots(cls) -> tuple[str, ...]:
        """Names of the non-tensor values this op saved (dim, stride, ...), in a fixed order."""
        names = cls.__dict__.get("_static_slot_names")
        if names is None:
            names = tuple(n for k in reversed(cls.__mro__) for n in k.__dict__.get("__slots__", ())
                          if n not in ("_inputs", "_output", "_source", "__weakref__"))
            cls._static_slot_names = names
        return names

    @property
    def name(self) -> str:
        n = type(self).__name__
        return n[:-2] if n.endswith("Op") else n

    def __repr__(self) -> str:
        ins = ", ".join(str(tuple(x.shape)) for x in self._inputs)
        return f"{type(self).__name__}({ins}) -> {tuple(self._output.shape)}"


def unbroadcast(g: RawTensor, shape: Sequence[int], backend: Any) -> RawTensor:
    """Sum ``g`` back to ``shape``: the adjoint of NumPy broadcasting.

    Broadcasting copies an input along the leading dims it lacks and along its size-1 dims; the
    adjoint of a copy is a sum. So: sum away the extra leading dims, then sum (keeping the dim)
    over every dim where ``shape`` has 1 and ``g`` has more.
    """
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    for _ in range(len(g.shape) - len(shape)):
        g = backend.sum_dim(g, 0, False)
    for i, size in enumerate(shape):
        if size == 1 and g.shape[i] != 1:
            g = backend.sum_dim(g, i, True)
    return g


def pad_with_zeros(g: RawTensor, dim: int, before: int, after: int, backend: Any) -> RawTensor:
    """``g`` with ``before`` zeros in front and ``after`` behind along ``dim``: the adjoint of
    taking a slab (narrow, one chunk piece) out of a larger tensor. Empty pieces are left out."""
    parts = []
    for width in (before, None, after):
        if width is None:
            parts.append(g)
        elif width:
            shape = list(g.shape)
            shape[dim] = width
            parts.append(backend.full(shape, 0, g.dtype))
    return parts[0] if len(parts) == 1 else backend.cat(parts, dim)
