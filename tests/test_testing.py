"""``jtape.testing``: check_operation / check_gradients pass for the built-in ops and point at the
input and element where a deliberately wrong rule disagrees."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from jtape.backends import JaxBackend, NumpyBackend
from jtape.ops import OP_CLASSES, Operation
from jtape.tensor.errors import DTypeError
from jtape.testing import TOLERANCE, Check, GradientCheckError, GradientReport, check_gradients, check_operation

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spec import SPEC_BY_NAME, rng_for  # noqa: E402

# A built-in op's class is checked by running the op on the AutodiffBackend (which records it).
# A representative op of each family (and every op with an irregular constructor), first sample.
CHECKED = ["add", "div", "mul_scalar", "log", "softmax", "matmul", "conv2d", "max_pool2d", "cross_entropy",
           "mean_dim", "transpose", "squeeze", "unsqueeze", "expand", "cat", "narrow", "gather", "where", "cast"]
SAMPLE = {"cast": 1}        # float64 -> float64: a cast to float32 would defeat the float64 finite differences


def _spec_inputs(name):
    spec = SPEC_BY_NAME[name]
    sample = spec.samples[SAMPLE.get(name, 0)]
    arrays = spec.make_inputs(sample, "float64", rng_for(f"testing-{name}"))
    return spec, sample, arrays


@pytest.mark.parametrize("name", CHECKED)
def test_check_operation_passes_for_built_in_ops(name):
    spec, sample, arrays = _spec_inputs(name)
    forward = lambda b, *xs, **kw: spec.run(b, list(xs), kw)  # noqa: E731
    report = check_operation(OP_CLASSES[name], forward, *arrays, kwargs=dict(sample.kwargs))
    assert report.ok and isinstance(report, GradientReport)
    kinds = {(c.kind, c.dtype) for c in report.checks}
    assert kinds == {("jax.vjp", "float32"), ("jax.vjp", "float64"), ("finite differences", "float64")}


def test_check_operation_on_numpy_backend_and_half_precision():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    report = check_operation(OP_CLASSES["matmul"], lambda be, x, y: be.matmul(x, y), a, b, backend=NumpyBackend(),
                             dtypes=("float32", "float16", "bfloat16"), fd=False)
    assert report.ok and [c.dtype for c in report.checks] == ["float32"] * 2 + ["float16"] * 2 + ["bfloat16"] * 2


def test_check_gradients_of_a_jtape_function():
    rng = np.random.default_rng(2)
    x, w, targets = rng.standard_normal((5, 3)), rng.standard_normal((3, 4)), rng.integers(0, 4, 5)

    def loss(x, w, targets):
        return (x @ w).tanh().mul_scalar(3.0).cross_entropy(targets) + (w * w).sum().mul_scalar(0.1)

    report = check_gradients(loss, x, w, targets)
    assert report.ok and {c.input for c in report.checks} == {0, 1}     # integer targets are held constant
    report = check_gradients(loss, x, w, targets, wrt=[1], backend=NumpyBackend(), seed=5)
    assert report.ok and {c.input for c in report.checks} == {1}
    assert "checks passed" in str(report) and "ok   jax.vjp, float32, input 1 (shape (3, 4))" in str(report)


# -- failure reporting ---------------------------------------------------------------------------------
class _FirstRowAddOp(Operation):
    """out = a + b (broadcasting).  Derivation (deliberately wrong, Born-style): grad_b should sum g
    over the broadcast rows; this takes only the first row."""

    def backward(self, g, backend):
        return [g, backend.narrow(g, 0, 0, 1)]


def test_a_wrong_rule_is_reported_with_its_input_and_element():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((1, 3))
    with pytest.raises(GradientCheckError, match=r"^check_operation\(_FirstRowAddOp\): 3 of 6 checks failed") as caught:
        check_operation(_FirstRowAddOp, lambda be, x, y: be.add(x, y), a, b)
    message = str(caught.value)
    assert isinstance(caught.value, AssertionError)
    assert message.startswith("check_operation(_FirstRowAddOp): 3 of 6 checks failed\n")
    assert re.search(r"jax\.vjp, float32, input 1 \(shape \(1, 3\)\): at element \(0, \d\) the tape gives -?[\d.]+ "
                     r"but jax\.vjp gives -?[\d.]+; max \|error\| [\d.e+-]+ > bound [\d.e+-]+", message)
    assert re.search(r"finite differences, float64, input 1 \(shape \(1, 3\)\): ⟨Jᵀu, v⟩ from the tape and "
                     r"⟨u, J v⟩ by central differences differ — difference [\d.e+-]+ > bound [\d.e+-]+; "
                     r"worst element \(0, \d\): the tape gives -?[\d.]+, central differences give -?[\d.]+", message)
    assert "input 0" not in message                                   # input 0's gradient is right
    report = caught.value.report
    failed = report.failures()
    assert {(c.kind, c.input) for c in failed} == {("jax.vjp", 1), ("finite differences", 1)}
    for c in failed:
        assert c.error > c.bound
        if c.kind == "jax.vjp":
            assert abs(abs(c.got - c.expected) - c.error) < 1e-6
    # The same without raising: the report alone.
    report = check_operation(_FirstRowAddOp, lambda be, x, y: be.add(x, y), a, b, raise_on_failure=False)
    assert not report.ok and "FAIL jax.vjp, float32, input 1" in str(report)
    passed = [c.describe() for c in report.checks if c.ok]           # input 0's rows say so, without "but"
    assert passed and all("match" in d and " but " not in d for d in passed)
    assert any(re.search(r"jax\.vjp, float32, input 0 \(shape \(4, 3\)\): matches — largest difference", d)
               for d in passed)


class _NoGradOp(Operation):
    """out = x · 2.  Derivation (deliberately missing): returns no gradient."""

    def backward(self, g, backend):
        return [None]


def test_a_rule_that_returns_none_is_compared_as_zeros():
    report = check_operation(_NoGradOp, lambda be, x: be.mul_scalar(x, 2.0), np.ones(3), raise_on_failure=False)
    assert not report.ok
    assert all("the rule returned no gradient (None)" in c.describe() for c in report.checks)
    fd = next(c for c in report.checks if c.kind == "finite differences")
    assert fd.element is not None and fd.got == 0.0 and abs(fd.expected) > fd.bound    # (Jᵀu)[k] = 2·u[k]


class _NoFloat64Backend(JaxBackend):
    """A JaxBackend that behaves as without JAX's x64 mode."""

    def _check_dtype_available(self, dtype):
        if dtype.needs_x64:
            raise DTypeError("no float64 here")


def test_finite_differences_fall_back_to_numpy_without_float64():
    report = check_operation(OP_CLASSES["sin"], lambda be, x: be.sin(x), np.linspace(-1, 1, 5),
                             backend=_NoFloat64Backend("cpu"), dtypes=("float32",))
    fd = [c for c in report.checks if c.kind == "finite differences"]
    assert report.ok and len(fd) == 1
    assert "run on NumpyBackend: jax has no float64 without JAX's x64 mode" in fd[0].describe()


# -- bad arguments -------------------------------------------------------------------------------------
def _mul(be, x, y):
    return be.mul(x, y)


def test_bad_arguments_are_named():
    mul = OP_CLASSES["mul"]
    x = np.ones(3)
    with pytest.raises(ValueError, match=r"check_operation\(MulOp\): no input to differentiate \(got inputs of dtypes "
                                         r"int64, int64\); expected at least one float input"):
        check_operation(mul, _mul, np.arange(3), np.arange(3))
    with pytest.raises(ValueError, match=r"check_operation\(MulOp\): got wrt=\(2,\) for 2 inputs; expected indices of "
                                         r"float inputs \(here \(0, 1\)\)"):
        check_operation(mul, _mul, x, x, wrt=[2])
    with pytest.raises(ValueError, match=r"got wrt=\(1,\) for 2 inputs; expected indices of float inputs "
                                         r"\(here \(0,\)\)"):
        check_operation(mul, _mul, x, np.arange(3.0).astype(np.int32), wrt=[1])
    with pytest.raises(ValueError, match=r"check_operation\(MulOp\): got wrt=\(\); expected at least one input"):
        check_operation(mul, _mul, x, x, wrt=[])
    with pytest.raises(ValueError, match=r"check_operation\(MulOp\): got dtype int32 in dtypes; expected float dtypes"):
        check_operation(mul, _mul, x, x, dtypes=("int32",))
    with pytest.raises(TypeError, match=r"check_operation\(MulOp\): the function returned list; expected one "
                                        r"RawTensor"):
        check_operation(mul, lambda be, a, b: [be.mul(a, b)], x, x)
    with pytest.raises(DTypeError, match=r"check_operation\(MulOp\): the function returned a tensor of dtype bool; "
                                         r"expected a float result"):
        check_operation(mul, lambda be, a, b: be.greater(a, b), x, x)
    with pytest.raises(TypeError, match=r"check_gradients\(<lambda>\): fn returned RawTensor; expected one Tensor"):
        check_gradients(lambda a: a.raw(), x)


def test_report_and_check_objects():
    check = Check("jax.vjp", "float32", 0, (2,), True, 0.0, 1e-5, (1,), 1.0, 1.0)
    report = GradientReport("demo", [check])
    assert report.ok and report.failures() == []
    assert str(report).startswith("demo: 1 of 1 checks passed")
    assert TOLERANCE["float32"] == 1e-5
