"""``optim.clip_grad_norm_`` (optax's clip_by_global_norm maths, on ``.grad`` in place) eagerly and under
``jtape.jit``, and ``optax.contrib.reduce_on_plateau`` driven by ``opt.step(value=loss)``."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend
from jtape.tensor.errors import ArgumentError

SHAPES = [(3, 2), (2,), (4,)]


def with_grads(backend, scale, seed=0):
    rng = np.random.default_rng(seed)
    params = [nn.Parameter(tensor.from_numpy(rng.standard_normal(s), backend, "float32")) for s in SHAPES]
    grads = [scale * rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    for p, g in zip(params, grads):
        p.grad = tensor.from_numpy(g, backend, "float32")
    return params, grads


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_large_gradients_are_scaled_to_max_norm(backend, norm_type):
    params, grads = with_grads(backend, 10.0)
    flat = np.concatenate([g.ravel() for g in grads])
    expected = np.linalg.norm(flat, ord=norm_type)
    total = optim.clip_grad_norm_(params, max_norm=1.0, norm_type=norm_type)
    assert isinstance(total, tensor.Tensor) and total.shape == ()
    np.testing.assert_allclose(total.item(), expected, rtol=1e-5)
    clipped = np.concatenate([p.grad.numpy().ravel() for p in params])
    np.testing.assert_allclose(clipped, flat / expected, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(clipped, ord=norm_type), 1.0, rtol=1e-5)
    assert all(p.grad.dtype.value == "float32" for p in params)


def test_small_gradients_are_left_alone_and_optax_agrees(backend):
    params, grads = with_grads(backend, 0.01)
    total = optim.clip_grad_norm_(params, 5.0)
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(p.grad.numpy(), g)
    assert total.item() < 5.0
    params, grads = with_grads(backend, 3.0)
    optim.clip_grad_norm_(params, 2.0)
    expected, _ = optax.clip_by_global_norm(2.0).update([jnp.asarray(g) for g in grads], optax.EmptyState())
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.grad.numpy(), np.asarray(e), rtol=1e-6)


def test_parameters_without_grad_are_skipped_and_errors_are_clear(backend):
    params, grads = with_grads(backend, 10.0)
    params[1].zero_grad()
    total = optim.clip_grad_norm_(params, 1.0)
    np.testing.assert_allclose(total.item(), np.linalg.norm(np.concatenate([grads[0].ravel(), grads[2].ravel()])),
                               rtol=1e-5)
    assert params[1].grad is None
    with pytest.raises(ValueError, match="max_norm: got 0; expected a number > 0"):
        optim.clip_grad_norm_(params, 0)
    with pytest.raises(ValueError, match="norm_type: got -1.0; expected > 0"):
        optim.clip_grad_norm_(params, 1.0, norm_type=-1)
    for p in params:
        p.zero_grad()
    with pytest.raises(ValueError, match=r"no parameter has a \.grad"):
        optim.clip_grad_norm_(params, 1.0)
    with pytest.raises(ArgumentError, match="got a int; expected Parameters"):
        optim.clip_grad_norm_([3], 1.0)


def test_clipping_inside_jtape_jit_matches_eager():
    def train(compiled):
        backend = autodiff.new(JaxBackend("cpu"))
        model = nn.Sequential(nn.Linear(4, 8, backend, seed=0), nn.Tanh(), nn.Linear(8, 2, backend, seed=1))
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        rng = np.random.default_rng(3)
        norms = []

        def step(x, y):
            loss = nn.MSELoss()(model(x), y)
            loss.backward()
            norm = optim.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
            opt.zero_grad()
            return norm

        step = jtape.jit(step, state=[model, opt]) if compiled else step
        for _ in range(4):
            x = tensor.from_numpy(rng.standard_normal((16, 4)).astype(np.float32), backend, requires_grad=False)
            y = tensor.from_numpy(10 * rng.standard_normal((16, 2)).astype(np.float32), backend, requires_grad=False)
            norms.append(step(x, y).item())
        return norms, [p.numpy() for p in model.parameters()]

    eager_norms, eager = train(False)
    norms, got = train(True)
    assert min(eager_norms) > 0.5   # every step clipped
    np.testing.assert_allclose(norms, eager_norms, rtol=1e-5)
    for a, b in zip(eager, got):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _plateau_steps(backend, losses):
    """The size of each step of SGD(lr=1) on a gradient of ones, reduced on a plateau of ``losses``."""
    p = nn.Parameter(tensor.zeros((2,), backend, "float32"))
    tx = optax.chain(optax.sgd(1.0), optax.contrib.reduce_on_plateau(factor=0.5, patience=2, cooldown=0))
    opt = optim.Optimizer([p], tx)
    sizes = []
    for loss in losses:
        before = p.numpy()[0]
        opt.step({p.raw(): backend.full((2,), 1.0, "float32")}, value=loss)
        sizes.append(float(before - p.numpy()[0]))
    return sizes, opt


def test_reduce_on_plateau_halves_the_lr_after_patience_steps_without_improvement(backend):
    sizes, opt = _plateau_steps(backend, [5.0, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0])
    tx = optax.chain(optax.sgd(1.0), optax.contrib.reduce_on_plateau(factor=0.5, patience=2, cooldown=0))
    state, expected, x = tx.init(jnp.zeros(2)), [], jnp.zeros(2)
    for loss in [5.0, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]:
        updates, state = tx.update(jnp.ones(2), state, x, value=jnp.asarray(loss))
        expected.append(-float(updates[0]))
    np.testing.assert_allclose(sizes, expected, rtol=1e-6)
    assert sizes[:3] == [1.0, 1.0, 1.0] and sizes[-1] < 0.5   # improving: full steps; on the plateau: reduced
    assert float(opt.state[0][1].scale) < 1.0
    improving, _ = _plateau_steps(backend, [9.0, 8.0, 7.0, 6.0, 5.0, 4.0])
    assert improving == [1.0] * 6


def test_a_transform_that_watches_the_loss_asks_for_value(backend):
    p = nn.Parameter(tensor.zeros((2,), backend, "float32"))
    opt = optim.Optimizer([p], optax.chain(optax.sgd(1.0), optax.contrib.reduce_on_plateau()))
    with pytest.raises(ArgumentError, match=r"needs value=.*got no value; expected opt.step\(value=loss\)"):
        opt.step({p.raw(): backend.full((2,), 1.0, "float32")})


def test_reduce_on_plateau_under_jtape_jit():
    def train(compiled):
        backend = autodiff.new(JaxBackend("cpu"))
        model = nn.Linear(3, 1, backend, seed=0)
        tx = optax.chain(optax.adam(0.5), optax.contrib.reduce_on_plateau(factor=0.5, patience=1))
        opt = optim.Optimizer(model.parameters(), tx)
        x = tensor.from_numpy(np.ones((4, 3), np.float32), backend, requires_grad=False)
        y = tensor.from_numpy(np.full((4, 1), 3.0, np.float32), backend, requires_grad=False)

        def step(x, y):
            loss = nn.MSELoss()(model(x), y)
            loss.backward()
            opt.step(value=loss)
            opt.zero_grad()
            return loss

        step = jtape.jit(step, state=[model, opt]) if compiled else step
        losses = [step(x, y).item() for _ in range(12)]
        return losses, float(opt.state[0][1].scale)

    eager, eager_scale = train(False)
    compiled, scale = train(True)
    np.testing.assert_allclose(compiled, eager, rtol=1e-5, atol=1e-6)
    assert scale == eager_scale < 1.0   # Adam at lr 0.5 overshoots, the loss stalls, the lr is reduced
