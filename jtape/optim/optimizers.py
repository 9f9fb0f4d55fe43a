"""``SGD``, ``Adam`` and ``AdamW``: PyTorch-style constructors over optax's transformations.

``lr`` is a number or an optax schedule (``optax.exponential_decay(...)``, any step -> lr
callable); optax evaluates a schedule at its own step count. Every option may be set per
parameter group (``[{"params": ..., "lr": ...}, ...]``). The numeric ones are injected
hyperparameters (``jtape.optim.groups``): change them in ``opt.param_groups`` between steps.
An option that is 0 when the optimizer is built (momentum, weight decay) adds no state and no
term to the update, so it stays 0; ``nesterov``, schedules and masks fix the update's structure.

``weight_decay_mask``: which parameters are decayed — a callable ``Parameter -> bool`` (e.g.
``lambda p: p.ndim > 1``: matrices, not biases or norm scales) or None (all); per group too.
A group with ``weight_decay=0`` is the other way to exempt biases and norms.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

import optax

from ..tensor.errors import ArgumentError
from .optimizer import LearningRate, Optimizer, Params

DecayMask = Callable[[Any], bool] | None


def _l2(weight_decay: Any, mask: list[bool] | None, transform: optax.GradientTransformation) -> Any:
    """Coupled weight decay (PyTorch's ``weight_decay`` for SGD and Adam): g + λ·p goes into ``transform``."""
    return transform if weight_decay is None else optax.chain(optax.add_decayed_weights(weight_decay, mask), transform)


def _sgd(learning_rate: Any, momentum: Any = None, weight_decay: Any = None, *, nesterov: bool = False,
         mask: list[bool] | None = None) -> optax.GradientTransformation:
    return _l2(weight_decay, mask, optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov))


def _adam(learning_rate: Any, b1: Any, b2: Any, eps: Any, weight_decay: Any = None, *, decoupled: bool = False,
          mask: list[bool] | None = None) -> optax.GradientTransformation:
    if decoupled and weight_decay is not None:
        return optax.adamw(learning_rate, b1, b2, eps, weight_decay=weight_decay, mask=mask)
    return _l2(weight_decay, mask, optax.adam(learning_rate, b1, b2, eps))


def _off_when_zero(hyper: dict[str, Any], *names: str) -> dict[str, Any]:
    """``hyper`` with each of ``names`` that is 0 set to None: that term is left out of the update."""
    return {k: None if k in names and not callable(v) and v == 0 else v for k, v in hyper.items()}


class _Built(Optimizer):
    """The shared part of SGD, Adam and AdamW: groups' options checked, one transform per group."""

    # group option -> the injected optax hyperparameters it sets
    _SOURCES: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, params: Params, **defaults: Any):
        self._lr, self._sources = None, dict(self._SOURCES)
        self._build(params, defaults)

    def _mask(self, group: dict) -> list[bool] | None:
        rule = group["weight_decay_mask"]
        if rule is None:
            return None
        if not callable(rule):
            raise ArgumentError(f"{type(self).__name__}: weight_decay_mask: got a {type(rule).__name__}; expected "
                                f"a callable Parameter -> bool, or None")
        return [bool(rule(p)) for p in self.params]

    def _check(self, group: dict) -> None:
        if not callable(group["lr"]) and group["lr"] < 0:
            raise ValueError(f"{type(self).__name__}: lr: got {group['lr']}; expected >= 0")
        if group["weight_decay"] < 0:
            raise ValueError(f"weight_decay: got {group['weight_decay']}; expected >= 0")

    def _inject(self, factory: Callable, static: dict, **hyper: Any) -> optax.GradientTransformation:
        return optax.inject_hyperparams(functools.partial(factory, **static), static_args=tuple(static),
                                        hyperparam_dtype=self.hyperparam_dtype)(**hyper)


class SGD(_Built):
    """Stochastic gradient descent: ``optax.sgd(lr, momentum, nesterov)`` after L2 weight decay.

    With momentum μ: v ← μ·v + g, and the step is -lr·v (Nesterov: -lr·(g + μ·v)); this is
    PyTorch's SGD with dampening 0. ``weight_decay`` λ adds λ·p to g first.
    """

    _SOURCES: ClassVar[dict[str, tuple[str, ...]]] = {
        "lr": ("learning_rate",), "momentum": ("momentum",), "weight_decay": ("weight_decay",)}

    def __init__(self, params: Params, lr: LearningRate, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, weight_decay_mask: DecayMask = None):
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                         weight_decay_mask=weight_decay_mask)

    def _group_transform(self, group: dict) -> optax.GradientTransformation:
        self._check(group)
        if group["nesterov"] and group["momentum"] <= 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        return self._inject(_sgd, {"nesterov": bool(group["nesterov"]), "mask": self._mask(group)},
                            **_off_when_zero(self._to_optax(group), "momentum", "weight_decay"))

    def _to_optax(self, group: dict) -> dict[str, Any]:
        return {"learning_rate": group["lr"], "momentum": group["momentum"], "weight_decay": group["weight_decay"]}


class Adam(_Built):
    """Adam: ``optax.adam(lr, b1, b2, eps)``; ``weight_decay`` is the coupled L2 term (as PyTorch's
    Adam). For decoupled weight decay use ``AdamW``."""

    _SOURCES: ClassVar[dict[str, tuple[str, ...]]] = {
        "lr": ("learning_rate",), "betas": ("b1", "b2"), "eps": ("eps",), "weight_decay": ("weight_decay",)}
    _DECOUPLED = False

    def __init__(self, params: Params, lr: LearningRate = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, weight_decay_mask: DecayMask = None):
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                         weight_decay_mask=weight_decay_mask)

    def _group_transform(self, group: dict) -> optax.GradientTransformation:
        self._check(group)
        betas = group["betas"]
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ArgumentError(f"{type(self).__name__}: betas: got {betas!r}; expected a pair (b1, b2)")
        return self._inject(_adam, {"decoupled": self._DECOUPLED, "mask": self._mask(group)},
                            **_off_when_zero(self._to_optax(group), "weight_decay"))

    def _to_optax(self, group: dict) -> dict[str, Any]:
        b1, b2 = group["betas"]
        return {"learning_rate": group["lr"], "b1": b1, "b2": b2, "eps": group["eps"],
                "weight_decay": group["weight_decay"]}


class AdamW(Adam):
    """Adam with decoupled weight decay: ``optax.adamw(lr, b1, b2, eps, weight_decay)``
    (p ← p - lr·(adam_step + λ·p); λ = 0.01 by default, as PyTorch's)."""

    _DECOUPLED = True

    def __init__(self, params: Params, lr: LearningRate = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, weight_decay_mask: DecayMask = None):
        super().__init__(params, lr, betas, eps, weight_decay, weight_decay_mask)
