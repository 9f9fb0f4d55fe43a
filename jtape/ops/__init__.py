"""Every op, one place each: its check, its kernels and its ``Operation`` (the backward rule with
its derivation), grouped by family. Importing this package registers them all."""

from ..tensor.registry import REGISTRY
from . import compare, conv, elementwise, indexing, layout, linalg, loss, pool  # noqa: F401  (registers)
from . import reduce, select, shape, unary  # noqa: F401
from . import activation, piecewise  # noqa: F401  (registers the second round's elementwise ops)
from .base import Operation, pad_with_zeros, unbroadcast

# The Operation class of each differentiable op, by op name; each also importable as jtape.ops.<Class>.
OP_CLASSES: dict[str, type[Operation]] = {name: d.operation for name, d in REGISTRY.items() if d.operation}
globals().update({cls.__name__: cls for cls in OP_CLASSES.values()})

__all__ = ["OP_CLASSES", "Operation", "pad_with_zeros", "unbroadcast"] + sorted(c.__name__ for c in OP_CLASSES.values())
