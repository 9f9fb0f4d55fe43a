"""The steady state of a ``jtape.jit`` step: a training loop calls the same step again and again
with a new batch of the same kind, and between two calls nothing touches the state the last call
installed. Then the call's program, the arrays of its state and the signature of its arguments
are known already, and ``Steady.match`` hands them over after a check per tensor — instead of
flattening the arguments, stripping every parameter, buffer and gradient down to its pytree data
and looking the program up by that structure (``compiled.plan_of``), which is most of a call's
Python (MLP-born: ~75 µs of a ~280 µs step).

What the check compares, each against what the last call left (anything else: ``match`` returns
None, and the call takes the full path, which sees the change):

* the modules' training flags (the program's mode);
* each argument: positional only, a Tensor (or RawTensor) of the same class, backend, shape,
  dtype, device and ``requires_grad``, holding a concrete array of the same kind (not pending);
* each parameter and buffer: the very RawTensor the last call installed, still holding the very
  array it was given, with the same ``requires_grad``; each ``.grad`` the one installed (or None);
* each optimizer's state (read through ``Optimizer.state``, which first applies a changed
  learning rate) and each generator's key: the objects installed.

A state installed whose pytree data differs from the data the program was looked up with (a step
that changes a parameter's ``requires_grad``, or leaves a ``.grad`` where there was none) is not
steady: the next call would look up another program, so ``record`` does not arm the fast path.
"""

from __future__ import annotations

from typing import Any

import jax
from jax.core import Tracer

from ..tensor.raw import RawTensor
from ..tensor.tensor import Tensor
from .backend import index_checker


class Steady:
    """What the last ``jtape.jit`` call installed (``record``), to recognise the next call as the
    same step again (``match``)."""

    def __init__(self, binding: Any):
        self.binding = binding
        self.plan: Any = None      # None: the next call takes the full path

    def forget(self) -> None:
        self.plan = None

    def record(self, plan: Any, mode: tuple, args: tuple, kwargs: dict, installed: tuple, grad_arrays: list) -> None:
        """After a call: remember what it installed — ``installed``, the program's state arrays
        (parameters, optimizer states, buffers, keys), and ``grad_arrays`` its gradients' — if the
        next call, finding it untouched, would look up this same ``plan``."""
        self.plan = None
        if kwargs or plan.new_params != plan.params or plan.new_buffers != plan.buffers or plan.new_grads != plan.grads:
            return
        if any(isinstance(a, Tracer) for a in installed[0]):
            return                         # called inside a jax trace: its tracers must not outlive it
        arg_info = []
        for a in args:
            raw = a.raw() if isinstance(a, Tensor) else a
            if not isinstance(raw, RawTensor):
                return                     # arrays, nested pytrees: the full path
            data = raw.data
            if not isinstance(data, jax.Array) or isinstance(data, Tracer):
                return
            arg_info.append((a.__class__, getattr(a, "backend", None), raw.shape, raw.dtype, raw.device,
                             raw.requires_grad, data.__class__, data.shape, data.dtype, index_checker(a)))
        self.mode, self.arg_info = mode, arg_info
        self.renew(plan, installed, grad_arrays)
        self.param_flags = [raw.requires_grad for raw, _ in self.params]
        self.grad_flags = [None if g is None else g.requires_grad for g, _ in self.grads]
        self.buffer_flags = [raw.requires_grad for raw, _ in self.buffers]

    def renew(self, plan: Any, installed: tuple, grad_arrays: list) -> None:
        """After a call ``match`` recognised: the same arguments' kinds, mode and flags (the state's
        pytree data did not change, or ``record`` would not have armed it); new arrays."""
        b = self.binding
        self.params = [(p.raw(), data) for p, data in zip(b.params, installed[0])]
        self.grads = [(p.raw().grad, g) for p, g in zip(b.params, grad_arrays)]
        self.states = installed[1]
        self.buffers = [(t.raw(), data) for t, data in zip(b.buffers, installed[2])]
        self.keys = installed[3]
        self.installed, self.grad_arrays = installed, grad_arrays
        self.plan = plan

    def match(self, args: tuple, kwargs: dict) -> tuple | None:
        """``(plan, state arrays, gradient arrays, argument arrays, given)`` for a call that is the last
        one again (see the module docstring) — ``given``: ``(array, index checker)`` per argument, as
        ``compiled._examine`` makes it — or None."""
        plan = self.plan
        if plan is None or kwargs or len(args) != len(self.arg_info):
            return None
        b = self.binding
        if b.mode() != self.mode:
            return None
        leaf_arrays, given = [], []
        for a, (cls, backend, shape, dtype, device, requires_grad, dcls, dshape, ddtype, checker) in zip(args,
                                                                                                   self.arg_info):
            if a.__class__ is not cls:
                return None
            if cls is RawTensor:
                raw = a
            elif a.backend is backend:
                raw = a.raw()
            else:
                return None
            data = raw.data
            if (data.__class__ is not dcls or raw.shape != shape or raw.dtype is not dtype or raw.device is not device
                    or raw.requires_grad != requires_grad or data.shape != dshape or data.dtype != ddtype):
                return None
            leaf_arrays.append(data)
            given.append((data, checker))
        for p, (raw, data), flag in zip(b.params, self.params, self.param_flags):
            if p.raw() is not raw or raw.data is not data or raw.requires_grad != flag:
                return None
        for p, (g, data), flag in zip(b.params, self.grads, self.grad_flags):
            now = p.raw().grad
            if now is not g or (g is not None and (g.data is not data or g.requires_grad != flag)):
                return None
        for t, (raw, data), flag in zip(b.buffers, self.buffers, self.buffer_flags):
            if t.raw() is not raw or raw.data is not data or raw.requires_grad != flag:
                return None
        for o, s in zip(b.optimizers, self.states):
            if o.state is not s:
                return None
        for g, k in zip(b.generators, self.keys):
            if g.key is not k:
                return None
        return plan, self.installed, self.grad_arrays, leaf_arrays, given
