"""A jtape.jit step compiles once: the fresh optimizer state (optax's init, uncommitted) and the
state every call returns (committed) must not look like two placements to jax.jit."""

from __future__ import annotations

import logging

import jax
import numpy as np

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend


def test_a_compiled_step_compiles_once(caplog):
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
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING, logger="jax"):
            for _ in range(4):
                step(x)
    finally:
        jax.config.update("jax_log_compiles", False)
    compiles = [r for r in caplog.records if "Compiling" in r.getMessage() and "pure" in r.getMessage()]
    assert len(compiles) == 1, [r.getMessage()[:120] for r in compiles]
    assert opt.steps == 4
