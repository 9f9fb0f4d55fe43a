"""What a sharded run holds and does: bytes of state per device, collectives in the compiled step."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import jax

from ..tensor.errors import ArgumentError

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
_OP = re.compile(r"=\s*[^=\n]*?\b(" + "|".join(COLLECTIVES) + r")(?:-start)?\(")


def _state_arrays(objs: Iterable[Any]) -> list:
    """The arrays of Modules, Optimizers (parameters and optax state) and Parameters, each once."""
    seen: dict[int, Any] = {}
    for obj in objs:
        if hasattr(obj, "transform") and hasattr(obj, "params"):  # an Optimizer
            leaves = [p.data for p in obj.params] + jax.tree_util.tree_leaves(obj.state)
        elif hasattr(obj, "parameters"):                          # a Module
            leaves = [p.data for p in obj.parameters()]
        elif hasattr(obj, "data"):                                # a Tensor / Parameter
            leaves = [obj.data]
        else:
            raise ArgumentError(f"jtape.distributed.bytes_per_device: got {type(obj).__name__}; expected Modules, "
                            f"Optimizers or Parameters")
        for leaf in leaves:
            seen.setdefault(id(leaf), leaf)
    return list(seen.values())


def bytes_per_device(*state: Any) -> dict[Any, int]:
    """Bytes each of this process's devices holds for ``state`` (Modules, Optimizers, Parameters):
    the sum of the addressable shards' sizes of every parameter and optimizer-state array.

    Replicated, every device holds everything; sharded over N devices, about 1/N of it."""
    out: dict[Any, int] = {d: 0 for d in jax.local_devices()}
    for leaf in _state_arrays(state):
        if isinstance(leaf, jax.Array):
            for shard in leaf.addressable_shards:
                out[shard.device] = out.get(shard.device, 0) + shard.data.nbytes
    return out


def collectives(compiled_or_hlo: Any) -> Counter:
    """How many of each collective (``all-reduce``, ``all-gather``, ``reduce-scatter``, …) the
    optimized HLO holds: pass ``step.lower(x, y).compile()`` or its ``as_text()``.

    XLA's CPU compiler writes a reduce-scatter as an all-reduce followed by a dynamic-slice
    (GPU and TPU compilers combine the two into ``reduce-scatter``)."""
    text = compiled_or_hlo if isinstance(compiled_or_hlo, str) else compiled_or_hlo.as_text()
    return Counter(m.group(1) for m in _OP.finditer(text))
