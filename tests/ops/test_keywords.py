"""Every op of the spec table called with all its arguments as keywords, in an order other than
the signature's (``conv2d(padding=1, stride=2, kernel=k, input=x)``), on each plain backend and on
AutodiffBackend over each, with the *values* checked against the reference — and, on
AutodiffBackend, the gradients against ``jax.vjp``.

Binding keywords in call order instead of by name (e.g. running that conv2d with stride 1 and
padding 2) changes the numbers, not the number of recorded ops: only values can catch it.
The names are the ``Backend`` protocol's (``jtape.tensor.Backend``), the public contract.
"""

from __future__ import annotations

import numpy as np
import pytest
from spec import SPECS, OpSpec, Sample, grad_indices

from jtape import autodiff, tensor
from jtape.tensor.args import Tensors
from jtape.tensor.registry import REGISTRY

from .support import (
    BACKEND_NAMES,
    BACKENDS,
    Case,
    as_list,
    assert_close,
    cotangents,
    inputs,
    oracle,
    reference_values,
)

SAMPLES_PER_OP = 2   # each op's first samples (the table lists its most representative first)


def _named(spec: OpSpec, tensors: list, kwargs: dict) -> list[tuple[str, object]] | None:
    """(name, value) of each argument, in the signature's order: the tensors fill the tensor
    parameters in order (a sequence parameter takes them all), the sample's kwargs the rest. None
    for an op with ``*args`` (transpose's axes, einsum's tensors cannot be keywords) or a sample
    whose arguments do not map onto the signature."""
    if spec.name not in REGISTRY:
        return None
    params = REGISTRY[spec.name].params
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    named, left, used = [], list(tensors), 0
    for p in params:
        if p.annotation is Tensors:
            named.append((p.name, list(left)))
            left = []
        elif p.annotation.tensor:
            if not left:
                return None
            named.append((p.name, left.pop(0)))
        elif p.name in kwargs:
            named.append((p.name, kwargs[p.name]))
            used += 1
    return named if not left and used == len(kwargs) else None


def keyword_call(spec: OpSpec, backend, tensors: list, kwargs: dict):
    """Call ``backend.<op>`` with every argument by name, in the reverse of the signature's order."""
    return getattr(backend, spec.name)(**dict(_named(spec, tensors, kwargs)[::-1]))


def _dtype(spec: OpSpec) -> str:
    return "float32" if "float32" in spec.dtypes else spec.dtypes[0]


def _cases(differentiable: bool) -> list:
    out = []
    for spec in SPECS:
        if differentiable and not spec.grad:
            continue
        dtype = _dtype(spec)
        samples = [s for s in spec.samples_for(dtype) if s.grad or not differentiable]
        for sample in samples[:SAMPLES_PER_OP]:
            named = _named(spec, sample.shapes, sample.kwargs)
            if named is None or len(named) < 2:
                break                             # one argument: no order to get wrong
            case = Case(spec, sample, dtype)
            out.append(pytest.param(case, id=case.id))
    return out


def _check_outputs(case: Case, outs: list, where: str) -> None:
    values = reference_values(case)
    assert len(outs) == len(values), f"{case.id} on {where}: {len(outs)} outputs, expected {len(values)}"
    for i, (out, want) in enumerate(zip(outs, values)):
        assert_close(np.asarray(out.data), want, out.dtype.value, f"{case.id} by keyword on {where}, output {i}")


@pytest.mark.parametrize("backend_name", BACKEND_NAMES)
@pytest.mark.parametrize("case", _cases(differentiable=False))
def test_keyword_call_gives_the_reference_values(case: Case, backend_name: str) -> None:
    backend = BACKENDS[backend_name]
    tensors = [backend.from_numpy(a) for a in inputs(case)]
    _check_outputs(case, as_list(keyword_call(case.spec, backend, tensors, case.kwargs)), backend_name)


@pytest.mark.parametrize("inner_name", BACKEND_NAMES)
@pytest.mark.parametrize("case", _cases(differentiable=True))
def test_keyword_call_on_autodiff_gives_the_reference_values_and_gradients(case: Case, inner_name: str) -> None:
    inner = BACKENDS[inner_name]
    backend = autodiff.new(inner)
    tensors = [inner.from_numpy(a) for a in inputs(case)]
    outs = as_list(keyword_call(case.spec, backend, tensors, case.kwargs))
    _check_outputs(case, outs, f"autodiff({inner_name})")
    # ℒ = Σ_k sum(out_k * ct_k): its gradient is the VJP of the op with the cotangents ct.
    loss = None
    for out, ct in zip(outs, cotangents(case)):
        seed = tensor.from_numpy(ct, backend, requires_grad=False)
        term = (tensor.Tensor(out, backend) * seed).sum()
        loss = term if loss is None else loss + term
    grads = autodiff.backward(loss, backend)
    for i, want in zip(grad_indices(case.spec, case.sample), oracle(case)):
        what = f"{case.id} by keyword on autodiff({inner_name}), gradient of input {i}"
        assert tensors[i] in grads, f"{what}: no gradient reached it"
        assert_close(np.asarray(grads[tensors[i]].data), want, case.dtype, what)


# -- Tensor methods with two or more static arguments, keywords reversed ----------------------------------------
# The ops called as Tensor methods: every argument after the tensor itself by keyword, reversed.
TENSOR_CALLS = ("conv2d", "max_pool2d", "avg_pool2d", "sum_dim", "mean_dim", "chunk", "gather", "index_select",
                "narrow", "clamp", "logsumexp", "cumsum", "pad")


def _tensor_call(spec: OpSpec, ts: list, sample: Sample):
    named = _named(spec, ts, sample.kwargs)
    assert named is not None and named[0][1] is ts[0], f"{spec.name}: the tensor is not its first argument"
    kwargs = {("keepdim" if k == "keep_dim" else k): v for k, v in named[1:][::-1]}   # the Tensor spelling
    return getattr(ts[0], spec.name)(**kwargs)


def _tensor_cases() -> list:
    by_name = {s.name: s for s in SPECS}
    return [pytest.param(Case(by_name[n], sample, "float32"), id=Case(by_name[n], sample, "float32").id)
            for n in TENSOR_CALLS for sample in by_name[n].samples[:SAMPLES_PER_OP]
            if len(_named(by_name[n], sample.shapes, sample.kwargs) or ()) >= 3]


@pytest.mark.parametrize("inner_name", BACKEND_NAMES)
@pytest.mark.parametrize("case", _tensor_cases())
def test_tensor_methods_take_keywords_in_any_order(case: Case, inner_name: str) -> None:
    backend = autodiff.new(BACKENDS[inner_name])
    ts = [tensor.from_numpy(a, backend) for a in inputs(case)]
    sample: Sample = case.sample
    out = _tensor_call(case.spec, ts, sample)
    _check_outputs(case, [o.raw() for o in (out if isinstance(out, list) else [out])], f"Tensor on {inner_name}")
