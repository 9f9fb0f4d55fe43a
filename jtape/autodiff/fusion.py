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

from jax.core import Tracer

from ..tensor.dtype import DataType
from ..tensor.errors import TapeError
from ..tensor.raw import RawTensor
from ..tensor.shape import Shape
from .jitted import Jitted

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
    for value in statics.values():
        if isinstance(value, Tracer):      # a deferred program's traced scalar: the program is one kernel already
            return op.backward(g, rules)
    key = (cls, tuple(statics.items()), wanted)
    kernels = _KERNELS.setdefault(rules, {})
    kernel = kernels.get(key)
    if kernel is None:
        kernel = kernels[key] = Jitted(partial(_run_rule, cls, statics, wanted, rules), rules)
    inputs = op.inputs()
    # Arrays in, arrays out: no RawTensor is flattened in Python on the way into the kernel.
    grads = kernel([x.data for x in inputs], op.output().data, g.data)
    return [None if a is None else RawTensor(a, x.shape, x.dtype, x.device) for a, x in zip(grads, inputs)]


def _run_rule(cls: type, statics: dict, wanted: tuple, rules: Any, inputs: list, output: Any, g: Any) -> list:
    """The body of a compiled rule: the op rebuilt around traced tensors, its rule applied; the
    wanted gradients' arrays out. (Index checks inside a rule — scatter_add at the index its
    forward op already checked — are dropped: their values cannot leave this kernel's trace.)"""
    device = rules.device()

    def raw(a: Any) -> RawTensor:
        return RawTensor(a, Shape(a.shape), DataType.of(a.dtype), device)

    collect = getattr(rules, "traced_checks", None)
    with collect() if collect is not None else nullcontext():
        grads = cls(raw(output), *map(raw, inputs), **statics).backward(raw(g), rules)
    if len(grads) != len(wanted):
        raise TapeError(f"{cls.__name__}.backward returned {len(grads)} gradients for {len(wanted)} inputs; "
                        f"expected one (or None) per input")
    return [gx.data if gx is not None and w else None for gx, w in zip(grads, wanted)]
