"""The training step the tests share: the one the README and the docs teach."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def cross_entropy_step(model: Any, opt: Any) -> Callable:
    """``step(x, y)``: cross-entropy loss of ``model(x)``, backward, ``opt.step()``, ``zero_grad``;
    returns the loss. Eager as it is, compiled under ``jtape.jit(step, state=[model, opt])``."""
    def step(x: Any, y: Any) -> Any:
        loss = model(x).cross_entropy(y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss
    return step
