"""``clip_grad_norm_``: scale the parameters' ``.grad`` so their global norm is at most ``max_norm``.

The maths is optax's ``clip_by_global_norm`` (for ``norm_type=2``): with N = ‖(g₁, …, gₙ)‖ the
norm of all gradients together, each gradient becomes gᵢ when N < max_norm, else gᵢ / N · max_norm.
It runs on the raw arrays (nothing is recorded), so it works eagerly and inside ``jtape.jit``,
where the gradients are tracers. To clip inside the optimizer instead, chain optax's transform:
``Optimizer(params, optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3)))``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..nn.module import Parameter
from ..tensor.dtype import DataType
from ..tensor.errors import ArgumentError
from ..tensor.raw import RawTensor
from ..tensor.shape import Shape
from ..tensor.tensor import Tensor


def _norm(xp: Any, grads: list, norm_type: float) -> Any:
    """‖grads‖_p over all their elements together (p = inf: the largest magnitude)."""
    if norm_type == float("inf"):
        return xp.max(xp.stack([xp.max(xp.abs(g)) for g in grads]))
    if norm_type == 2.0:   # optax.global_norm
        return xp.sqrt(sum(xp.sum(g * g) for g in grads))
    return sum(xp.sum(xp.abs(g) ** norm_type) for g in grads) ** (1.0 / norm_type)


def clip_grad_norm_(parameters: Parameter | Iterable[Parameter], max_norm: float,
                    norm_type: float = 2.0) -> Tensor:
    """Scale every ``p.grad`` in place by ``max_norm / N`` when the gradients' total norm ``N`` (the
    ``norm_type``-norm of all of them as one vector; ``float("inf")``: the largest magnitude) is at
    least ``max_norm``; leave them unchanged otherwise. Returns ``N`` (a 0-d Tensor, as PyTorch's
    ``torch.nn.utils.clip_grad_norm_``; computed in float32 at least). Parameters without a
    ``.grad`` are skipped. Call it between ``loss.backward()`` and ``opt.step()``."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    if not params:
        raise ValueError("clip_grad_norm_: got no parameters; expected model.parameters()")
    for p in params:
        if not isinstance(p, Tensor):
            raise ArgumentError(f"clip_grad_norm_: got a {type(p).__name__}; expected Parameters")
    if not (isinstance(max_norm, (int, float)) and max_norm > 0):
        raise ValueError(f"clip_grad_norm_: max_norm: got {max_norm!r}; expected a number > 0")
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: norm_type: got {norm_type}; expected > 0 (or float('inf'))")
    with_grad = [p for p in params if p.raw().grad is not None]
    if not with_grad:
        raise ValueError("clip_grad_norm_: no parameter has a .grad; expected a loss.backward() first")
    raws = [p.raw().grad for p in with_grad]
    for r in raws:
        r.value()              # a pending gradient (deferred eager) is computed first
    on_jax = isinstance(raws[0].data, jax.Array)
    xp = jnp if on_jax else np
    dtype = jnp.result_type(np.float32, *[r.data.dtype for r in raws])
    grads = [xp.asarray(r.data).astype(dtype) for r in raws]
    norm = _norm(xp, grads, norm_type)
    keep = norm < max_norm
    for p, r, g in zip(with_grad, raws, grads):
        clipped = xp.where(keep, g, (g / norm) * max_norm).astype(r.data.dtype)
        p.raw().grad = _raw(p, clipped, r.shape, r.dtype)
    return Tensor(_raw(with_grad[0], xp.asarray(norm), Shape(()), DataType.of(str(np.dtype(dtype)))),
                  with_grad[0].backend)


def _raw(p: Parameter, values: Any, shape: Shape, dtype: DataType) -> RawTensor:
    """A RawTensor on ``p``'s backend holding ``values`` (a jax array stays on its device)."""
    if isinstance(values, (jax.Array, jax.core.Tracer)):
        return RawTensor(values, shape, dtype, p.device)
    return p.backend.from_numpy(np.asarray(values), dtype)
