"""no_grad: context manager and function form, nesting, exceptions."""

import pytest

from jtape import autodiff, tensor


def test_context_manager_and_function_form(backend):
    x = tensor.ones((2,), backend)
    with backend.no_grad():
        _ = x * x
    assert backend.tape().num_ops() == 0
    result = backend.no_grad(lambda: (x * x).sum())
    assert backend.tape().num_ops() == 0 and result.item() == 2.0
    _ = x * x
    assert backend.tape().num_ops() == 1


def test_nesting_and_exception_restore(backend):
    x = tensor.ones((2,), backend)
    with backend.no_grad():
        with autodiff.no_grad():
            _ = x * x
        _ = x * x
        assert not backend.tape().is_recording()
    assert backend.tape().is_recording()
    with pytest.raises(RuntimeError, match="^boom$"):
        with backend.no_grad():
            raise RuntimeError("boom")
    assert autodiff.is_grad_enabled()
    _ = x * x
    assert backend.tape().num_ops() == 1


def test_comparisons_and_integer_results_pass_through(backend):
    x = tensor.from_slice([1.0, -1.0], (2,), backend)
    _ = x > 0.0
    _ = x.argmax(0)
    i = tensor.arange(3, backend=backend)
    _ = i * i
    _ = (x > 0.0).cast("float32")
    assert backend.tape().num_ops() == 0
