"""Watching the backward walk: a step-by-step trace, tensor hooks, and anomaly checks.

``GradientTape.walk`` asks ``observe`` for an observer once per walk. With no trace, no hook on
any tensor of the tape and anomaly mode off it gets None, and the walk runs as if this module did
not exist. Otherwise the observer is told three things per op, newest first:

* ``arrive`` — the op's output gradient is complete (every later op has added its share): run
  the output's hooks, which may replace it, and report ``g``;
* ``sent`` — the rule returned one gradient per input: check them (anomaly mode) and report
  each, marking where an input already holds a gradient and the two will be summed (fan-out);
* ``finish`` — the walk is over: run the hooks of leaf tensors and report their totals.

A trace callback receives one ``TraceEvent`` per line; ``trace=print`` prints the walk.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from ..tensor.errors import ArgumentError
from ..tensor.raw import HOOKS, RawTensor, check_gradient
from ..tensor.tensor import Tensor
from .anomaly import SWITCHES, AnomalyError, describe_op, nonfinite, shape_dtype
from .views import format_values, op_title, tensor_names


class TraceEvent:
    """One line of a backward trace. ``str(event)`` is the line; ``kind`` is one of ``seed``,
    ``op``, ``grad`` (the gradient arriving at an op), ``send``, ``hook`` and ``leaf``."""

    __slots__ = ("kind", "op_index", "tensor", "grad", "text")

    def __init__(self, kind: str, op_index: int | None, tensor: str, grad: RawTensor | None, text: str):
        self.kind, self.op_index, self.tensor, self.grad, self.text = kind, op_index, tensor, grad, text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"TraceEvent({self.kind!r}, {self.text!r})"


class _Local(threading.local):
    trace: Callable[[TraceEvent], Any] | None = None


_local = _Local()


class tracing:
    """``with tracing(print): ...`` traces every backward walk in the block (this thread only).
    ``tracing(None)`` changes nothing (an enclosing ``tracing`` stays in force)."""

    def __init__(self, trace: Callable[[TraceEvent], Any] | None):
        self._trace = trace

    def __enter__(self) -> "tracing":
        self._previous = _local.trace
        if self._trace is not None:
            _local.trace = self._trace
        return self

    def __exit__(self, *exc: Any) -> None:
        _local.trace = self._previous


def watching(ops: list, trace: Callable | None = None) -> bool:
    """Is there anything to watch in a walk over ``ops``: a trace, anomaly mode, a hook?"""
    return (trace is not None or _local.trace is not None or SWITCHES.anomaly
            or (HOOKS.ever and any(_hooked(op) for op in ops)))


def observe(ops: list, seeds: dict, rules: Any, trace: Callable | None = None) -> "Observer | None":
    """An observer for one walk, or None when there is nothing to watch (the common case)."""
    if not watching(ops, trace):
        return None
    return Observer(ops, seeds, rules, trace if trace is not None else _local.trace)


def _hooked(op: Any) -> bool:
    return bool(op.output().hooks) or any(x.hooks for x in op.inputs())


class Observer:
    """Runs hooks, checks values (anomaly mode) and reports the walk (trace) as it happens."""

    def __init__(self, ops: list, seeds: dict, rules: Any, trace: Callable | None):
        self.trace, self.rules, self.anomaly = trace, rules, SWITCHES.anomaly
        self.produced = {op.output() for op in ops}
        self.names = tensor_names(ops) if trace else {}
        self.index = {id(op): i for i, op in enumerate(ops)} if trace else {}
        self.hooked: set[RawTensor] = set()
        for out, g in seeds.items():
            if self.anomaly and nonfinite(g, "backward", inf=True):
                raise AnomalyError(f"detect_anomaly: the seed gradient for a tensor of {shape_dtype(out)} "
                                   f"holds {nonfinite(g, 'backward', inf=True)}")
            self._emit("seed", None, out, g, f"seed  ∂ℒ/∂{self._name(out)} = {format_values(g)}   "
                                             f"(ℒ is the quantity being differentiated)")

    def _name(self, x: RawTensor) -> str:
        return self.names.get(x, "?")

    def _emit(self, kind: str, op_index: int | None, x: RawTensor, g: RawTensor | None, text: str) -> None:
        if self.trace is not None:
            self.trace(TraceEvent(kind, op_index, self._name(x), g, text))

    def arrive(self, op: Any, g: RawTensor, grads: dict) -> RawTensor:
        """``out``'s gradient is complete: check it, run its hooks, report it; returns the gradient to use."""
        out = op.output()
        if self.anomaly:
            bad = nonfinite(g, "backward", inf=True)
            if bad:
                raise AnomalyError(f"detect_anomaly: the gradient arriving at {type(op).__name__}'s output holds "
                                   f"{bad} (the sum of finite contributions overflowed) — {describe_op(op)}")
        i = self.index.get(id(op))
        if self.trace is not None:
            ins = ", ".join(self._name(x) for x in op.inputs())
            self._emit("op", i, out, None, f"[{i}] {op_title(op)}: {ins} -> {self._name(out)}")
        if out.hooks:
            g = self._run_hooks(out, g, i)
            if out in grads:
                grads[out] = g
        self._emit("grad", i, out, g, f"      g = ∂ℒ/∂{self._name(out)} = {format_values(g)}")
        return g

    def sent(self, op: Any, in_grads: list, wanted: tuple, grads: dict) -> None:
        """The rule's results, before they are added in: check and report each."""
        i = self.index.get(id(op))
        pending: set[RawTensor] = set()
        for k, (x, gx) in enumerate(zip(op.inputs(), in_grads)):
            if gx is None or not wanted[k] or not isinstance(gx, RawTensor):
                continue
            if self.anomaly:
                bad = nonfinite(gx, "backward", inf=True)
                if bad:
                    raise AnomalyError(f"detect_anomaly: the backward rule of {type(op).__name__} produced {bad} in "
                                       f"the gradient for input {k} ({shape_dtype(x)}) from a finite incoming "
                                       f"gradient — {describe_op(op)}")
            if self.trace is not None:
                name = self._name(x)
                text = f"      -> {name} (input {k}): {format_values(gx)}"
                if x in pending:
                    text += f"   fan-out: summed with the share just sent to {name}"
                elif grads.get(x) is not None:
                    text += f"   fan-out: {name} already holds {format_values(grads[x])}; summed"
                self._emit("send", i, x, gx, text)
            pending.add(x)

    def finish(self, grads: dict) -> None:
        """End of the walk: run the hooks of leaf tensors (replacing in ``grads``) and report totals."""
        for x, g in list(grads.items()):
            if x in self.produced or g is None:
                continue
            if self.anomaly and nonfinite(g, "backward", inf=True):
                raise AnomalyError(f"detect_anomaly: the gradient of a leaf tensor of {shape_dtype(x)} holds "
                                   f"{nonfinite(g, 'backward', inf=True)} (the sum of finite contributions overflowed)")
            if x.hooks and x not in self.hooked:
                grads[x] = g = self._run_hooks(x, g, None)
            self._emit("leaf", None, x, g, f"leaf  ∂ℒ/∂{self._name(x)} = {format_values(g)}")

    def _run_hooks(self, x: RawTensor, g: RawTensor, op_index: int | None) -> RawTensor:
        self.hooked.add(x)
        for fn in list(x.hooks.values()):
            result = fn(Tensor(g, self.rules))
            if result is None:
                self._emit("hook", op_index, x, g, f"      hook {_fn_name(fn)} on {self._name(x)} saw the gradient")
                continue
            new = result.raw() if isinstance(result, Tensor) else result
            where = f"hook {_fn_name(fn)} on a tensor of {shape_dtype(x)}"
            if new is not None and not isinstance(new, RawTensor):
                raise ArgumentError(f"{where}: returned {type(result).__name__}; expected None, a Tensor or a "
                                    f"RawTensor")
            check_gradient(where, new, x)
            if self.anomaly and nonfinite(new, "backward", inf=True):
                raise AnomalyError(f"detect_anomaly: {where} returned a gradient holding "
                                   f"{nonfinite(new, 'backward', inf=True)}")
            self._emit("hook", op_index, x, new,
                       f"      hook {_fn_name(fn)} on {self._name(x)} replaced the gradient with {format_values(new)}")
            g = new
        return g


def _fn_name(fn: Callable) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def register_hook(t: Any, fn: Callable[[Tensor], Any]) -> Any:
    """Call ``fn(grad)`` with ``t``'s gradient once it is complete in a backward walk.

    ``grad`` is a Tensor on the backend that runs the rules (so ops on it are not recorded).
    ``fn`` returns None to only look, or a Tensor/RawTensor of the same shape, dtype and backend
    to replace the gradient: the walk then goes on with the replacement. Runs right before the op
    that produced ``t`` applies its rule, or at the end of the walk for a leaf. Hooks run in the
    order they were registered; ``handle.remove()`` removes one. The hooks live on the tensor
    (and move with a Parameter's values from step to step)."""
    raw = t if isinstance(t, RawTensor) else t.raw()
    return raw.register_hook(fn)
