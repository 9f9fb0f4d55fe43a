"""SGD, Adam, AdamW: each matches optax applied directly to the same gradients.

Three steps with random gradients, given both ways (the tape's gradient map and ``.grad``),
on both inner backends, in float32 and float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend
from jtape.tensor.errors import DTypeError

SHAPES = [(3, 2), (2,)]
STEPS = 3


def make_params(backend, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(tensor.from_numpy(rng.standard_normal(s), backend, dtype)) for s in SHAPES]


def gradient_steps(seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in SHAPES] for _ in range(STEPS)]


def optax_reference(transform, dtype, seed=0):
    """The parameters after STEPS updates by ``transform``, run on plain jax arrays."""
    rng = np.random.default_rng(seed)
    params = [jnp.asarray(rng.standard_normal(s), dtype) for s in SHAPES]
    state = transform.init(params)
    for grads in gradient_steps():
        updates, state = transform.update([jnp.asarray(g, dtype) for g in grads], state, params)
        params = optax.apply_updates(params, updates)
    return [np.asarray(p) for p in params]


CASES = {
    "sgd": (lambda ps: optim.SGD(ps, lr=0.1), optax.sgd(0.1)),
    "sgd_momentum": (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), optax.sgd(0.1, momentum=0.9)),
    "sgd_nesterov": (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
                     optax.sgd(0.1, momentum=0.9, nesterov=True)),
    "sgd_weight_decay": (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.5, weight_decay=0.01),
                         optax.chain(optax.add_decayed_weights(0.01), optax.sgd(0.1, momentum=0.5))),
    "adam": (lambda ps: optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6), optax.adam(0.01, 0.8, 0.99, 1e-6)),
    "adam_l2": (lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.1),
                optax.chain(optax.add_decayed_weights(0.1), optax.adam(0.01))),
    "adamw": (lambda ps: optim.AdamW(ps, lr=0.01, weight_decay=0.1), optax.adamw(0.01, weight_decay=0.1)),
    "schedule": (lambda ps: optim.SGD(ps, lr=optax.exponential_decay(0.1, 1, 0.5), momentum=0.9),
                 optax.sgd(optax.exponential_decay(0.1, 1, 0.5), momentum=0.9)),
    "any_transform": (lambda ps: optim.Optimizer(ps, optax.rmsprop(0.01)), optax.rmsprop(0.01)),
}
TOL = {"float32": 1e-6, "float64": 1e-13}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("via", ["grads_map", "dot_grad"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_optax(backend, case, via, dtype):
    make_opt, transform = CASES[case]
    params = make_params(backend, dtype)
    opt = make_opt(params)
    for grads in gradient_steps():
        raws = [backend.from_numpy(g, dtype) for g in grads]
        if via == "grads_map":
            opt.step({p.raw(): g for p, g in zip(params, raws)})
        else:
            for p, g in zip(params, raws):
                p.grad = tensor.Tensor(g, backend)
            opt.step()
            opt.zero_grad()
    assert opt.steps == STEPS
    for p, expected in zip(params, optax_reference(transform, dtype)):
        assert p.dtype.value == dtype
        assert isinstance(p.data, jax.Array if isinstance(backend.inner(), JaxBackend) else np.ndarray)
        np.testing.assert_allclose(p.numpy(), expected, rtol=TOL[dtype], atol=TOL[dtype])


def test_parameters_keep_their_array_kind_and_dtype(backend):
    params = make_params(backend, "float32") + [nn.Parameter(tensor.ones((2,), backend, "bfloat16"))]
    kinds = [type(p.data) for p in params]
    opt = optim.Adam(params, lr=optax.linear_schedule(0.1, 0.0, 10))  # a float64 lr under x64
    opt.step({p.raw(): backend.full(p.shape, 1.0, p.dtype) for p in params})
    assert [type(p.data) for p in params] == kinds
    assert [p.dtype.value for p in params] == ["float32", "float32", "bfloat16"]


def test_step_replaces_raw_keeps_grad_and_records_nothing(backend):
    layer = nn.Linear(3, 2, backend, seed=0)
    x = tensor.ones((4, 3), backend)
    layer(x).sum().backward()
    old_raw, old_values, grad = layer.weight.raw(), layer.weight.numpy(), layer.weight.grad.numpy()
    opt = optim.SGD(layer.parameters(), lr=0.5)
    layer(x)  # leave something on the tape: the step must not add to it
    ops = backend.tape().num_ops()
    opt.step()
    assert backend.tape().num_ops() == ops
    assert layer.weight.raw() is not old_raw
    np.testing.assert_array_equal(backend.to_numpy(old_raw), old_values)  # the old RawTensor is untouched
    np.testing.assert_allclose(layer.weight.grad.numpy(), grad)           # .grad moved to the new one
    np.testing.assert_allclose(layer.weight.numpy(), old_values - 0.5 * grad, rtol=1e-6)
    opt.zero_grad()
    assert all(p.grad is None for p in layer.parameters())


def test_step_with_grads_and_with_dot_grad_agree(backend):
    def one_step(use_map):
        model = nn.Sequential(nn.Linear(4, 3, backend, seed=0), nn.Tanh(), nn.Linear(3, 2, backend, seed=1))
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(2):
            loss = nn.MSELoss()(model(tensor.randn((5, 4), backend, seed=2)), np.ones((5, 2)))
            if use_map:
                grads = autodiff.backward(loss, backend)
                backend.tape().clear()
                opt.step(grads)
            else:
                loss.backward()
                opt.step()
                opt.zero_grad()
        return [p.numpy() for p in model.parameters()]
    for a, b in zip(one_step(True), one_step(False)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_a_parameter_without_gradient_gets_zeros(backend):
    used, unused = make_params(backend, "float32")[0], make_params(backend, "float32", seed=5)[1]
    before = unused.numpy()
    opt = optim.SGD([used, unused], lr=0.1)
    opt.step({used.raw(): backend.full(used.shape, 1.0, "float32")})
    np.testing.assert_array_equal(unused.numpy(), before)
    with pytest.raises(ValueError, match="the gradient map has no entry for any parameter"):
        opt.step({})
    with pytest.raises(ValueError, match=r"no parameter has a \.grad"):
        opt.step()


def test_loss_goes_down(backend):
    layer = nn.Linear(2, 1, backend, seed=0)
    x = tensor.from_numpy(np.random.default_rng(0).standard_normal((32, 2)), backend, "float32")
    y = x.numpy() @ np.array([[2.0], [-1.0]]) + 0.5
    opt = optim.AdamW(layer.parameters(), lr=0.1, weight_decay=0.0)
    losses = []
    for _ in range(100):
        loss = nn.MSELoss()(layer(x), y)
        losses.append(loss.item())
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert losses[-1] < 1e-3 * losses[0]


def test_schedules_and_current_lr(backend):
    params = make_params(backend, "float32")
    opt = optim.SGD(params, lr=optax.piecewise_constant_schedule(1.0, {2: 0.1}))
    assert opt.current_lr() == 1.0
    lrs = []
    for _ in range(3):
        before = params[1].numpy()
        opt.step({params[1].raw(): backend.full((2,), 1.0, "float32")})
        lrs.append(float(np.mean(before - params[1].numpy())))
    np.testing.assert_allclose(lrs, [1.0, 1.0, 0.1], rtol=1e-6)
    assert opt.current_lr() == pytest.approx(0.1)
    assert optim.Adam(params, lr=0.5).current_lr() == 0.5
    assert optim.Optimizer(params, optax.sgd(0.1)).current_lr() is None


def test_constructor_errors(backend):
    params = make_params(backend, "float32")
    with pytest.raises(TypeError, match="got a Tensor; expected Parameters"):
        optim.SGD([tensor.ones((1,), backend)], lr=0.1)
    with pytest.raises(ValueError, match="got no parameters"):
        optim.Adam([], lr=0.1)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        optim.SGD(params, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="weight_decay: got -1"):
        optim.SGD(params, lr=0.1, weight_decay=-1)
    assert len(optim.SGD(params + params, lr=0.1).params) == 2  # each parameter once
    assert repr(optim.SGD(params, lr=0.1)) == "SGD(2 parameters, lr=0.1, steps=0)"


def test_float64_needs_x64(backend):
    # Without x64, jnp.asarray would silently round float64 parameters to float32.
    params = make_params(backend, "float64")
    with jax.enable_x64(False), pytest.raises(DTypeError, match="needs JAX's 64-bit mode"):
        optim.SGD(params, lr=0.1)
