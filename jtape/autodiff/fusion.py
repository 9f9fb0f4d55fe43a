"""Applying one rule during the walk — and, on a backend jax can trace, as one compiled kernel.

A rule with several backend calls (``fuse = True``: MatMulOp transposes, multiplies and sums
back broadcasting) costs one dispatch per call when run op by op. On a backend whose ops run on
jax tracers (``jit_compatible``: JaxBackend), the walk instead traces the rule once under
``jax.jit`` — the same rule, on the same backend, with tracers in the RawTensors — and then calls
the compiled kernel: one dispatch, and XLA fuses the pieces (the transposes fold into the dot).
Kernels are cached by the op class, its static arguments and which inputs want a gradient (an
unwanted gradient is not returned, so XLA never computes it); jax re-traces only for new shapes
and dtypes.
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import partial
from typing import Any
from weakref import WeakKeyDictionary

import jax

from ..tensor.errors import TapeError
from ..tensor.raw import RawTensor

_KERNELS: "WeakKeyDictionary[Any, dict]" = WeakKeyDictionary()   # backend -> {key: jitted rule}


def apply_rule(op: Any, g: RawTensor, rules: Any, wanted: tuple, create_graph: bool = False) -> list:
    """``op``'s gradients for its inputs given ``g``, computed on ``rules`` (a backend)."""
    if create_graph:
        if not op.differentiable_backward:
            raise TapeError(f"{type(op).__name__}: its backward is not differentiable; second-order gradients "
                            f"through {op.name} are not supported (create_graph=True reached it)")
        return op.backward(g, rules)
    cls = type(op)
    if not (cls.fuse and getattr(rules, "jit_compatible", False)):
        return op.backward(g, rules)
    statics = op.statics()
    key = (cls, tuple(statics.items()), wanted)
    kernels = _KERNELS.setdefault(rules, {})
    kernel = kernels.get(key)
    if kernel is None:
        kernel = kernels[key] = jax.jit(partial(_run_rule, cls, statics, wanted, rules))
    return kernel(op.inputs(), op.output(), g)


def _run_rule(cls: type, statics: dict, wanted: tuple, rules: Any, inputs: tuple, output: RawTensor,
              g: RawTensor) -> list:
    """The body of a compiled rule: the op rebuilt around traced tensors, its rule applied. (Index
    checks inside a rule — scatter_add at the index its forward op already checked — are dropped:
    their values cannot leave this kernel's own trace.)"""
    collect = getattr(rules, "traced_checks", None)
    with collect() if collect is not None else nullcontext():
        grads = cls(output, *inputs, **statics).backward(g, rules)
    return [gx if w else None for gx, w in zip(grads, wanted)] if len(grads) == len(wanted) else grads
