"""Normalisation layers: ``LayerNorm``, ``BatchNorm1d`` and ``BatchNorm2d``.

Both normalise as  y = (x - μ) / √(σ² + ε) · γ + β,  with μ and σ² the mean and the *biased*
(population) variance over some dims, and a learned per-feature scale γ (``weight``, ones) and
shift β (``bias``, zeros). They are written with Tensor methods — mean, sub, mul, rsqrt — so the
tape records ordinary ops and differentiates through μ and σ² too (the gradient of a normalised
value depends on every value in its group, which the recorded mean and variance carry).

LayerNorm takes μ, σ² over the trailing ``normalized_shape`` dims of each sample, in training and in
evaluation alike. BatchNorm takes them per channel over the batch (and length, or height and
width): in training mode from the batch, while keeping running estimates in buffers
(``running_mean``, ``running_var``, ``num_batches_tracked``), which evaluation mode uses instead.
As in PyTorch the running variance is updated with the *unbiased* batch variance
(σ² · n / (n - 1)):  running ← (1 - momentum) · running + momentum · batch  (``momentum=None``: the
cumulative average, momentum = 1 / num_batches_tracked). The buffer updates are computed under
``no_grad`` and swapped in with ``assign``, so nothing is recorded for them
and they are carried through ``jtape.jit`` as state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..autodiff import no_grad
from ..tensor.dtype import DataType
from ..tensor.errors import ArgumentError, DTypeError, ShapeError
from ..tensor.tensor import Tensor
from ._build import backend_of, filled, float_dtype, number, positive_int
from .module import Module, Parameter


def _check_float(layer: str, x: Tensor) -> None:
    if not x.dtype.is_float:
        raise DTypeError(f"{layer}: got input of dtype {x.dtype.value}; expected a float tensor")


class LayerNorm(Module):
    """Normalise each sample over its trailing ``normalized_shape`` dims (see the module docstring).

    ``normalized_shape`` is an int or a tuple; the input is [..., *normalized_shape]. With
    ``elementwise_affine`` the layer learns ``weight`` and (with ``bias``) ``bias``, each of shape
    ``normalized_shape``. ``backend`` defaults to ``jtape.default_backend()``.
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, *, backend: Any = None, dtype: DataType | str = "float32"):
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        if not isinstance(shape, Sequence) or not shape or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
            raise ArgumentError(f"LayerNorm: got normalized_shape={normalized_shape!r}; expected a positive int "
                                f"or a non-empty tuple of them")
        self.normalized_shape = tuple(shape)
        self.eps = number("LayerNorm", "eps", eps)
        self.elementwise_affine = bool(elementwise_affine)
        backend, dt = backend_of(backend), float_dtype("LayerNorm", dtype)
        self.weight = Parameter(filled(self.normalized_shape, 1.0, backend, dt)) if elementwise_affine else None
        self.bias = Parameter(filled(self.normalized_shape, 0.0, backend, dt)) if elementwise_affine and bias \
            else None

    def forward(self, x: Tensor) -> Tensor:
        _check_float("LayerNorm", x)
        k = len(self.normalized_shape)
        if tuple(x.shape[x.ndim - k:]) != self.normalized_shape or x.ndim < k:
            raise ShapeError(f"LayerNorm: got input shape {tuple(x.shape)}; expected [..., "
                             f"{', '.join(map(str, self.normalized_shape))}] (normalized_shape as its last dims)")
        dims = tuple(range(x.ndim - k, x.ndim))
        centred = x - x.mean(dims, keepdim=True)
        y = centred * ((centred * centred).mean(dims, keepdim=True) + self.eps).rsqrt()
        if self.weight is not None:
            y = y * self.weight
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class _BatchNorm(Module):
    """What BatchNorm1d and BatchNorm2d share; they differ only in the input ranks they take."""

    ranks: tuple[int, ...] = ()
    layout: str = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, *, backend: Any = None, dtype: DataType | str = "float32"):
        name = type(self).__name__
        self.num_features = positive_int(name, "num_features", num_features)
        self.eps = number(name, "eps", eps)
        self.momentum = None if momentum is None else number(name, "momentum", momentum)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        backend, dt = backend_of(backend), float_dtype(name, dtype)
        c = (self.num_features,)
        self.weight = Parameter(filled(c, 1.0, backend, dt)) if affine else None
        self.bias = Parameter(filled(c, 0.0, backend, dt)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", filled(c, 0.0, backend, dt))
            self.register_buffer("running_var", filled(c, 1.0, backend, dt))
            self.register_buffer("num_batches_tracked", filled((), 0, backend, _counter_dtype(backend)))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def forward(self, x: Tensor) -> Tensor:
        name = type(self).__name__
        _check_float(name, x)
        if x.ndim not in self.ranks or x.shape[1] != self.num_features:
            raise ShapeError(f"{name}: got input shape {tuple(x.shape)}; expected {self.layout} with "
                             f"C={self.num_features}")
        dims = (0,) + tuple(range(2, x.ndim))
        per_channel = (1, self.num_features) + (1,) * (x.ndim - 2)
        if self.training or self.running_mean is None:
            n = x.shape.size // self.num_features
            if self.training and n <= 1:
                raise ShapeError(f"{name}: got input shape {tuple(x.shape)} in training mode; expected more than "
                                 f"1 value per channel (batch statistics of one value are undefined)")
            mean = x.mean(dims, keepdim=True)
            centred = x - mean
            var = (centred * centred).mean(dims, keepdim=True)
            if self.training and self.running_mean is not None:
                self._update_running_stats(mean.reshape(self.num_features), var.reshape(self.num_features), n)
            y = centred * (var + self.eps).rsqrt()
        else:
            mean, var = self.running_mean.reshape(per_channel), self.running_var.reshape(per_channel)
            y = (x - mean) * (var + self.eps).rsqrt()
        if self.weight is not None:
            y = y * self.weight.reshape(per_channel) + self.bias.reshape(per_channel)
        return y

    def _update_running_stats(self, mean: Tensor, var: Tensor, n: int) -> None:
        """running ← running + momentum · (batch - running), with the unbiased batch variance; under
        ``no_grad``, so nothing is recorded (and no gradient reaches the buffers)."""
        with no_grad():
            count = self.num_batches_tracked + 1
            self.num_batches_tracked.assign(count.raw())
            unbiased = var * (n / (n - 1))
            for buffer, batch in ((self.running_mean, mean), (self.running_var, unbiased)):
                batch = batch.cast(buffer.dtype) if batch.dtype is not buffer.dtype else batch
                if self.momentum is None:  # the cumulative average of every batch so far
                    step = (batch - buffer) / count.cast(buffer.dtype)
                else:
                    step = (batch - buffer) * self.momentum
                buffer.assign((buffer + step).raw())

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


def _counter_dtype(backend: Any) -> DataType:
    """int64 for the batch counter, as torch — int32 where the backend has no int64 (JAX without x64)."""
    try:
        backend.full((), 0, DataType.INT64)
    except DTypeError:
        return DataType.INT32
    return DataType.INT64


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of [N, C] or [N, C, L] inputs per channel C (see the module docstring).

    ``weight``/``bias`` (with ``affine``) are [C]; ``running_mean``/``running_var`` (with
    ``track_running_stats``) are buffers of shape [C], ``num_batches_tracked`` a scalar buffer.
    """

    ranks = (2, 3)
    layout = "[N, C] or [N, C, L]"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of [N, C, H, W] inputs per channel C, over N, H and W (see the module
    docstring); parameters and buffers as BatchNorm1d's."""

    ranks = (4,)
    layout = "[N, C, H, W]"
