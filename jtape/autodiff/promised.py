"""What a waiting backward's program promised (``jtape.autodiff.deferred``): ``Prepared``, a program
ready to run with the tensors waiting for its results; ``Owed``, the gradients a program ran without
returning, computed if one is read; and the two questions a flush asks when its ops read a waiting
program's results: which arguments are those results (``sources_in``), and does anything else
still hold one of its gradients (``grads_held``)."""

from __future__ import annotations

import sys
import weakref
from contextlib import nullcontext
from typing import Any, NamedTuple

from ..tensor.raw import Pending, RawTensor
from .programs import flat_inputs

_new_pending = tuple.__new__


class Owed:
    """The gradients a joined step did not return. A step's program with the optimizer's update joined
    (``Deferred.update``) at first leaves the gradients out of its results: the update reads them
    inside the program, and a training loop drops them unread (``zero_grad``), so XLA need not write
    them out. Each of those gradients stays pending here, with the step's argument arrays kept: a read
    of one (``p.grad.numpy()``, a ``.grad`` used by an op) runs the step's backward program again on
    them — the same forward, walk and values — fills in every one, and from then on that joined
    program returns its gradients (compiled once more), so a loop that reads them pays for this once.

    A pending gradient's ``Pending`` holds this object strongly (calling it returns itself, as its
    weak reference would), and it holds the gradients weakly: it lives while one of them does, and
    goes with its arrays when they are dropped."""

    __slots__ = ("deferred", "entry", "arrays", "grads", "joined", "remake", "__weakref__")

    def __init__(self, deferred: Any, prepared: Prepared, joined: list | None, remake: Any):
        self.deferred, self.entry, self.arrays = deferred.ref, prepared.entry, prepared.arrays
        self.joined, self.remake = joined, remake
        self.grads = []
        for g in prepared.grads:
            ref = None
            if g is not None:
                ref = weakref.ref(g)
                g.data = _new_pending(Pending, (self, ref))
            self.grads.append(ref)

    def __call__(self) -> Owed:
        return self

    def flush(self) -> None:
        """Compute the gradients (see the class): the step's backward program, run alone."""
        deferred = self.deferred()
        with deferred.lock if deferred is not None else nullcontext():     # (no backend left: no one to race)
            if self.arrays is None:
                return
            arrays, self.arrays = self.arrays, None
            joined = self.joined
            if joined is not None and not joined[2]:   # read after its step: the joined program returns them now
                joined[0], joined[1], joined[2] = self.remake(), False, True
            if deferred is not None:
                _values, garrays, _ranges = deferred.call_alone(self.entry, arrays)
            else:
                _values, garrays, _ranges = self.entry[0](arrays)
            for ref, value in zip(self.grads, garrays):
                g = None if ref is None else ref()
                if g is not None and g.data.__class__ is Pending and g.data[0] is self:
                    g.data = value

    def copy(self, owner: RawTensor) -> RawTensor:
        """``Pending.copy`` (``detach``) of an owed gradient: computed first."""
        return RawTensor(owner.value(), owner.shape, owner.dtype, owner.device)


def grads_held(grads: list, nodes: list, ops: Any, args: list) -> bool:
    """Does anything besides the program being run hold one of a waiting program's ``grads`` — a
    ``.grad``, a user's variable? Counted with ``sys.getrefcount`` less the references known here: the
    waiting program's list, the pending ops' and the walked ops' inputs, the program's argument list,
    and its arguments' ``.grad`` (a parameter's RawTensor from before ``p.assign``, which only these ops
    still hold, keeps the ``.grad`` it handed on). A miscount can only return a gradient nobody reads,
    or leave one pending that a read computes."""
    index = {id(g): i for i, g in enumerate(grads) if g is not None}
    known = [1] * len(grads)         # the waiting program's list of them
    for a in args:
        for i in (index.get(id(a)), index.get(id(a.grad))):    # (an argument's own .grad: a parameter's
            if i is not None:                                   # raw before ``assign`` carried it over)
                known[i] += 1
    for node in nodes:
        for t in flat_inputs(node.inputs) if node.op._sequences else node.inputs:
            i = index.get(id(t))
            if i is not None:
                known[i] += 1
    for op in ops:
        for t in op._inputs:
            i = index.get(id(t))
            if i is not None:
                known[i] += 1
    # getrefcount's argument is one more; indexed, not iterated (a loop variable would be another)
    return any(grads[i] is not None and sys.getrefcount(grads[i]) - 1 - known[i] > 0 for i in range(len(grads)))


def sources_in(before: Prepared, args: list) -> tuple:
    """Which arguments of a program are results a waiting program promised: ``(argument index, 0,
    value index)`` for a value, ``(argument index, 1, gradient index)`` for a gradient."""
    promised = {id(t): (0, j) for j, t in enumerate(before.outs)}
    promised.update({id(g): (1, j) for j, g in enumerate(before.grads) if g is not None})
    return tuple([(k,) + promised[id(a)] for k, a in enumerate(args) if id(a) in promised])


class Prepared(NamedTuple):
    """A program ready to run: its key, (compiled, traced function), argument arrays, the tensors
    its value outputs go to, and — for a waiting backward — the pending gradients it promised."""

    spec: Any
    entry: tuple
    arrays: list
    outs: list
    grads: list
