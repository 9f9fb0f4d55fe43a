"""Checkpoints of a model and its optimizer that a multi-process run can resume from.

``save_checkpoint(path, model, opt, step=k)`` writes one ``.npz`` file (``np.savez``: plain
arrays, no pickle): every parameter (``model/<name>``), every leaf of the optimizer's optax
state in flattening order (``optim/<i>``), the optimizer's step count and ``step``. Call it in
**every** process: parameters or optimizer state sharded over several processes are gathered
(``jax.experimental.multihost_utils.process_allgather``, an XLA collective), process 0 writes
the file (to a temporary name, then renamed, so a crash never leaves half a checkpoint) and all
processes wait until it is there. ``load_checkpoint`` reads it back in every process (on a
shared filesystem across hosts); the next compiled step places the arrays on the mesh again.

The optimizer's state goes through ``optimizer_state_dict`` / ``load_optimizer_state_dict``
(``Optimizer`` has no ``state_dict`` of its own yet). bfloat16 arrays are stored as float32 and
cast back on load.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from ..tensor.errors import ShapeError


def to_host(array: Any) -> np.ndarray:
    """The whole value of ``array`` as a NumPy array, also when it is split over processes
    (then every process must call this: it runs a collective)."""
    if isinstance(array, jax.Array) and not array.is_fully_addressable and not array.is_fully_replicated:
        return np.asarray(multihost_utils.process_allgather(array, tiled=True))
    return np.asarray(array)


def _storable(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) if a.dtype.name == "bfloat16" else a


def optimizer_state_dict(optimizer: Any) -> dict[str, np.ndarray]:
    """``optimizer``'s state as named host arrays: ``optim/<i>`` per optax leaf, ``optim/steps``."""
    leaves = jax.tree_util.tree_leaves(optimizer.state)
    out = {f"optim/{i}": _storable(to_host(leaf)) for i, leaf in enumerate(leaves)}
    out["optim/steps"] = np.asarray(optimizer.steps, np.int64)
    return out


def load_optimizer_state_dict(optimizer: Any, state: Mapping[str, Any]) -> None:
    """Restore what ``optimizer_state_dict`` saved into ``optimizer`` (same parameters, same transform)."""
    leaves, treedef = jax.tree_util.tree_flatten(optimizer.state)
    names = [f"optim/{i}" for i in range(len(leaves))]
    saved = sorted(k for k in state if k.startswith("optim/") and k != "optim/steps")
    if sorted(names) != saved or "optim/steps" not in state:
        raise KeyError(f"load_optimizer_state_dict: the checkpoint holds {len(saved)} optimizer leaves "
                       f"{'and' if 'optim/steps' in state else 'but no'} step count; expected {len(leaves)} leaves "
                       f"and 'optim/steps' (is it the same optimizer over the same parameters?)")
    new = []
    for name, leaf in zip(names, leaves):
        value = np.asarray(state[name])
        if value.shape != tuple(np.shape(leaf)):
            raise ShapeError(f"load_optimizer_state_dict: {name} has shape {value.shape}; expected {np.shape(leaf)}")
        new.append(jnp.asarray(value, dtype=jnp.result_type(leaf)))
    optimizer.state = jax.tree_util.tree_unflatten(treedef, new)
    optimizer.steps = int(state["optim/steps"])


def save_checkpoint(path: str | os.PathLike, model: Any, optimizer: Any = None, step: int = 0) -> None:
    """Write ``model``'s parameters, ``optimizer``'s state and ``step`` to ``path`` (a ``.npz``).

    Call in every process (see the module docstring); process 0 writes."""
    arrays = {f"model/{name}": _storable(to_host(p.data)) for name, p in model.named_parameters()}
    if optimizer is not None:
        arrays.update(optimizer_state_dict(optimizer))
    arrays["meta/step"] = np.asarray(step, np.int64)
    path = Path(path)
    if jax.process_index() == 0:
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"jtape checkpoint {path.name} {step}")


def load_checkpoint(path: str | os.PathLike, model: Any, optimizer: Any = None) -> int:
    """Load what ``save_checkpoint`` wrote into ``model`` (and ``optimizer``); returns the saved step."""
    with np.load(path, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    model.load_state_dict({k[len("model/"):]: v for k, v in data.items() if k.startswith("model/")})
    if optimizer is not None:
        load_optimizer_state_dict(optimizer, {k: v for k, v in data.items() if k.startswith("optim/")})
    return int(data["meta/step"])
