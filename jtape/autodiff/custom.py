"""Custom operations: a forward written with Backend ops plus a hand-written backward rule.

A new op is two pieces, exactly like a built-in one:

1. an ``Operation`` subclass holding the backward rule (its VJP), written with the Backend ops of
   the ``backend`` it is given, with its derivation in the docstring. It is constructed as
   ``MyOp(out, *args, **kwargs)`` — the forward's result and the forward's own arguments — and
   saves what its rule needs;
2. a forward function ``forward(backend, *args, **kwargs) -> RawTensor`` written with Backend ops.

``custom_op(MyOp)`` joins them::

    class LogSumExpOp(Operation):
        '''out = log Σ_k exp(x_k) along dim.  Derivation: ∂out/∂x_k = softmax(x)_k, so
        grad_x = g · exp(x - out).   Saves: dim, keep_dim.'''
        __slots__ = ("dim", "keep_dim")

        def __init__(self, out, x, dim=-1, keep_dim=False):
            super().__init__(out, x)
            self.dim, self.keep_dim = dim, keep_dim

        def backward(self, g, backend):
            ...

    @autodiff.custom_op(LogSumExpOp)
    def logsumexp(backend, x, dim=-1, keep_dim=False):
        ...  # Backend ops only

    y = logsumexp(backend, x, dim=1)      # x a Tensor (-> Tensor) or a RawTensor (-> RawTensor)

Called on an AutodiffBackend, the forward runs on its inner backend — its internal ops are *not*
recorded, the op is one step on the tape, as a built-in is — and ``MyOp(out, *args, **kwargs)``
is recorded while the tape records and some float input wants a gradient. On a plain backend the
forward just runs. Because the rule uses only Backend ops, ``create_graph=True`` differentiates
it again; a rule that cannot (it leaves Backend ops) sets ``differentiable_backward = False``.

The same by hand, without the decorator::

    out = forward(backend.inner(), x_raw)
    backend.tape().record(MyOp(out, x_raw))          # appends only while recording

Check a new op against ``jax.vjp`` with ``jtape.testing.check_operation``; worked examples are
in ``examples/custom_ops/`` (log-sum-exp, Huber loss).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from ..ops.base import Operation
from ..tensor.errors import ArgumentError, BackendError
from ..tensor.raw import RawTensor
from ..tensor.tensor import Tensor
from .backend import plain


def custom_op(op_class: Callable[..., Operation]) -> Callable[[Callable[..., RawTensor]], Callable[..., Any]]:
    """Decorator: ``forward(backend, *args, **kwargs) -> RawTensor`` becomes an op recorded as
    ``op_class(out, *args, **kwargs)`` on an AutodiffBackend. See the module docstring."""
    if not callable(op_class):
        raise ArgumentError(f"custom_op: got {op_class!r}; expected an Operation subclass")

    def decorate(forward: Callable[..., RawTensor]) -> Callable[..., Any]:
        @functools.wraps(forward)
        def op(backend: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(backend, (Tensor, RawTensor)):
                raise ArgumentError(f"{forward.__name__}: got a {type(backend).__name__} as the first argument; "
                                f"expected the backend (call it as {forward.__name__}(backend, x, ...))")
            raw_args = [_raw(a, backend, forward.__name__) for a in args]
            raw_kwargs = {k: _raw(v, backend, forward.__name__) for k, v in kwargs.items()}
            out = forward(plain(backend), *raw_args, **raw_kwargs)
            if not isinstance(out, RawTensor):
                raise ArgumentError(f"{forward.__name__}: the forward returned {type(out).__name__}; expected one "
                                f"RawTensor (a custom op has one output)")
            tape = backend.tape() if hasattr(backend, "tape") else None
            if tape is not None and out.dtype.is_float:
                if tape.is_recording() and _wants_grad(raw_args, raw_kwargs):
                    tape.record(op_class(out, *raw_args, **raw_kwargs))
                else:
                    out.requires_grad = False
            return Tensor(out, backend) if _has_tensor([*args, *kwargs.values()]) else out
        op.op_class = op_class  # type: ignore[attr-defined]
        op.forward = forward  # type: ignore[attr-defined]
        return op
    return decorate


def _raw(a: Any, backend: Any, name: str) -> Any:
    if isinstance(a, Tensor):
        if a.backend is not backend:
            raise BackendError(f"{name}: got a Tensor on {a.backend!r}; expected one on {backend!r}, the backend "
                             f"passed first")
        return a.raw()
    if isinstance(a, (list, tuple)):
        return type(a)(_raw(x, backend, name) for x in a)
    return a


def _has_tensor(values: list) -> bool:
    """Were Tensors passed (anywhere, lists included)? Then the result is a Tensor too."""
    return any(isinstance(v, Tensor) or (isinstance(v, (list, tuple)) and _has_tensor(list(v))) for v in values)


def _wants_grad(args: list, kwargs: dict) -> bool:
    for a in list(args) + list(kwargs.values()):
        items = a if isinstance(a, (list, tuple)) else (a,)
        if any(isinstance(t, RawTensor) and t.dtype.is_float and t.requires_grad for t in items):
            return True
    return False
