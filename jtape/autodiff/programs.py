"""The programs of deferred eager (``jtape.autodiff.deferred``): how a step's pending ops and its
backward walk are described as a hashable structure (the cache key), which of them still matter
(counted references), and the pure function of the argument arrays that jax.jit compiles — the
pending ops run on traced RawTensors, then the tape rebuilt around them and walked with the same
rules, and, joined after it, an optimizer's update."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..tensor.dtype import DataType
from ..tensor.raw import RawTensor
from ..tensor.registry import REGISTRY, OpDef
from .jitted import Jitted
from .tape import GradientTape


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



def compile_program(spec: tuple, inner: Any) -> tuple:
    run = program(spec, inner)
    run.inner = inner
    return Jitted(run, inner), run


def joined_program(run: Any, fn: Any, where: tuple, grads: bool) -> Any:
    """A backward's program with an update after it (``Deferred.update``): also returns the new
    parameters and state. ``where[i]``: which of the walk's gradients is parameter i's (None: zeros).
    Without ``grads`` it does not return the gradients: the update reads them inside the program, and
    XLA then never writes them out (one buffer per parameter, 4–6 % of an MLP step on a CPU)."""
    def joined(arrays: list, params: list, state: Any, extra: dict) -> tuple:
        values, gs, ranges = run(arrays)
        taken = [jnp.zeros_like(p) if j is None else gs[j] for p, j in zip(params, where)]
        new, new_state = fn(params, taken, state, extra)
        return values, (gs if grads else ()), ranges, new, new_state
    return Jitted(joined, run.inner)


def chained_program(first: Any, second: Any, sources: tuple, grads: bool) -> Any:
    """Two programs as one (``Deferred._chain``): ``first`` (a backward's, waiting), then ``second``, whose
    arguments listed in ``sources`` — ``(index, 0, j)``: first's j-th value, ``(index, 1, j)``: its
    j-th gradient — are first's results, passed inside the program (None in their place outside).
    Returns first's values, gradients (only with ``grads``: else ``()``) and ranges, then second's results."""
    def chained(arrays: list, arrays2: list) -> tuple:
        values, gs, ranges = first(arrays)
        arrays2 = list(arrays2)
        for k, kind, j in sources:
            arrays2[k] = gs[j] if kind else values[j]
        return (values, gs if grads else (), ranges), second(arrays2)
    return Jitted(chained, first.inner)


_SCALAR_ARRAYS: dict = {}
MAX_SCALAR_ARRAYS = 256


def scalar_arguments(scalars: list) -> list:
    """A program's traced scalars as the 0-d arrays jit makes of them (same dtype, weakly typed): a
    Python number passed to a jitted function is put on the device at every call (≈10 µs on a CPU,
    as much as a small step's whole program), an array is not. The arrays of recent values are kept
    — a step's scalars rarely change — keyed by type, value and jax's x64 mode; not a float zero
    (0.0 == -0.0) nor a NaN (never equal to itself): those are put on the device each time."""
    x64 = jax.config.jax_enable_x64
    out = []
    for v in scalars:
        cls = v.__class__
        kept = (v == v and v != 0.0) if cls is float else (cls is int or cls is bool)
        if not kept:
            out.append(jax.device_put(v))
            continue
        key = (cls, v, x64)
        a = _SCALAR_ARRAYS.get(key)
        if a is None:
            if len(_SCALAR_ARRAYS) >= MAX_SCALAR_ARRAYS:
                _SCALAR_ARRAYS.clear()
            a = _SCALAR_ARRAYS[key] = jax.device_put(v)
        out.append(a)
    return out


def walkable(ops: list, seeds: dict) -> bool:
    """Can a program rebuild and walk this tape: only registered ops' rules (none written by hand),
    no op reading a released tensor, and every seeded tensor made by an op on the tape? (A function
    of its own: the set of outputs must not be alive while ``live_outputs`` counts references.)"""
    produced = set()
    for op in ops:
        if type(op).op is None:
            return False
        for x in op._inputs:
            if x.released:
                return False
        produced.add(op._output)
    return all(out in produced for out in seeds)


class _Traced:
    """Stands, in a structure, for a scalar the program takes as an argument (``Operation.concrete``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<traced scalar>"


TRACED = _Traced()


class Key:
    """A structure as a cache key: its hash computed once (a deep tuple rehashes on every lookup)."""

    __slots__ = ("spec", "hash")

    def __init__(self, spec: tuple):
        self.spec, self.hash = spec, hash(spec)

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        return self is other or (other.__class__ is Key and self.hash == other.hash and self.spec == other.spec)


class Described(NamedTuple):
    """A described program (``describe``): its structure, what it runs on, and the references that
    decide which results it returns."""

    spec: tuple             # the structure: the cache key
    args: list              # the argument tensors (values that exist), in ref order
    scalars: list           # the traced scalars, after the arguments
    keep: list              # the tensors whose gradients the walk returns, in a canonical order
    inner: list             # per pending op: how many references the pending ops' inputs hold to its result
    uses: list              # per pending op: how many the walked tape holds (its ops' outputs and inputs)


def describe(nodes: list[Node], outs: list[RawTensor], walk: tuple | None) -> Described:
    """The structure of a program (hashable: the cache key) and what it runs on.

    Every tensor is named by a ref, an int: i >= 0 for the output of pending op i, ``~k`` (< 0) for
    the k-th argument (a tensor whose value exists); a sequence parameter's is a tuple of refs. A
    pending op's scalars (mul_scalar's value, a learning rate in a hand-written update) are
    arguments too, not part of the structure — ``TRACED`` in their place — unless its rule reads
    them as Python numbers (``Operation.concrete``). Dtypes are named by their value: a string
    hashes in C (``DataType.code``, a plain attribute, not the Enum's ``value`` descriptor). The
    spec's last part, which results the program returns, is left for ``Deferred._run`` to add: it
    counts references, which describing must not hold."""
    refs: dict[int, int] = {}
    get = refs.get
    args: list[RawTensor] = []
    scalars: list = []
    inner = [0] * len(nodes)

    def ref(t: RawTensor) -> int:
        r = get(id(t))
        if r is None:
            r = refs[id(t)] = ~len(args)
            args.append(t)
        return r

    node_specs = []
    for i, node in enumerate(nodes):
        ins = []
        for x in node.inputs:     # ref() and _tally(inner, ...) written out: the loop of every flush
            if x.__class__ is tuple:
                x = tuple([ref(t) for t in x])
                _tally(inner, x)
            else:
                r = get(id(x))
                if r is None:
                    r = ref(x)        # a new argument
                elif r >= 0:
                    inner[r] += 1     # pending op r's result
                x = r
            ins.append(x)
        ins = tuple(ins)
        statics, traced = node.statics, node.op.traced
        if not statics:
            items = ()
        elif not traced:
            items = tuple(statics.items())
        else:
            items = []
            for name, value in statics.items():
                if name in traced:
                    scalars.append(value)
                    value = TRACED
                items.append((name, value))
            items = tuple(items)
        out = outs[i]
        node_specs.append((node.op.name, items, ins, node.shape, node.dtype.code, out.requires_grad,
                           node.checked))
        refs[id(out)] = i
    walk_spec, keep = None, []
    uses = [0] * len(nodes)
    if walk is not None:
        ops, seeds, keep_in, _ = walk
        op_specs, rebuilt = [], []
        for op in ops:
            r = get(id(op._output))
            if r is None:
                r = ref(op._output)
            elif r >= 0:
                uses[r] += 1
                if recorded_from(op, nodes[r]):
                    op_specs.append(r)      # the op recorded with pending op r: its inputs and statics
                    rebuilt.append(r)
                    continue
            ins = tuple([ref(x) for x in op._inputs])
            _tally(uses, ins)
            op_specs.append((type(op), tuple(op.statics().items()), ins, r))
        # The references the rebuilt ops' inputs hold: their pending ops' inputs', counted above in
        # ``inner`` when every pending op is on the tape (each once: one op per output), the usual step
        if len(rebuilt) == len(nodes):
            uses = [u + n for u, n in zip(uses, inner)]
        else:
            for r in rebuilt:
                _tally(uses, node_specs[r][2])
        seed_specs = tuple([(ref(out), None if seed is None else ref(seed)) for out, seed in seeds.items()])
        keep = sorted(set(keep_in), key=ref)             # a canonical order: the same step, the same key
        walk_spec = (tuple(op_specs), seed_specs, tuple([get(id(x)) for x in keep]))
    arg_meta = tuple([(a.shape, a.dtype.code, a.requires_grad) for a in args])
    return Described((tuple(node_specs), arg_meta, walk_spec), args, scalars, keep, inner, uses)


def _tally(counts: list[int], refs: Any) -> None:
    """Count one reference to pending op i's result for each ref i >= 0 in ``refs`` (an op's
    input refs; a sequence parameter's is a tuple of them)."""
    for x in refs:
        for r in (x if x.__class__ is tuple else (x,)):
            if r >= 0:
                counts[r] += 1


def outside(outs: list[RawTensor], inner: list[int]) -> list[int]:
    """Per result, how many references it has from outside the pending ops: a user's variable, a
    Tensor, the tape, the kept tensors of a walk. ``inner``: the pending ops' inputs' (``describe``).
    Counted with ``sys.getrefcount``, whose argument and the ``outs`` list are the two references
    subtracted besides (a Pending's are weak); indexed, not iterated: a loop variable would be one
    more. The caller holds no other reference to a result — so a miscount can only keep a value,
    never lose one."""
    return [sys.getrefcount(outs[i]) - 2 - inner[i] for i in range(len(outs))]


def flat_inputs(inputs: list) -> list:
    """An op's input tensors with a sequence parameter (a tuple: ``stack``, ``cat``) spread out."""
    return [t for x in inputs for t in (x if x.__class__ is tuple else (x,))]


def needed(nodes: list[Node], outs: list[RawTensor], external: list[int]) -> tuple[list[Node], list[RawTensor]] | None:
    """The pending ops whose results can still be read: referenced from outside the pending ops
    (``external``, from ``outside``), or read by such an op, transitively. The rest — chains of
    results held only by each other — are dropped unrun. Returns them and their results, or None
    when every op is still needed (a result held only by the op that reads it)."""
    keep = [e > 0 for e in external]
    index = {id(out): i for i, out in enumerate(outs)}
    for i in range(len(nodes) - 1, -1, -1):
        if keep[i]:
            for t in flat_inputs(nodes[i].inputs):
                j = index.get(id(t))
                if j is not None:
                    keep[j] = True
    kept = [i for i in range(len(nodes)) if keep[i]]
    if len(kept) == len(nodes):
        return None
    return [nodes[i] for i in kept], [outs[i] for i in kept]


def parking(spec: tuple) -> tuple[list[int], list[int]]:
    """The pending ops a kept tape's program does not return (parked: ``Deferred._unpark``), and for
    each how many references the parked ops' own inputs hold to its result — read off the structure
    (``spec``: a program's, its returned results last), so computed once per program, not per step.
    A ref ``r >= 0`` is pending op r's result, one per input (a sequence parameter's a tuple of them),
    so these are the counts of the parked ops' inputs by identity."""
    node_specs, outputs = spec[0], set(spec[-1])
    rest = [i for i in range(len(node_specs)) if i not in outputs]
    counts = [0] * len(node_specs)
    for i in rest:
        _tally(counts, node_specs[i][2])
    return rest, [counts[i] for i in rest]


def alive(nodes: list[Node]) -> tuple[list[Node], list[RawTensor]]:
    """The pending ops whose result someone still holds, and their results (held from now on).
    No op that is still needed reads a result nobody holds: its inputs would hold it."""
    outs = [node.out() for node in nodes]
    if None in outs:
        return [node for node, out in zip(nodes, outs) if out is not None], [out for out in outs if out is not None]
    return nodes, outs


def recorded_from(op: Any, node: Node) -> bool:
    """Was ``op`` recorded by the AutodiffBackend with pending op ``node`` (the same class, inputs —
    flattened for a sequence parameter — and so statics)? Then the program rebuilds it from the node."""
    if type(op) is not node.op.operation:
        return False
    inputs = node.inputs
    return op._inputs == (tuple(flat_inputs(inputs)) if node.op._sequences else tuple(inputs))


def program(spec: tuple, inner: Any):
    """The program of a structure: a pure function of the argument arrays (the tensors' arrays,
    then the traced scalars as Python numbers: jax traces them weakly typed, as the op-by-op
    kernels take them), for jax.jit to trace. ``run.checks`` gets the index checks its trace met
    (their ranges are outputs)."""
    node_specs, arg_meta, walk_spec, outputs = spec
    device = inner.device()

    def run(arrays: list) -> tuple:
        args = []
        for a, (shape, dtype, requires_grad) in zip(arrays, arg_meta):
            t = RawTensor(a, shape, DataType(dtype), device)
            t.requires_grad = requires_grad
            args.append(t)
        scalars = iter(arrays[len(arg_meta):])
        statics_of = [{name: next(scalars) if value is TRACED else value for name, value in statics}
                      for _, statics, *_ in node_specs]
        vals: list[RawTensor] = []

        def get(r: Any) -> Any:
            if r.__class__ is tuple:            # a sequence parameter
                return tuple(get(x) for x in r)
            return vals[r] if r >= 0 else args[~r]

        with inner.traced_checks() as checks:
            for (name, _, ins, shape, dtype, requires_grad, checked), statics in zip(node_specs, statics_of):
                # checked: its index values were checked when it was recorded, so its checks here
                # are collected apart and dropped
                with inner.traced_checks() if checked else nullcontext():
                    out = inner.execute(REGISTRY[name], [get(r) for r in ins], dict(statics), shape, DataType(dtype))
                out.requires_grad = requires_grad
                vals.append(out)
        grads: list = []
        if walk_spec is not None:
            # The rules' index checks (scatter_add back at the index its forward op read) repeat
            # the forward ops' checks, which were made above or when the op was called: collected
            # apart and dropped, so no rule adds an output — or a host sync — to the program.
            with inner.traced_checks():
                grads = walk_in_program(walk_spec, node_specs, statics_of, get, inner)
        run.checks = [c._replace(low=None, high=None) for c in checks]
        run.grad_mask = tuple(g is not None for g in grads)
        return [vals[i].data for i in outputs], grads, [(c.low, c.high) for c in checks]
    run.checks = []
    run.grad_mask = None       # which kept tensors get a gradient: known once traced
    run.ran = False            # has the program run (compiled) by itself, without an update joined?
    run.parking = None         # the ops it does not return and their counts (``parking``): known at the first park
    return run


def walk_in_program(walk_spec: tuple, node_specs: tuple, statics_of: list, get: Any, inner: Any) -> list:
    """Inside a program: the tape rebuilt around the traced tensors and walked with the same rules,
    pruned to the kept tensors; their gradients' arrays (None where no gradient reaches one).
    ``statics_of[i]``: pending op i's statics, its traced scalars in place."""
    op_specs, seed_specs, keep = walk_spec
    tape = GradientTape(traced=True)
    tape.start_recording()
    for spec in op_specs:
        if spec.__class__ is int:               # recorded with pending op ``spec``
            name, _, ins = node_specs[spec][:3]
            statics = statics_of[spec]
            tape.record(REGISTRY[name].operation(get(spec), *flat_inputs([get(r) for r in ins]), **statics))
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
