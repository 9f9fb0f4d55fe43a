"""Checkpoints: ``jtape.save(obj_dict, path)`` and ``jtape.load(path)``, as safetensors.

    jtape.save({"model": model, "optimizer": opt, "step": 10, "rng": key, "config": {...}}, "run.safetensors")
    ck = jtape.load("run.safetensors")                  # plain data: state dicts, arrays, JSON values
    model.load_state_dict(ck["model"]); opt.load_state_dict(ck["optimizer"])
    ck = jtape.load("run.safetensors", into={"model": model, "optimizer": opt})   # the same, in one call

What goes in the file. Each value of ``obj_dict`` is turned into plain data — a Module into its
``state_dict()`` (parameters and buffers), an Optimizer into its ``state_dict()`` (optax state,
step count, parameter groups), a Tensor or array into a NumPy array, a ``jax.random`` key into
its key data — and then split in two:

* every **array** becomes one tensor of the safetensors file, named by its path:
  ``model/0.weight``, ``optimizer/state/0/inner_state/0/mu/3``, ``rng``. So any safetensors
  reader (``safetensors.numpy.load_file``, ``safetensors.torch.load_file``, flax tools) reads the
  weights; bfloat16 is stored as safetensors' ``BF16`` (NumPy's bfloat16 from ml_dtypes);
* everything else (numbers, strings, lists, dicts, the tree's shape) is **JSON** in the file's
  header metadata under ``"jtape"``, with each array replaced by ``{"__jtape_tensor__": name}``.

``load`` puts the two back together: it returns the same nested dicts, with NumPy arrays where
arrays were (a ``jax.random`` typed key comes back as a key). A safetensors file written by any
other tool loads as ``{name: array}``. The file is written to a temporary name and renamed, so a
crash never leaves half a checkpoint. For multi-process runs see ``jtape.distributed.checkpoint``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import safetensors
import safetensors.numpy

from .tensor.errors import ArgumentError
from .tensor.tensor import Tensor

_TENSOR, _KEY = "__jtape_tensor__", "__jtape_key__"
_FORMAT = 1


def save(obj: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write ``obj`` (a dict: Modules, Optimizers, Tensors, arrays, ``jax.random`` keys and JSON
    values, nested in dicts and lists) to ``path`` as one safetensors file (see the module docstring)."""
    if not isinstance(obj, Mapping):
        raise ArgumentError(f"jtape.save: got a {type(obj).__name__}; expected a dict such as "
                            f"{{'model': model, 'optimizer': opt, 'step': 10}}")
    tensors: dict[str, np.ndarray] = {}
    tree = _encode(obj, "", tensors)
    metadata = {"format": "np", "jtape": json.dumps({"version": _FORMAT, "tree": tree}, allow_nan=True)}
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        safetensors.numpy.save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load(path: str | os.PathLike, into: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read a checkpoint written by ``save``: the saved dict with state dicts, NumPy arrays and JSON
    values. ``into``: objects to restore at once — ``{"model": model, "optimizer": opt}`` calls
    ``model.load_state_dict(ck["model"])`` and ``opt.load_state_dict(ck["optimizer"])`` (their
    checks name any missing, unexpected or misshapen entry)."""
    arrays = safetensors.numpy.load_file(str(path))
    with safetensors.safe_open(str(path), framework="np") as f:
        metadata = f.metadata() or {}
    if "jtape" not in metadata:       # a safetensors file from another tool: its tensors by name
        out: dict[str, Any] = dict(arrays)
    else:
        header = json.loads(metadata["jtape"])
        if header.get("version") != _FORMAT:
            raise ArgumentError(f"jtape.load: {path} has checkpoint format {header.get('version')!r}; "
                                f"expected {_FORMAT}")
        out = _decode(header["tree"], arrays, str(path))
    for name, target in (into or {}).items():
        if name not in out:
            raise KeyError(f"jtape.load: into= names {name!r}; the checkpoint holds {sorted(out)}")
        if not hasattr(target, "load_state_dict"):
            raise ArgumentError(f"jtape.load: into[{name!r}] is a {type(target).__name__}; expected an object with "
                                f"load_state_dict (a Module or an Optimizer)")
        target.load_state_dict(out[name])
    return out


# -- the process default random key (jtape.random) -------------------------------------------------
def default_key() -> Any:
    """The process default generator's key, to save in a checkpoint: ``jtape.random.get_key()``.

    Read through ``getattr`` so this module does not depend on how ``jtape.random`` is laid out;
    a jtape without ``jtape.random.get_key`` raises."""
    return _random_function("get_key")()


def set_default_key(key: Any) -> None:
    """Make ``key`` (e.g. ``jtape.load(path)["rng"]``) the process default generator's key:
    ``jtape.random.set_key(key)``, so the draws after a resume are those of an unbroken run."""
    _random_function("set_key")(jnp.asarray(key) if isinstance(key, np.ndarray) else key)


def _random_function(name: str) -> Any:
    import jtape  # the package: jtape.random is one of its modules

    function = getattr(getattr(jtape, "random", None), name, None)
    if function is None:
        raise ArgumentError(f"jtape.checkpoint: got no jtape.random.{name}; expected a jtape with jtape.random "
                            f"(pass a key explicitly instead)")
    return function


# -- plain data <-> (tensors, JSON) ---------------------------------------------------------------------
def _encode(value: Any, name: str, tensors: dict[str, np.ndarray]) -> Any:
    """``value`` as JSON, its arrays moved into ``tensors`` under their path ``name``."""
    if hasattr(value, "state_dict") and (hasattr(value, "named_parameters") or hasattr(value, "param_groups")):
        return _encode(value.state_dict(), name, tensors)        # a Module or an Optimizer
    if isinstance(value, Tensor):
        return _encode(value.numpy(), name, tensors)
    if isinstance(value, (jax.Array, np.ndarray, np.generic)):
        if isinstance(value, jax.Array) and jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
            _put(np.asarray(jax.random.key_data(value)), name, tensors)
            return {_KEY: name, "impl": str(jax.random.key_impl(value))}
        _put(np.asarray(value), name, tensors)
        return {_TENSOR: name}
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or k.startswith("__jtape"):
                raise ArgumentError(f"jtape.save: {name or 'the dict'} has the key {k!r}; expected string keys "
                                    f"(not starting with '__jtape')")
            out[k] = _encode(v, f"{name}/{k}" if name else k, tensors)
        return out
    if isinstance(value, (list, tuple)):
        return [_encode(v, f"{name}/{i}", tensors) for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ArgumentError(f"jtape.save: {name!r} is a {type(value).__name__}; expected a Module, Optimizer, Tensor, "
                        f"array, jax.random key, or a JSON value (number, string, list, dict)")


def _put(array: np.ndarray, name: str, tensors: dict[str, np.ndarray]) -> None:
    if name in tensors:
        raise ArgumentError(f"jtape.save: two arrays are both named {name!r}; expected distinct paths "
                            f"(a key containing '/' collides with a nested dict)")
    if array.dtype.kind in "OUS" or array.dtype.fields is not None:   # (bfloat16 is kind "V" too: allowed)
        raise ArgumentError(f"jtape.save: {name!r} is an array of dtype {array.dtype}; expected numbers or bools")
    tensors[name] = array if array.flags.c_contiguous else np.ascontiguousarray(array)  # (0-d stays 0-d)


def _decode(tree: Any, arrays: Mapping[str, np.ndarray], path: str) -> Any:
    if isinstance(tree, dict):
        if _TENSOR in tree or _KEY in tree:
            name = tree.get(_TENSOR, tree.get(_KEY))
            if name not in arrays:
                raise KeyError(f"jtape.load: {path} has no tensor {name!r}; expected every tensor its metadata "
                               f"names (was the file changed by another tool?)")
            if _KEY in tree:
                return jax.random.wrap_key_data(jnp.asarray(arrays[name]), impl=tree["impl"])
            return arrays[name]
        return {k: _decode(v, arrays, path) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_decode(v, arrays, path) for v in tree]
    return tree
