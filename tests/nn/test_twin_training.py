"""The tape trains like jax: one digits MLP trained twice from the same weights on the same batches.

Once with jtape (``jtape.nn`` forward on the tape, the hand-derived rules for the gradients,
``jtape.optim.SGD``), once in plain jax (``jax.value_and_grad`` of the same maths, the same
``optax.sgd``). The two loss curves must agree step by step for 50 SGD steps, on both inner
backends: 1e-4 relative in float32, 1e-10 in float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtape import autodiff, nn, optim, tensor

STEPS, BATCH, HIDDEN, LR, MOMENTUM = 50, 32, 32, 0.1, 0.9


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    d = load_digits()
    return (d.data / 16.0), d.target.astype(np.int32)


def initial_weights(seed=0):
    rng = np.random.default_rng(seed)
    return {"0.weight": rng.normal(0, 1 / 8, (HIDDEN, 64)), "0.bias": rng.normal(0, 0.1, HIDDEN),
            "2.weight": rng.normal(0, 1 / np.sqrt(HIDDEN), (10, HIDDEN)), "2.bias": np.zeros(10)}


def batches(n, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.choice(n, BATCH, replace=False) for _ in range(STEPS)]


def train_with_tape(inner, x_all, y_all, weights, dtype):
    backend = autodiff.new(inner)
    model = nn.Sequential(nn.Linear(64, HIDDEN, backend, seed=5, dtype=dtype), nn.ReLU(),
                          nn.Linear(HIDDEN, 10, backend, seed=6, dtype=dtype))
    model.load_state_dict(weights)
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for idx in batches(len(x_all)):
        x = tensor.from_numpy(x_all[idx], backend, dtype)
        loss = loss_fn(model(x), y_all[idx])
        grads = autodiff.backward(loss, backend)
        backend.tape().clear()
        opt.step(grads)
        losses.append(loss.item())
    assert all(p.dtype.value == dtype for p in model.parameters())
    return np.array(losses), model.state_dict()


def train_with_jax(x_all, y_all, weights, dtype):
    params = {k: jnp.asarray(v, dtype) for k, v in weights.items()}

    def loss_fn(params, x, y):
        h = jax.nn.relu(x @ params["0.weight"].T + params["0.bias"])
        logits = h @ params["2.weight"].T + params["2.bias"]
        picked = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
        return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)

    tx = optax.sgd(LR, momentum=MOMENTUM)
    state = tx.init(params)
    losses = []
    for idx in batches(len(x_all)):
        loss, g = jax.value_and_grad(loss_fn)(params, jnp.asarray(x_all[idx], dtype), jnp.asarray(y_all[idx]))
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        losses.append(float(loss))
    return np.array(losses), {k: np.asarray(v) for k, v in params.items()}


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-4), ("float64", 1e-10)])
def test_tape_and_jax_train_the_same(inner, digits, dtype, rtol):
    x_all, y_all = digits
    weights = initial_weights()
    tape_losses, tape_weights = train_with_tape(inner, x_all, y_all, weights, dtype)
    jax_losses, jax_weights = train_with_jax(x_all, y_all, weights, dtype)
    assert tape_losses[-10:].mean() < 0.5 * tape_losses[:10].mean()  # it really trained
    np.testing.assert_allclose(tape_losses, jax_losses, rtol=rtol)
    for name, w in jax_weights.items():
        np.testing.assert_allclose(tape_weights[name], w, rtol=100 * rtol, atol=100 * rtol)
