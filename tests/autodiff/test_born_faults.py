"""DESIGN.md's seven faults of Born v0.1–v0.3, each pinned by a test."""

import gc
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtape import autodiff, tensor


def test_1_broadcast_gradient_is_summed_back_to_the_input_shape(backend):
    rng = np.random.default_rng(0)
    a = tensor.from_numpy(rng.standard_normal((4, 3)).astype(np.float32), backend)
    b = tensor.from_numpy(rng.standard_normal((1, 3)).astype(np.float32), backend)
    g = rng.standard_normal((4, 3)).astype(np.float32)
    out = a + b
    grads = backend.tape().backward(backend.from_numpy(g), backend, output=out.raw())
    grad_b = backend.to_numpy(grads[b.raw()])
    assert grad_b.shape == (1, 3)
    np.testing.assert_allclose(grad_b, g.sum(axis=0, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(grads[a.raw()]), g)


RECORDED_BY_BORN_ONLY_SINCE_JTAPE = {
    "cat": lambda x: tensor.cat([x, x], 0),
    "chunk": lambda x: x.chunk(2, 0)[0],
    "gather": lambda x: x.gather(0, tensor.from_numpy(np.array([[1, 0, 1], [0, 0, 0]], np.int32), x.backend)),
    "where": lambda x: x.where(x > 0.0, x * 2.0),
    "expand": lambda x: x.unsqueeze(0).expand((3, 2, 3)),
    "squeeze": lambda x: x.unsqueeze(1).squeeze(1),
    "unsqueeze": lambda x: x.unsqueeze(-1),
    "sum": lambda x: x.sum(),
    "cast": lambda x: x.cast("float64"),
    "add_scalar": lambda x: x.add_scalar(1.0),
    "sub_scalar": lambda x: x.sub_scalar(1.0),
    "mul_scalar": lambda x: x.mul_scalar(3.0),
    "div_scalar": lambda x: x.div_scalar(4.0),
}


@pytest.mark.parametrize("name", sorted(RECORDED_BY_BORN_ONLY_SINCE_JTAPE))
def test_2_every_op_that_can_carry_a_gradient_is_recorded(backend, name):
    x = tensor.from_numpy(np.array([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]], np.float32), backend)
    y = RECORDED_BY_BORN_ONLY_SINCE_JTAPE[name](x)
    assert backend.tape().num_ops() >= 1
    grads = autodiff.backward(y, backend)
    assert x.raw() in grads, f"{name} cut the graph"
    assert grads[x.raw()].shape == x.shape


def test_3_backward_seeds_the_tensor_asked_about(backend):
    x = tensor.from_slice([3.0], (1,), backend)
    y = x * x
    _unrelated = x * 5.0  # recorded last
    grads = autodiff.backward(y, backend)
    np.testing.assert_allclose(backend.to_numpy(grads[x.raw()]), [6.0])


@pytest.mark.parametrize("shape, dim", [((4,), 0), ((3, 4), 0), ((3, 4), -1), ((2, 3, 4), 1), ((2, 3, 4, 5), -3)])
def test_4_softmax_differentiates_along_dim_for_any_rank(backend, shape, dim):
    rng = np.random.default_rng(1)
    xv = rng.standard_normal(shape)
    gv = rng.standard_normal(shape)
    x = tensor.from_numpy(xv, backend)
    out = x.softmax(dim)
    grads = backend.tape().backward(backend.from_numpy(gv), backend, output=out.raw())
    _, vjp = jax.vjp(lambda v: jax.nn.softmax(v, axis=dim), jnp.asarray(xv))
    np.testing.assert_allclose(backend.to_numpy(grads[x.raw()]), vjp(jnp.asarray(gv))[0], rtol=1e-10, atol=1e-12)


def test_5_tensor_backward_and_grad_exist(backend):
    x = tensor.from_slice([2.0], tensor.Shape((1,)), backend)
    y = x.mul(x)
    y.backward()
    assert isinstance(x.grad, tensor.Tensor)
    assert x.grad.item() == 4.0


def test_6_training_loop_keeps_tape_and_memory_flat():
    backend = autodiff.new(__import__("jtape").backends.JaxBackend("cpu"))
    rng = np.random.default_rng(2)
    w = tensor.from_numpy(rng.standard_normal((8, 4)).astype(np.float32), backend)
    xb = tensor.from_numpy(rng.standard_normal((16, 8)).astype(np.float32), backend)
    counts = []
    for step in range(60):
        loss = (xb @ w).tanh().sum()
        loss.backward()
        assert backend.tape().num_ops() == 0
        with backend.no_grad():                      # the update is not recorded
            w = tensor.Tensor(backend.sub(w.raw(), backend.mul_scalar(w.grad.raw(), 0.01)), backend)
        w.requires_grad_()                               # made under no_grad it is a constant: a new leaf
        if step >= 10:
            gc.collect()
            counts.append(len(jax.live_arrays()))
    assert max(counts) - min(counts) <= 2, counts


def test_7_no_grad_in_one_thread_does_not_stop_another(backend):
    inside = threading.Event()
    done = threading.Event()

    def evaluator():
        with backend.no_grad():
            inside.set()
            done.wait(5)

    t = threading.Thread(target=evaluator)
    t.start()
    assert inside.wait(5)
    try:
        x = tensor.ones((2,), backend)
        _ = x * x                                    # recorded: this thread is not in no_grad
        assert backend.tape().num_ops() == 1
        assert backend.tape().is_recording()
    finally:
        done.set()
        t.join()
