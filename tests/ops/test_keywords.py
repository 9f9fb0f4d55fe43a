"""Every op of the spec table called with all its arguments as keywords, in an order other than
the signature's (``conv2d(padding=1, stride=2, kernel=k, input=x)``), on each plain backend and on
AutodiffBackend over each, with the *values* checked against the reference — and, on
AutodiffBackend, the gradients against ``jax.vjp``.

Binding keywords in call order instead of by name (e.g. running that conv2d with stride 1 and
padding 2) changes the numbers, not the number of recorded ops: only values can catch it.
The names are the ``Backend`` protocol's (``jtape.tensor.Backend``), the public contract.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from spec import SPECS, OpSpec, Sample, grad_indices

from jtape import autodiff, tensor

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


def _positional(spec: OpSpec, tensors: list, kwargs: dict) -> list | None:
    """The op's arguments in the protocol's order, as the spec's own call passes them."""
    if spec.name == "transpose":
        return None                               # transpose(t, *axes): axes cannot be keywords
    if spec.name == "gather":
        return [tensors[0], kwargs["dim"], tensors[1]]
    if spec.name == "cat":
        return [list(tensors), kwargs["dim"]]
    return [*tensors, *kwargs.values()]


def _named(spec: OpSpec, tensors: list, kwargs: dict) -> list[tuple[str, object]]:
    """(name, value) of each argument, in the signature's order."""
    bound = inspect.signature(getattr(tensor.Backend, spec.name)).bind(None, *_positional(spec, tensors, kwargs))
    return [(k, v) for k, v in bound.arguments.items() if k != "self"]


def keyword_call(spec: OpSpec, backend, tensors: list, kwargs: dict):
    """Call ``backend.<op>`` with every argument by name, in the reverse of the signature's order."""
    return getattr(backend, spec.name)(**dict(_named(spec, tensors, kwargs)[::-1]))


def _dtype(spec: OpSpec) -> str:
    return "float32" if "float32" in spec.dtypes else spec.dtypes[0]


def _cases(differentiable: bool) -> list:
    out = []
    for spec in SPECS:
        if spec.name == "transpose" or (differentiable and not spec.grad):
            continue
        dtype = _dtype(spec)
        samples = [s for s in spec.samples_for(dtype) if s.grad or not differentiable]
        for sample in samples[:SAMPLES_PER_OP]:
            if len(_named(spec, sample.shapes, sample.kwargs)) < 2:
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
TENSOR_CALLS = {
    "conv2d": lambda t, k, s: t.conv2d(padding=s.kwargs["padding"], stride=s.kwargs["stride"], kernel=k),
    "max_pool2d": lambda t, s: t.max_pool2d(stride=s.kwargs.get("stride"), kernel_size=s.kwargs["kernel_size"]),
    "sum_dim": lambda t, s: t.sum_dim(keep_dim=s.kwargs["keep_dim"], dim=s.kwargs["dim"]),
    "mean_dim": lambda t, s: t.mean_dim(keep_dim=s.kwargs["keep_dim"], dim=s.kwargs["dim"]),
    "chunk": lambda t, s: t.chunk(dim=s.kwargs["dim"], n=s.kwargs["n"]),
    "gather": lambda t, i, s: t.gather(index=i, dim=s.kwargs["dim"]),
}


def _tensor_cases() -> list:
    by_name = {s.name: s for s in SPECS}
    return [pytest.param(Case(by_name[n], sample, "float32"), id=Case(by_name[n], sample, "float32").id)
            for n in TENSOR_CALLS for sample in by_name[n].samples[:SAMPLES_PER_OP]]


@pytest.mark.parametrize("inner_name", BACKEND_NAMES)
@pytest.mark.parametrize("case", _tensor_cases())
def test_tensor_methods_take_keywords_in_any_order(case: Case, inner_name: str) -> None:
    backend = autodiff.new(BACKENDS[inner_name])
    ts = [tensor.from_numpy(a, backend) for a in inputs(case)]
    sample: Sample = case.sample
    out = TENSOR_CALLS[case.spec.name](*ts, sample)
    _check_outputs(case, [o.raw() for o in (out if isinstance(out, list) else [out])], f"Tensor on {inner_name}")
