"""Checkpoints of a model and its optimizer that a multi-process run can resume from.

``save_checkpoint(path, model, opt, step=k)`` writes one ``.npz`` file (``np.savez``: plain
arrays, no pickle): every parameter (``model/<name>``), the optimizer's ``state_dict()`` — each
leaf of its optax state by path (``optim/state/<path>``), its step count (``optim/steps``) and its
parameter groups' options as JSON text (``optim/param_groups``) — and ``step``. Call it in
**every** process: parameters or optimizer state sharded over several processes are gathered
(``jax.experimental.multihost_utils.process_allgather``, an XLA collective), process 0 writes
the file (to a temporary name, then renamed, so a crash never leaves half a checkpoint) and all
processes wait until it is there. ``load_checkpoint`` reads it back in every process (on a
shared filesystem across hosts); the next compiled step places the arrays on the mesh again.

The optimizer's part is ``Optimizer.state_dict`` / ``load_state_dict`` flattened into named arrays by
``optimizer_state_dict`` / ``load_optimizer_state_dict``. bfloat16 arrays are stored as float32 and
cast back on load. (``jtape.save`` / ``jtape.load`` write single-process checkpoints as safetensors.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils


def to_host(array: Any) -> np.ndarray:
    """The whole value of ``array`` as a NumPy array, also when it is split over processes
    (then every process must call this: it runs a collective)."""
    if isinstance(array, jax.Array) and not array.is_fully_addressable and not array.is_fully_replicated:
        return np.asarray(multihost_utils.process_allgather(array, tiled=True))
    return np.asarray(array)


def _storable(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) if a.dtype.name == "bfloat16" else a


def optimizer_state_dict(optimizer: Any) -> dict[str, np.ndarray]:
    """``optimizer.state_dict()`` as named host arrays: ``optim/state/<path>`` per optax leaf
    (gathered when sharded), ``optim/steps``, and ``optim/param_groups`` (JSON text)."""
    saved = optimizer.state_dict(to_host=to_host)
    out = {f"optim/state/{name}": _storable(leaf) for name, leaf in saved["state"].items()}
    out["optim/steps"] = np.asarray(saved["steps"], np.int64)
    out["optim/param_groups"] = np.asarray(json.dumps(saved["param_groups"]))
    return out


def load_optimizer_state_dict(optimizer: Any, state: Mapping[str, Any]) -> None:
    """Restore what ``optimizer_state_dict`` saved into ``optimizer`` (same parameters, same
    transform): names, shapes and groups are checked by ``optimizer.load_state_dict``."""
    missing = [k for k in ("optim/steps", "optim/param_groups") if k not in state]
    if missing:
        raise KeyError(f"load_optimizer_state_dict: the checkpoint has no {missing}; expected what "
                       f"optimizer_state_dict wrote")
    prefix = "optim/state/"
    optimizer.load_state_dict({"state": {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)},
                               "steps": int(state["optim/steps"]),
                               "param_groups": json.loads(str(np.asarray(state["optim/param_groups"])))})


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
