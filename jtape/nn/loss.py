"""Classification losses (``CrossEntropyLoss``, ``NLLLoss``), ``MSELoss`` and the ``accuracy`` metric;
the other regression and binary losses are in ``jtape.nn.regression_loss``.

Every loss is written with Tensor methods (log_softmax, gather, where, sum, …), so the tape records
ordinary ops and differentiates them with their own rules; nothing here has a rule of its own.
``reduction`` is ``"mean"``, ``"sum"`` or ``"none"`` (the per-element losses), as in torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor.errors import ArgumentError, DTypeError, ShapeError
from ..tensor.tensor import Tensor
from ._build import number
from .module import Module

REDUCTIONS = ("mean", "sum", "none")


def _on_backend(values: Any, like: Tensor, dtype: Any) -> Tensor:
    """``values`` as a Tensor on ``like``'s backend (a Tensor passes through unchanged; an array or list
    becomes a constant)."""
    if isinstance(values, Tensor):
        return values
    return Tensor(like.backend.from_numpy(np.asarray(values), dtype), like.backend).requires_grad_(False)


def check_reduction(loss: str, reduction: Any) -> str:
    if reduction not in REDUCTIONS:
        raise ArgumentError(f"{loss}: got reduction={reduction!r}; expected 'mean', 'sum' or 'none'")
    return reduction


def reduce(losses: Tensor, reduction: str) -> Tensor:
    """The per-element ``losses`` as they are, summed, or averaged over every element."""
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.mean()


class _WeightedClassLoss(Module):
    """What NLLLoss and CrossEntropyLoss share: per-class ``weight``, ``ignore_index``, ``reduction``,
    and reading (input [N, C, d1, …] or [C], targets) as rows of class scores."""

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean"):
        name = type(self).__name__
        self.reduction = check_reduction(name, reduction)
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise ArgumentError(f"{name}: got ignore_index={ignore_index!r}; expected an int")
        self.ignore_index = ignore_index
        if weight is not None and not isinstance(weight, Tensor):
            weight = np.asarray(weight)
        if weight is not None and (weight.ndim != 1 or weight.shape[0] == 0):
            raise ShapeError(f"{name}: got weight of shape {tuple(weight.shape)}; expected [C], one weight per class")
        self.weight = weight  # a Tensor (used as it is), or an array lifted onto the input's backend per call

    def _rows(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` as [M, C] rows of class scores and ``target`` as [M] class indices."""
        name = type(self).__name__
        if not x.dtype.is_float:
            raise DTypeError(f"{name}: got input of dtype {x.dtype.value}; expected a float tensor")
        if not target.dtype.is_int:
            raise DTypeError(f"{name}: got target of dtype {target.dtype.value}; expected integer class indices")
        expected = () if x.ndim == 1 else (x.shape[0],) + tuple(x.shape[2:])
        if x.ndim == 0 or tuple(target.shape) != expected:
            raise ShapeError(f"{name}: got input shape {tuple(x.shape)} and target shape {tuple(target.shape)}; "
                             f"expected input [N, C, d1, ...] (or [C]) with target [N, d1, ...] (or [])")
        c = x.shape[0 if x.ndim == 1 else 1]
        if self.weight is not None and self.weight.shape[0] != c:
            raise ShapeError(f"{name}: got weight of shape {tuple(self.weight.shape)} for {c} classes (input shape "
                             f"{tuple(x.shape)}); expected [{c}]")
        if x.ndim > 2:
            x = x.movedim(1, -1)
        return x.reshape(-1, c), target.reshape(-1)

    def _weights(self, x: Tensor) -> Tensor | None:
        w = self.weight
        return None if w is None else _on_backend(w, x, x.dtype) if not isinstance(w, Tensor) else w

    def _pick(self, logp: Tensor, target: Tensor, weight: Tensor | None) -> tuple[Tensor, Tensor]:
        """For each row: -w[t]·logp[t] (0 where t is ignore_index), and its weight w[t] (0 where ignored)."""
        keep = target != self.ignore_index
        safe = target.where(keep, 0)  # ignore_index may lie outside [0, C): read class 0 there, then drop it
        picked = logp.gather(1, safe.unsqueeze(1)).reshape(-1)
        w = keep.cast(logp.dtype) if weight is None else weight.embedding(safe).where(keep, 0.0)
        return -(picked * w), w

    def _finish(self, losses: Tensor, w: Tensor, shape: tuple) -> Tensor:
        """Reduce per-row losses; the mean divides by the summed weights of the kept rows (as torch)."""
        if self.reduction == "none":
            return losses.reshape(shape)
        total = losses.sum()
        return total if self.reduction == "sum" else total / w.sum()

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}, reduction={self.reduction!r}"


class NLLLoss(_WeightedClassLoss):
    """Negative log-likelihood of log-probabilities ``input`` [N, C] (or [N, C, d1, …], or [C]) against
    class indices ``target`` [N] ([N, d1, …], []): loss_i = -w[t_i] · input[i, t_i].

    ``weight`` [C] scales each class; targets equal to ``ignore_index`` count for nothing; the mean
    divides by Σ w[t_i] over the kept targets (as torch: NaN when all are ignored).
    """

    def forward(self, input: Tensor, target: Any) -> Tensor:
        target = _on_backend(target, input, None if isinstance(target, Tensor) else "int32")
        rows, t = self._rows(input, target)
        losses, w = self._pick(rows, t, self._weights(input))
        return self._finish(losses, w, tuple(target.shape))


class CrossEntropyLoss(_WeightedClassLoss):
    """Softmax cross-entropy of ``logits`` [N, C] (or [N, C, d1, …], or [C]) against class indices
    [N] ([N, d1, …], []) or class probabilities (a float target of the logits' shape), with torch's
    semantics for ``weight``, ``ignore_index``, ``reduction`` and ``label_smoothing``:

    - class indices: loss_i = (1 - ε) · (-w[t_i] · logp_i[t_i]) + (ε / C) · (-Σ_c w_c · logp_i[c]), with
      logp = log_softmax(logits, dim=1); rows with t_i = ignore_index count for nothing, and the
      mean divides by Σ w[t_i] over the kept rows;
    - probabilities p: the target becomes (1 - ε) · p + ε / C and loss_i = -Σ_c w_c · p_c · logp_i[c];
      the mean divides by the number of rows.
    """

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__(weight, ignore_index, reduction)
        self.label_smoothing = number("CrossEntropyLoss", "label_smoothing", label_smoothing)
        if not 0.0 <= self.label_smoothing <= 1.0:
            raise ArgumentError(f"CrossEntropyLoss: got label_smoothing={label_smoothing}; expected 0 <= "
                                f"label_smoothing <= 1")

    def forward(self, logits: Tensor, target: Any) -> Tensor:
        target = _on_backend(target, logits, None if isinstance(target, Tensor) else
                             logits.dtype if np.asarray(target).dtype.kind == "f" else "int32")
        if target.dtype.is_float and logits.dtype.is_float:
            return self._soft(logits, target)
        rows, t = self._rows(logits, target)
        logp, weight, eps = rows.log_softmax(1), self._weights(logits), self.label_smoothing
        losses, w = self._pick(logp, t, weight)
        if eps:
            spread = -(logp if weight is None else logp * weight).sum(1)
            losses = losses * (1.0 - eps) + spread.where(t != self.ignore_index, 0.0) * (eps / rows.shape[1])
        return self._finish(losses, w, tuple(target.shape))

    def _soft(self, logits: Tensor, p: Tensor) -> Tensor:
        """Probability targets: -Σ_c w_c · p_c · logp[c] per row; the mean is over rows, unweighted."""
        if tuple(p.shape) != tuple(logits.shape):
            raise ShapeError(f"CrossEntropyLoss: got logits shape {tuple(logits.shape)} and probability target "
                             f"shape {tuple(p.shape)}; expected the same shape (or integer class indices)")
        dim = 0 if logits.ndim == 1 else 1
        c = logits.shape[dim]
        if self.weight is not None and self.weight.shape[0] != c:
            raise ShapeError(f"CrossEntropyLoss: got weight of shape {tuple(self.weight.shape)} for {c} classes; "
                             f"expected [{c}]")
        if self.label_smoothing:
            p = p * (1.0 - self.label_smoothing) + self.label_smoothing / c
        terms = logits.log_softmax(dim) * p
        weight = self._weights(logits)
        if weight is not None:
            terms = terms * weight.reshape((c,) + (1,) * (logits.ndim - dim - 1))
        return reduce(-terms.sum(dim), self.reduction)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", label_smoothing={self.label_smoothing}"


class MSELoss(Module):
    """The squared differences (pred - target)², averaged (``reduction="mean"``), summed or as they are.
    ``target`` may be a Tensor (it gets a gradient too) or an array."""

    def __init__(self, reduction: str = "mean"):
        self.reduction = check_reduction("MSELoss", reduction)

    def forward(self, pred: Tensor, target: Any) -> Tensor:
        target = same_shape_target("MSELoss", pred, target)
        diff = pred - target
        return reduce(diff * diff, self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


def same_shape_target(loss: str, pred: Tensor, target: Any) -> Tensor:
    """``target`` on ``pred``'s backend, checked to be a float tensor of ``pred``'s shape."""
    if not isinstance(pred, Tensor) or not pred.dtype.is_float:
        got = pred.dtype.value if isinstance(pred, Tensor) else type(pred).__name__
        raise DTypeError(f"{loss}: got input of {got}; expected a float Tensor")
    target = _on_backend(target, pred, pred.dtype)
    if tuple(target.shape) != tuple(pred.shape):
        raise ShapeError(f"{loss}: got pred shape {tuple(pred.shape)} and target shape {tuple(target.shape)}; "
                         f"expected the same shape")
    if not target.dtype.is_float:
        raise DTypeError(f"{loss}: got target of dtype {target.dtype.value}; expected a float tensor")
    return target


def accuracy(logits: Tensor, targets: Any) -> float:
    """The fraction of rows whose arg-max over classes equals the target (argmax is not recorded)."""
    predicted = np.asarray(logits.argmax(-1).numpy())
    expected = np.asarray(targets.numpy() if isinstance(targets, Tensor) else targets)
    if predicted.shape != expected.shape:
        raise ShapeError(f"accuracy: got {predicted.shape} predictions and targets of shape {expected.shape}; "
                         f"expected one target per row of logits")
    return float(np.mean(predicted == expected)) if predicted.size else 0.0
