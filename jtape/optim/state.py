"""An optimizer's state as plain data, and back: ``Optimizer.state_dict`` / ``load_state_dict``.

    {"state": {"0/inner_state/inner_state/0/mu/3": array, ...},   # every optax leaf, by its path
     "param_groups": [{"lr": 0.001, "betas": [0.9, 0.999], ..., "params": [0, 1, 2]}, ...],
     "steps": 10}

The arrays are the optax state's leaves (moments, counts, the injected hyperparameters); their
names are their paths in the state pytree, so a checkpoint file reads as what it holds and a
mismatch names the leaf. Everything else is JSON: ``jtape.save`` writes the arrays as safetensors
and the rest as metadata. Loading keeps each leaf's dtype and checks names, shapes and groups.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..tensor.errors import ArgumentError, ShapeError


def leaf_name(path: tuple) -> str:
    """A state leaf's path as ``"0/inner_state/mu/3"`` (dict keys, attribute names, list positions)."""
    parts = []
    for key in path:
        if isinstance(key, jax.tree_util.DictKey):
            parts.append(str(key.key))
        elif isinstance(key, jax.tree_util.GetAttrKey):
            parts.append(key.name)
        elif isinstance(key, jax.tree_util.SequenceKey):
            parts.append(str(key.idx))
        else:
            parts.append(str(getattr(key, "key", key)))
    return "/".join(parts)


def named_leaves(state: Any) -> dict[str, Any]:
    """Every leaf of an optax state by ``leaf_name``."""
    return {leaf_name(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(state)}


def _plain(value: Any) -> Any:
    """A group option as JSON (tuples become lists), or ``_SKIP`` for code (schedules, masks)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic) or (isinstance(value, (np.ndarray, jax.Array)) and np.ndim(value) == 0):
        return np.asarray(value).item()
    if isinstance(value, (tuple, list)):
        items = [_plain(v) for v in value]
        return _SKIP if any(v is _SKIP for v in items) else items
    return _SKIP


_SKIP = object()


def state_dict(opt: Any, to_host: Callable[[Any], np.ndarray]) -> dict[str, Any]:
    """See ``Optimizer.state_dict``."""
    leaves = named_leaves(opt.state)
    groups = []
    for group in opt.param_groups:
        out = {k: _plain(v) for k, v in group.items() if k != "params"}
        out = {k: v for k, v in out.items() if v is not _SKIP}
        out["params"] = [next(i for i, q in enumerate(opt.params) if q is p) for p in group["params"]]
        groups.append(out)
    return {"state": {name: np.array(to_host(leaf)) for name, leaf in leaves.items()},
            "param_groups": groups, "steps": int(opt.steps)}


def _like(leaf: Any, value: np.ndarray) -> Any:
    """``value`` as a jax array of ``leaf``'s dtype, on ``leaf``'s device when it has one."""
    array = np.asarray(value).astype(jnp.result_type(leaf))
    devices = leaf.devices() if isinstance(leaf, jax.Array) else set()
    return jax.device_put(array, next(iter(devices))) if len(devices) == 1 else jnp.asarray(array)


def _few(names: list[str]) -> str:
    return str(names) if len(names) <= 6 else f"{names[:6]}... ({len(names)} in all)"


def load_state_dict(opt: Any, saved: Mapping[str, Any]) -> None:
    """See ``Optimizer.load_state_dict``."""
    where = f"{type(opt).__name__}.load_state_dict"
    if not isinstance(saved, Mapping) or not {"state", "param_groups", "steps"} <= set(saved):
        got = sorted(saved) if isinstance(saved, Mapping) else type(saved).__name__
        raise ArgumentError(f"{where}: got {got}; expected a dict with 'state', 'param_groups' and 'steps' "
                            f"(what Optimizer.state_dict() returns)")
    leaves, treedef = jax.tree_util.tree_flatten(opt.state)
    names = list(named_leaves(opt.state))
    arrays = saved["state"]
    missing, unexpected = [n for n in names if n not in arrays], [n for n in arrays if n not in names]
    if missing or unexpected:
        raise KeyError(f"{where}: missing {_few(missing)}, unexpected {_few(unexpected)}; expected the {len(names)} "
                       f"state arrays of the same optimizer over the same parameters")
    new = []
    for name, leaf in zip(names, leaves):
        value = np.asarray(arrays[name])
        if value.shape != tuple(np.shape(leaf)):
            raise ShapeError(f"{where}: {name} has shape {value.shape}; expected {tuple(np.shape(leaf))}")
        new.append(_like(leaf, value))
    groups = list(saved["param_groups"])
    if len(groups) != len(opt.param_groups):
        raise ArgumentError(f"{where}: got {len(groups)} parameter groups; expected {len(opt.param_groups)}")
    for i, (group, mine) in enumerate(zip(groups, opt.param_groups)):
        positions = [next(j for j, q in enumerate(opt.params) if q is p) for p in mine["params"]]
        if [int(j) for j in group.get("params", [])] != positions:
            raise ArgumentError(f"{where}: parameter group {i} holds parameters {list(group.get('params', []))}; "
                                f"expected {positions} (the same parameters, in the same order)")
        unknown = sorted(set(group) - set(mine))
        if unknown:
            raise ArgumentError(f"{where}: parameter group {i} has options {unknown}; expected options among "
                                f"{sorted(k for k in mine if k != 'params')}")
    for group, mine in zip(groups, opt.param_groups):
        for k, v in group.items():
            if k != "params":
                mine[k] = tuple(v) if isinstance(mine[k], tuple) and isinstance(v, list) else v
    opt.state = jax.tree_util.tree_unflatten(treedef, new)
    opt.steps = int(saved["steps"])
