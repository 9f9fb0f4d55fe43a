"""What a compiled step (``jtape.jit``) carries in and out: the state of the objects it updates.

``Binding(state)`` reads the objects given as ``jtape.jit(..., state=[...])``:

* **Parameters** — of every Module (``parameters()``), every Optimizer (``params``), and single
  Tensors — go in as arrays, with their ``.grad``; the new ones come out;
* **optimizer states** (optax pytrees) go in and come out;
* **buffers** of every Module (``buffers()``: running statistics, counters) go in as arrays and
  come out as the values the step left, exactly like Parameters but without gradients;
* **random keys**: the key of the process default generator (``jtape.random``) and of every
  ``Generator`` held by a module of the tree (a Dropout given its own ``seed=``) go in, and the
  keys the step split them into come out, so each compiled step draws new numbers — the ones an
  eager step would have drawn;
* the **mode**: the ``training`` flags of every module of the tree. It is not an array but a
  static part of the compiled program (``mode()``): a step compiled in training mode is never
  reused in eval mode, and the other way round.

``arrays()`` reads all of it as one pytree; ``install(arrays, grads)`` puts arrays back (tracers
while tracing, the new concrete arrays after a call).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

from ..tensor import random
from ..tensor.errors import ArgumentError
from ..tensor.tensor import Tensor


def _once(items: list, new: Any) -> None:
    if all(new is not old for old in items):
        items.append(new)


class Binding:
    """The objects a step updates (Parameters, buffers, optimizers, random generators) and the
    modules whose training flags are part of its compiled program."""

    def __init__(self, state: Sequence[Any]):
        self.params: list = []
        self.buffers: list = []
        self.optimizers: list = []
        self.modules: list = []
        self.generators: list = [random.default_generator()]
        for obj in state:
            if hasattr(obj, "transform") and hasattr(obj, "params"):       # an Optimizer
                self.optimizers.append(obj)
                for p in obj.params:
                    _once(self.params, p)
            elif hasattr(obj, "parameters") and hasattr(obj, "modules"):  # a Module
                self._add_module(obj)
            elif isinstance(obj, Tensor):                                  # a single Parameter (or Buffer)
                _once(self.params, obj)
            elif isinstance(obj, random.Generator):
                _once(self.generators, obj)
            else:
                raise ArgumentError(f"jtape.jit: got state of type {type(obj).__name__}; expected Modules, "
                                    f"Optimizers, Parameters or jtape.random.Generators")

    def _add_module(self, module: Any) -> None:
        for p in module.parameters():
            _once(self.params, p)
        for b in module.buffers():
            _once(self.buffers, b)
        for m in module.modules():
            _once(self.modules, m)
            for value in vars(m).values():
                if isinstance(value, random.Generator):
                    _once(self.generators, value)

    def mode(self) -> tuple[bool, ...]:
        """The training flag of every module: the static part of the compiled program."""
        return tuple(bool(m.training) for m in self.modules)

    def arrays(self) -> tuple:
        """``(parameter raws, optimizer states, buffer raws, generator keys)``."""
        return ([p.raw() for p in self.params], [o.state for o in self.optimizers],
                [b.raw() for b in self.buffers], [g.key for g in self.generators])

    def place_keys(self) -> None:
        """Put each generator's key where the first parameter lives, unless it is there already.
        The process default generator is shared by every compiled step: one run on a mesh leaves
        its key replicated over the mesh, and a single-device step must not get it so."""
        where = next((t.data.sharding for t in self.params + self.buffers), None)
        if where is None:
            return
        for g in self.generators:
            key = g.key
            sharding = getattr(key, "sharding", where)
            if sharding is not where and sharding != where:
                if not getattr(key, "is_fully_addressable", True):   # replicated over a multi-process mesh:
                    key = key.addressable_data(0)                    # this process's copy (no cross-host move)
                g.key = jax.device_put(key, where)

    def grads(self) -> list:
        return [p.raw().grad for p in self.params]

    def install(self, arrays: tuple, grads: list | None) -> None:
        raws, states, buffers, keys = arrays
        for i, (p, raw) in enumerate(zip(self.params, raws)):
            p._swap(raw)
            raw.grad = None if grads is None else grads[i]
        for o, s in zip(self.optimizers, states):
            o.state = s
        for b, raw in zip(self.buffers, buffers):
            b._swap(raw)
        for g, k in zip(self.generators, keys):
            g.key = k
