"""Where a compiled step's state and arguments live on a ``jax.sharding.Mesh``.

``jtape.jit(step, state=[...], mesh=mesh)`` builds a ``Placement``. Before each call it puts

* every **batch argument** split along its leading dim over the mesh axis ``data_axis``. In a
  multi-process run (a mesh spanning several processes) each process passes *its own* part of
  the batch — a fully addressable array — and the global batch is assembled with
  ``jax.make_array_from_process_local_data``; an argument that already is a global array is used
  as it is. In one process the local batch *is* the global batch, so the same script runs both ways;
* every **parameter**, its gradient and its **optimizer state** either replicated (data parallel),
  or — with ``shard_params`` — split over a mesh axis (ZeRO-3 / FSDP): each device keeps
  ``1/N`` of every parameter large enough to split, and the matching slices of the optimizer's
  moments;

Inside the traced step, sharded parameters are first constrained to be whole (``gather``: ZeRO-3
gathers before use), and at the end the *new* state is pinned to the state's shardings
(``constrain``, both with ``jax.lax.with_sharding_constraint``), so it comes back placed as it
went in. That is all: the collectives — the all-reduce that averages gradients, the all-gathers
that assemble sharded parameters, the reduce-scatters (on CPU: all-reduce + dynamic-slice) that
hand each device its slice of the gradient — are inserted by XLA's SPMD partitioner.

``shard_params``: ``False`` (replicate), ``True`` (shard over ``data_axis``), a mesh axis name,
or a callable ``rule(param) -> PartitionSpec | None`` (None: replicate). The built-in rule
splits a parameter along its largest dimension that the axis size divides; one that no dim
divides (a bias of 10 on 4 devices) stays replicated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from ..tensor.errors import ArgumentError, ShapeError
from ..tensor.raw import RawTensor
from ..tensor.shape import Shape
from .runtime import peer_failure

ShardRule = bool | str | Callable[[Any], Any]


def _processes(mesh: Any) -> set:
    return {d.process_index for d in mesh.devices.flat}


def default_spec(shape: Sequence[int], axis: str, size: int) -> PartitionSpec:
    """Split ``shape`` over ``axis`` (``size`` devices) along its largest dim that ``size``
    divides; replicate (``PartitionSpec()``) when none does or ``size`` is 1."""
    dims = [d for d, s in enumerate(shape) if s >= size and s % size == 0]
    if size == 1 or not dims:
        return PartitionSpec()
    d = max(dims, key=lambda i: (shape[i], -i))
    return PartitionSpec(*([None] * d), axis)


def _reshard(x: Any, sharding: NamedSharding) -> Any:
    """``x`` on ``sharding``. A process's own array (the same in every process: state, or an
    argument that is not split) is copied device to device onto this process's part of a
    multi-process sharding. A global array already placed equivalently is kept; one placed
    otherwise is moved by a compiled identity, so XLA does the collectives."""
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
        if sharding.is_fully_addressable:
            return jax.device_put(x, sharding)
        x = x if isinstance(x, jax.Array) else np.asarray(x)
        shape = tuple(np.shape(x))
        pieces = [jax.device_put(x[index], d) for d, index in sharding.addressable_devices_indices_map(shape).items()]
        return jax.make_array_from_single_device_arrays(shape, sharding, pieces)
    if x.sharding.is_equivalent_to(sharding, x.ndim):
        return x
    return jax.jit(lambda a: a, out_shardings=sharding)(x)


def put(tree: Any, shardings: Any) -> Any:
    """``tree`` placed by ``shardings`` (a pytree prefix of it; None leaves nothing to place)."""
    def place(sharding: Any, sub: Any) -> Any:
        return sub if sharding is None else jax.tree_util.tree_map(lambda x: _reshard(x, sharding), sub)
    return jax.tree_util.tree_map(place, shardings, tree, is_leaf=lambda s: s is None or isinstance(s, NamedSharding))


class Placement:
    """The shardings of one compiled step on ``mesh``; see the module docstring."""

    def __init__(self, mesh: Any, data_axis: str, batch_argnums: Sequence[int] | None, shard_params: ShardRule,
                 binding: Any):
        if data_axis not in mesh.axis_names:
            raise ValueError(f"jtape.jit: got data_axis={data_axis!r}; expected one of the mesh's axes "
                             f"{mesh.axis_names}")
        self.mesh, self.data_axis, self.batch_argnums, self.binding = mesh, data_axis, batch_argnums, binding
        self.replicated = NamedSharding(mesh, PartitionSpec())
        self.split = NamedSharding(mesh, PartitionSpec(data_axis))
        self.n = mesh.shape[data_axis]
        self.multiprocess = len(_processes(mesh)) > 1
        where = mesh.axis_names.index(data_axis)
        mine = np.vectorize(lambda d: d.process_index == jax.process_index())(mesh.devices)
        self.local_n = len(set(np.nonzero(mine)[where].tolist()))  # data-axis positions this process holds
        if self.multiprocess and self.local_n == 0:
            raise ValueError(f"jtape.jit: the mesh spans processes {sorted(_processes(mesh))} but none of its devices "
                             f"belongs to this process ({jax.process_index()}); expected a mesh over every "
                             f"process's devices (jtape.distributed.global_mesh())")
        self.param_shardings = [NamedSharding(mesh, self._spec(p, shard_params)) for p in binding.params]

    # -- which spec each parameter gets ----------------------------------------------------------
    def _spec(self, p: Any, rule: ShardRule) -> PartitionSpec:
        shape = tuple(p.shape)
        if rule is False or rule is None:
            return PartitionSpec()
        if rule is True or isinstance(rule, str):
            axis = self.data_axis if rule is True else rule
            if axis not in self.mesh.axis_names:
                raise ValueError(f"jtape.jit: got shard_params={rule!r}; expected True, False, a callable or one of "
                                 f"the mesh's axes {self.mesh.axis_names}")
            return default_spec(shape, axis, self.mesh.shape[axis])
        if not callable(rule):
            raise ArgumentError(f"jtape.jit: got shard_params of type {type(rule).__name__}; expected a bool, a "
                                f"mesh axis name or a callable param -> PartitionSpec")
        spec = rule(p)
        if spec is None:
            return PartitionSpec()
        if not isinstance(spec, PartitionSpec) or len(spec) > len(shape):
            raise ValueError(f"jtape.jit: the shard_params rule gave {spec!r} for a parameter of shape {shape}; "
                             f"expected None or a PartitionSpec of at most {len(shape)} entries")
        for dim, axes in enumerate(spec):
            names = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
            size = int(np.prod([self.mesh.shape[a] for a in names])) if names else 1
            if shape[dim] % size:
                raise ShapeError(f"jtape.jit: the shard_params rule splits dim {dim} (size {shape[dim]}) of a "
                                 f"parameter of shape {shape} over {size} devices ({spec!r}); expected a size that "
                                 f"{size} divides")
        return spec

    # -- shardings of the state pytrees ------------------------------------------------------------
    def _state_shardings(self, states: list) -> list:
        """Each optimizer's state: a leaf under ``...[k]`` shaped like that optimizer's k-th
        parameter gets the parameter's sharding (Adam's mu and nu); others are replicated."""
        index = {id(p): i for i, p in enumerate(self.binding.params)}
        out = []
        for opt, state in zip(self.binding.optimizers, states):
            def pick(path: tuple, leaf: Any, params: list = opt.params) -> NamedSharding:
                keys = [k.idx for k in path if isinstance(k, jax.tree_util.SequenceKey)]
                k = keys[-1] if keys else len(params)
                if k < len(params) and tuple(getattr(leaf, "shape", ())) == tuple(params[k].shape):
                    return self.param_shardings[index[id(params[k])]]
                return self.replicated
            out.append(jax.tree_util.tree_map_with_path(pick, state))
        return out

    def shardings(self, arrays: tuple, grads: list) -> tuple:
        """Shardings matching ``(binding.arrays(), binding.grads())``; what follows parameters and
        optimizer states (buffers, random keys) is replicated."""
        states = arrays[1]
        rest = tuple(self.replicated for _ in arrays[2:])
        return ((list(self.param_shardings), self._state_shardings(states)) + rest,
                [None if g is None else s for g, s in zip(grads, self.param_shardings)])

    # -- before the call ---------------------------------------------------------------------------
    def _batch(self, tree: Any, where: str) -> Any:
        def put(leaf: Any) -> Any:
            is_global = isinstance(leaf, jax.Array) and not leaf.is_fully_addressable
            if getattr(leaf, "ndim", 0) == 0:
                return _reshard(leaf, self.replicated)
            if self.multiprocess and not is_global:
                if leaf.shape[0] % self.local_n:
                    raise ValueError(f"jtape.jit: {where} has shape {tuple(leaf.shape)} in process "
                                     f"{jax.process_index()}, whose leading (batch) dim {leaf.shape[0]} does not split "
                                     f"evenly over this process's {self.local_n} devices of mesh axis "
                                     f"{self.data_axis!r}; expected a multiple of {self.local_n} (each process "
                                     f"passes its own part of the global batch)")
                return jax.make_array_from_process_local_data(self.split, leaf)
            if leaf.shape[0] % self.n:
                raise ValueError(f"jtape.jit: {where} has shape {tuple(leaf.shape)}, whose leading (batch) dim "
                                 f"{leaf.shape[0]} does not split evenly over the {self.n} devices of mesh axis "
                                 f"{self.data_axis!r}; expected a multiple of {self.n}")
            return _reshard(leaf, self.split)
        def put_raw(leaf: Any) -> Any:
            if not isinstance(leaf, RawTensor):
                return put(leaf)
            data = put(leaf.data)  # in a multi-process run the global batch is larger than this process's part
            raw = RawTensor(data, Shape(tuple(data.shape)), leaf.dtype, leaf.device)
            raw.requires_grad = leaf.requires_grad
            return raw
        return jax.tree_util.tree_map(put_raw, tree, is_leaf=lambda x: isinstance(x, RawTensor))

    def __call__(self, arrays: Any, grads: Any, args: tuple, kwargs: dict) -> tuple:
        """Place ``(state arrays, grads, args, kwargs)`` on the mesh for one call."""
        state_sh, grads_sh = self.shardings(arrays, grads)
        args = tuple(self._batch(a, f"argument {i}") if self.batch_argnums is None or i in self.batch_argnums
                     else put(a, self.replicated) for i, a in enumerate(args))
        kwargs = {k: self._batch(v, f"argument {k!r}") if self.batch_argnums is None
                  else put(v, self.replicated) for k, v in kwargs.items()}
        return put(arrays, state_sh), put(grads, grads_sh), args, kwargs

    # -- inside the trace, and around the call ---------------------------------------------------------
    def gather(self, arrays: tuple) -> tuple:
        """Inside the trace, before the step runs: every sharded parameter all-gathered (replicated),
        as ZeRO-3 / FSDP does, so the forward and backward passes run data parallel on whole
        parameters; the optimizer state stays sharded and ``constrain`` splits the update again."""
        raws, rest = arrays[0], tuple(arrays[1:])
        if all(s.spec == PartitionSpec() for s in self.param_shardings):
            return arrays
        return ([jax.lax.with_sharding_constraint(r, self.replicated) for r in raws],) + rest

    def constrain(self, new: tuple) -> tuple:
        """Pin the step's new ``(arrays, grads)`` to the state's shardings (inside the trace)."""
        arrays, grads = new
        state_sh, grads_sh = self.shardings(arrays, grads)
        return (jax.lax.with_sharding_constraint(arrays, state_sh),
                jax.lax.with_sharding_constraint(grads, grads_sh))

    def run(self, compiled: Callable, inputs: tuple) -> Any:
        """Place ``inputs`` and call ``compiled``; in a multi-process run a collective that fails
        because a peer died or stalled raises ``jtape.distributed.PeerFailure``."""
        placed = self(*inputs)
        if not self.multiprocess:
            return compiled(*placed)
        try:
            return compiled(*placed)
        except Exception as e:
            failure = peer_failure(e)
            if failure is None:
                raise
            raise failure from e
