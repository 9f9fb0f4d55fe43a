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
anything else (reading a ``.grad``, recording the next op) runs the program without it. The joined
program does not write the gradients out: a loop drops them unread (``zero_grad``). They stay
pending (``Owed``), and a read of one after the step computes them then; from then on, that step's
program returns them. An update written by hand (``p - lr * p.grad`` under ``no_grad``) is recorded
as pending ops that read the waiting gradients: the next flush runs the waiting program and those
ops as one (``_chain``), so such a step is one program too.

A program is cached by the step's *structure* (described, and built for jax.jit, in
``jtape.autodiff.programs``): the ops and their static arguments, which tensor
feeds which, the shapes and dtypes, and which gradients are asked for — not the Python numbers given
to ops (a learning rate that decays, ``x * 0.5``): those are arguments of the program, unless a
rule branches on one (``Operation.concrete``). The first time a structure
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
from typing import Any

import jax
import numpy as np
from jax.core import Tracer

from ..tensor.raw import Pending, RawTensor
from ..tensor.registry import REGISTRY, OpDef
from .programs import (Key, Node, alive, chained_program, compile_program, describe, flat_inputs, joined_program,
                       needed, outside, parking, scalar_arguments, walkable)
from .promised import Owed, Prepared, grads_held, sources_in
from .tape import GradientTape

_new_pending = _new_node = tuple.__new__
_ndarray = np.ndarray
MAX_PENDING = 20_000      # flush anyway past this many pending ops (memory stays bounded)
MAX_PROGRAMS = 32         # compiled programs kept per backend (least recently used dropped)
MAX_SEEN = 1024           # structures remembered (a changing shape every step cannot grow this)
MAX_PROGRAM_OPS = 4000    # larger programs run op by op: XLA's compile time grows faster than their run time


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
        # A kept tape's ops whose results its walk's program did not return: (nodes, for each the
        # references the others' inputs hold to its result). Run later if anything else reads one
        # (a second walk of the tape, a value read), dropped unrun when nothing does (``_unpark``).
        self.parked: tuple | None = None
        # Pending values hold the program weakly: the program holds its ops' inputs, which hold
        # their Pending values, so a strong reference back would make a cycle only gc could free.
        self.ref = weakref.ref(self)

    def __del__(self) -> None:
        """The backend is being dropped: run what is still pending, so a tensor someone still holds
        (a RawTensor kept without its Tensor) keeps its value. Usually nothing is pending."""
        try:
            if self.nodes or self.prepared is not None or self.parked is not None:
                self.flush()
        except Exception:     # noqa: BLE001 — interpreter shutdown: nothing can use the values any more
            pass

    def defer(self, op: OpDef, inputs: list, statics: dict, shape: Any, dtype: Any) -> RawTensor | None:
        """Record a checked op to run later; its result holds a ``Pending`` value. None: the op runs
        now — its inputs are jax tracers (a jax transformation is tracing jtape code), or it makes
        integers or bools from values that exist (an index reshaped, a mask), which stay concrete so
        that the ops using them check their values at once."""
        device, pending = self.device, False
        for t in (flat_inputs(inputs) if op._sequences else inputs):
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
            before = None if self.prepared is None else self._unprepare()
            if self.parked is not None:
                self._unpark()
            if self.nodes:
                self._run(self._take(), None, before)
            elif before is not None:
                self._finish(before)

    def _unprepare(self) -> Prepared:
        prepared, self.prepared = self.prepared, None
        return prepared

    def _take(self) -> list[Node]:
        """The pending ops, leaving none (no caller keeps the list: ``_run`` counts references)."""
        if self.parked is not None:
            self._unpark()
        nodes, self.nodes = self.nodes, []
        return nodes

    def _park(self, nodes: list[Node], entry: tuple, spec: Key) -> None:
        """Keep the ops of a kept tape whose results its program did not return apart from the pending
        ops, with the references their own inputs hold to each result (``programs.parking``: from the
        structure, once per program)."""
        run = entry[1]
        if run.parking is None:
            run.parking = parking(spec.spec)
        rest, counts = run.parking
        self.parked = ([nodes[i] for i in rest], counts)

    def _unpark(self) -> None:
        """The parked ops go back in front of the pending ops if anything other than themselves holds
        one of their results — a second walk of the kept tape, a read, an op recorded on it — and
        are dropped unrun otherwise (the tape was cleared: nothing can read them). One reference
        count per op, instead of ``needed``'s walk over every pending op each flush."""
        (nodes, internal), self.parked = self.parked, None
        outs = [node.out() for node in nodes]
        # getrefcount's argument and the ``outs`` list are the two references counted here; indexed,
        # not iterated (a loop variable would be one more)
        if any(outs[i] is not None and sys.getrefcount(outs[i]) - 2 - internal[i] > 0 for i in range(len(outs))):
            self.nodes[:0] = nodes

    def backward(self, tape: GradientTape, seeds: dict, keep: list, retain: bool) -> dict | None:
        """The pending forward ops and the walk from ``seeds`` (``{output: ∂ℒ/∂output}``, where None
        stands for ones of the output's shape, made inside the program) as one program: returns the
        gradient of each tensor in ``keep`` (the leaves of ``Tensor.backward``, the sources of
        ``gradient``), the walk pruned to what reaches them. Returns None when the walk must run op
        by op instead — the first time this structure is seen (the pending ops have then run), or an
        op written by hand, a released tensor or a seed not made on the tape (the op-by-op walk says
        why). With ``retain`` the tape's tensors keep their values (a later walk needs them)."""
        ops = tape.operations()
        if not walkable(ops, seeds):
            self.flush()
            return None
        with self.lock:
            before = None if self.prepared is None else self._unprepare()
            return self._run(self._take(), (ops, seeds, keep, retain), before)

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
            count, key = self._count(Key(("update", prepared.spec, fn, tuple(where))))
            if count < 2 and key not in self.programs and prepared.entry[1].ran:
                return None              # first sight, the step's program compiled: the update runs apart
            # [program, compiled yet, returns the gradients]: at first it does not (``Owed``)
            joined = self._cached(key, lambda: [joined_program(prepared.entry[1], fn, tuple(where), False), False,
                                                False])
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
            if not joined[2]:
                run, where = prepared.entry[1], tuple(where)     # (not ``prepared``: it holds the gradients)
                Owed(self, prepared, joined, lambda: joined_program(run, fn, where, True))
            return new, new_state

    # -- describing and running a program ----------------------------------------------------------
    def _run(self, nodes: list[Node], walk: tuple | None, before: Prepared | None = None) -> dict | None:
        """Run the pending ``nodes`` (and ``walk``: the tape's ops, seeds, kept tensors and retain) as one
        program, or op by op the first time their structure is seen. ``before``: a backward's program
        that was waiting (no update joined it); it runs first — in the same program when these ops
        read its results (``_chain``)."""
        nodes, outs = alive(nodes)      # (the list is held only here: the dropped ops' references go with it)
        described = describe(nodes, outs, walk)
        external = outside(outs, described.inner)
        if min(external, default=1) <= 0:
            # Results held only by other pending ops (an update written by hand under no_grad: its
            # ``lr * p.grad``): drop what nothing can read — ops whose results only dropped ops read
            # — and describe again if any was dropped. Rebinding frees the dropped ops.
            kept = needed(nodes, outs, external)
            if kept is not None:
                nodes, outs = kept      # (``kept`` holds these very lists: no reference more to a result)
                described = describe(nodes, outs, walk)
                external = outside(outs, described.inner)
        uses = described.uses
        outputs = [i for i in range(len(outs)) if external[i] > uses[i]]     # held by more than the walked tape
        args, scalars, keep = described.args, scalar_arguments(described.scalars), described.keep
        spec = described.spec + (tuple(outputs),)
        described = None
        count, spec = self._count(Key(spec))
        walked = 0 if walk is None else len(walk[0])
        sources = () if before is None else sources_in(before, args)
        if before is not None and not any(kind for _, kind, _ in sources):
            self._finish(before)      # nothing here reads its gradients (no update by hand): it runs by itself
            before = None
        if spec not in self.programs and (count < 2 or len(nodes) + walked > MAX_PROGRAM_OPS):
            if before is not None:
                self._finish(before)
            execute = self.inner.execute             # first sight, or huge: op by op, no compile
            for node, out in zip(nodes, outs):
                out.data = execute(node.op, node.inputs, node.statics, node.shape, node.dtype).data
            return None
        entry = self._cached(spec, lambda: compile_program(spec.spec, self.inner))
        if before is not None:       # these ops read its gradients: both run as one program
            arrays = [None if a.data.__class__ is Pending else a.data for a in args] + scalars   # None: before's
            prepared = Prepared(spec, entry, arrays, [outs[i] for i in outputs], [])
            held = grads_held(before.grads, nodes, () if walk is None else walk[0], args)
            values, garrays, ranges = self._chain(before, sources, held, prepared)
        else:
            prepared = Prepared(spec, entry, [a.data for a in args] + scalars, [outs[i] for i in outputs], [])
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
            values, garrays, ranges = self.call_alone(entry, prepared.arrays)
        if walk is not None and walk[3] and len(outputs) < len(nodes):
            # A result only the kept tape holds stays pending (its op is parked): a later walk or
            # read computes it; usually the tape is cleared first, and it never runs.
            self._park(nodes, entry, spec)
        self._store(prepared, values, (), ranges)
        if walk is None:
            return None
        return {x: RawTensor(g, x.shape, x.dtype, self.device) for x, g in zip(keep, garrays) if g is not None}

    def _chain(self, before: Prepared, sources: tuple, held: bool, prepared: Prepared) -> tuple:
        """A waiting backward's program and the pending ops that read its gradients, as one program
        (``chained_program``): a step whose update is written by hand (``p - lr * p.grad`` under
        ``no_grad``, which no optimizer joins) runs that update in the next step's program, without a
        program of its own and without writing the gradients out. ``before``'s results are stored here;
        its gradients are returned only when something besides these ops still holds one (``held``:
        ``p.grad`` after a clipping norm was read), else they stay pending (``Owed``: a read computes
        them). Returns ``prepared``'s results, for ``_run`` to store: its walk's gradients are
        returned and do not wait — so the next step's program runs by itself and waits again, and a
        loop alternates between the two."""
        key = Key(("chain", before.spec, prepared.spec, sources, held))
        chained = self._cached(key, lambda: [chained_program(before.entry[1], prepared.entry[1], sources, held),
                                             False])
        if not chained[1]:
            self.compiles += 1      # compiled now, at its first call
            chained[1] = True
        try:
            (values, grads, ranges), second = chained[0](before.arrays, prepared.arrays)
        except Exception:
            self._finish(before)     # every value it promised still gets computed
            raise
        self._store(before, values, grads, ranges)      # (a waiting program checks no index: nothing raises)
        if not held and any(g is not None for g in before.grads):
            Owed(self, before, None, None)
        return second

    def _count(self, key: Key) -> tuple[int, Key]:
        """How many times ``key`` was met (this time included), and the key object first met for
        it: later lookups with that one compare by identity, not the whole structure again.
        Remembers at most MAX_SEEN keys."""
        count, first = self.seen.pop(key, (0, key))
        self.seen[first] = (count + 1, first)
        if len(self.seen) > MAX_SEEN:
            self.seen.popitem(last=False)
        return count + 1, first

    def _cached(self, key: Key, make: Any) -> Any:
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
        values, garrays, ranges = self.call_alone(prepared.entry, prepared.arrays)
        self._store(prepared, values, garrays, ranges)

    def call_alone(self, entry: tuple, arrays: list) -> tuple:
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
