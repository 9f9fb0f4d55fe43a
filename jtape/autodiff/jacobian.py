"""Jacobians from the tape: ``GradientTape.jacobian`` and ``GradientTape.batch_jacobian`` (TF's).

Reverse mode computes one vector-Jacobian product per walk. Seeding the walk with a one-hot
``e_k`` (1 at target element k, 0 elsewhere) gives ``e_kᵀ J`` — row k of the Jacobian,
∂target[k]/∂source. So ``jacobian`` walks the tape once per target element and stacks the rows:
    J[i..., j...] = ∂target[i...]/∂source[j...],   shape target.shape + source.shape.
The tape is only read, never cleared, so every walk sees the same recorded ops (TF needs a
``persistent`` tape for this; a jtape tape keeps its ops until ``clear()``).

``batch_jacobian`` assumes row b of target depends only on row b of source (a model applied to a
batch). Then one walk seeded with ``e_k`` in *every* batch row at once gives all B rows'
∂target[b, k]/∂source[b, ...] together, so it needs only ``prod(target.shape[1:])`` walks:
    BJ[b, i..., j...] = ∂target[b, i...]/∂source[b, j...],   shape [B, *target.shape[1:], *source.shape[1:]].
(If rows are not independent, the cross-row terms are summed in — as with TF.)

``unconnected_gradients``: a source the target does not depend on gets None (``"none"``) or a
Jacobian of zeros (``"zero"``), as in ``gradient``.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from ..tensor.errors import ArgumentError, DTypeError, ShapeError, TapeError
from ..tensor.raw import RawTensor
from ..tensor.tensor import Tensor
from .backend import plain
from .engine import check_sources


def jacobian(tape: Any, target: Any, source: Any, unconnected_gradients: str = "none", *,
             backend: Any = None) -> Any:
    """∂target/∂source for each source in the nest ``source``; see the module docstring."""
    backend, raw_target = _prepare("jacobian", target, unconnected_gradients, backend)
    sources = _raw_sources(source)
    n = raw_target.shape.size
    rows = _rows(tape, backend, raw_target, sources, n,
                 lambda k: np.eye(1, n, k, dtype=raw_target.dtype.numpy).reshape(tuple(raw_target.shape)))
    check_sources("jacobian", jax.tree_util.tree_leaves(source, is_leaf=_is_tensor), backend)
    rules = plain(backend)

    def assemble(src: RawTensor, got: list) -> RawTensor | None:
        shape = tuple(raw_target.shape) + tuple(src.shape)
        if not any(r is not None for r in got):
            return None if n and unconnected_gradients == "none" else rules.full(shape, 0, src.dtype)
        flat = [rules.reshape(_or_zeros(r, src, rules), (1,) + tuple(src.shape)) for r in got]
        return rules.reshape(rules.cat(flat, 0), shape)

    return _restructure(source, {s: assemble(s, rows[s]) for s in sources}, backend)


def batch_jacobian(tape: Any, target: Any, source: Any, unconnected_gradients: str = "none", *,
                   backend: Any = None) -> Any:
    """Per-row Jacobians of ``target [B, ...]`` for ``source [B, ...]``; see the module docstring."""
    backend, raw_target = _prepare("batch_jacobian", target, unconnected_gradients, backend)
    if not isinstance(source, (Tensor, RawTensor)):
        raise ArgumentError(f"batch_jacobian: got a source of type {type(source).__name__}; expected one Tensor or "
                        f"RawTensor")
    raw_source = source.raw() if isinstance(source, Tensor) else source
    t_shape, s_shape = tuple(raw_target.shape), tuple(raw_source.shape)
    if not t_shape or not s_shape:
        raise ShapeError(f"batch_jacobian: got target shape {t_shape} and source shape {s_shape}; expected both of "
                         f"rank >= 1, with the batch in dim 0")
    if t_shape[0] != s_shape[0]:
        raise ShapeError(f"batch_jacobian: got target shape {t_shape} and source shape {s_shape}; expected the same "
                         f"batch size in dim 0 ({t_shape[0]} != {s_shape[0]})")
    batch, per_row = t_shape[0], int(np.prod(t_shape[1:], dtype=np.int64))

    def seed(k: int) -> np.ndarray:
        one_hot = np.zeros((batch, per_row), raw_target.dtype.numpy)
        one_hot[:, k] = 1
        return one_hot.reshape(t_shape)

    got = _rows(tape, backend, raw_target, [raw_source], per_row if batch else 0, seed)[raw_source]
    check_sources("batch_jacobian", [source], backend)
    rules = plain(backend)
    shape = t_shape + s_shape[1:]
    if not any(r is not None for r in got):
        result = (None if batch and per_row and unconnected_gradients == "none"
                  else rules.full(shape, 0, raw_source.dtype))
    else:
        cols = [rules.unsqueeze(_or_zeros(r, raw_source, rules), 1) for r in got]     # [B, 1, *source_rest]
        result = rules.reshape(rules.cat(cols, 1), shape)
    return _restructure(source, {raw_source: result}, backend)


# -- helpers -------------------------------------------------------------------------------------------
def _prepare(op: str, target: Any, unconnected_gradients: str, backend: Any) -> tuple[Any, RawTensor]:
    if unconnected_gradients not in ("none", "zero"):
        raise ValueError(f"{op}: got unconnected_gradients={unconnected_gradients!r}; expected 'none' or 'zero'")
    if not isinstance(target, (Tensor, RawTensor)):
        raise ArgumentError(f"{op}: got a target of type {type(target).__name__}; expected one Tensor or RawTensor")
    if backend is None:
        backend = getattr(target, "backend", None)
        if backend is None:
            raise TapeError(f"{op}: the target is a RawTensor; pass backend= to run the rules on")
    raw = target.raw() if isinstance(target, Tensor) else target
    if not raw.dtype.is_float:
        raise DTypeError(f"{op}: got a target of dtype {raw.dtype.value}; expected a float tensor "
                         f"(integer and bool results carry no gradient)")
    return backend, raw


def _raw_sources(source: Any) -> list[RawTensor]:
    leaves = jax.tree_util.tree_leaves(source, is_leaf=_is_tensor)
    for leaf in leaves:
        if not _is_tensor(leaf):
            raise ArgumentError(f"jacobian: got a source of type {type(leaf).__name__}; expected Tensors or RawTensors")
    return [leaf.raw() if isinstance(leaf, Tensor) else leaf for leaf in leaves]


def _rows(tape: Any, backend: Any, target: RawTensor, sources: list[RawTensor], n: int, seed: Any) -> dict:
    """One walk per k < n, seeded with ``seed(k)``: each source's gradient (or None) per walk."""
    rows: dict[RawTensor, list] = {s: [] for s in sources}
    for k in range(n):
        grads = tape.walk({target: backend.from_numpy(seed(k))}, backend, sources=sources)
        for s in sources:
            rows[s].append(grads.get(s))
    return rows


def _or_zeros(g: RawTensor | None, like: RawTensor, rules: Any) -> RawTensor:
    return rules.full(like.shape, 0, like.dtype) if g is None else g


def _is_tensor(x: Any) -> bool:
    return isinstance(x, (Tensor, RawTensor))


def _restructure(source: Any, results: dict, backend: Any) -> Any:
    def lookup(src: Any) -> Any:
        g = results[src.raw() if isinstance(src, Tensor) else src]
        return Tensor(g, src.backend) if g is not None and isinstance(src, Tensor) else g
    return jax.tree_util.tree_map(lookup, source, is_leaf=_is_tensor)
