"""``Operation``: one recorded op and its hand-derived backward rule; and ``unbroadcast``.

The contract, in maths. An op computes ``out = f(x₁, …, xₙ)``. Reverse mode carries, for the
scalar ℒ being differentiated, the gradient ``g = ∂ℒ/∂out`` (same shape as ``out``) backwards.
The rule returns, for each input, ``∂ℒ/∂xᵢ = Σⱼ gⱼ · ∂outⱼ/∂xᵢ`` — the vector-Jacobian product
(VJP) — with exactly ``xᵢ``'s shape and dtype, or ``None`` for an input that carries no gradient
(an integer index, a bool condition).

A rule is written as ``vjp(self, g, out, *inputs)``, with operators on the values it works with —
``g``, ``out`` and the inputs arrive as ``Tensor``s on the backend that runs the rule — so
``-(g / b) * out`` is the code of the derivation ``∂ℒ/∂b = -(g/b)·out``. Every operator is a
Backend op underneath: the rule runs on any backend, and on a recording AutodiffBackend the
backward pass is itself recorded (``create_graph=True``). Never jax.grad: each derivation is in its
class's docstring. Notation in every rule: ``g`` is the incoming gradient, ``out`` the op's
result, inputs by the op's own names; static arguments are attributes (``self.dim``), already
normalised by the op's check (non-negative dims, ``(h, w)`` pairs).
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

from ..tensor.raw import RawTensor
from ..tensor.tensor import Tensor

_BASE_SLOTS = ("_inputs", "_output", "_source", "__weakref__")


class Operation:
    """One op on the tape: its inputs, its output, its static arguments, and its VJP.

    Built as ``OpClass(out, *inputs, **statics)``: the op's result, its input tensors, and its
    normalised static arguments by name — everything needed to run the op again. A subclass lists
    its statics in ``__slots__`` (they are what it saves besides tensors) and writes ``vjp``; an
    Operation written by hand (``jtape.autodiff.custom_op``) may instead override
    ``backward(g, backend)`` directly, taking and returning RawTensors.
    """

    __slots__ = _BASE_SLOTS  # _source: see ``source``

    # The registered op this class is the rule of (set by ``@opdef.rule``); None for a user's op.
    op: ClassVar[Any] = None

    # Rules with several Backend calls may run as one compiled kernel on a backend that can be
    # traced by jax.jit (``jtape.autodiff.fusion``): one dispatch, and XLA fuses the pieces. Only
    # for rules that are pure functions of their tensors and statics; one-call rules gain nothing.
    fuse: ClassVar[bool] = False

    # Whether the rule is itself differentiable: it uses only Backend ops of the backend it is
    # given (no NumPy, no host values), so running it on a recording AutodiffBackend records the
    # backward pass (``create_graph=True``). A rule that is not says False, and a second-order walk
    # that reaches it raises instead of silently dropping terms.
    differentiable_backward: ClassVar[bool] = True

    # The scalar statics (``Scalar`` arguments, such as mul_scalar's value) that the rule reads as
    # Python numbers — branches on them. A deferred program passes every other scalar in as an
    # argument, so a step whose scalars change (a learning rate in a hand-written update) is still
    # the same program; these stay part of its structure (``PowScalarOp``: ``if self.p == 0``).
    concrete: ClassVar[tuple[str, ...]] = ()

    def __init__(self, out: RawTensor, *inputs: RawTensor, **statics: Any):
        self._output = out
        self._inputs = inputs
        for name, value in statics.items():
            setattr(self, name, value)

    def inputs(self) -> tuple[RawTensor, ...]:
        """The tensors this op read; ``backward`` returns one gradient (or None) for each."""
        return self._inputs

    def output(self) -> RawTensor:
        """The tensor this op produced."""
        return self._output

    def statics(self) -> dict[str, Any]:
        """The static arguments this op was built with (dim, stride, ...), by name."""
        return {name: getattr(self, name) for name in type(self).static_names()}

    @classmethod
    def static_names(cls) -> tuple[str, ...]:
        """The names in the subclasses' ``__slots__``: the statics, in declaration order."""
        names = cls.__dict__.get("_static_names")
        if names is None:
            names = tuple(n for k in reversed(cls.__mro__) for n in k.__dict__.get("__slots__", ())
                          if n not in _BASE_SLOTS)
            cls._static_names = names
        return names

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
        """Given ``g = ∂ℒ/∂out``, return ``[∂ℒ/∂x for x in inputs()]`` (None where no gradient),
        computed with ``backend``'s ops: ``vjp`` on Tensors wrapping g, out and the inputs."""
        grads = self.vjp(Tensor(g, backend), Tensor(self._output, backend),
                         *[Tensor(x, backend) for x in self._inputs])
        return [r._raw if isinstance(r, Tensor) else r for r in grads]

    def vjp(self, g: Tensor, out: Tensor, *inputs: Tensor) -> Sequence[Tensor | None]:
        """The rule: one gradient (or None) per input, written with operators on Tensors."""
        raise NotImplementedError(f"{type(self).__name__}: an Operation overrides vjp (or backward)")

    @property
    def name(self) -> str:
        n = type(self).__name__
        return n[:-2] if n.endswith("Op") else n

    def __repr__(self) -> str:
        ins = ", ".join(str(tuple(x.shape)) for x in self._inputs)
        return f"{type(self).__name__}({ins}) -> {tuple(self._output.shape)}"


def unbroadcast(g: Tensor, shape: Sequence[int], backend: Any = None) -> Tensor:
    """Sum ``g`` back to ``shape``: the adjoint of NumPy broadcasting.

    Broadcasting copies an input along the leading dims it lacks and along its size-1 dims; the
    adjoint of a copy is a sum. So: sum away the extra leading dims, then sum (keeping the dim)
    over every dim where ``shape`` has 1 and ``g`` has more. (A hand-written ``backward`` working
    on RawTensors passes its ``backend`` too, and gets a RawTensor back.)
    """
    if backend is not None and isinstance(g, RawTensor):
        return unbroadcast(Tensor(g, backend), shape).raw()
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    for _ in range(g.ndim - len(shape)):
        g = g.sum_dim(0, False)
    for i, size in enumerate(shape):
        if size == 1 and g.shape[i] != 1:
            g = g.sum_dim(i, True)
    return g


def pad_with_zeros(g: Tensor, dim: int, before: int, after: int) -> Tensor:
    """``g`` with ``before`` zeros in front and ``after`` behind along ``dim``: the adjoint of
    taking a slab (narrow, one chunk piece) out of a larger tensor. Empty pieces are left out."""
    parts = []
    for width in (before, None, after):
        if width is None:
            parts.append(g)
        elif width:
            shape = list(g.shape)
            shape[dim] = width
            parts.append(g.new_zeros(shape))
    return parts[0] if len(parts) == 1 else parts[0].cat(parts[1:], dim)
