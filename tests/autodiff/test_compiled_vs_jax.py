"""Compiled steps (``jtape.jit``: forward, tape backward with the hand-derived rules, optax update)
against plain jax: the same model written in ``jax.numpy``, differentiated by
``jax.value_and_grad`` and updated by the same optax transformation. Not against eager jtape —
a fault shared by the eager and the compiled tape would pass that comparison.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend

from ..training import cross_entropy_step

STEPS = 5


def _ce(logits, y):
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0])


# -- the models, twice: jtape modules and jnp functions of a parameter list (in named_parameters order) ------
def _mlp(backend):
    return nn.Sequential(nn.Linear(8, 16, backend, seed=0), nn.Tanh(), nn.Linear(16, 3, backend, seed=1))


def _mlp_jnp(params, x):
    w1, b1, w2, b2 = params
    return jnp.tanh(x @ w1.T + b1) @ w2.T + b2


def _cnn(backend):
    return nn.Sequential(nn.Conv2D(2, 4, 3, backend, padding=1, seed=0), nn.ReLU(), nn.MaxPool2D(2),
                         nn.Conv2D(4, 4, (3, 2), backend, stride=(1, 2), seed=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 2 * 2, 3, backend, seed=2))


def _conv(x, w, b, stride, padding):
    out = lax.conv_general_dilated(x, w, stride, padding, dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                   precision=lax.Precision.HIGHEST)
    return out + b.reshape(1, -1, 1, 1)


def _cnn_jnp(params, x):
    k1, c1, k2, c2, w, b = params
    h = jax.nn.relu(_conv(x, k1, c1, (1, 1), [(1, 1), (1, 1)]))
    h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    h = jax.nn.relu(_conv(h, k2, c2, (1, 2), [(0, 0), (0, 0)]))
    return h.reshape(h.shape[0], -1) @ w.T + b


MODELS: dict[str, tuple[Callable, Callable, tuple]] = {
    "mlp": (_mlp, _mlp_jnp, (8,)),
    "cnn": (_cnn, _cnn_jnp, (2, 8, 8)),
}
OPTIMIZERS: dict[str, tuple[Callable, Callable]] = {
    "sgd-nesterov": (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
                     lambda: optax.sgd(0.1, momentum=0.9, nesterov=True)),
    "adam": (lambda ps: optim.Adam(ps, lr=0.01), lambda: optax.adam(0.01)),
}


def _batches(input_shape: tuple, n: int = 16) -> list:
    rng = np.random.default_rng(0)
    return [(rng.standard_normal((n, *input_shape)).astype(np.float32), rng.integers(0, 3, n).astype(np.int32))
            for _ in range(STEPS)]


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_compiled_training_steps_match_jax_value_and_grad(model_name, opt_name):
    build, model_jnp, input_shape = MODELS[model_name]
    make_opt, make_optax = OPTIMIZERS[opt_name]
    backend = autodiff.new(JaxBackend("cpu"))
    model = build(backend)
    opt = make_opt(model.parameters())
    names = [name for name, _ in model.named_parameters()]
    params = [jnp.asarray(p.numpy()) for p in model.parameters()]

    step = jtape.jit(cross_entropy_step(model, opt), state=[model, opt])

    transform = make_optax()
    opt_state = transform.init(params)

    @jax.jit
    def jax_step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(lambda p: _ce(model_jnp(p, x), y))(params)
        updates, opt_state = transform.update(grads, opt_state, params)
        return loss, optax.apply_updates(params, updates), opt_state

    for i, (xs, ys) in enumerate(_batches(input_shape)):
        loss = step(tensor.from_numpy(xs, backend, requires_grad=False), tensor.from_numpy(ys, backend))
        want, params, opt_state = jax_step(params, opt_state, xs, ys)
        np.testing.assert_allclose(loss.item(), float(want), rtol=1e-5, err_msg=f"loss at step {i}")
        for name, p, q in zip(names, model.parameters(), params):
            np.testing.assert_allclose(p.numpy(), np.asarray(q), rtol=1e-4, atol=1e-6,
                                       err_msg=f"{name} after step {i}")


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_compiled_gradients_match_jax_grad(model_name):
    build, model_jnp, input_shape = MODELS[model_name]
    backend = autodiff.new(JaxBackend("cpu"))
    model = build(backend)

    @jtape.jit(state=[model])
    def grads_only(x, y):
        loss = model(x).cross_entropy(y)
        loss.backward()
        return loss

    xs, ys = _batches(input_shape)[0]
    loss = grads_only(tensor.from_numpy(xs, backend, requires_grad=False), tensor.from_numpy(ys, backend))
    params = [jnp.asarray(p.numpy()) for p in model.parameters()]
    want, grads = jax.value_and_grad(lambda p: _ce(model_jnp(p, xs), ys))(params)
    np.testing.assert_allclose(loss.item(), float(want), rtol=1e-6)
    for (name, p), g in zip(model.named_parameters(), grads):
        np.testing.assert_allclose(p.grad.numpy(), np.asarray(g), rtol=1e-4, atol=1e-6, err_msg=name)
