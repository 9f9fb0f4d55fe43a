"""The tape itself: recording, the reverse walk, fan-out, seeding, errors, Tensor.backward."""

import numpy as np
import pytest

from jtape import autodiff, tensor
from jtape.ops import MulOp, Operation
from jtape.tensor.errors import DTypeError, ShapeError, TapeError


def arr(t):
    return np.asarray(t.numpy() if hasattr(t, "numpy") else t.data)


def test_seed_example_tensor_backward(backend):
    # The seed's package example, literally.
    x = tensor.from_slice([2.0], tensor.Shape((1,)), backend)
    y = x.mul(x)
    y.backward()
    assert x.grad.dtype == tensor.float32
    np.testing.assert_array_equal(arr(x.grad), [4.0])


def test_seed_example_backward_function(backend):
    # The seed's Backward example, literally.
    backend.tape().start_recording()
    x = tensor.ones((2,), backend)
    y = x.mul(x)
    gradients = autodiff.backward(y, backend)
    np.testing.assert_array_equal(backend.to_numpy(gradients[x.raw()]), [2.0, 2.0])


def test_tape_records_in_order_and_clears(backend):
    tape = backend.tape()
    assert tape.is_recording() and tape.num_ops() == 0
    x = tensor.from_numpy(np.array([1.0, 2.0], np.float32), backend)
    y = (x * x).exp().sum()
    assert [op.name for op in tape.operations()] == ["Mul", "Exp", "Sum"]
    assert tape.operations()[-1].output() is y.raw()
    tape.clear()
    assert tape.num_ops() == 0 and tape.is_recording()


def test_stop_and_start_recording(backend):
    tape = backend.tape()
    x = tensor.ones((2,), backend)
    tape.stop_recording()
    _ = x * x
    assert tape.num_ops() == 0 and not tape.is_recording()
    tape.start_recording()
    _ = x * x
    assert tape.num_ops() == 1


def test_new_gradient_tape_and_record():
    tape = autodiff.new_gradient_tape()
    assert not tape.is_recording()
    backend = autodiff.AutodiffBackend(__import__("jtape").backends.NumpyBackend(), tape)
    x = tensor.ones((3,), backend)
    _ = x * x
    assert tape.num_ops() == 0  # not recording yet
    tape.start_recording()
    y = x * x
    assert tape.num_ops() == 1
    tape.record(MulOp(y.raw(), x.raw(), x.raw()))  # record() appends while recording
    assert tape.num_ops() == 2


def test_backward_defaults_to_last_op_like_born(backend):
    x = tensor.from_slice([3.0], (1,), backend)
    y = x * x
    seed = backend.full((1,), 1.0, "float32")
    grads = backend.tape().backward(seed, backend)
    assert grads[y.raw()] is seed
    np.testing.assert_allclose(backend.to_numpy(grads[x.raw()]), [6.0])


def test_fan_out_gradients_add_up(backend):
    x = tensor.from_slice([3.0, -1.0], (2,), backend)
    y = x * x + x * 2.0 + x          # dy/dx = 2x + 3
    y.sum().backward()
    np.testing.assert_allclose(arr(x.grad), [9.0, 1.0])


def test_diamond(backend):
    x = tensor.from_slice([0.5], (1,), backend)
    a = x.sin()
    b = x.cos()
    y = a * b                        # d/dx sin x cos x = cos 2x
    y.backward()
    np.testing.assert_allclose(arr(x.grad), np.cos(1.0), rtol=1e-6)


def test_grad_accumulates_across_backward_calls_until_zero_grad(backend):
    x = tensor.from_slice([2.0], (1,), backend)
    (x * x).backward()
    (x * x).backward()
    np.testing.assert_allclose(arr(x.grad), [8.0])
    x.zero_grad()
    assert x.grad is None
    (x * 3.0).backward()
    np.testing.assert_allclose(arr(x.grad), [3.0])


def test_backward_clears_tape_and_second_backward_raises(backend):
    x = tensor.from_slice([2.0], (1,), backend)
    y = x * x
    y.backward()
    assert backend.tape().num_ops() == 0
    with pytest.raises(TapeError, match="tape is empty|not produced by an op on this tape"):
        y.backward()


def test_retain_graph_keeps_tape(backend):
    x = tensor.from_slice([2.0], (1,), backend)
    y = x * x
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(arr(x.grad), [8.0])


def test_only_leaves_get_grad(backend):
    x = tensor.from_slice([2.0], (1,), backend)
    h = x * x
    y = h * 3.0
    y.backward()
    assert h.grad is None
    np.testing.assert_allclose(arr(x.grad), [12.0])


def test_backward_with_explicit_seed(backend):
    x = tensor.from_slice([1.0, 2.0], (2,), backend)
    y = x * x
    y.backward(tensor.from_slice([10.0, 100.0], (2,), backend))
    np.testing.assert_allclose(arr(x.grad), [20.0, 400.0])


def test_errors_name_what_went_wrong(backend):
    x = tensor.from_slice([2.0], (1,), backend)
    with pytest.raises(TapeError, match="tape is empty"):
        autodiff.backward(x, backend)
    y = x * x
    lone = tensor.ones((1,), backend)
    with pytest.raises(TapeError, match="not produced by an op on this tape"):
        autodiff.backward(lone, backend)
    ints = tensor.from_numpy(np.array([1, 2], np.int32), backend)
    with pytest.raises(DTypeError, match="backward: got a tensor of dtype int32; expected a float tensor"):
        autodiff.backward(ints * ints, backend)
    with pytest.raises(ShapeError, match=r"backward \(output_grad\): got a gradient of shape \(3,\); expected .* \(1,\)"):
        backend.tape().backward(backend.full((3,), 1.0, "float32"), backend, output=y.raw())
    with pytest.raises(DTypeError, match="expected the tensor's dtype float32"):
        backend.tape().backward(backend.full((1,), 1.0, "float64"), backend, output=y.raw())
    # The tape is still usable after those errors.
    np.testing.assert_allclose(backend.to_numpy(autodiff.backward(y, backend)[x.raw()]), [4.0])


def test_plain_backend_has_no_tape(inner):
    x = tensor.ones((1,), inner)
    with pytest.raises(TapeError, match="records no tape; expected an AutodiffBackend"):
        (x * x).backward()


class _BadCount(Operation):
    """Derivation: deliberately wrong (returns no gradient list of the right length)."""

    def backward(self, g, backend):
        return []


class _BadShape(Operation):
    """Derivation: deliberately wrong shape."""

    def backward(self, g, backend):
        return [backend.full((7,), 0, g.dtype)]


class _BadDtype(Operation):
    """Derivation: deliberately wrong dtype."""

    def backward(self, g, backend):
        return [backend.cast(g, "float64")]


@pytest.mark.parametrize("op_class, error, match", [
    (_BadCount, TapeError, "_BadCount.backward returned 0 gradients for 1 inputs"),
    (_BadShape, ShapeError, r"_BadShape input 0: got a gradient of shape \(7,\); expected the tensor's shape \(2,\)"),
    (_BadDtype, DTypeError, "_BadDtype input 0: got a gradient of dtype float64; expected the tensor's dtype float32"),
])
def test_engine_checks_every_rule_result(backend, op_class, error, match):
    x = tensor.ones((2,), backend)
    out = backend.inner().exp(x.raw())
    backend.tape().record(op_class(out, x.raw()))
    with pytest.raises(error, match=match):
        backend.tape().backward(backend.full((2,), 1.0, "float32"), backend, output=out)


def test_gradient_tf_style(backend):
    x = tensor.from_slice([1.0, 2.0], (2,), backend)
    w = tensor.from_slice([3.0], (1,), backend)
    unused = tensor.ones((3,), backend)
    y = (x * w).sum()
    tape = backend.tape()
    got = tape.gradient(y, {"x": x, "pair": [w, unused]})
    np.testing.assert_allclose(arr(got["x"]), [3.0, 3.0])
    np.testing.assert_allclose(arr(got["pair"][0]), [3.0])
    assert got["pair"][1] is None
    got = tape.gradient(y, [unused], unconnected_gradients="zero")
    np.testing.assert_array_equal(arr(got[0]), np.zeros(3))
    got = tape.gradient([y], (w.raw(),), output_gradients=[tensor.full((), 2.0, backend)])
    np.testing.assert_allclose(backend.to_numpy(got[0]), [6.0])
    with pytest.raises(ValueError, match="unconnected_gradients='nope'"):
        tape.gradient(y, [x], unconnected_gradients="nope")


def test_gradient_keeps_the_sources_structure(backend):
    """A flat list or tuple (the fast path, without jax's tree functions) and every other nest give
    the same gradients in the same structure: list, tuple, a Parameter, RawTensors mixed in, a
    namedtuple, a dict, a list of lists, an empty list."""
    from collections import namedtuple

    from jtape import nn

    x = tensor.from_slice([1.0, 2.0], (2,), backend)
    w = nn.Parameter(tensor.from_slice([3.0], (1,), backend))
    unused = tensor.ones((3,), backend)
    Pair = namedtuple("Pair", "x w")

    def grads(sources):
        y = (x * w).sum()
        return backend.tape().gradient(y, sources)

    g = grads([x, w.raw(), unused])
    assert type(g) is list and isinstance(g[0], tensor.Tensor) and not isinstance(g[1], tensor.Tensor)
    np.testing.assert_allclose(arr(g[0]), [3.0, 3.0])
    np.testing.assert_allclose(backend.to_numpy(g[1]), [3.0])
    assert g[2] is None
    g = grads((w, x))
    assert type(g) is tuple and type(g[0]) is tensor.Tensor      # a Parameter's gradient is a plain Tensor
    np.testing.assert_allclose(arr(g[0]), [3.0])
    g = grads(Pair(x, w))
    assert type(g) is Pair
    np.testing.assert_allclose(arr(g.w), [3.0])
    g = grads([[x], (w,)])
    assert type(g) is list and type(g[0]) is list and type(g[1]) is tuple
    np.testing.assert_allclose(arr(g[1][0]), [3.0])
    assert grads([]) == []
    assert backend.tape().gradient((x * w).sum(), [unused], unconnected_gradients="zero")[0].shape == (3,)


def test_deep_chain_is_iterative(backend):
    # Far deeper than Python's recursion limit: the walk must not recurse.
    x = tensor.from_slice([1.0], (1,), backend)
    y = x
    for _ in range(3000):
        y = y.add_scalar(0.0)
    y = y.mul_scalar(2.0)
    y.backward()
    np.testing.assert_allclose(arr(x.grad), [2.0])


def test_requires_grad_false_marks_constants(backend):
    data = tensor.from_numpy(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), backend, requires_grad=False)
    w = tensor.from_slice([0.5, -1.0], (2, 1), backend)
    scaled = data * 2.0                               # reads only a constant: not recorded
    assert backend.tape().num_ops() == 0 and not scaled.requires_grad
    loss = (scaled @ w).sum()
    assert [op.name for op in backend.tape().operations()] == ["MatMul", "Sum"]
    loss.backward()
    assert data.grad is None and scaled.grad is None
    np.testing.assert_allclose(arr(w.grad), [[8.0], [12.0]])
    assert not w.detach().requires_grad and w.requires_grad
    assert w.requires_grad_(False) is w and not w.requires_grad
