"""Parameter groups: per-group options (each group as optax applied to its own parameters), weight-decay
masks, and hyperparameters changed through ``opt.param_groups`` — eagerly and under ``jtape.jit``,
where the learning rate is an input of the compiled program (no retrace, no baked constant)."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend
from jtape.tensor.errors import ArgumentError

SHAPES = [(3, 2), (2,), (2, 4), (4,)]


def make_params(backend, seed=0):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(tensor.from_numpy(rng.standard_normal(s), backend, "float32")) for s in SHAPES]


def gradients(step):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(s).astype(np.float32) for s in SHAPES]


def run(opt, params, backend, steps=3, before_step=None):
    for k in range(steps):
        if before_step is not None:
            before_step(k, opt)
        opt.step({p.raw(): backend.from_numpy(g, "float32") for p, g in zip(params, gradients(k))})
    return [p.numpy() for p in params]


def optax_on(transform, indices, steps=3, seed=0):
    """``transform`` applied to the parameters at ``indices`` alone, on plain jax arrays."""
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    ps = [jnp.asarray(values[i]) for i in indices]
    state = transform.init(ps)
    for k in range(steps):
        updates, state = transform.update([jnp.asarray(gradients(k)[i]) for i in indices], state, ps)
        ps = optax.apply_updates(ps, updates)
    return [np.asarray(p) for p in ps]


def test_each_group_is_its_optimizer_on_its_parameters(backend):
    params = make_params(backend)
    opt = optim.SGD([{"params": params[:2]}, {"params": params[2:], "lr": 0.01, "momentum": 0.5}],
                    lr=0.1, momentum=0.9)
    got = run(opt, params, backend)
    expected = optax_on(optax.sgd(0.1, momentum=0.9), [0, 1]) + optax_on(optax.sgd(0.01, momentum=0.5), [2, 3])
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.5]
    assert opt.param_groups[1]["params"] == params[2:] and opt.params == params
    assert repr(opt) == "SGD(4 parameters in 2 groups, lr=[0.1, 0.01], steps=3)"


def test_adam_groups_with_their_own_betas_and_a_schedule(backend):
    params = make_params(backend)
    schedule = optax.exponential_decay(0.05, 1, 0.5)
    opt = optim.Adam([{"params": params[:1], "betas": (0.8, 0.9)}, {"params": params[1:], "lr": schedule}], lr=0.01)
    got = run(opt, params, backend)
    expected = optax_on(optax.adam(0.01, 0.8, 0.9), [0]) + optax_on(optax.adam(schedule), [1, 2, 3])
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_changing_lr_takes_effect_at_the_next_step(backend):
    params = make_params(backend)
    opt = optim.SGD([{"params": params[:2]}, {"params": params[2:]}], lr=0.1)
    lrs = {0: (0.1, 0.1), 1: (0.5, 0.1), 2: (0.5, 0.02)}

    def set_lr(k, o):
        o.param_groups[0]["lr"], o.param_groups[1]["lr"] = lrs[k]

    got = run(opt, params, backend, before_step=set_lr)
    rng = np.random.default_rng(0)
    expected = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    for k in range(3):
        for i, g in enumerate(gradients(k)):
            expected[i] = expected[i] - np.float32(lrs[k][0 if i < 2 else 1]) * g
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert opt.current_lr() == 0.5


def _mlp_and_data(seed=0):
    backend = autodiff.new(JaxBackend("cpu"))
    model = nn.Sequential(nn.Linear(4, 8, backend, seed=seed), nn.Tanh(), nn.Linear(8, 2, backend, seed=seed + 1))
    rng = np.random.default_rng(7)
    batches = [(tensor.from_numpy(rng.standard_normal((16, 4)).astype(np.float32), backend, requires_grad=False),
                tensor.from_numpy(rng.standard_normal((16, 2)).astype(np.float32), backend, requires_grad=False))
               for _ in range(6)]
    return backend, model, batches


@pytest.mark.parametrize("compiled", [False, True])
def test_lr_changed_between_compiled_steps_matches_eager(compiled):
    def train(change, compiled):
        _, model, batches = _mlp_and_data()
        opt = optim.Adam([{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.02}], lr=0.05)
        traces = []

        def step(x, y):
            traces.append(1)
            loss = nn.MSELoss()(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss

        step = jtape.jit(step, state=[model, opt]) if compiled else step
        for k, (x, y) in enumerate(batches):
            if change and k == 2:
                opt.param_groups[0]["lr"] = 0.005
            if change and k == 4:
                opt.param_groups[1]["lr"] = 0.1
            step(x, y)
        return [p.numpy() for p in model.parameters()], len(traces)

    eager, _ = train(True, False)
    got, traces = train(True, compiled)
    unchanged, _ = train(False, compiled)
    for a, b in zip(eager, got):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(got, unchanged)) > 1e-3  # the change did something
    if compiled:
        assert traces == 1  # the learning rate is an input of the program: changing it does not retrace


def test_weight_decay_mask_and_a_group_without_decay(backend):
    # Zero gradients: Adam's step is 0, so only the decoupled decay moves a parameter: p <- p (1 - lr λ).
    params = make_params(backend)
    start = [p.numpy() for p in params]
    opt = optim.AdamW(params, lr=0.1, weight_decay=0.5, weight_decay_mask=lambda p: p.ndim > 1)
    opt.step({p.raw(): backend.full(p.shape, 0.0, "float32") for p in params})
    for p, s in zip(params, start):
        np.testing.assert_allclose(p.numpy(), s * (1 - 0.05) if p.ndim > 1 else s, rtol=1e-6)
    params = make_params(backend)
    opt = optim.AdamW([{"params": params[:2]}, {"params": params[2:], "weight_decay": 0.0}], lr=0.1, weight_decay=0.5)
    opt.step({p.raw(): backend.full(p.shape, 0.0, "float32") for p in params})
    np.testing.assert_allclose(params[0].numpy(), start[0] * 0.95, rtol=1e-6)
    np.testing.assert_array_equal(params[2].numpy(), start[2])
    np.testing.assert_array_equal(params[3].numpy(), start[3])


def test_weight_decay_mask_matches_optax(backend):
    params = make_params(backend)
    got = run(optim.AdamW(params, lr=0.01, weight_decay=0.1, weight_decay_mask=lambda p: p.ndim > 1), params, backend)
    mask = [len(s) > 1 for s in SHAPES]
    expected = optax_on(optax.adamw(0.01, weight_decay=0.1, mask=mask), [0, 1, 2, 3])
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_any_injected_optax_transform_takes_per_group_hyperparameters(backend):
    params = make_params(backend)
    tx = optax.inject_hyperparams(optax.rmsprop)(learning_rate=0.01, decay=0.9)
    opt = optim.Optimizer([{"params": params[:2]}, {"params": params[2:], "learning_rate": 0.003}], tx)
    assert opt.param_groups[0]["learning_rate"] == pytest.approx(0.01)
    got = run(opt, params, backend)
    expected = optax_on(optax.rmsprop(0.01, decay=0.9), [0, 1]) + optax_on(optax.rmsprop(0.003, decay=0.9), [2, 3])
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert opt.current_lr() == pytest.approx(0.01)


def test_options_that_fix_the_update_cannot_change(backend):
    params = make_params(backend)
    opt = optim.SGD([{"params": params[:2], "momentum": 0.9, "nesterov": True}, {"params": params[2:]}], lr=0.1)
    opt.param_groups[0]["nesterov"] = False
    with pytest.raises(ArgumentError, match=r"param_groups\[0\]\['nesterov'\] changed from True to False; "
                                            r"expected changes only to \['lr', 'momentum'\]"):
        run(opt, params, backend, steps=1)
    opt.param_groups[0]["nesterov"] = True
    opt.param_groups[1]["momentum"] = 0.9   # built without momentum: no momentum state to use
    with pytest.raises(ArgumentError, match=r"param_groups\[1\]\['momentum'\] changed from 0.0 to 0.9"):
        run(opt, params, backend, steps=1)
    opt.param_groups[1]["momentum"] = 0.0
    opt.param_groups[0]["momentum"] = 0.5   # a momentum that was not 0 may change
    run(opt, params, backend, steps=1)


def test_group_errors(backend):
    params = make_params(backend)
    with pytest.raises(ArgumentError, match=r"parameter group 1 has options \['learning_rate'\]; expected options "
                                            r"among \['lr', 'momentum'"):
        optim.SGD([{"params": params[:2]}, {"params": params[2:], "learning_rate": 0.1}], lr=0.1)
    with pytest.raises(ArgumentError, match="is in more than one parameter group"):
        optim.SGD([{"params": params[:2]}, {"params": params[1:]}], lr=0.1)
    with pytest.raises(ArgumentError, match="expected a 'params' entry"):
        optim.Adam([{"lr": 0.1}])
    with pytest.raises(ArgumentError, match="mixing Parameters and dicts"):
        optim.Adam([params[0], {"params": params[1:]}])
    with pytest.raises(ValueError, match="got no parameters"):
        optim.Adam([{"params": []}])
    with pytest.raises(ArgumentError, match="weight_decay_mask: got a list; expected a callable"):
        optim.AdamW(params, weight_decay_mask=[True, False])
    with pytest.raises(ArgumentError, match="group 0 has options"):
        optim.Optimizer([{"params": params, "lr": 0.1}], optax.sgd(0.1))   # nothing injected to set
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    with pytest.raises(ArgumentError, match="option 'learning_rate' is a schedule; expected a number"):
        optim.Optimizer([{"params": params, "learning_rate": optax.linear_schedule(0.1, 0.0, 5)}], tx)


def test_an_empty_group_is_allowed(backend):
    params = make_params(backend)
    opt = optim.AdamW([{"params": params}, {"params": [], "weight_decay": 0.0}])   # e.g. a model without biases
    run(opt, params, backend, steps=1)
    assert opt.param_groups[1]["params"] == []
