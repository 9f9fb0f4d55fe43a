"""``autodiff.jvp``: forward mode from two reverse walks, against ``jax.jvp`` (the oracle)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtape import autodiff, tensor
from jtape.backends import NumpyBackend
from jtape.tensor.errors import BackendError, DTypeError, ShapeError, TapeError

RNG = np.random.default_rng(7)
TOL = {"float32": {"rtol": 2e-4, "atol": 2e-5}, "float64": {"rtol": 1e-10, "atol": 1e-12}}


def mlp_jtape(x, w1, b1, w2):
    return ((x @ w1 + b1).tanh() @ w2).softmax(-1)


def mlp_jax(x, w1, b1, w2):
    return jax.nn.softmax(jnp.tanh(x @ w1 + b1) @ w2, axis=-1)


# name -> (jtape function, jax function, shapes of the primals)
CASES = {
    "sin_of_square": (lambda x: (x * x).sin(), lambda x: jnp.sin(x * x), [(5,)]),
    "exp_times_log": (lambda a, b: a.exp() * (b * b).log(), lambda a, b: jnp.exp(a) * jnp.log(b * b),
                      [(2, 3), (2, 3)]),
    "broadcast_div": (lambda a, b: (a / (b * b + 1.0)).sigmoid(), lambda a, b: jax.nn.sigmoid(a / (b * b + 1.0)),
                      [(4, 3), (1, 3)]),
    "matmul": (lambda a, b: a @ b, lambda a, b: a @ b, [(3, 4), (4, 2)]),
    "batched_matmul": (lambda a, b: (a @ b).tanh(), lambda a, b: jnp.tanh(a @ b), [(2, 3, 4), (4, 5)]),
    "softmax_dim0": (lambda x: x.softmax(0), lambda x: jax.nn.softmax(x, axis=0), [(4, 3)]),
    "softmax_3d": (lambda x: x.softmax(1), lambda x: jax.nn.softmax(x, axis=1), [(2, 5, 3)]),
    "mlp": (mlp_jtape, mlp_jax, [(6, 4), (4, 8), (8,), (8, 3)]),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_jvp_matches_jax_jvp(backend, case, dtype):
    f, f_jax, shapes = CASES[case]
    values = [RNG.standard_normal(s).astype(dtype) for s in shapes]
    directions = [RNG.standard_normal(s).astype(dtype) for s in shapes]
    primals = tuple(tensor.from_numpy(v, backend) for v in values)
    out, tangent = autodiff.jvp(f, primals, tuple(directions))
    want_out, want_tangent = jax.jvp(f_jax, tuple(jnp.asarray(v) for v in values),
                                     tuple(jnp.asarray(d) for d in directions))
    assert tangent.shape == want_tangent.shape and tangent.dtype.value == dtype
    np.testing.assert_allclose(out.numpy(), want_out, **TOL[dtype])
    np.testing.assert_allclose(tangent.numpy(), want_tangent, **TOL[dtype])


def test_jvp_is_linear_in_the_tangent_and_gives_jacobian_columns(backend):
    x = tensor.from_numpy(RNG.standard_normal(3), backend)

    def f(x):
        return (x * x.sum()).tanh()

    columns = [autodiff.jvp(f, x, np.eye(3)[k])[1].numpy() for k in range(3)]
    jac = backend.tape()
    y = f(x)
    rows = jac.jacobian(y, x).numpy()                   # reverse mode: one walk per row
    np.testing.assert_allclose(np.stack(columns, axis=1), rows, rtol=1e-12)
    v = np.array([0.3, -1.2, 2.0])
    np.testing.assert_allclose(autodiff.jvp(f, x, 2.0 * v)[1].numpy(), 2.0 * autodiff.jvp(f, x, v)[1].numpy(),
                               rtol=1e-12)


def test_several_outputs_identity_constant_and_unconnected_inputs(backend):
    a = tensor.from_numpy(np.array([1.0, 2.0]), backend)
    b = tensor.from_numpy(np.array([3.0, -1.0]), backend)
    const = tensor.from_numpy(np.array([5.0, 5.0]), backend)
    outs, tangents = autodiff.jvp(lambda a, b: [a * a, a, const, b], [a, b], [np.ones(2), np.full(2, 0.5)])
    assert isinstance(outs, list) and isinstance(tangents, list) and len(tangents) == 4
    np.testing.assert_allclose(tangents[0].numpy(), [2.0, 4.0])          # d(a²) = 2a · 1
    np.testing.assert_allclose(tangents[1].numpy(), [1.0, 1.0])          # f returned a itself: J = I
    np.testing.assert_allclose(tangents[2].numpy(), [0.0, 0.0])          # a constant
    np.testing.assert_allclose(tangents[3].numpy(), [0.5, 0.5])
    out, tangent = autodiff.jvp(lambda a, b: (a * 2.0,), (a, b), (np.ones(2), np.ones(2)))   # b does not matter
    assert isinstance(out, tuple) and isinstance(tangent, tuple)
    np.testing.assert_allclose(tangent[0].numpy(), [2.0, 2.0])


def test_jvp_leaves_the_tape_and_recording_state_as_they_were(backend):
    tape = backend.tape()
    w = tensor.from_numpy(np.array([0.5, -1.5]), backend)
    loss = (w * w).sum()                                  # the user's own recorded work
    ops = tape.operations()
    x = tensor.from_numpy(np.array([1.0, 2.0]), backend)
    _, tangent = autodiff.jvp(lambda x: (x * w).exp(), x, np.ones(2))   # f reads the user's w
    np.testing.assert_allclose(tangent.numpy(), np.exp([0.5, -3.0]) * [0.5, -1.5], rtol=1e-12)
    assert tape.operations() == ops and not tangent.requires_grad
    loss.backward()                                       # the user's graph still works
    np.testing.assert_allclose(w.grad.numpy(), [1.0, -3.0])
    tape.stop_recording()
    autodiff.jvp(lambda x: x.sin(), x, np.ones(2))
    assert not tape.is_recording() and tape.num_ops() == 0


def test_jvp_of_a_gradient_is_a_hessian_vector_product():
    backend = autodiff.new(NumpyBackend())
    x0 = np.array([0.5, -1.0, 2.0])
    v = np.array([1.0, 0.0, -2.0])

    def grad_f(x):                                        # ∇f for f(x) = Σ sin(x)·x², recorded
        (g,) = backend.tape().gradient((x.sin() * x * x).sum(), [x], create_graph=True)
        return g

    _, hv = autodiff.jvp(grad_f, tensor.from_numpy(x0, backend), v)
    def f(x):
        return jnp.sum(jnp.sin(x) * x * x)

    np.testing.assert_allclose(hv.numpy(), jax.jvp(jax.grad(f), (x0,), (v,))[1], rtol=1e-10)


def test_bad_input_raises_clear_errors(backend):
    x = tensor.from_numpy(np.array([1.0, 2.0]), backend)
    with pytest.raises(TypeError, match="expected a callable"):
        autodiff.jvp("sin", x, np.ones(2))
    with pytest.raises(TypeError, match="expected the same structure"):
        autodiff.jvp(lambda x: x.sin(), (x,), np.ones(2))
    with pytest.raises(TypeError, match="expected the same structure"):
        autodiff.jvp(lambda x: x.sin(), (x,), (np.ones(2), np.ones(2)))
    with pytest.raises(ShapeError, match=r"tangent 0 of shape \(3,\); expected its primal's shape \(2,\)"):
        autodiff.jvp(lambda x: x.sin(), x, np.ones(3))
    with pytest.raises(DTypeError, match="tangent 0 of dtype float32; expected its primal's dtype float64"):
        autodiff.jvp(lambda x: x.sin(), x, tensor.from_numpy(np.ones(2, np.float32), backend))
    with pytest.raises(DTypeError, match="primal 0 of dtype int32"):
        autodiff.jvp(lambda x: x, tensor.from_numpy(np.array([1, 2], np.int32), backend), np.ones(2))
    with pytest.raises(TypeError, match="primal 0 of type ndarray; expected a Tensor"):
        autodiff.jvp(lambda x: x, np.ones(2), np.ones(2))
    with pytest.raises(TypeError, match="f returned a float; expected a Tensor"):
        autodiff.jvp(lambda x: 1.0, x, np.ones(2))
    with pytest.raises(DTypeError, match="f returned output 0 of dtype bool"):
        autodiff.jvp(lambda x: x > 1.0, x, np.ones(2))
    with pytest.raises(ValueError, match="got no primals"):
        autodiff.jvp(lambda: x, (), ())
    other = autodiff.new(NumpyBackend())
    with pytest.raises(BackendError, match="expected all primals on one backend"):
        autodiff.jvp(lambda a, b: a, (x, tensor.from_numpy(np.ones(2), other)), (np.ones(2), np.ones(2)))
    with pytest.raises(TapeError, match="records no tape"):
        plain = NumpyBackend()
        autodiff.jvp(lambda x: x, tensor.from_numpy(np.ones(2), plain), np.ones(2))
    with backend.no_grad(), pytest.raises(TapeError, match="inside no_grad"):
        autodiff.jvp(lambda x: x.sin(), x, np.ones(2))
    assert backend.tape().num_ops() == 0                  # nothing left behind by the failures
