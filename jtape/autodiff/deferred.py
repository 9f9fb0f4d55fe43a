"""Deferred eager: record now, run later — a whole step as one compiled program, cached.

Run op by op, an eager training step is many small XLA programs: every op and every rule is a
dispatch, and the matmuls run one at a time. In deferred mode (the default for a backend jax can
trace, ``autodiff.new(JaxBackend())``) an op on the AutodiffBackend is *checked* at once — a bad
shape still raises on the line that caused it — and recorded on the tape as usual, but its kernel
does not run: its result holds a ``Pending`` value. The pending ops run at a **flush**:

* ``Tensor.backward()`` — the pending forward ops *and the backward walk*, with the same rules on
  the same tape, run as one program; it returns each leaf's gradient and the values still in use;
* any read of a value (``.numpy()``, ``.item()``, ``print``, ``float(t)``, ``np.asarray``, a
  Python ``if`` on a tensor) and every other walk — the pending forward ops as one program.

From the second time a step is seen, ``Tensor.backward()`` goes one step further: it hands each
leaf a *pending* gradient and waits. If ``optimizer.step()`` comes next, its update joins the
program — forward, walk and update run as one, compiled as one (``Deferred.update``) — and
anything else (reading a ``.grad``, recording the next op) runs the program without it.

A program is cached by the step's *structure*: the ops and their static arguments, which tensor
feeds which, the shapes and dtypes, and which gradients are asked for. The first time a structure
is seen it runs op by op (no compile for code that runs once); from the second time it is compiled
once and reused. Value checks (index ranges) come back as outputs of the program and raise after
it ran. Tracing, hooks, anomaly mode, source capture and ``create_graph`` stay op by op, and
``autodiff.new(JaxBackend(), defer=False)`` turns deferral off (see the tutorial's "what runs when").
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections import OrderedDict
from contextlib import nullcontext
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

from ..tensor.raw import Pending, RawTensor
from ..tensor.registry import REGISTRY, OpDef
from .tape import GradientTape

_new_pending = _new_node = tuple.__new__
_ndarray = np.ndarray
MAX_PENDING = 20_000      # flush anyway past this many pending ops (memory stays bounded)
MAX_PROGRAMS = 32         # compiled programs kept per backend (least recently used dropped)
MAX_SEEN = 1024           # structures remembered (a changing shape every step cannot grow this)
MAX_PROGRAM_OPS = 4000    # larger programs run op by op: XLA's compile time grows faster than their run time


class Node(NamedTuple):
    """One pending op: everything needed to run it (a registered op with normalised statics). The
    result is held weakly: the result holds its Pending value, which holds this program, so a strong
    reference here would make a cycle — and a result nobody holds any more need not be computed."""

    op: OpDef
    inputs: list            # RawTensors, a tuple for a sequence parameter
    statics: dict
    out: Any                # weakref to the result RawTensor
    shape: Any
    dtype: Any
    checked: bool           # its index values were checked when it was recorded (none was pending)


class Deferred:
    """The pending ops of one AutodiffBackend, and the programs its steps compiled to."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.device = inner.device()
        self.nodes: list[Node] = []
        self.lock = threading.RLock()
        self._local = threading.local()     # per thread: did the op being recorded leave an index unchecked?
        self.programs: OrderedDict = OrderedDict()
        self.seen: OrderedDict = OrderedDict()
        self.compiles = 0          # how many programs were compiled (tests read it: the cache is bounded)
        self.prepared: Prepared | None = None    # a backward's program, waiting for an update to join it
        # Pending values hold the program weakly: the program holds its ops' inputs, which hold
        # their Pending values, so a strong reference back would make a cycle only gc could free.
        self.ref = weakref.ref(self)

    def __del__(self) -> None:
        """The backend is being dropped: run what is still pending, so a tensor someone still holds
        (a RawTensor kept without its Tensor) keeps its value. Usually nothing is pending."""
        try:
            if self.nodes or self.prepared is not None:
                self.flush()
        except Exception:     # noqa: BLE001 — interpreter shutdown: nothing can use the values any more
            pass

    def defer(self, op: OpDef, inputs: list, statics: dict, shape: Any, dtype: Any) -> RawTensor | None:
        """Record a checked op to run later; its result holds a ``Pending`` value. None: the op runs
        now — its inputs are jax tracers (a jax transformation is tracing jtape code), or it makes
        integers or bools from values that exist (an index reshaped, a mask), which stay concrete so
        that the ops using them check their values at once."""
        device, pending = self.device, False
        for x in inputs:
            for t in (x if x.__class__ is tuple else (x,)):
                data = t.data
                if data.__class__ is Pending:
                    if data[0] is not self.ref:
                        t.value()                    # pending on another backend: run that first
                    else:
                        pending = True
                elif isinstance(data, Tracer):
                    return None
                elif t.device is not device or data.__class__ is _ndarray:
                    self.inner.accepts(op.name, (t,))     # another backend's tensor: its BackendError
        if not (pending or dtype.floating):
            return None          # integer/bool results of known values (indices, masks) run now: checked now
        checked = True
        if op.value_check is not None:
            self._local.unchecked = False
            op.value_check(self, inputs, statics, op.name)     # index values known now are checked now
            checked = not self._local.unchecked                # a pending index: the program checks it
        out = RawTensor(None, shape, dtype, device)
        ref = weakref.ref(out)
        out.data = _new_pending(Pending, (self.ref, ref))    # tuple.__new__: no Python call on this path
        with self.lock:
            self.nodes.append(_new_node(Node, (op, inputs, statics, ref, shape, dtype, checked)))
            if len(self.nodes) >= MAX_PENDING:
                self.flush()
        return out

    def copy(self, raw: RawTensor) -> RawTensor:
        """A pending copy of a pending tensor (``Tensor.detach``): an identity reshape, which XLA
        drops inside the program."""
        shape = raw.shape
        out = self.defer(REGISTRY["reshape"], [raw], {"shape": tuple(shape)}, shape, raw.dtype)
        return out if out is not None else RawTensor(raw.value(), shape, raw.dtype, raw.device)

    def check_index_range(self, op: str, what: str, index: RawTensor, size: int, detail: str) -> None:
        """An index whose values exist is checked at once (the error comes from the line that caused
        it, and nothing is recorded); a pending one is checked by the program that computes it."""
        if index.data.__class__ is not Pending:
            self.inner.check_index_range(op, what, index, size, detail)
        else:
            self._local.unchecked = True

    # -- flushes -----------------------------------------------------------------------------------
    def flush(self) -> None:
        """Run every pending op (one program once the structure was seen before), and a waiting
        backward's program."""
        with self.lock:
            if self.prepared is not None:
                self._finish(self._unprepare())
            if self.nodes:
                self._run(self._take(), None)

    def _unprepare(self) -> Prepared:
        prepared, self.prepared = self.prepared, None
        return prepared

    def _take(self) -> list[Node]:
        """The pending ops, leaving none (no caller keeps the list: ``_run`` counts references)."""
        nodes, self.nodes = self.nodes, []
        return nodes

    def backward(self, tape: GradientTape, seeds: dict, keep: list, retain: bool) -> dict | None:
        """The pending forward ops and the walk from ``seeds`` (``{output: ∂ℒ/∂output}``, where None
        stands for ones of the output's shape, made inside the program) as one program: returns the
        gradient of each tensor in ``keep`` (the leaves of ``Tensor.backward``, the sources of
        ``gradient``), the walk pruned to what reaches them. Returns None when the walk must run op
        by op instead — the first time this structure is seen (the pending ops have then run), or an
        op written by hand, a released tensor or a seed not made on the tape (the op-by-op walk says
        why). With ``retain`` the tape's tensors keep their values (a later walk needs them)."""
        ops = tape.operations()
        if (not all(type(op).op is not None for op in ops) or any(x.released for op in ops for x in op.inputs())
                or not _all_produced(ops, seeds)):
            self.flush()
            return None
        with self.lock:
            if self.prepared is not None:
                self._finish(self._unprepare())
            return self._run(self._take(), (ops, seeds, keep, retain))

    def update(self, fn: Any, params: list[RawTensor], grads: list, state: Any, extra: dict) -> tuple | None:
        """An optimizer's update joined to the waiting backward's program: ``fn(params, grads,
        state, extra) -> (new params, new state)`` on arrays (a pure function: the optimizer's
        optax update), where ``grads`` are the pending gradients that backward handed out (None:
        zeros). The forward, the walk and the update then run as one program, which also fills
        in the gradients and values the backward promised. Returns (new params, new state), or
        None — no backward is waiting, a gradient is not one of its own, a parameter is pending,
        or the step's program already ran by itself and this update was not seen before (it is
        compiled the second time) — after which the caller runs its update apart, reading the
        gradients (the waiting program runs then)."""
        with self.lock:
            prepared = self.prepared
            if prepared is None:
                return None
            slots = {id(g): j for j, g in enumerate(prepared.grads) if g is not None}
            where = []
            for g in grads:
                j = None if g is None else slots.get(id(g))
                if g is not None and (j is None or g.data.__class__ is not Pending):
                    return None          # a gradient from elsewhere (or already replaced): not this program's
                where.append(j)
            if any(p.data.__class__ is Pending for p in params):
                return None
            count, key = self._count(_Key(("update", prepared.spec, fn, tuple(where))))
            if count < 2 and key not in self.programs and prepared.entry[1].ran:
                return None              # first sight, the step's program compiled: the update runs apart
            joined = self._cached(key, lambda: [_joined(prepared.entry[1], fn, tuple(where)), False])
            if not joined[1]:
                self.compiles += 1      # compiled now, at its first call
                joined[1] = True
            self.prepared = None
            try:
                values, garrays, ranges, new, new_state = joined[0](prepared.arrays, [p.data for p in params],
                                                                    state, extra)
            except Exception:
                self._finish(prepared)   # every promised value still gets computed
                raise
            self._store(prepared, values, garrays, ranges)
            return new, new_state

    # -- describing and running a program ----------------------------------------------------------
    def _run(self, nodes: list[Node], walk: tuple | None) -> dict | None:
        nodes, internal = _needed(nodes)
        outs = [node.out() for node in nodes]
        spec, args, outputs, keep = _describe(nodes, outs, walk, internal)
        count, spec = self._count(_Key(spec))
        walked = 0 if walk is None else len(walk[0])
        if spec not in self.programs and (count < 2 or len(nodes) + walked > MAX_PROGRAM_OPS):
            execute = self.inner.execute             # first sight, or huge: op by op, no compile
            for node, out in zip(nodes, outs):
                out.data = execute(node.op, node.inputs, node.statics, node.shape, node.dtype).data
            return None
        entry = self._cached(spec, lambda: _compile(spec.spec, self.inner))
        prepared = Prepared(spec, entry, [a.data for a in args], [outs[i] for i in outputs], [])
        if walk is not None and not walk[3] and entry[1].grad_mask is None:
            jax.eval_shape(entry[0], prepared.arrays)   # traced, not compiled: which leaves get a gradient
        if walk is not None and not walk[3] and not entry[1].checks:
            # A Tensor.backward: its gradients are handed out pending, and the program waits for an
            # optimizer's update to join it (``update``); it is compiled when it first runs, so a
            # step whose update joins at once never compiles it alone. Not when the program checks
            # index values: an index out of range raises from backward() itself.
            grads = {}
            for x, has in zip(keep, entry[1].grad_mask):
                g = None
                if has:
                    g = grads[x] = RawTensor(None, x.shape, x.dtype, self.device)
                    g.data = _new_pending(Pending, (self.ref, weakref.ref(g)))
                prepared.grads.append(g)
            self.prepared = prepared
            return grads
        values, garrays, ranges = self._call_alone(entry, prepared.arrays)
        if walk is not None and walk[3] and len(outputs) < len(nodes):
            # A result only the kept tape holds stays pending (its op is queued again): a later walk
            # or read computes it; usually the tape is cleared first, and it never runs again.
            returned = set(outputs)
            self.nodes[:0] = [node for i, node in enumerate(nodes) if i not in returned]
        self._store(prepared, values, (), ranges)
        if walk is None:
            return None
        return {x: RawTensor(g, x.shape, x.dtype, self.device) for x, g in zip(keep, garrays) if g is not None}

    def _count(self, key: _Key) -> tuple[int, _Key]:
        """How many times ``key`` was met (this time included), and the key object first met for
        it: later lookups with that one compare by identity, not the whole structure again.
        Remembers at most MAX_SEEN keys."""
        count, first = self.seen.pop(key, (0, key))
        self.seen[first] = (count + 1, first)
        if len(self.seen) > MAX_SEEN:
            self.seen.popitem(last=False)
        return count + 1, first

    def _cached(self, key: _Key, make: Any) -> Any:
        """The program cached under ``key``, made if missing (jax compiles it at its first call); at
        most MAX_PROGRAMS are kept, the least recently used dropped."""
        entry = self.programs.pop(key, None)
        if entry is None:
            entry = make()
        self.programs[key] = entry
        if len(self.programs) > MAX_PROGRAMS:
            self.programs.popitem(last=False)
        return entry

    def _finish(self, prepared: Prepared) -> None:
        """Run a waiting backward's program without an update."""
        values, garrays, ranges = self._call_alone(prepared.entry, prepared.arrays)
        self._store(prepared, values, garrays, ranges)

    def _call_alone(self, entry: tuple, arrays: list) -> tuple:
        """Run a step's program by itself (compiled at its first run: counted in ``compiles``)."""
        compiled, run = entry
        if not run.ran:
            self.compiles += 1
            run.ran = True
        return compiled(arrays)

    @staticmethod
    def _store(prepared: Prepared, values: list, garrays: Any, ranges: list) -> None:
        """Give a program's results to the tensors waiting for them; then raise for an index out of
        range (as op by op)."""
        for out, value in zip(prepared.outs, values):
            out.data = value
        for g, value in zip(prepared.grads, garrays):
            if g is not None:
                g.data = value
        for check, (low, high) in zip(prepared.entry[1].checks, ranges):
            check.verify(int(low), int(high))


class Prepared(NamedTuple):
    """A program ready to run: its key, (compiled, traced function), argument arrays, the tensors
    its value outputs go to, and — for a waiting backward — the pending gradients it promised."""

    spec: Any
    entry: tuple
    arrays: list
    outs: list
    grads: list


def _compile(spec: tuple, inner: Any) -> tuple:
    run = _program(spec, inner)
    return jax.jit(run), run


def _joined(run: Any, fn: Any, where: tuple) -> Any:
    """A backward's program with an update after it (``Deferred.update``): also returns the new
    parameters and state. ``where[i]``: which of the walk's gradients is parameter i's (None: zeros)."""
    def joined(arrays: list, params: list, state: Any, extra: dict) -> tuple:
        values, grads, ranges = run(arrays)
        gs = [jnp.zeros_like(p) if j is None else grads[j] for p, j in zip(params, where)]
        new, new_state = fn(params, gs, state, extra)
        return values, grads, ranges, new, new_state
    return jax.jit(joined)


def _all_produced(ops: list, seeds: dict) -> bool:
    """Was every seeded tensor made by an op on the tape? (A function of its own: the set of outputs
    must not be alive while ``_live_outputs`` counts the references to each output.)"""
    produced = {op.output() for op in ops}
    return all(out in produced for out in seeds)


class _Key:
    """A structure as a cache key: its hash computed once (a deep tuple rehashes on every lookup)."""

    __slots__ = ("spec", "hash")

    def __init__(self, spec: tuple):
        self.spec, self.hash = spec, hash(spec)

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        return self is other or (other.__class__ is _Key and self.hash == other.hash and self.spec == other.spec)


def _describe(nodes: list[Node], outs: list[RawTensor], walk: tuple | None, internal: dict) -> tuple:
    """The structure of a program (hashable: the cache key) and what it runs on (``internal``: the
    references the pending ops' inputs hold, see ``_input_refs``).

    Every tensor is named by a ref: ("n", i) for the output of pending op i, ("a", k) for the k-th
    argument (a tensor whose value exists). Returns (spec, args, outputs, keep): outputs are the
    pending ops whose values the program returns, keep the leaves whose gradients it returns."""
    refs: dict[int, tuple] = {}
    args: list[RawTensor] = []

    def ref(t: RawTensor) -> tuple:
        r = refs.get(id(t))
        if r is None:
            r = refs[id(t)] = ("a", len(args))
            args.append(t)
        return r

    node_specs = []
    for i, (node, out) in enumerate(zip(nodes, outs)):
        ins = tuple([tuple([ref(t) for t in x]) if x.__class__ is tuple else ref(x) for x in node.inputs])
        node_specs.append((node.op.name, tuple(node.statics.items()), ins, node.shape, node.dtype, out.requires_grad,
                           node.checked))
        refs[id(out)] = ("n", i)
    walk_spec, keep = None, []
    if walk is not None:
        ops, seeds, keep_in, _ = walk
        op_specs = []
        for op in ops:
            out_ref = ref(op.output())
            if out_ref[0] == "n" and _recorded_from(op, nodes[out_ref[1]]):
                op_specs.append(out_ref)        # the op recorded with pending op i: its inputs and statics
            else:
                op_specs.append((type(op), tuple(op.statics().items()), tuple([ref(x) for x in op.inputs()]), out_ref))
        seed_specs = tuple([(ref(out), None if seed is None else ref(seed)) for out, seed in seeds.items()])
        keep = sorted(set(keep_in), key=ref)             # a canonical order: the same step, the same key
        walk_spec = (tuple(op_specs), seed_specs, tuple([ref(x) for x in keep]))
    outputs = _live_outputs(outs, walk, internal)
    arg_meta = tuple((a.shape, a.dtype, a.requires_grad) for a in args)
    return (tuple(node_specs), arg_meta, walk_spec, tuple(outputs)), args, outputs, keep


def flat_inputs(inputs: list) -> list:
    """An op's input tensors with a sequence parameter (a tuple: ``stack``, ``cat``) spread out."""
    return [t for x in inputs for t in (x if x.__class__ is tuple else (x,))]


def _input_refs(nodes: list[Node]) -> dict[int, int]:
    """id(tensor) -> how many references the pending ops' inputs hold to it."""
    internal: dict[int, int] = {}
    for node in nodes:
        for t in flat_inputs(node.inputs):
            internal[id(t)] = internal.get(id(t), 0) + 1
    return internal


def _needed(nodes: list[Node]) -> tuple[list[Node], dict[int, int]]:
    """The pending ops whose results can still be read: referenced from outside the pending ops (a
    user's variable, a Tensor, an op on the tape), or read by such an op, transitively. The rest —
    results nobody holds, and chains of them held only by each other — are dropped unrun. Returns
    them with their ``_input_refs`` (counted again when ops were dropped: theirs are gone)."""
    outs = [node.out() for node in nodes]           # None: a result nobody holds any more
    internal = _input_refs(nodes)
    # References: getrefcount's argument and the ``outs`` list (a Pending's are weak); indexed, not
    # iterated (a loop variable would be one more).
    needed = [outs[i] is not None and sys.getrefcount(outs[i]) - 2 - internal.get(id(outs[i]), 0) > 0
              for i in range(len(outs))]
    if all(needed):          # the usual case (a step's tape holds every result): nothing to drop
        return nodes, internal
    index = {id(out): i for i, out in enumerate(outs) if out is not None}
    for i in range(len(nodes) - 1, -1, -1):
        if needed[i]:
            for t in flat_inputs(nodes[i].inputs):
                j = index.get(id(t))
                if j is not None:
                    needed[j] = True
    if all(needed):
        return nodes, internal
    kept = [node for node, keep in zip(nodes, needed) if keep]
    return kept, _input_refs(kept)


def _recorded_from(op: Any, node: Node) -> bool:
    """Was ``op`` recorded by the AutodiffBackend with pending op ``node`` (the same class, inputs —
    flattened for a sequence parameter — and so statics)? Then the program rebuilds it from the node."""
    return type(op) is node.op.operation and op._inputs == tuple(flat_inputs(node.inputs))


def _live_outputs(outs: list[RawTensor], walk: tuple | None, internal: dict[int, int]) -> list[int]:
    """The pending ops whose results are referenced from outside the pending ops (a user's variable,
    a Tensor, the tape that a later walk reads): only those values leave the program; the rest stay
    inside it, where XLA need not store them. Counted with ``sys.getrefcount``; the references of
    the pending ops' inputs (``internal``) and of the walked tape's ops are subtracted (a released
    tape drops them; a kept one gets them as pending ops, queued again), so a miscount can only
    keep a value, never lose one."""
    if walk is not None:             # the walk's tape: released after it, or kept (``_run`` queues its values again)
        internal = dict(internal)
        for op in walk[0]:
            for t in (op.output(), *op.inputs()):
                internal[id(t)] = internal.get(id(t), 0) + 1
    # getrefcount's argument and the ``outs`` list are the other two references (a Pending's are
    # weak). Indexed, not iterated: a loop variable would be one more reference.
    return [i for i in range(len(outs)) if sys.getrefcount(outs[i]) - 2 - internal.get(id(outs[i]), 0) > 0]


def _program(spec: tuple, inner: Any):
    """The program of a structure: a pure function of the argument arrays, for jax.jit to trace.
    ``run.checks`` gets the index checks its trace met (their ranges are outputs)."""
    node_specs, arg_meta, walk_spec, outputs = spec
    device = inner.device()

    def run(arrays: list) -> tuple:
        args = []
        for a, (shape, dtype, requires_grad) in zip(arrays, arg_meta):
            t = RawTensor(a, shape, dtype, device)
            t.requires_grad = requires_grad
            args.append(t)
        vals: list[RawTensor] = []

        def get(r: Any) -> Any:
            if r and r[0].__class__ is tuple:
                return tuple(get(x) for x in r)
            return vals[r[1]] if r[0] == "n" else args[r[1]]

        with inner.traced_checks() as checks:
            for name, statics, ins, shape, dtype, requires_grad, checked in node_specs:
                # checked: its index values were checked when it was recorded, so its checks here
                # are collected apart and dropped
                with inner.traced_checks() if checked else nullcontext():
                    out = inner.execute(REGISTRY[name], [get(r) for r in ins], dict(statics), shape, dtype)
                out.requires_grad = requires_grad
                vals.append(out)
        grads: list = []
        if walk_spec is not None:
            # The rules' index checks (scatter_add back at the index its forward op read) repeat
            # the forward ops' checks, which were made above or when the op was called: collected
            # apart and dropped, so no rule adds an output — or a host sync — to the program.
            with inner.traced_checks():
                grads = _walk(walk_spec, node_specs, get, inner)
        run.checks = [c._replace(low=None, high=None) for c in checks]
        run.grad_mask = tuple(g is not None for g in grads)
        return [vals[i].data for i in outputs], grads, [(c.low, c.high) for c in checks]
    run.checks = []
    run.grad_mask = None       # which kept tensors get a gradient: known once traced
    run.ran = False            # has the program run (compiled) by itself, without an update joined?
    return run


def _walk(walk_spec: tuple, node_specs: tuple, get: Any, inner: Any) -> list:
    """Inside a program: the tape rebuilt around the traced tensors and walked with the same rules,
    pruned to the kept tensors; their gradients' arrays (None where no gradient reaches one)."""
    op_specs, seed_specs, keep = walk_spec
    tape = GradientTape(traced=True)
    tape.start_recording()
    for spec in op_specs:
        if spec[0] == "n":                      # recorded with pending op i
            name, statics, ins = node_specs[spec[1]][:3]
            tape.record(REGISTRY[name].operation(get(spec), *flat_inputs([get(r) for r in ins]), **dict(statics)))
        else:
            cls, statics, ins, out = spec
            tape.record(cls(get(out), *[get(r) for r in ins], **dict(statics)))
    seeds = {}
    for out_ref, seed_ref in seed_specs:
        out = get(out_ref)
        seeds[out] = (RawTensor(jnp.ones(tuple(out.shape), out.dtype.jax), out.shape, out.dtype, out.device)
                      if seed_ref is None else get(seed_ref))
    keep_raws = [get(r) for r in keep]
    got = tape.walk(seeds, inner, keep=set(keep_raws), sources=keep_raws)
    return [None if got.get(x) is None else got[x].data for x in keep_raws]
