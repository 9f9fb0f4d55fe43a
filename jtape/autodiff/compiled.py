"""``jtape.jit``: trace a whole training step — forward on the AutodiffBackend, the tape's
backward with the hand-derived rules, the optimizer update — into one XLA program.

Nothing about the tape changes under tracing: RawTensors hold tracers instead of arrays, ops
record Operations as usual, and ``backward`` applies the same rules, so XLA sees exactly the
arithmetic the rules spell out and compiles it (fusing, and dropping gradients nobody reads).

State. A step reads and updates long-lived objects — a model's Parameters, an optimizer's optax
state. ``jtape.jit(step, state=[model, opt])`` passes their arrays *into* the compiled program
as pytrees and takes the new ones *out*, so nothing is baked in as a constant: while tracing,
each Parameter temporarily holds a tracer, each optimizer a traced state, and each
AutodiffBackend a fresh tape that belongs to that trace alone. All are restored when tracing
ends — even on an error — so no tracer ever lands on a user's tape or model. After each call
the Parameters get the new arrays (and the ``.grad`` the step left), the optimizers their new
state. Buffers and random keys travel the same way (``jtape.autodiff.binding``); the modules'
training flags are a static part of the program (one compiled program per mode). Arguments and
results may be any pytrees of Tensors, RawTensors and arrays; jax re-traces only for new shapes
and dtypes. A call hands the program plain lists of arrays: what rebuilds the Tensors around them
— inside the trace, and around the results after it — is kept per program (``_Plan``). With
``mesh=`` the same step runs data-parallel (or, with ``shard_params``, with sharded parameters)
through XLA's SPMD partitioner (see ``jit``).
"""

from __future__ import annotations

import functools
from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Iterator, Sequence

import jax

from ..distributed.sharding import Placement, ShardRule
from ..tensor.errors import BackendError
from ..tensor.operators import STEP_INPUTS
from ..tensor.raw import RawTensor
from ..tensor.raw import _flatten as _flatten_raw
from ..tensor.tensor import Tensor
from ..tensor.tensor import _flatten as _flatten_tensor, _unflatten as _unflatten_tensor
from .backend import index_checker, options_backend, plain
from .binding import Binding
from .jitted import options_for
from .steady import Steady
from .tape import GradientTape


def jit(fn: Callable | None = None, *, state: Sequence[Any] = (), mesh: Any = None, data_axis: str = "data",
        batch_argnums: Sequence[int] | None = None, shard_params: ShardRule = False) -> Callable:
    """Compile ``fn`` (a whole training step written with jtape) into one XLA program.

        @jtape.jit(state=[model, opt])
        def train_step(x, y):
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss

    ``state`` lists the Modules, Optimizers and Parameters the step reads and updates. Runs on
    JaxBackend (inside an AutodiffBackend); NumPy arrays cannot be traced. Carried through the
    program besides parameters and optimizer states (``jtape.autodiff.binding``): the modules'
    buffers, and the random keys of ``jtape.random``'s process default generator and of the
    modules' own generators — so Dropout draws a new mask each step, the one an eager step would.
    The modules' ``training`` flags are static: ``model.eval()`` after compiling compiles (once)
    the eval-mode program, and ``model.train()`` goes back to the train-mode one.

    Data parallel: with ``mesh`` (a ``jax.sharding.Mesh``), the step runs SPMD over its devices —
    parameters, gradients and optimizer state replicated, every array argument (or those in
    ``batch_argnums``) split along its leading dim over the mesh axis ``data_axis``. Nothing in
    the step changes: XLA's SPMD partitioner sees a mean over the whole batch and inserts the
    all-reduce that averages the gradients. The parameters come back replicated on the mesh.
    ``shard_params`` (True, a mesh axis, or a rule param -> PartitionSpec) shards parameters and
    optimizer state instead (ZeRO-3 / FSDP). Placement lives in ``jtape.distributed.sharding``; in
    a multi-process run each process passes its own part of the batch.
    """
    if fn is None:
        return functools.partial(jit, state=state, mesh=mesh, data_axis=data_axis, batch_argnums=batch_argnums,
                                 shard_params=shard_params)
    if mesh is None and shard_params is not False:
        raise ValueError("jtape.jit: got shard_params without a mesh; expected mesh= to shard over")
    binding = Binding(state)
    place = None if mesh is None else Placement(mesh, data_axis, batch_argnums, shard_params, binding)
    backends = {id(t.backend): t.backend for t in binding.params + binding.buffers}
    # Per program — its _Plan, or with a mesh its mode and argument signature (``_examine``): what its
    # trace learnt (step deltas, index checks) and the checks of the step's own inputs. Keyed like the
    # programs: a retrace for new shapes has its own checks, with its own bounds.
    traced: dict[tuple, dict[str, Any]] = {}
    input_checks: dict[tuple, list] = {}

    def backends_of(args: tuple, kwargs: dict) -> dict:
        found = dict(backends)
        for leaf in jax.tree_util.tree_leaves((args, kwargs), is_leaf=lambda x: isinstance(x, Tensor)):
            if isinstance(leaf, Tensor):
                found.setdefault(id(leaf.backend), leaf.backend)
        return found

    def pure(key: tuple, arrays: tuple, grads: list, args: tuple, kwargs: dict):
        step_counts = traced.setdefault(key, {})
        saved = (binding.arrays(), binding.grads())
        found = backends_of(args, kwargs)
        steps_before = [o.steps for o in binding.optimizers]
        inners = {id(plain(b)): plain(b) for b in found.values() if hasattr(plain(b), "traced_checks")}
        checks: list = []
        try:
            with ExitStack() as stack:
                for inner in inners.values():  # index checks come out of the program (verified in run)
                    checks.append(stack.enter_context(inner.traced_checks()))
                for b in found.values():       # each trace records on tapes of its own
                    if hasattr(b, "using_tape"):
                        private = GradientTape(traced=True)
                        if b.tape().is_recording():
                            private.start_recording()
                        stack.enter_context(b.using_tape(private))
                binding.install(arrays if place is None else place.gather(arrays), grads)
                inputs = {id(data): k for k, (data, checker) in enumerate(_input_arrays(args, kwargs)) if checker}
                stack.enter_context(_step_inputs(args, kwargs))
                out = fn(*args, **kwargs)
                new = (binding.arrays(), binding.grads())
                new = new if place is None else place.constrain(new)
        finally:
            binding.install(*saved)
            step_counts["delta"] = [o.steps - s for o, s in zip(binding.optimizers, steps_before)]
            for o, s in zip(binding.optimizers, steps_before):
                o.steps = s
            checks = [c for found_checks in checks for c in found_checks]
            # An index that is an argument of the step is checked on its concrete array before each
            # call (its range read back once per array): no program output, no host sync after it.
            at = [None if place is not None else inputs.get(id(c.index)) for c in checks]
            input_checks[key] = [(c._replace(low=None, high=None, index=None), k)
                                 for c, k in zip(checks, at) if k is not None]
            checks = [c for c, k in zip(checks, at) if k is None]
            step_counts["checks"] = [c._replace(low=None, high=None, index=None) for c in checks]   # no tracer kept
        return out, new, [(c.low, c.high) for c in checks]

    # the modules' training flags are a static argument: one program per mode, never the other's (and
    # the arguments' signature: a program's checks are looked up by the key it was traced for)
    compiled = jax.jit(pure, static_argnums=0)

    def flat(plan: _Plan, state: tuple, grads: list, leaves: list) -> tuple:
        """``pure`` on arrays alone (a call without a mesh): the Tensors and RawTensors of the
        arguments, the parameters, buffers and gradients are made again around the traced arrays
        from ``plan``, and the results stripped down to arrays, what they were noted in ``plan`` —
        so a call passes jax plain lists of arrays, with no pytree callback into Python per tensor."""
        raws, states, buffers, keys = state
        arrays = (_dress_all(plan.params, raws), states, _dress_all(plan.buffers, buffers), keys)
        args, kwargs = jax.tree_util.tree_unflatten(plan.tree, _dress_all(plan.args, leaves))
        out, (new, new_grads), ranges = pure(plan, arrays, _dress_all(plan.grads, grads), args, kwargs)
        out_leaves, plan.out_tree = jax.tree_util.tree_flatten(out, is_leaf=_is_tensor_or_raw)
        out_arrays, plan.out = _strip_all(out_leaves)
        keys_in, (raws, states, buffers, keys) = keys, new
        plan.kept_keys = tuple([k is k_in for k, k_in in zip(keys, keys_in)])    # a step that drew nothing
        raws, plan.new_params = _strip_all(raws)
        buffers, plan.new_buffers = _strip_all(buffers)
        new_grads, plan.new_grads = _strip_all(new_grads)
        return out_arrays, ((raws, states, buffers, keys), new_grads), ranges

    compiled_flat = jax.jit(flat, static_argnums=0)
    plans: dict[tuple, _Plan] = {}

    def jitted_for(plan: _Plan, arrays: tuple) -> Any:
        """The jitted ``flat`` for ``plan``: with the XLA options its backend asks for a program like it
        (traced once to see: JaxBackend on CPU compiles a program that convolves without YNNPACK)."""
        if plan.jitted is None:
            chosen = options_for(plan.inner, compiled_flat, plan, *arrays)
            plan.jitted = compiled_flat if chosen is None else jax.jit(flat, static_argnums=0, compiler_options=chosen)
        return plan.jitted

    def plan_of(mode: tuple, signature: tuple, state: tuple, grads: list) -> tuple:
        """The program for this call, and its state as arrays: ``_Plan`` keyed by the mode, the
        arguments' signature and the state's tensors' pytree data (the parameters', buffers' and
        gradients' shapes, dtypes, devices, requires_grad — what a retrace of the pytrees keyed on)."""
        raws, states, buffers, keys = state
        raws, param_meta = _strip_all(raws)
        buffers, buffer_meta = _strip_all(buffers)
        grads, grad_meta = _strip_all(grads)
        key = (mode, signature, param_meta, buffer_meta, grad_meta)
        last_key, plan = last
        if key != last_key:    # (the same step again: equal, mostly the very same objects — no hashing)
            plan = plans.get(key)
            if plan is None:
                plan = plans[key] = _Plan(signature, param_meta, buffer_meta, grad_meta)
            last[:] = key, plan
        return plan, (raws, states, buffers, keys), grads

    last: list = [None, None]    # the last call's plan, and its key
    installed: list = [None]     # the state arrays the last call installed (all committed: program outputs)

    steady = Steady(binding)     # the last call's state: the next call, if nothing touched it, skips plan_of

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        hit = steady.match(args, kwargs) if place is None else None
        steady.forget()               # (a call that raises leaves no steady state behind)
        if hit is not None:
            key, state, grads, leaf_arrays, given = hit
        else:
            key, state, grads, leaf_arrays, given = prepare(args, kwargs)
        before = input_checks.get(key)     # None: this call traces (its checks are verified after)
        if before:
            _verify_inputs(before, given)
        if place is None:
            if hit is None and not _same(state, installed[0]):
                state = _committed(state)
            out, (arrays, grad_arrays), ranges = jitted_for(key, (state, grads, leaf_arrays))(key, state, grads,
                                                                                             leaf_arrays)
            out = jax.tree_util.tree_unflatten(key.out_tree, _dress_all(key.out, out))
            raws, states, buffers, keys = arrays
            if any(key.kept_keys):     # a key the step did not draw from stays the same object (``Steady``)
                keys = [k_in if kept else k for k_in, k, kept in zip(state[3], keys, key.kept_keys)]
                arrays = (raws, states, buffers, keys)
            installed[0] = arrays      # what binding.arrays() reads after the install below, as arrays
            arrays = (_dress_all(key.new_params, raws), states, _dress_all(key.new_buffers, buffers), keys)
            grads = _dress_all(key.new_grads, grad_arrays)
        else:
            inputs = (binding.arrays(), binding.grads(), args, kwargs)
            out, (arrays, grads), ranges = place.run(functools.partial(compiled, key), inputs)
        step_counts = traced.get(key, {})
        for check, (low, high) in zip(step_counts.get("checks", []), ranges):
            check.verify(int(low), int(high))  # an out-of-range index raises, as in eager mode
        if before is None and input_checks.get(key):            # traced just now
            _verify_inputs(input_checks[key], given)
        binding.install(arrays, grads)
        for o, d in zip(binding.optimizers, step_counts.get("delta", [0] * len(binding.optimizers))):
            o.steps += d
        if hit is not None:
            steady.renew(key, installed[0], grad_arrays)
        elif place is None:
            steady.record(key, binding.mode(), args, kwargs, installed[0], grad_arrays)
        return out

    def prepare(args: tuple, kwargs: dict) -> tuple:
        """The full path of a call: check the state, flush pending eager ops, examine the arguments and
        find the program — ``(key, state arrays, gradient arrays, argument arrays, given)``."""
        for t in binding.params + binding.buffers:
            if not isinstance(t.data, jax.Array):
                kind = "parameter" if any(t is p for p in binding.params) else "buffer"
                raise BackendError(f"jtape.jit: {kind} of shape {tuple(t.shape)} lives on "
                                   f"{t.backend.name()}, whose arrays cannot be traced; expected JaxBackend")
        # The arguments are flattened once (down to Tensors and RawTensors): their backends, then —
        # after the flush — the call's signature and the arrays whose index ranges are checked.
        leaves, tree = jax.tree_util.tree_flatten((args, kwargs), is_leaf=_is_tensor_or_raw)
        found = dict(backends)
        for leaf in leaves:
            if isinstance(leaf, Tensor):
                found.setdefault(id(leaf.backend), leaf.backend)
        for b in found.values():   # eager ops still pending run now, outside the trace
            if hasattr(b, "flush"):                     # (flushed while tracing, they would become tracers)
                b.flush()
        if place is None:
            binding.place_keys()     # a key a mesh step left replicated comes to the parameters' device
        signature, given, leaf_arrays = _examine(leaves, tree)
        if place is None:      # the program's static argument: a _Plan, hashed and compared by identity
            key, state, grads = plan_of(binding.mode(), signature, binding.arrays(), binding.grads())
            if key.inner is None:      # the backend whose compiler options the program takes
                key.inner = options_backend(found.values())
            return key, state, grads, leaf_arrays, given
        return (binding.mode(), signature), None, None, leaf_arrays, given

    def lower(*args: Any, **kwargs: Any) -> Any:
        leaves, tree = jax.tree_util.tree_flatten((args, kwargs), is_leaf=_is_tensor_or_raw)
        signature, _given, leaf_arrays = _examine(leaves, tree)
        if place is None:
            plan, state, grads = plan_of(binding.mode(), signature, binding.arrays(), binding.grads())
            if plan.inner is None:
                plan.inner = options_backend(backends.values())
            return jitted_for(plan, (state, grads, leaf_arrays)).lower(plan, state, grads, leaf_arrays)
        inputs = (binding.arrays(), binding.grads(), args, kwargs)
        return compiled.lower((binding.mode(), signature), *place(*inputs))

    run.lower = lower  # type: ignore[attr-defined]
    return run


@contextmanager
def _step_inputs(args: tuple, kwargs: dict) -> Iterator[None]:
    """While ``fn`` is traced: the RawTensors of its arguments, which in-place ops refuse
    (``TensorOperators._inplace``): the compiled step cannot change the caller's tensors."""
    leaves = jax.tree_util.tree_leaves((args, kwargs), is_leaf=_is_tensor_or_raw)
    ids = frozenset(id(x.raw() if isinstance(x, Tensor) else x) for x in leaves if _is_tensor_or_raw(x))
    before, STEP_INPUTS.ids = STEP_INPUTS.ids, STEP_INPUTS.ids | ids
    try:
        yield
    finally:
        STEP_INPUTS.ids = before


def _is_tensor_or_raw(x: Any) -> bool:
    return isinstance(x, (Tensor, RawTensor))


def _examine(leaves: list, tree: Any) -> tuple:
    """From the arguments flattened down to Tensors and RawTensors: the call's signature — what jax
    traces it for: the tree structure and, per leaf, a Tensor's and a RawTensor's pytree data (class
    and backend; shape, dtype, device, requires_grad: ``_strip``'s meta) and each array's shape and
    dtype, as fine as flattening the Tensors too — then ``_input_arrays``'s (array, index checker)
    list, and every leaf's array (a Tensor's data, anything else as it is)."""
    sig, given, arrays = [], [], []
    for leaf in leaves:
        data, meta = _strip(leaf)
        arrays.append(data)
        sig.append((meta, getattr(data, "shape", None), getattr(data, "dtype", type(data))))
        if meta is not None:
            given.append((data, index_checker(leaf)))
    return (tree, tuple(sig)), given, arrays


def _strip(x: Any) -> tuple[Any, Any]:
    """A Tensor or RawTensor as (its array, its meta: the pytree data that ``_dress`` makes it again
    from — the Tensor's and the RawTensor's, as they flatten for jax); anything else (an array,
    None) as (itself, None)."""
    if isinstance(x, Tensor):
        (raw,), head = _flatten_tensor(x)
        (data,), aux = _flatten_raw(raw)
        return data, (head, aux)
    if isinstance(x, RawTensor):
        (data,), aux = _flatten_raw(x)
        return data, (None, aux)
    return x, None


def _dress(meta: Any, data: Any) -> Any:
    """What ``_strip`` took apart, made again around ``data`` (an array, or a tracer in a trace)."""
    if meta is None:
        return data
    head, (shape, dtype, device, requires_grad) = meta     # (raw._unflatten, written out: every call makes these)
    raw = RawTensor(data, shape, dtype, device)
    raw.requires_grad = requires_grad
    return raw if head is None else _unflatten_tensor(head, (raw,))


def _strip_all(items: Any) -> tuple[list, tuple]:
    pairs = [_strip(x) for x in items]
    return [data for data, _ in pairs], tuple([meta for _, meta in pairs])


def _dress_all(metas: tuple, arrays: list) -> list:
    return [data if meta is None else _dress(meta, data) for meta, data in zip(metas, arrays)]


class _Plan:
    """One program of a ``jtape.jit`` step without a mesh — per mode, argument signature and the
    state's pytree data (``plan_of``) — and jax.jit's static argument for it: hashed and compared by
    identity, so a call hashes no structure twice. It holds what makes the arguments and the state
    again around the program's arrays, and what its trace noted to make the results again."""

    __slots__ = ("tree", "args", "params", "buffers", "grads", "out_tree", "out", "new_params", "new_buffers",
                 "new_grads", "kept_keys", "jitted", "inner", "__weakref__")

    def __init__(self, signature: tuple, params: tuple, buffers: tuple, grads: tuple):
        self.tree, self.args = signature[0], tuple([meta for meta, _, _ in signature[1]])
        self.params, self.buffers, self.grads = params, buffers, grads
        self.out_tree = self.out = self.new_params = self.new_buffers = self.new_grads = None
        self.kept_keys: tuple = ()     # per generator: the step returned its key unchanged (drew nothing)
        self.jitted: Any = None        # ``flat`` jitted with this program's compiler options (``jitted_for``)
        self.inner: Any = None         # the backend that picks them


def _same(state: tuple, installed: tuple | None) -> bool:
    """Is ``state`` (``Binding.arrays()``) what the last call installed, object for object?"""
    if installed is None:
        return False
    for now, then in zip(state, installed):
        if len(now) != len(then):
            return False
        for a, b in zip(now, then):
            if a is not b:
                return False
    return True


def _verify_inputs(checks: list, given: list) -> None:
    """Each (check, k): the k-th argument array's range, read by its backend (once per array), in bounds."""
    for check, k in checks:
        array, backend = given[k]
        check.verify(*backend.index_range(array))


def _input_arrays(args: tuple, kwargs: dict) -> list:
    """(array, the backend that can check its index range, or None) for each Tensor and RawTensor
    in the step's arguments, in pytree order (inside the trace, the arrays are tracers)."""
    leaves, tree = jax.tree_util.tree_flatten((args, kwargs), is_leaf=_is_tensor_or_raw)
    return _examine(leaves, tree)[1]


def _committed(tree: Any) -> Any:
    """The state's arrays committed to their device. A fresh optimizer state (optax's init) is
    uncommitted, while every array a call returns is committed: without this, jax.jit would see a
    new input placement on the second call and compile the step a second time."""
    def uncommitted(a: Any) -> bool:
        return isinstance(a, jax.Array) and not a.committed and not isinstance(a, jax.core.Tracer)

    def commit(a: Any) -> Any:
        return jax.device_put(a, next(iter(a.devices()))) if uncommitted(a) else a
    # after the first call every array came out of the program: only look (an attribute per array),
    # then change nothing
    if all([getattr(a, "committed", True) for a in jax.tree_util.tree_leaves(tree)]):
        return tree
    return jax.tree_util.tree_map(commit, tree)
