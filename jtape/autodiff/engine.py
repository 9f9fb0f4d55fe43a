"""Entry points that start a backward walk: ``backward(t, backend)``, ``Tensor.backward()`` and
the TF-style ``gradient(target, sources)``."""

from __future__ import annotations

from typing import Any

import jax

from ..tensor.errors import DTypeError, TapeError
from ..tensor.raw import RawTensor
from ..tensor.tensor import Tensor


def _tape_of(backend: Any, op: str):
    get_tape = getattr(backend, "get_tape", None)
    if get_tape is None:
        raise TapeError(f"{op}: backend {backend!r} records no tape; expected an AutodiffBackend "
                        f"(wrap it: jtape.autodiff.new(backend))")
    return get_tape()


def _ones_seed(t: RawTensor, backend: Any, op: str) -> RawTensor:
    if not t.dtype.is_float:
        raise DTypeError(f"{op}: got a tensor of dtype {t.dtype.value}; expected a float tensor "
                         f"(integer and bool results carry no gradient)")
    return backend.full(t.shape, 1, t.dtype)


def backward(t: Tensor | RawTensor, backend: Any, *, create_graph: bool = False,
             trace: Any = None) -> dict[RawTensor, RawTensor]:
    """Gradients of ``t`` (seeded with ones of its shape) for every tensor on ``backend``'s tape.

    Seeds ``t`` itself — not whatever op was recorded last. Returns a map RawTensor -> gradient;
    the tape is left as it is (clear it with ``backend.tape().clear()``). ``create_graph`` records
    the backward pass, so the gradients can be differentiated again (``jtape.autodiff.higher``).
    ``trace`` (e.g. ``print``) is called with each step of the walk (``jtape.autodiff.watch``).
    """
    raw = t.raw() if isinstance(t, Tensor) else t
    tape = _tape_of(backend, "backward")
    if tape.num_ops() == 0:
        raise TapeError("backward: the tape is empty — nothing was recorded")
    return tape.backward(_ones_seed(raw, backend, "backward"), backend, output=raw, create_graph=create_graph,
                         trace=trace)


def tensor_backward(t: Tensor, grad: Tensor | None = None, *, retain_graph: bool = False,
                    create_graph: bool = False) -> None:
    """``t.backward()``: accumulate ∂t/∂leaf into ``leaf.grad`` for every leaf ``t`` depends on.

    Policy (as PyTorch): ``.grad`` **accumulates** over calls — ``leaf.grad += ∂t/∂leaf`` — so
    call ``zero_grad()`` (or the optimizer's) between steps. A leaf is a tensor that no recorded
    op produced (parameters, inputs). ``grad`` seeds ∂ℒ/∂t (default: ones of t's shape).
    Unless ``retain_graph=True``, the tape is **cleared** afterwards: the saved tensors are
    released, so a training loop keeps memory flat, and a second ``backward`` through the same
    graph raises a TapeError instead of giving a silently wrong answer. So does a backward whose
    gradient reaches a tensor produced by ops that such a clear released (``y.backward()``, then
    ``(y * 2).backward()``): its history is gone, and the gradient would silently stop there —
    ``detach()`` it to make it a new leaf on purpose.
    ``create_graph=True`` records the backward pass (each ``leaf.grad`` is then itself a result of
    recorded ops, differentiable again) and implies ``retain_graph``.
    """
    backend = t.backend
    tape = _tape_of(backend, "Tensor.backward")
    raw = t.raw()
    seed = _ones_seed(raw, backend, "Tensor.backward") if grad is None else grad.raw()
    ops = tape.operations()
    produced = {op.output() for op in ops}
    if raw not in produced and getattr(raw, "_released", False):
        raise TapeError("Tensor.backward: the tensor was not produced by an op on this tape any more — an earlier "
                        "backward released its graph (cleared the tape); expected retain_graph=True on that "
                        "first backward to go through the graph again")
    leaves = {x for op in ops for x in op.inputs() if x not in produced and x.dtype.is_float}
    grads = tape.walk({raw: seed}, backend, keep=leaves, create_graph=create_graph)
    rules = backend if create_graph else getattr(backend, "inner", lambda: backend)()
    for leaf in leaves:
        if getattr(leaf, "_released", False) and grads.get(leaf) is not None:
            raise TapeError(f"Tensor.backward: the gradient reached {leaf!r}, which an op on a tape cleared by an "
                            f"earlier backward produced; its history is gone, so the gradient would stop there "
                            f"silently. Expected retain_graph=True on that backward, or leaf.detach() to make it a "
                            f"new leaf on purpose")
    for leaf in leaves:
        g = grads.get(leaf)
        if g is not None:
            leaf.grad = g if leaf.grad is None else rules.add(leaf.grad, g)
    if not (retain_graph or create_graph):
        for op in tape.clear():  # their outputs' history is gone (see the policy above)
            op.output()._released = True


def gradient(tape: Any, backend: Any, target: Any, sources: Any, output_gradients: Any = None,
             unconnected_gradients: str = "none", *, create_graph: bool = False) -> Any:
    """TF-style: gradients of ``target`` (a tensor or a list of them) for each of ``sources``.

    ``sources`` is any nest (list, tuple, dict) of Tensors or RawTensors; the result has the
    same structure, with Tensors for Tensor sources. ``output_gradients`` seeds each target
    (default: ones). A source the targets do not depend on gets None, or zeros with
    ``unconnected_gradients="zero"``. ``create_graph`` records the backward pass, so the
    gradients can be differentiated again (``jtape.autodiff.higher``).
    """
    if unconnected_gradients not in ("none", "zero"):
        raise ValueError(f"gradient: got unconnected_gradients={unconnected_gradients!r}; expected 'none' or 'zero'")
    targets = list(target) if isinstance(target, (list, tuple)) else [target]
    if output_gradients is None:
        seeds_in = [None] * len(targets)
    else:
        seeds_in = list(output_gradients) if isinstance(output_gradients, (list, tuple)) else [output_gradients]
        if len(seeds_in) != len(targets):
            raise ValueError(f"gradient: got {len(seeds_in)} output_gradients for {len(targets)} targets; expected one each")
    seeds: dict[RawTensor, RawTensor] = {}
    for t, s in zip(targets, seeds_in):
        raw = t.raw() if isinstance(t, Tensor) else t
        s_raw = _ones_seed(raw, backend, "gradient") if s is None else (s.raw() if isinstance(s, Tensor) else s)
        seeds[raw] = s_raw if raw not in seeds else backend.add(seeds[raw], s_raw)
    grads = tape.walk(seeds, backend, create_graph=create_graph)

    def lookup(src: Any) -> Any:
        raw = src.raw() if isinstance(src, Tensor) else src
        g = grads.get(raw)
        if g is None and unconnected_gradients == "zero":
            g = backend.full(raw.shape, 0, raw.dtype)
        if g is None or not isinstance(src, Tensor):
            return g
        return Tensor(g, src.backend)

    is_leaf = lambda x: isinstance(x, (Tensor, RawTensor))  # noqa: E731
    return jax.tree_util.tree_map(lookup, sources, is_leaf=is_leaf)
