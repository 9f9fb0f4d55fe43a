"""Entry points that start a backward walk: ``backward(t, backend)``, ``Tensor.backward()`` and
the TF-style ``gradient(target, sources)``. Every one of them walks with ``GradientTape.walk``,
so every one raises the same errors (a released graph, a foreign tensor, an empty tape)."""

from __future__ import annotations

from typing import Any

import jax

from ..tensor.errors import ArgumentError, BackendError, DTypeError, TapeError
from ..tensor.raw import RawTensor, check_gradient
from ..tensor.tensor import Tensor
from .backend import plain
from .observers import watching


def _tape_of(backend: Any, op: str) -> Any:
    get_tape = getattr(backend, "get_tape", None)
    if get_tape is None:
        raise TapeError(f"{op}: backend {backend!r} records no tape; expected an AutodiffBackend "
                        f"(wrap it: jtape.autodiff.new(backend))")
    return get_tape()


def _raw(t: Any, op: str) -> RawTensor:
    if isinstance(t, Tensor):
        return t.raw()
    if isinstance(t, RawTensor):
        return t
    raise ArgumentError(f"{op}: got a {type(t).__name__}; expected a Tensor or RawTensor")


def check_sources(op: str, sources: list, backend: Any) -> None:
    """A source Tensor must live on the backend whose tape is walked: one from another backend is a
    mistake, not an unconnected source (whose gradient would be None or zeros)."""
    for k, s in enumerate(sources):
        if isinstance(s, Tensor) and s.backend is not backend:
            raise BackendError(f"{op}: source {k} is a tensor of another backend ({s.backend.name()} at "
                               f"{id(s.backend):#x}); expected a tensor on this tape's backend "
                               f"({backend.name()} at {id(backend):#x})")


def _need_float(t: RawTensor, op: str) -> None:
    if not t.dtype.is_float:
        raise DTypeError(f"{op}: got a tensor of dtype {t.dtype.value}; expected a float tensor "
                         f"(integer and bool results carry no gradient)")


def _ones_seed(t: RawTensor, backend: Any, op: str) -> RawTensor:
    _need_float(t, op)
    return plain(backend).full(t.shape, 1, t.dtype)


def _seed(t: RawTensor, grad: Any, backend: Any, op: str) -> RawTensor:
    """A caller's output gradient for ``t``, checked like any gradient (Tensor, RawTensor)."""
    if grad is None:
        return _ones_seed(t, backend, op)
    if not isinstance(grad, (Tensor, RawTensor)):
        raise ArgumentError(f"{op}: got an output gradient of type {type(grad).__name__}; expected a Tensor or "
                        f"RawTensor of shape {tuple(t.shape)} and dtype {t.dtype.value}")
    raw = _raw(grad, op)
    check_gradient(f"{op} (output_grad)", raw, t)
    return raw


def backward(t: Tensor | RawTensor, backend: Any, *, create_graph: bool = False,
             trace: Any = None) -> dict[RawTensor, RawTensor]:
    """Gradients of ``t`` for every tensor on ``backend``'s tape — Born's ``Backward``: the walk is
    seeded with ones of ``t``'s shape (so a non-scalar ``t`` gives the gradient of its sum).

    Seeds ``t`` itself — not whatever op was recorded last. Returns a map RawTensor -> gradient;
    the tape is left as it is (clear it with ``backend.tape().clear()``). ``create_graph`` records
    the backward pass, so the gradients can be differentiated again (docs: higher-order gradients).
    ``trace`` (e.g. ``print``) is called with each step of the walk (``jtape.autodiff.observers``).
    """
    raw = _raw(t, "backward")
    tape = _tape_of(backend, "backward")
    _need_float(raw, "backward")
    if tape.num_ops() == 0:
        raise TapeError("backward: the tape is empty — nothing was recorded")
    return tape.walk({raw: _ones_seed(raw, backend, "backward")}, backend, create_graph=create_graph, trace=trace)


def tensor_backward(t: Tensor, grad: Tensor | None = None, *, retain_graph: bool = False,
                    create_graph: bool = False, trace: Any = None) -> None:
    """``t.backward()``: accumulate ∂t/∂leaf into ``leaf.grad`` for every leaf ``t`` depends on.

    Policy (as PyTorch): ``.grad`` **accumulates** over calls — ``leaf.grad += ∂t/∂leaf`` — so
    call ``zero_grad()`` (or the optimizer's) between steps. A leaf is a tensor that no recorded
    op produced (parameters, inputs). ``grad`` seeds ∂ℒ/∂t; without it ``t`` must have exactly
    one element (a gradient can be created implicitly only for a scalar output, as in PyTorch).
    Unless ``retain_graph=True``, the tape is **released** afterwards: the saved tensors are
    freed, so a training loop keeps memory flat, and a later walk that needs the released graph
    raises a TapeError instead of returning a partial gradient (``detach()`` a tensor to make it a
    new leaf on purpose). ``create_graph=True`` records the backward pass (each ``leaf.grad`` is
    then itself a result of recorded ops, differentiable again) and implies ``retain_graph``.
    """
    backend = t.backend
    tape = _tape_of(backend, "Tensor.backward")
    raw = t.raw()
    if grad is None and raw.shape.size != 1:
        raise TapeError(f"Tensor.backward: got a tensor of shape {tuple(raw.shape)} and no gradient; a gradient can "
                        f"be created implicitly only for scalar outputs (one element) — expected t.sum().backward() "
                        f"or t.backward(grad) with a gradient of shape {tuple(raw.shape)}")
    _need_float(raw, "Tensor.backward")
    seed = None if grad is None else _seed(raw, grad, backend, "Tensor.backward")
    ops = tape.operations()
    leaves = _leaves(ops)
    grads = None
    if not create_graph and not watching(ops, trace) and hasattr(backend, "deferred_backward"):
        wanted = [x for x in leaves if x.requires_grad]     # deferred mode: forward + walk, one program
        grads = backend.deferred_backward({raw: seed}, wanted, retain_graph)
    if grads is None:
        if seed is None:
            seed = _ones_seed(raw, backend, "Tensor.backward")
        grads = tape.walk({raw: seed}, backend, keep=leaves, create_graph=create_graph, trace=trace)
    rules = backend if create_graph else plain(backend)
    for leaf in leaves:
        g = grads.get(leaf)
        if g is not None:
            if leaf.grad is not None:
                check_gradient("Tensor.backward (the .grad the tensor already holds)", leaf.grad, leaf)
            leaf.grad = g if leaf.grad is None else rules.add(leaf.grad, g)
    if not (retain_graph or create_graph):
        tape.release()


def _leaves(ops: list) -> set:
    """The float tensors the ops read that no op on the tape produced. (The set of outputs is freed
    on return: a deferred program counts the references to each output to decide what it returns.)"""
    produced = {op.output() for op in ops}
    return {x for op in ops for x in op.inputs() if x.dtype.floating and x not in produced}


def gradient(tape: Any, backend: Any, target: Any, sources: Any, output_gradients: Any = None,
             unconnected_gradients: str = "none", *, create_graph: bool = False) -> Any:
    """TF-style: gradients of ``target`` (a tensor or a list of them) for each of ``sources``.

    ``sources`` is any nest (list, tuple, dict) of Tensors or RawTensors; the result has the
    same structure, with Tensors for Tensor sources. ``output_gradients`` seeds each target
    (default: ones). A source the targets do not depend on gets None, or zeros with
    ``unconnected_gradients="zero"``. ``create_graph`` records the backward pass, so the
    gradients can be differentiated again (docs: higher-order gradients).
    """
    if unconnected_gradients not in ("none", "zero"):
        raise ValueError(f"gradient: got unconnected_gradients={unconnected_gradients!r}; expected 'none' or 'zero'")
    targets = list(target) if isinstance(target, (list, tuple)) else [target]
    if backend is None:
        backend = getattr(targets[0], "backend", None) if targets else None
        if backend is None:
            raise TapeError("gradient: targets are RawTensors; pass backend= to run the rules on")
    if output_gradients is None:
        seeds_in = [None] * len(targets)
    else:
        seeds_in = list(output_gradients) if isinstance(output_gradients, (list, tuple)) else [output_gradients]
        if len(seeds_in) != len(targets):
            raise ValueError(f"gradient: got {len(seeds_in)} output_gradients for {len(targets)} targets; "
                             f"expected one each")
    raws = [_raw(t, "gradient") for t in targets]
    is_leaf = lambda x: isinstance(x, (Tensor, RawTensor))  # noqa: E731
    # A list or tuple of tensors, the usual call, is its own list of leaves (jax's tree functions
    # cost a training step of small tensors more than its program call)
    flat = sources.__class__ in (list, tuple) and all(is_leaf(s) for s in sources)
    leaves = list(sources) if flat else jax.tree_util.tree_leaves(sources, is_leaf=is_leaf)
    raw_sources = [_raw(s, "gradient") for s in leaves]
    grads = None
    if (not create_graph and output_gradients is None and len(set(raws)) == len(raws)
            and getattr(backend, "deferred_backward", None) is not None):
        for raw in raws:
            _need_float(raw, "gradient")
        grads = backend.deferred_backward(dict.fromkeys(raws), raw_sources, True)   # one program (deferred mode)
    if grads is None:
        seeds: dict[RawTensor, RawTensor] = {}
        for raw, s in zip(raws, seeds_in):
            s_raw = _seed(raw, s, backend, "gradient")
            seeds[raw] = s_raw if raw not in seeds else plain(backend).add(seeds[raw], s_raw)
        grads = tape.walk(seeds, backend, sources=raw_sources, create_graph=create_graph)
    check_sources("gradient", leaves, backend)       # (after the walk, which names a foreign target first)

    def lookup(src: Any) -> Any:
        raw = src.raw() if isinstance(src, Tensor) else src
        g = grads.get(raw)
        if g is None and unconnected_gradients == "zero":
            g = plain(backend).full(raw.shape, 0, raw.dtype)
        if g is None or not isinstance(src, Tensor):
            return g
        return Tensor(g, src.backend)

    if flat:
        return sources.__class__([lookup(s) for s in sources])
    return jax.tree_util.tree_map(lookup, sources, is_leaf=is_leaf)
