"""``SGD``, ``Adam`` and ``AdamW``: PyTorch-style constructors over optax's transformations.

``lr`` is a number or an optax schedule (``optax.exponential_decay(...)``, any step -> lr
callable); optax evaluates a schedule at its own step count.
"""

from __future__ import annotations

from collections.abc import Iterable

import optax

from ..nn.module import Parameter
from .optimizer import LearningRate, Optimizer


def _with_l2(weight_decay: float, transform: optax.GradientTransformation) -> optax.GradientTransformation:
    """Coupled weight decay (PyTorch's ``weight_decay`` for SGD and Adam): g + λ·p goes into ``transform``."""
    if weight_decay < 0:
        raise ValueError(f"weight_decay: got {weight_decay}; expected >= 0")
    return transform if weight_decay == 0 else optax.chain(optax.add_decayed_weights(weight_decay), transform)


class SGD(Optimizer):
    """Stochastic gradient descent: ``optax.sgd(lr, momentum, nesterov)`` after L2 weight decay.

    With momentum μ: v ← μ·v + g, and the step is -lr·v (Nesterov: -lr·(g + μ·v)); this is
    PyTorch's SGD with dampening 0. ``weight_decay`` λ adds λ·p to g first.
    """

    def __init__(self, params: Iterable[Parameter], lr: LearningRate, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        transform = optax.sgd(lr, momentum=momentum or None, nesterov=nesterov)
        super().__init__(params, _with_l2(weight_decay, transform), lr)
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay


class Adam(Optimizer):
    """Adam: ``optax.adam(lr, b1, b2, eps)``; ``weight_decay`` is the coupled L2 term (as PyTorch's
    Adam). For decoupled weight decay use ``AdamW``."""

    def __init__(self, params: Iterable[Parameter], lr: LearningRate = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        transform = optax.adam(lr, b1=betas[0], b2=betas[1], eps=eps)
        super().__init__(params, _with_l2(weight_decay, transform), lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay


class AdamW(Optimizer):
    """Adam with decoupled weight decay: ``optax.adamw(lr, b1, b2, eps, weight_decay)``
    (p ← p - lr·(adam_step + λ·p); λ = 0.01 by default, as PyTorch's)."""

    def __init__(self, params: Iterable[Parameter], lr: LearningRate = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01):
        transform = optax.adamw(lr, b1=betas[0], b2=betas[1], eps=eps, weight_decay=weight_decay)
        super().__init__(params, transform, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
