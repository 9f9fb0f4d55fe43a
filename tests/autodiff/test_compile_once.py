"""A jtape.jit step compiles once: the fresh optimizer state (optax's init, uncommitted) and the
state every call returns (committed) must not look like two placements to jax.jit."""

from __future__ import annotations

import logging

import jax
import numpy as np

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend


def _compiled_adam_step():
    """A small model, Adam, and its compiled step (forward, backward, update) with an input."""
    backend = autodiff.new(JaxBackend("cpu"))
    model = nn.Sequential(nn.Linear(4, 8, backend, seed=0), nn.ReLU(), nn.Linear(8, 1, backend, seed=1))
    opt = optim.Adam(model.parameters(), lr=1e-2)

    @jtape.jit(state=[model, opt])
    def step(x):
        loss = model(x).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    x = tensor.from_numpy(np.ones((2, 4), np.float32), backend, requires_grad=False)
    return backend, model, opt, step, x


def _step_compiles(caplog) -> list:
    """The compiles of a jtape.jit step's program (``flat``; ``pure`` on a mesh) that jax logged."""
    return [r for r in caplog.records if "Compiling" in r.getMessage()
            and ("jit(flat)" in r.getMessage() or "jit(pure)" in r.getMessage())]


def test_a_compiled_step_compiles_once(caplog):
    backend, model, opt, step, x = _compiled_adam_step()
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING, logger="jax"):
            for _ in range(4):
                step(x)
    finally:
        jax.config.update("jax_log_compiles", False)
    compiles = _step_compiles(caplog)
    assert len(compiles) == 1, [r.getMessage()[:120] for r in compiles]
    assert opt.steps == 4


def test_state_replaced_between_calls_is_taken_and_compiles_nothing_new(caplog):
    """A call checks the state's placement only when it is not what the last call left (object for
    object): new values put in between (a fresh optimizer state, a parameter assigned from NumPy,
    both uncommitted) are taken, and still compile nothing new."""
    backend, model, opt, step, x = _compiled_adam_step()
    fresh = optim.Adam(model.parameters(), lr=1e-2).state_dict()
    w = model.parameters()[0]
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING, logger="jax"):
            step(x)
            step(x)
            w.assign(backend.from_numpy(np.full((8, 4), 0.5, np.float32)))
            opt.load_state_dict(fresh)
            b1, w2, b2 = (t.numpy() for t in model.parameters()[1:])
            replaced = step(x).item()
            step(x)
    finally:
        jax.config.update("jax_log_compiles", False)
    compiles = _step_compiles(caplog)
    assert len(compiles) == 1, [r.getMessage()[:120] for r in compiles]
    # the replaced values were used: the loss of the model with w = 0.5 everywhere
    h = np.maximum(np.ones((2, 4), np.float32) @ np.full((4, 8), 0.5, np.float32) + b1, 0)
    np.testing.assert_allclose(replaced, np.mean(h @ w2.T + b2), rtol=1e-6)
    assert not np.allclose(w.numpy(), 0.5)          # and the step moved it on from there


def test_index_values_captured_by_a_compiled_step_are_checked():
    """Targets captured by closure (concrete inside the trace): in range they train, out of range
    the call raises at the line, as eagerly."""
    import pytest

    from jtape.tensor.errors import ShapeError

    backend = autodiff.new(JaxBackend("cpu"))
    model = nn.Linear(4, 3, backend, seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = tensor.from_numpy(np.ones((2, 4), np.float32), backend, requires_grad=False)

    def make_step(targets):
        y = tensor.from_numpy(np.array(targets, np.int32), backend, requires_grad=False)

        @jtape.jit(state=[model, opt])
        def step(x):
            loss = model(x).cross_entropy(y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss
        return step

    assert np.isfinite(make_step([0, 2])(x).item())
    with pytest.raises(ShapeError, match=r"cross_entropy: got targets values in \[0, 5\]"):
        make_step([0, 5])(x)
