"""Regression and binary losses: ``L1Loss``, ``SmoothL1Loss``, ``HuberLoss`` and ``BCEWithLogitsLoss``.

Each is a few Tensor methods on the tape (sub, abs, where, softplus, …); ``reduction`` is
``"mean"``, ``"sum"`` or ``"none"``, as in torch. The target is a Tensor of the input's shape (it
gets a gradient too where the loss has one) or an array of that shape (a constant).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor.errors import ArgumentError, ShapeError
from ..tensor.tensor import Tensor
from ._build import number
from .loss import _on_backend, check_reduction, reduce, same_shape_target
from .module import Module


class L1Loss(Module):
    """|pred - target|, averaged, summed or as it is (``reduction``). Its gradient is sign(pred - target)
    (0 where they are equal)."""

    def __init__(self, reduction: str = "mean"):
        self.reduction = check_reduction("L1Loss", reduction)

    def forward(self, pred: Tensor, target: Any) -> Tensor:
        return reduce((pred - same_shape_target("L1Loss", pred, target)).abs(), self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class SmoothL1Loss(Module):
    """0.5 · d² / β where |d| < β, else |d| - 0.5 · β  (d = pred - target; β = ``beta`` >= 0, and β = 0 is
    L1Loss): quadratic near zero, linear beyond, so outliers pull with a bounded gradient."""

    def __init__(self, reduction: str = "mean", beta: float = 1.0):
        self.reduction = check_reduction("SmoothL1Loss", reduction)
        self.beta = number("SmoothL1Loss", "beta", beta)
        if self.beta < 0:
            raise ArgumentError(f"SmoothL1Loss: got beta={beta}; expected beta >= 0")

    def forward(self, pred: Tensor, target: Any) -> Tensor:
        d = pred - same_shape_target("SmoothL1Loss", pred, target)
        if self.beta == 0.0:
            return reduce(d.abs(), self.reduction)
        a = d.abs()
        return reduce((d * d * (0.5 / self.beta)).where(a < self.beta, a - 0.5 * self.beta), self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, beta={self.beta}"


class HuberLoss(Module):
    """0.5 · d² where |d| < δ, else δ · (|d| - 0.5 · δ)  (d = pred - target, δ = ``delta`` > 0): SmoothL1Loss
    scaled by δ, as torch's HuberLoss."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        self.reduction = check_reduction("HuberLoss", reduction)
        self.delta = number("HuberLoss", "delta", delta)
        if self.delta <= 0:
            raise ArgumentError(f"HuberLoss: got delta={delta}; expected delta > 0")

    def forward(self, pred: Tensor, target: Any) -> Tensor:
        d = pred - same_shape_target("HuberLoss", pred, target)
        a = d.abs()
        return reduce((d * d * 0.5).where(a < self.delta, (a - 0.5 * self.delta) * self.delta), self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, delta={self.delta}"


class BCEWithLogitsLoss(Module):
    """Binary cross-entropy of sigmoid(x) against targets y in [0, 1], from the logits x, stably:

        loss = w · [ (1 - y) · x + (1 + (pos_weight - 1) · y) · softplus(-x) ]

    which is -w · [ pos_weight · y · log σ(x) + (1 - y) · log(1 - σ(x)) ] rewritten with
    log σ(x) = -softplus(-x) and log(1 - σ(x)) = -x - softplus(-x): no exp overflows and no log of 0.
    ``weight`` broadcasts against the loss (a per-element rescaling); ``pos_weight`` against the
    last dim (one weight per class, for the positives). The mean is over every element.
    """

    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None):
        self.reduction = check_reduction("BCEWithLogitsLoss", reduction)
        self.weight = weight if weight is None or isinstance(weight, Tensor) else np.asarray(weight)
        self.pos_weight = pos_weight if pos_weight is None or isinstance(pos_weight, Tensor) else \
            np.asarray(pos_weight)

    def forward(self, logits: Tensor, target: Any) -> Tensor:
        y = same_shape_target("BCEWithLogitsLoss", logits, target)
        shape = tuple(logits.shape)
        weight, pos = (None if w is None else _broadcastable("BCEWithLogitsLoss", name, _on_backend(w, logits,
                       logits.dtype), shape) for name, w in (("weight", self.weight), ("pos_weight", self.pos_weight)))
        soft = (-logits).softplus()
        losses = (1.0 - y) * logits + (soft if pos is None else (1.0 + (pos - 1.0) * y) * soft)
        return reduce(losses if weight is None else losses * weight, self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


def _broadcastable(loss: str, name: str, w: Tensor, shape: tuple) -> Tensor:
    """``w`` if it broadcasts to ``shape`` without growing it, else a clear error."""
    ws = tuple(w.shape)
    ok = len(ws) <= len(shape) and all(a in (1, b) for a, b in zip(ws[::-1], shape[::-1]))
    if not ok:
        raise ShapeError(f"{loss}: got {name} of shape {ws} for input shape {shape}; expected a shape that "
                         f"broadcasts to the input's")
    return w
