"""Losses (``CrossEntropyLoss``, ``MSELoss``) and the ``accuracy`` metric."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor.errors import ShapeError
from ..tensor.tensor import Tensor
from .module import Module


def _on_backend(values: Any, like: Tensor, dtype: Any) -> Tensor:
    """``values`` as a Tensor on ``like``'s backend (a Tensor passes through unchanged)."""
    if isinstance(values, Tensor):
        return values
    return Tensor(like.backend.from_numpy(np.asarray(values), dtype), like.backend)


class CrossEntropyLoss(Module):
    """Softmax cross-entropy of ``logits`` [B, C] against integer class ``targets`` [B], averaged
    over the batch: one ``cross_entropy`` op (CrossEntropyOp) on the tape.

    ``targets`` may be an int Tensor or anything ``np.asarray`` takes (it becomes int32)."""

    def forward(self, logits: Tensor, targets: Any) -> Tensor:
        return logits.cross_entropy(_on_backend(targets, logits, None if isinstance(targets, Tensor) else "int32"))


class MSELoss(Module):
    """Mean (or sum, with ``reduction="sum"``) of the squared differences (pred - target)².

    Recorded as SubOp, MulOp, SumOp (and DivScalarOp for the mean)."""

    def __init__(self, reduction: str = "mean"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"MSELoss: got reduction={reduction!r}; expected 'mean' or 'sum'")
        self.reduction = reduction

    def forward(self, pred: Tensor, target: Any) -> Tensor:
        target = _on_backend(target, pred, pred.dtype)
        if tuple(target.shape) != tuple(pred.shape):
            raise ShapeError(f"MSELoss: got pred shape {tuple(pred.shape)} and target shape "
                             f"{tuple(target.shape)}; expected the same shape")
        diff = pred - target
        total = (diff * diff).sum()
        return total if self.reduction == "sum" else total.div_scalar(float(pred.shape.size))

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


def accuracy(logits: Tensor, targets: Any) -> float:
    """The fraction of rows whose arg-max over classes equals the target (argmax is not recorded)."""
    predicted = np.asarray(logits.argmax(-1).numpy())
    expected = np.asarray(targets.numpy() if isinstance(targets, Tensor) else targets)
    if predicted.shape != expected.shape:
        raise ShapeError(f"accuracy: got {predicted.shape} predictions and targets of shape {expected.shape}; "
                         f"expected one target per row of logits")
    return float(np.mean(predicted == expected)) if predicted.size else 0.0
