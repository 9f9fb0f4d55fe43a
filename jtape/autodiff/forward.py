"""Forward mode from reverse mode: ``jvp(f, primals, tangents)``, built from two reverse walks.

The maths. Write y = f(x) with Jacobian J = ∂y/∂x (one block per input and output). Reverse mode
gives the vector-Jacobian product: for a cotangent u shaped like y, one walk returns

    vjp(u) = Jᵀu      (what ``tape.gradient(y, x, output_gradients=u)`` returns).

Forward mode wants the Jacobian-vector product J·v for a tangent v shaped like x. The trick
(the "double-VJP" or "transpose trick"): Jᵀu is *linear* in u, so the scalar

    s(u) = ⟨Jᵀu, v⟩ = ⟨u, J·v⟩

has gradient ∂s/∂u = J·v, exactly, whatever u is. So jvp records the first walk
(``create_graph=True``: the rules run as recorded ops of u), forms s = Σ_i ⟨(Jᵀu)_i, v_i⟩ with
ordinary ops, and walks once more from s to u. No rule is new and no jax.jvp is used: the
hand-derived VJP rules, differentiated by the tape itself (``create_graph=True``), give J·v.
u = 0 is a fine point to evaluate at (the first walk is linear in u, so its u-derivative is the
same everywhere).

Cost: one forward pass, one recorded reverse pass and one reverse pass over that: a small
constant (about 3-5) times the forward, for *one* column J·v. Reverse mode gives one *row*
uᵀJ for about the same. So a Jacobian with n inputs and m outputs costs n jvps or m vjps:
forward mode wins for tall Jacobians (few inputs, many outputs), reverse mode for wide ones
(many inputs, a scalar loss) — see the docs page "Forward and reverse mode".

Signature (as ``jax.jvp``; ``torch.autograd.functional.jvp`` is the same with v optional):
``f`` takes the primals as positional Tensors and returns a Tensor or a tuple/list of Tensors;
``primals`` is one Tensor or a tuple/list of them; ``tangents`` has the same structure, each of
its primal's shape (a Tensor of the same dtype, or anything ``np.asarray`` takes, converted to
the primal's dtype). Returns ``(outputs, tangents_out)``, each shaped like f's result, both as
constants (``detach()``-ed): jvp records f and its walks on the primals' tape and removes all of
it again, leaving the tape holding exactly the ops it held before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..tensor import creation
from ..tensor.errors import ArgumentError, BackendError, DTypeError, ShapeError, TapeError
from ..tensor.tensor import Tensor
from .grad_mode import is_grad_enabled


def jvp(f: Callable[..., Any], primals: Tensor | Sequence[Tensor], tangents: Any) -> tuple[Any, Any]:
    """J·v of ``f`` at ``primals`` along ``tangents``, from two reverse walks (see the module docstring).

    ``f(*primals)`` must return a Tensor or a tuple/list of Tensors on the primals' backend (an
    AutodiffBackend, recording). Returns ``(f(*primals), J·tangents)`` with the structure of
    f's result, as constant Tensors.

        y, dy = autodiff.jvp(lambda x: (x * x).sin(), (x,), (v,))     # dy = cos(x²) · 2x · v
    """
    if not callable(f):
        raise ArgumentError(f"jvp: got f of type {type(f).__name__}; expected a callable taking the primals as Tensors")
    xs_in, one_primal = _as_list("primals", primals)
    vs_in, one_tangent = _as_list("tangents", tangents)
    if one_primal != one_tangent or len(xs_in) != len(vs_in):
        raise ArgumentError(f"jvp: got {_describe(primals)} primals and {_describe(tangents)} tangents; expected the "
                        f"same structure (one tangent per primal)")
    if not xs_in:
        raise ValueError("jvp: got no primals; expected at least one Tensor")
    backend = _backend_of(xs_in)
    vs = [_tangent(k, x, v, backend) for k, (x, v) in enumerate(zip(xs_in, vs_in))]
    if not is_grad_enabled():
        raise TapeError("jvp: called inside no_grad; expected recording on (jvp is built from recorded reverse "
                        "walks, so it records f and its walks, then removes what it recorded)")
    tape = backend.tape()
    before = tape.operations()
    was_recording = tape.is_recording()
    tape.start_recording()
    try:
        xs = [x.detach().requires_grad_(True) for x in xs_in]     # fresh leaves: x's history stays out
        result = f(*xs)
        outs, one_output = _outputs(result, backend)
        tangents_out = _double_vjp(tape, backend, xs, vs, outs, len(before))
    finally:
        _restore(tape, before)
        if not was_recording:
            tape.stop_recording()
    outputs = [o.detach() for o in outs]
    tangents_out = [t.detach() for t in tangents_out]
    if one_output:
        return outputs[0], tangents_out[0]
    return type(result)(outputs), type(result)(tangents_out)


def _double_vjp(tape: Any, backend: Any, xs: list[Tensor], vs: list[Tensor], outs: list[Tensor],
                n_before: int) -> list[Tensor]:
    """J·v for each output: walk from the outputs with cotangents u (recorded), then from ⟨Jᵀu, v⟩ to u."""
    produced = {op.output() for op in tape.operations()[n_before:]}
    leaf_tangent = {x.raw(): v for x, v in zip(xs, vs)}
    walked = [o for o in outs if o.raw() in produced]
    us = [creation.zeros(tuple(o.shape), backend, dtype=o.dtype) for o in walked]   # leaves; any u gives J·v
    jvps: dict[int, Tensor] = {}
    if walked:
        vjps = tape.gradient(walked, xs, output_gradients=us, create_graph=True)      # (Jᵀu)_i, recorded in u
        terms = [(g * v).sum() for g, v in zip(vjps, vs) if g is not None]
        if terms:
            s = terms[0]
            for t in terms[1:]:
                s = s + t
            for o, jv in zip(walked, tape.gradient(s, us, unconnected_gradients="zero")):
                jvps.setdefault(id(o), jv)                                            # ∂s/∂u = J·v
    tangents_out = []
    for o in outs:
        if id(o) in jvps:
            tangents_out.append(jvps[id(o)])
        elif o.raw() in leaf_tangent:                  # f returned an input itself: J = I
            tangents_out.append(leaf_tangent[o.raw()])
        else:                                          # a constant, or an output the inputs do not reach
            tangents_out.append(creation.zeros(tuple(o.shape), backend, dtype=o.dtype))
    return tangents_out


def _restore(tape: Any, before: list) -> None:
    """Leave the tape holding exactly ``before``: drop everything jvp recorded, keep the rest as it was."""
    if tape.operations() == before:
        return
    sources = [getattr(op, "source", None) for op in before]
    tape.clear()
    for op, source in zip(before, sources):          # the tape is recording here (jvp switched it on)
        tape.record(op)
        if source is not None:
            op.source = source                         # record() re-captures it when capture_source is on


# -- checking what the caller passed -------------------------------------------------------------------
def _as_list(what: str, value: Any) -> tuple[list, bool]:
    if isinstance(value, (tuple, list)):
        return list(value), False
    return [value], True


def _describe(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"one {type(value).__name__}"


def _backend_of(xs: list) -> Any:
    for k, x in enumerate(xs):
        if not isinstance(x, Tensor):
            raise ArgumentError(f"jvp: got primal {k} of type {type(x).__name__}; expected a Tensor on an "
                                f"AutodiffBackend")
    backend = xs[0].backend
    if not (hasattr(backend, "tape") and hasattr(backend, "inner")):
        raise TapeError(f"jvp: got primals on {backend!r}, which records no tape; expected an AutodiffBackend "
                        f"(wrap it: jtape.autodiff.new(backend))")
    for k, x in enumerate(xs):
        if x.backend is not backend:
            raise BackendError(f"jvp: got primal {k} on {x.backend!r} and primal 0 on {backend!r}; expected all "
                               f"primals on one backend")
        if not x.dtype.is_float:
            raise DTypeError(f"jvp: got primal {k} of dtype {x.dtype.value}; expected a float tensor "
                             f"(integer and bool tensors carry no tangent)")
    return backend


def _tangent(k: int, x: Tensor, v: Any, backend: Any) -> Tensor:
    if isinstance(v, Tensor):
        if v.backend is not backend:
            raise BackendError(f"jvp: got tangent {k} on {v.backend!r}; expected the primals' backend {backend!r}")
        if v.dtype is not x.dtype:
            raise DTypeError(f"jvp: got tangent {k} of dtype {v.dtype.value}; expected its primal's dtype "
                             f"{x.dtype.value}")
        v = v.detach()
    else:
        try:
            array = np.asarray(v)
        except Exception as e:
            raise ArgumentError(f"jvp: got tangent {k} of type {type(v).__name__}; expected a Tensor or an "
                                f"array") from e
        if array.dtype.kind not in "fiub":
            raise DTypeError(f"jvp: got tangent {k} of NumPy dtype {array.dtype}; expected numbers")
        v = creation.from_numpy(array, backend, dtype=x.dtype, requires_grad=False)
    if tuple(v.shape) != tuple(x.shape):
        raise ShapeError(f"jvp: got tangent {k} of shape {tuple(v.shape)}; expected its primal's shape "
                         f"{tuple(x.shape)}")
    return v


def _outputs(result: Any, backend: Any) -> tuple[list[Tensor], bool]:
    outs, one = _as_list("outputs", result)
    if not outs:
        raise ArgumentError("jvp: f returned an empty sequence; expected a Tensor or a tuple/list of Tensors")
    for k, o in enumerate(outs):
        if not isinstance(o, Tensor):
            raise ArgumentError(f"jvp: f returned {'a' if one else f'output {k} as a'} {type(o).__name__}; expected a "
                            f"Tensor or a tuple/list of Tensors")
        if o.backend is not backend:
            raise BackendError(f"jvp: f returned output {k} on {o.backend!r}; expected the primals' backend "
                               f"{backend!r}")
        if not o.dtype.is_float:
            raise DTypeError(f"jvp: f returned output {k} of dtype {o.dtype.value}; expected a float tensor "
                             f"(integer and bool results carry no tangent)")
    return outs, one
