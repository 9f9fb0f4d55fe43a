"""The oracle test: every differentiable op's hand-derived backward rule, run by the tape on an
AutodiffBackend over each inner backend, equals jax.vjp of the op's independent reference."""

from __future__ import annotations

import chex
import numpy as np
import pytest
from spec import SPEC_BY_NAME, SPECS, grad_indices

from jtape import autodiff
from jtape.ops import OP_CLASSES, Operation
from jtape.tensor import OPS, REGISTRY

from .support import BACKEND_NAMES, BACKENDS, Case, as_list, assert_close, cotangents, gradient_cases, inputs, oracle

# Composite ops (chunk) have no rule of their own: they are differentiable through the ops they use.
NON_DIFFERENTIABLE = {name for name, d in REGISTRY.items() if d.operation is None and not d.composite}
PUBLIC_OPS = [op for op in OPS if REGISTRY[op].method]   # the gradient kernels are tested in test_higher_order
DIFFERENTIABLE = [op for op in PUBLIC_OPS if op not in NON_DIFFERENTIABLE and not REGISTRY[op].composite]


def on_the_tape(name: str, num_ops: int, num_outputs: int) -> bool:
    """A primitive op records one Operation per output; a composite op records the ops it is written
    with (var: several for one output), at least one per output."""
    return num_ops >= num_outputs if REGISTRY[name].composite else num_ops == num_outputs


def run_tape(case: Case, inner_name: str, seeds: list[np.ndarray]) -> tuple[list, dict]:
    """Run the op on autodiff.new(inner), seed its output(s) with ``seeds`` and walk the tape.
    Returns the input RawTensors and the map tensor -> gradient."""
    inner = BACKENDS[inner_name]
    backend = autodiff.new(inner)
    tensors = [inner.from_numpy(a) for a in inputs(case)]
    out = case.spec.run(backend, tensors, case.kwargs)
    outs = as_list(out)
    assert on_the_tape(case.spec.name, backend.tape().num_ops(), len(outs)), f"{case.id}: expected every output on the tape"
    g = [inner.from_numpy(s) for s in seeds]
    if isinstance(out, list):  # chunk: one seed per piece
        grads = backend.tape().walk(dict(zip(outs, g)), backend)
    else:
        grads = backend.tape().backward(g[0], backend, output=out)
    return tensors, grads


@pytest.mark.parametrize("inner_name", BACKEND_NAMES)
@pytest.mark.parametrize("case", gradient_cases())
def test_gradient_matches_jax_vjp(case: Case, inner_name: str) -> None:
    tensors, grads = run_tape(case, inner_name, cotangents(case))
    diff = grad_indices(case.spec, case.sample)
    expected = dict(zip(diff, oracle(case)))
    arrays = inputs(case)
    for i, x in enumerate(tensors):
        what = f"{case.id} on autodiff({inner_name}), gradient of input {i}"
        if i not in diff:
            assert x not in grads, f"{what}: a non-differentiable input got a gradient"
            continue
        assert x in grads, f"{what}: no gradient reached this input"
        g = grads[x]
        assert (tuple(g.shape), g.dtype) == (tuple(x.shape), x.dtype), f"{what}: RawTensor metadata"
        chex.assert_trees_all_equal_shapes_and_dtypes(np.asarray(g.data), arrays[i])
        chex.assert_trees_all_equal_shapes_and_dtypes(g.data, x.data)
        assert_close(np.asarray(g.data), expected[i], x.dtype.value, what)


@pytest.mark.parametrize("inner_name", BACKEND_NAMES)
@pytest.mark.parametrize("case", gradient_cases(dtypes=("float32",)))
def test_zero_output_gradient_gives_exact_zeros(case: Case, inner_name: str) -> None:
    zeros = [np.zeros_like(c) for c in cotangents(case)]
    tensors, grads = run_tape(case, inner_name, zeros)
    for i in grad_indices(case.spec, case.sample):
        g = np.asarray(grads[tensors[i]].data)
        assert np.all(g == 0), f"{case.id} on autodiff({inner_name}), input {i}: {g}"


# -- meta-tests: the table and the op classes cover the whole Backend ----------------------------------
def test_every_backend_op_has_a_spec() -> None:
    assert sorted(SPEC_BY_NAME) == sorted(PUBLIC_OPS)
    assert len(SPECS) == len(PUBLIC_OPS), "an op has two specs"


def test_specs_mark_exactly_the_differentiable_ops() -> None:
    for spec in SPECS:
        assert bool(spec.grad) == (spec.name not in NON_DIFFERENTIABLE), spec.name


@pytest.mark.parametrize("op", DIFFERENTIABLE)
def test_differentiable_op_has_an_operation_with_a_derivation(op: str) -> None:
    assert op in OP_CLASSES, f"{op} is differentiable but has no Operation class in jtape.ops.OP_CLASSES"
    cls = OP_CLASSES[op]
    assert issubclass(cls, Operation)
    assert "Derivation" in (cls.__doc__ or ""), f"{cls.__name__}'s docstring has no derivation"


@pytest.mark.parametrize("op", sorted(OP_CLASSES))
def test_operation_writes_its_rule(op: str) -> None:
    cls = OP_CLASSES[op]
    assert op not in NON_DIFFERENTIABLE, f"{op} is not differentiable but has an Operation class"
    assert cls.vjp is not Operation.vjp or cls.backward is not Operation.backward, f"{cls.__name__} writes no rule"


# -- calling conventions: static arguments and tensors by keyword -------------------------------------
# (*args parameters — transpose's axes, permute's dims — cannot be given by keyword)
WITH_STATIC_ARGS = [s.name for s in SPECS if s.grad and s.samples[0].kwargs
                    and not any(p.kind is p.VAR_POSITIONAL for p in REGISTRY[s.name].params)]


def _float32_inputs(name: str) -> tuple:
    spec = SPEC_BY_NAME[name]
    case = Case(spec, spec.samples[0], "float32")
    inner = BACKENDS["numpy"]
    return spec.samples[0].kwargs, [inner.from_numpy(a) for a in inputs(case)]


@pytest.mark.parametrize("name", WITH_STATIC_ARGS)
def test_autodiff_records_ops_given_static_args_by_keyword(name: str) -> None:
    kwargs, tensors = _float32_inputs(name)
    backend = autodiff.new(BACKENDS["numpy"])
    if name in ("gather", "index_select"):     # (x, dim, index): the index tensor comes after the dim
        out = getattr(backend, name)(tensors[0], dim=kwargs["dim"], index=tensors[1])
    elif name in ("cat", "stack"):
        out = getattr(backend, name)(tensors, dim=kwargs["dim"])
    else:
        out = getattr(backend, name)(*tensors, **kwargs)
    assert on_the_tape(name, backend.tape().num_ops(), len(as_list(out)))


KEYWORD_CALLS = {
    "add": lambda b, t, kw: b.add(a=t[0], b=t[1]),
    "exp": lambda b, t, kw: b.exp(x=t[0]),
    "matmul": lambda b, t, kw: b.matmul(a=t[0], b=t[1]),
    "softmax": lambda b, t, kw: b.softmax(x=t[0], dim=kw["dim"]),
    "cat": lambda b, t, kw: b.cat(tensors=t, dim=kw["dim"]),
    "where": lambda b, t, kw: b.where(condition=t[0], x=t[1], y=t[2]),
}


@pytest.mark.parametrize("name", sorted(KEYWORD_CALLS))
def test_autodiff_records_ops_given_tensors_by_keyword(name: str) -> None:
    kwargs, tensors = _float32_inputs(name)
    backend = autodiff.new(BACKENDS["numpy"])
    KEYWORD_CALLS[name](backend, tensors, kwargs)
    assert backend.tape().num_ops() == 1, "the op was not recorded: its gradient is silently lost"
